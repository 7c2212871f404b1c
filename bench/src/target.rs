//! The rtmp:// and http:// URLs the bench talks to, split into address, app, stream and path.
//! Hosts must resolve to a loopback address: this tool only ever loads a server on this machine.

use anyhow::{bail, Context, Result};
use std::net::{SocketAddr, ToSocketAddrs};

/// Where to publish or play over RTMP: `rtmp://host[:port]/app[/more]/stream`, or over
/// RTMPS: `rtmps://…` (port 443 by default; any certificate is accepted, see `crate::tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpTarget {
    pub addr: SocketAddr,
    pub tls: bool,
    pub app: String,
    pub stream: String,
    pub tc_url: String,
}

/// Where to GET an FLV stream: `http://host[:port]/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    pub addr: SocketAddr,
    /// The Host header value.
    pub host: String,
    /// Path and query, starting with '/'.
    pub path: String,
}

impl RtmpTarget {
    pub fn parse(url: &str) -> Result<Self> {
        let tls = url.starts_with("rtmps://");
        let (host, port, path) = if tls {
            split_url(url, "rtmps://", 443)?
        } else {
            split_url(url, "rtmp://", 1935)?
        };
        let path = path.trim_start_matches('/');
        let (app, stream) = path
            .rsplit_once('/')
            .with_context(|| format!("{url}: expected rtmp://host[:port]/app/stream"))?;
        if app.is_empty() || stream.is_empty() {
            bail!("{url}: expected rtmp://host[:port]/app/stream");
        }
        let scheme = if tls { "rtmps" } else { "rtmp" };
        Ok(Self {
            addr: resolve_loopback(&host, port)?,
            tls,
            app: app.to_string(),
            stream: stream.to_string(),
            tc_url: format!("{scheme}://{}/{app}", authority(&host, port)),
        })
    }
}

impl HttpTarget {
    pub fn parse(url: &str) -> Result<Self> {
        let (host, port, path) = split_url(url, "http://", 80)?;
        Ok(Self {
            addr: resolve_loopback(&host, port)?,
            host: authority(&host, port),
            path: if path.is_empty() {
                "/".to_string()
            } else {
                path.to_string()
            },
        })
    }
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Splits `scheme://host[:port]/path` into host (brackets removed), port and "/path".
fn split_url<'a>(url: &'a str, scheme: &str, default_port: u16) -> Result<(String, u16, &'a str)> {
    let rest = url
        .strip_prefix(scheme)
        .with_context(|| format!("{url}: expected a {scheme} URL"))?;
    let (auth, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = if let Some(v6) = auth.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .with_context(|| format!("{url}: unclosed '[' in host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => bail!("{url}: junk after ']'"),
        };
        (host, port)
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (auth, None),
        }
    };
    if host.is_empty() {
        bail!("{url}: empty host");
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .with_context(|| format!("{url}: bad port {p:?}"))?,
        None => default_port,
    };
    Ok((host.to_string(), port, path))
}

fn resolve_loopback(host: &str, port: u16) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .collect();
    match addrs.iter().find(|a| a.ip().is_loopback()) {
        Some(a) => Ok(*a),
        None => bail!("{host} does not resolve to a loopback address; this bench only loads servers on this machine"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtmp_url() {
        let t = RtmpTarget::parse("rtmp://127.0.0.1:1936/live/bench").unwrap();
        assert_eq!(t.addr, "127.0.0.1:1936".parse().unwrap());
        assert_eq!((t.app.as_str(), t.stream.as_str()), ("live", "bench"));
        assert_eq!(t.tc_url, "rtmp://127.0.0.1:1936/live");
        assert!(!t.tls);
        let t = RtmpTarget::parse("rtmps://127.0.0.1/live/bench").unwrap();
        assert!(t.tls);
        assert_eq!(t.addr.port(), 443);
        assert_eq!(t.tc_url, "rtmps://127.0.0.1:443/live");
        let t = RtmpTarget::parse("rtmp://[::1]/a/b/key?x=1").unwrap();
        assert_eq!(t.addr.port(), 1935);
        assert_eq!((t.app.as_str(), t.stream.as_str()), ("a/b", "key?x=1"));
        assert_eq!(t.tc_url, "rtmp://[::1]:1935/a/b");
    }

    #[test]
    fn rtmp_url_errors() {
        assert!(RtmpTarget::parse("http://127.0.0.1/live/x").is_err());
        assert!(RtmpTarget::parse("rtmp://127.0.0.1/live").is_err());
        assert!(RtmpTarget::parse("rtmp://127.0.0.1:99999/live/x").is_err());
        assert!(RtmpTarget::parse("rtmp://127.0.0.1/live/").is_err());
        assert!(RtmpTarget::parse("rtmp://192.0.2.1/live/x").is_err());
    }

    #[test]
    fn http_url() {
        let t = HttpTarget::parse("http://127.0.0.1:8080/live/bench.flv").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.host, "127.0.0.1:8080");
        assert_eq!(t.path, "/live/bench.flv");
        assert_eq!(HttpTarget::parse("http://127.0.0.1").unwrap().path, "/");
    }
}
