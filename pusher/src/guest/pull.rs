//! Pulling the guest's stream: HTTP-FLV (`http://HOST[:PORT]/PATH.flv`, an HTTP/1.0 GET, so
//! the body is the FLV itself, unchunked) or RTMP play (`rtmp://HOST[:PORT]/APP/STREAM`,
//! rml_rtmp's client session). Blocking sockets with read timeouts: the caller's thread
//! owns the connection and checks its stop flag between reads. Every size is bounded.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use onair_shared::flv::{FlvDemuxer, FlvEvent, TagFrame, TAG_AUDIO, TAG_VIDEO};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
};

use crate::publish::rtmp::RtmpUrl;

/// Why the guest's stream could not be pulled.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("bad guest URL {0}")]
    Url(String),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    /// The guest's server refused or ended the stream (its status or HTTP answer).
    #[error("{0}")]
    Refused(String),
    /// Nothing came from the guest's server for this long.
    #[error("no data for {0:?}")]
    Stalled(std::time::Duration),
    /// The stream's bytes or the RTMP exchange went wrong (the parser's or rml_rtmp's words).
    #[error("{0}")]
    Protocol(String),
}

impl PartialEq for GuestError {
    /// Equal when they say the same (I/O errors compare by message).
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl GuestError {
    fn io(what: &'static str, source: std::io::Error) -> Self {
        GuestError::Io { what, source }
    }
}

impl From<String> for GuestError {
    fn from(reason: String) -> Self {
        GuestError::Protocol(reason)
    }
}

impl From<&str> for GuestError {
    fn from(reason: &str) -> Self {
        GuestError::Protocol(reason.to_string())
    }
}

/// A connect or a reply slower than this fails the attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One blocking read waits at most this long (then the caller looks at its stop flag).
pub const READ_TIMEOUT: Duration = Duration::from_millis(200);
/// Largest FLV tag accepted from the guest.
pub const MAX_TAG_BYTES: usize = 4 << 20;
/// Largest HTTP response head.
const MAX_HEAD_BYTES: usize = 16 << 10;

/// Where the guest is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestUrl {
    HttpFlv {
        addr: String,
        host: String,
        path: String,
        url: String,
    },
    Rtmp(RtmpUrl),
}

impl GuestUrl {
    pub fn parse(url: &str) -> Result<Self, GuestError> {
        if url.starts_with("rtmp://") {
            return RtmpUrl::parse(url)
                .map(GuestUrl::Rtmp)
                .map_err(|e| GuestError::Url(e.to_string()));
        }
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(GuestError::Url(format!(
                "{url:?}: rtmp://HOST/APP/STREAM or http://HOST/PATH.flv (https is not supported)"
            )));
        };
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() || !path.to_ascii_lowercase().contains(".flv") {
            return Err(GuestError::Url(format!(
                "{url:?}: http://HOST[:PORT]/PATH.flv"
            )));
        }
        let addr = if host.starts_with('[') && host.contains("]:")
            || !host.starts_with('[') && host.contains(':')
        {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        Ok(GuestUrl::HttpFlv {
            addr,
            host: host.to_string(),
            path: format!("/{path}"),
            url: url.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            GuestUrl::HttpFlv { url, .. } => url,
            GuestUrl::Rtmp(u) => &u.url,
        }
    }
}

fn connect(addr: &str) -> Result<TcpStream, GuestError> {
    let sa = addr
        .to_socket_addrs()
        .map_err(|e| format!("resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to no address"))?;
    let s = TcpStream::connect_timeout(&sa, CONNECT_TIMEOUT)
        .map_err(|e| format!("connect to {sa}: {e}"))?;
    s.set_nodelay(true).ok();
    s.set_write_timeout(Some(CONNECT_TIMEOUT))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

/// Whether a read returned nothing because of the read timeout.
fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// An open guest connection.
pub enum GuestConn {
    Http {
        sock: TcpStream,
        demux: FlvDemuxer,
    },
    Rtmp {
        sock: TcpStream,
        session: Box<ClientSession>,
    },
}

impl GuestConn {
    pub fn open(url: &GuestUrl) -> Result<Self, GuestError> {
        match url {
            GuestUrl::HttpFlv {
                addr, host, path, ..
            } => open_http(addr, host, path),
            GuestUrl::Rtmp(u) => open_rtmp(u),
        }
    }

    /// Reads what came within `READ_TIMEOUT`: the audio and video tags (possibly none).
    /// An error means the connection is over.
    pub fn read_tags(&mut self, buf: &mut [u8]) -> Result<Vec<TagFrame>, GuestError> {
        match self {
            GuestConn::Http { sock, demux } => {
                match sock.read(buf) {
                    Ok(0) => return Err("the guest's server closed the stream".into()),
                    Ok(n) => demux.push(&buf[..n]),
                    Err(e) if timed_out(&e) => {}
                    Err(e) => return Err(GuestError::io("read", e)),
                }
                let mut tags = Vec::new();
                while let Some(ev) = demux.next_event().map_err(|e| e.to_string())? {
                    if let FlvEvent::Tag(t) = ev {
                        let f = match t.tag_type {
                            TAG_VIDEO => TagFrame::video(t.timestamp as u64, t.body),
                            TAG_AUDIO => TagFrame::audio(t.timestamp as u64, t.body),
                            _ => continue,
                        };
                        // A tag we cannot classify is skipped, not fatal.
                        if let Ok(f) = f {
                            tags.push(f);
                        }
                    }
                }
                Ok(tags)
            }
            GuestConn::Rtmp { sock, session } => {
                let n = match sock.read(buf) {
                    Ok(0) => return Err("the guest's server closed the connection".into()),
                    Ok(n) => n,
                    Err(e) if timed_out(&e) => return Ok(Vec::new()),
                    Err(e) => return Err(GuestError::io("read", e)),
                };
                let mut tags = Vec::new();
                for e in rtmp_input(sock, session, &buf[..n])? {
                    let f = match e {
                        ClientSessionEvent::VideoDataReceived { timestamp, data } => {
                            TagFrame::video(timestamp.value as u64, data)
                        }
                        ClientSessionEvent::AudioDataReceived { timestamp, data } => {
                            TagFrame::audio(timestamp.value as u64, data)
                        }
                        _ => continue,
                    };
                    if let Ok(f) = f {
                        tags.push(f);
                    }
                }
                Ok(tags)
            }
        }
    }
}

fn open_http(addr: &str, host: &str, path: &str) -> Result<GuestConn, GuestError> {
    let mut sock = connect(addr)?;
    write!(
        sock,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: onair-push\r\n\r\n"
    )
    .map_err(|e| GuestError::io("write", e))?;
    sock.set_read_timeout(Some(CONNECT_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    let body_at = loop {
        let n = sock
            .read(&mut byte)
            .map_err(|e| GuestError::io("response", e))?;
        if n == 0 {
            return Err("no HTTP response".into());
        }
        head.extend_from_slice(&byte[..n]);
        if let Some(p) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err("HTTP response head too large".into());
        }
    };
    let status = String::from_utf8_lossy(&head[..head.len().min(64)]).to_string();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code != "200" {
        return Err(GuestError::Refused(format!(
            "HTTP {}",
            status.lines().next().unwrap_or_default()
        )));
    }
    let mut demux = FlvDemuxer::new(MAX_TAG_BYTES);
    demux.push(&head[body_at..]);
    sock.set_read_timeout(Some(READ_TIMEOUT))
        .map_err(|e| e.to_string())?;
    Ok(GuestConn::Http { sock, demux })
}

fn send(sock: &mut TcpStream, r: ClientSessionResult) -> Result<(), GuestError> {
    if let ClientSessionResult::OutboundResponse(p) = r {
        sock.write_all(&p.bytes)
            .map_err(|e| GuestError::io("write", e))?;
    }
    Ok(())
}

fn rtmp_input(
    sock: &mut TcpStream,
    session: &mut ClientSession,
    bytes: &[u8],
) -> Result<Vec<ClientSessionEvent>, GuestError> {
    let results = session
        .handle_input(bytes)
        .map_err(|e| format!("RTMP from the guest's server: {e:?}"))?;
    let mut events = Vec::new();
    for r in results {
        match r {
            ClientSessionResult::OutboundResponse(p) => sock
                .write_all(&p.bytes)
                .map_err(|e| GuestError::io("write", e))?,
            ClientSessionResult::RaisedEvent(e) => events.push(e),
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
    }
    for e in &events {
        match e {
            ClientSessionEvent::ConnectionRequestRejected { description } => {
                return Err(GuestError::Refused(format!(
                    "connect rejected: {description}"
                )))
            }
            ClientSessionEvent::UnhandleableOnStatusCode { code }
                if code.ends_with("NotFound")
                    || code.ends_with("Failed")
                    || code.ends_with("Stop")
                    || code.ends_with("UnpublishNotify") =>
            {
                return Err(GuestError::Refused(format!("server said {code}")))
            }
            _ => {}
        }
    }
    Ok(events)
}

fn open_rtmp(url: &RtmpUrl) -> Result<GuestConn, GuestError> {
    if url.tls {
        return Err("rtmps:// guests are not supported".into());
    }
    let mut sock = connect(&url.addr)?;
    sock.set_read_timeout(Some(CONNECT_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut hs = Handshake::new(PeerType::Client);
    let p0p1 = hs
        .generate_outbound_p0_and_p1()
        .map_err(|e| format!("handshake: {e:?}"))?;
    sock.write_all(&p0p1)
        .map_err(|e| GuestError::io("write", e))?;
    let leftover = loop {
        let n = sock
            .read(&mut buf)
            .map_err(|e| GuestError::io("handshake", e))?;
        if n == 0 {
            return Err("closed during the handshake".into());
        }
        match hs
            .process_bytes(&buf[..n])
            .map_err(|e| format!("handshake: {e:?}"))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => sock
                .write_all(&response_bytes)
                .map_err(|e| GuestError::io("write", e))?,
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                sock.write_all(&response_bytes)
                    .map_err(|e| GuestError::io("write", e))?;
                break remaining_bytes;
            }
        }
    };
    let mut config = ClientSessionConfig::new();
    config.tc_url = Some(url.tc_url.clone());
    let (mut session, initial) =
        ClientSession::new(config).map_err(|e| format!("session: {e:?}"))?;
    for r in initial {
        send(&mut sock, r)?;
    }
    let r = session
        .request_connection(url.app.clone())
        .map_err(|e| format!("connect: {e:?}"))?;
    send(&mut sock, r)?;
    let mut pending = leftover;
    let deadline = std::time::Instant::now() + CONNECT_TIMEOUT;
    let mut connected = false;
    loop {
        if !pending.is_empty() {
            let events = rtmp_input(&mut sock, &mut session, &pending)?;
            pending.clear();
            for e in events {
                match e {
                    ClientSessionEvent::ConnectionRequestAccepted if !connected => {
                        connected = true;
                        let r = session
                            .request_playback(url.stream.clone())
                            .map_err(|e| format!("play: {e:?}"))?;
                        send(&mut sock, r)?;
                    }
                    ClientSessionEvent::PlaybackRequestAccepted => {
                        sock.set_read_timeout(Some(READ_TIMEOUT))
                            .map_err(|e| e.to_string())?;
                        return Ok(GuestConn::Rtmp {
                            sock,
                            session: Box::new(session),
                        });
                    }
                    _ => {}
                }
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(GuestError::Refused(format!(
                "no play answer within {CONNECT_TIMEOUT:?}"
            )));
        }
        let n = sock.read(&mut buf).map_err(|e| GuestError::io("read", e))?;
        if n == 0 {
            return Err("closed before playing".into());
        }
        pending.extend_from_slice(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_urls() {
        assert_eq!(
            GuestUrl::parse("http://127.0.0.1:8080/live/g.flv"),
            Ok(GuestUrl::HttpFlv {
                addr: "127.0.0.1:8080".into(),
                host: "127.0.0.1:8080".into(),
                path: "/live/g.flv".into(),
                url: "http://127.0.0.1:8080/live/g.flv".into(),
            })
        );
        match GuestUrl::parse("http://example.org/live/g.flv?token=1") {
            Ok(GuestUrl::HttpFlv { addr, path, .. }) => {
                assert_eq!(
                    (addr.as_str(), path.as_str()),
                    ("example.org:80", "/live/g.flv?token=1")
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            GuestUrl::parse("rtmp://h/live/g"),
            Ok(GuestUrl::Rtmp(_))
        ));
        for bad in [
            "https://h/a.flv",
            "http://h/a.m3u8",
            "srt://h",
            "http:///a.flv",
        ] {
            assert!(GuestUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
