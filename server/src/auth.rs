//! Who may publish and play: per-app publish keys and play tokens from the config, then an
//! optional HTTP hook that sees every publish and play. Keys and tokens are compared here
//! and never logged (only their names are); refusals carry a fixed reason word for logs and
//! metrics.

use std::net::IpAddr;
use std::time::Duration;

use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

use crate::config::{AuthConfig, Credential};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Publish,
    Play,
}

/// One publish or play attempt, as the hook receives it (JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Access {
    pub action: Action,
    /// "rtmp", "flv" or "hls".
    pub protocol: &'static str,
    pub app: String,
    pub stream: String,
    pub client_ip: IpAddr,
    /// The query the client gave (`key=…&…`), passed on so the hook can check it.
    pub param: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("no publish key given")]
    MissingKey,
    #[error("wrong publish key")]
    WrongKey,
    #[error("publishing to this app needs a key and none is configured")]
    AppClosed,
    #[error("no play token given")]
    MissingToken,
    #[error("wrong play token")]
    WrongToken,
    #[error("the auth hook refused (HTTP {0})")]
    HookRefused(u16),
    #[error("the auth hook failed: {0}")]
    HookFailed(String),
}

impl Denied {
    /// Label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Denied::MissingKey => "missing_key",
            Denied::WrongKey => "wrong_key",
            Denied::AppClosed => "app_closed",
            Denied::MissingToken => "missing_token",
            Denied::WrongToken => "wrong_token",
            Denied::HookRefused(_) => "hook_refused",
            Denied::HookFailed(_) => "hook_failed",
        }
    }

    /// 401 when credentials are missing, 403 when they were given and refused.
    pub fn http_status(&self) -> u16 {
        match self {
            Denied::MissingKey | Denied::MissingToken => 401,
            _ => 403,
        }
    }
}

/// The value of `name` in a query string (`a=1&key=x`).
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Compares without an early exit on the first differing byte.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A secret from the config with the name it is known by.
#[derive(Clone)]
struct Secret {
    name: String,
    secret: String,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({:?})", self.name)
    }
}

/// Names every credential of a list (bare strings by `what[i]`); empty secrets are errors,
/// since `key=` would match them.
fn named(what: &str, list: &[Credential]) -> anyhow::Result<Vec<Secret>> {
    list.iter()
        .enumerate()
        .map(|(i, c)| {
            let name = c.name(|| format!("{what}[{i}]"));
            if c.secret().is_empty() || name.is_empty() {
                anyhow::bail!("{what}[{i}]: empty secret or name");
            }
            Ok(Secret {
                name,
                secret: c.secret().to_string(),
            })
        })
        .collect()
}

/// The name of the first secret in `list` equal to `given`.
fn find<'a>(list: &'a [Secret], given: &str) -> Option<&'a str> {
    list.iter()
        .find(|s| same_secret(&s.secret, given))
        .map(|s| s.name.as_str())
}

/// A set of named secrets (the admin tokens), checked like keys.
#[derive(Debug, Clone, Default)]
pub struct Secrets(Vec<Secret>);

impl Secrets {
    pub fn new(what: &str, list: &[Credential]) -> anyhow::Result<Self> {
        named(what, list).map(Secrets)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The name of the secret equal to `given`.
    pub fn name_of(&self, given: &str) -> Option<&str> {
        find(&self.0, given)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Auth {
    cfg: AuthConfig,
    publish_keys: std::collections::BTreeMap<String, Vec<Secret>>,
    play_tokens: Vec<Secret>,
    hook: Option<Uri>,
    /// Told of every wrong key or token, for automatic bans.
    bans: Option<std::sync::Arc<crate::bans::Bans>>,
}

impl Auth {
    pub fn new(cfg: AuthConfig) -> anyhow::Result<Self> {
        let hook = if cfg.hook_url.is_empty() {
            None
        } else {
            let uri: Uri = cfg
                .hook_url
                .parse()
                .map_err(|e| anyhow::anyhow!("auth.hook_url {:?}: {e}", cfg.hook_url))?;
            if uri.scheme_str() != Some("http") || uri.host().is_none() {
                anyhow::bail!(
                    "auth.hook_url must be an http:// URL, got {:?}",
                    cfg.hook_url
                );
            }
            Some(uri)
        };
        let publish_keys = cfg
            .publish_keys
            .iter()
            .map(|(app, keys)| Ok((app.clone(), named(&format!("publish_keys.{app}"), keys)?)))
            .collect::<anyhow::Result<_>>()?;
        let play_tokens = named("play_tokens", &cfg.play_tokens)?;
        Ok(Self {
            cfg,
            publish_keys,
            play_tokens,
            hook,
            bans: None,
        })
    }

    /// Reports wrong keys and tokens to `bans`.
    pub fn with_bans(mut self, bans: std::sync::Arc<crate::bans::Bans>) -> Self {
        self.bans = Some(bans);
        self
    }

    /// Keys and tokens from the config (no I/O).
    pub fn check_static(&self, a: &Access) -> Result<(), Denied> {
        self.check_static_named(a).map(|_| ())
    }

    /// Like `check_static`, with the name of the key or token that matched (`None` when
    /// none was needed).
    pub fn check_static_named(&self, a: &Access) -> Result<Option<&str>, Denied> {
        match a.action {
            Action::Publish => match self.publish_keys.get(&a.app) {
                Some(keys) => match query_param(&a.param, "key") {
                    None => Err(Denied::MissingKey),
                    Some(k) => find(keys, k).map(Some).ok_or(Denied::WrongKey),
                },
                None if self.cfg.require_publish_key => Err(Denied::AppClosed),
                None => Ok(None),
            },
            Action::Play if self.play_tokens.is_empty() => Ok(None),
            Action::Play => match query_param(&a.param, "token") {
                None => Err(Denied::MissingToken),
                Some(t) => find(&self.play_tokens, t)
                    .map(Some)
                    .ok_or(Denied::WrongToken),
            },
        }
    }

    pub fn needs_play_token(&self) -> bool {
        !self.play_tokens.is_empty()
    }

    pub fn has_hook(&self) -> bool {
        self.hook.is_some()
    }

    /// The static checks, then the hook if one is configured.
    pub async fn check(&self, a: &Access) -> Result<(), Denied> {
        self.check_named(a).await.map(|_| ())
    }

    /// Like `check`, with the name of the key or token used (for the admin API's client list).
    pub async fn check_named(&self, a: &Access) -> Result<Option<String>, Denied> {
        let name = match self.check_static_named(a) {
            Ok(name) => name.map(str::to_string),
            Err(d) => {
                if let (Denied::WrongKey | Denied::WrongToken, Some(bans)) = (&d, &self.bans) {
                    bans.failed(a.client_ip, std::time::Instant::now());
                }
                return Err(d);
            }
        };
        self.check_hook(a).await.map(|()| name)
    }

    async fn check_hook(&self, a: &Access) -> Result<(), Denied> {
        let Some(uri) = &self.hook else {
            return Ok(());
        };
        let limit = Duration::from_millis(self.cfg.hook_timeout_ms.max(1));
        let body = serde_json::to_vec(a).map_err(|e| Denied::HookFailed(e.to_string()))?;
        match tokio::time::timeout(limit, post(uri, body)).await {
            Ok(Ok(status)) if (200..300).contains(&status) => Ok(()),
            Ok(Ok(status)) => Err(Denied::HookRefused(status)),
            Ok(Err(e)) => Err(Denied::HookFailed(e.to_string())),
            Err(_) => Err(Denied::HookFailed(format!("no answer within {limit:?}"))),
        }
    }
}

/// Why the hook could not be asked (its answer, any status, is not an error here).
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("hook URL has no host")]
    NoHost,
    #[error("connect {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("HTTP to the hook: {0}")]
    Http(#[from] hyper::Error),
    #[error("building the hook request: {0}")]
    Request(#[from] axum::http::Error),
}

async fn post(uri: &Uri, body: Vec<u8>) -> Result<u16, HookError> {
    let host = uri.host().ok_or(HookError::NoHost)?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|source| HookError::Connect {
            host: host.to_string(),
            port,
            source,
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = Request::post(path)
        .header(HOST, uri.authority().map_or(host, |a| a.as_str()))
        .header(CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body))?;
    let res = sender.send_request(req).await?;
    Ok(res.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(action: Action, app: &str, param: &str) -> Access {
        Access {
            action,
            protocol: "rtmp",
            app: app.into(),
            stream: "t".into(),
            client_ip: "127.0.0.1".parse().unwrap(),
            param: param.into(),
        }
    }

    fn auth(f: impl FnOnce(&mut AuthConfig)) -> Auth {
        let mut c = AuthConfig::default();
        f(&mut c);
        Auth::new(c).unwrap()
    }

    #[test]
    fn open_by_default() {
        let a = auth(|_| {});
        assert!(a.check_static(&access(Action::Publish, "live", "")).is_ok());
        assert!(a.check_static(&access(Action::Play, "live", "")).is_ok());
    }

    #[test]
    fn publish_keys_per_app() {
        let a = auth(|c| {
            c.publish_keys.insert(
                "live".into(),
                vec![
                    "s3cret".into(),
                    Credential::Named(crate::config::NamedCredential {
                        name: "studio".into(),
                        secret: "other".into(),
                    }),
                ],
            );
        });
        let check = |app, p| a.check_static(&access(Action::Publish, app, p));
        assert_eq!(check("live", "key=s3cret"), Ok(()));
        assert_eq!(check("live", "x=1&key=other"), Ok(()));
        assert_eq!(check("live", "key=s3cre"), Err(Denied::WrongKey));
        assert_eq!(check("live", ""), Err(Denied::MissingKey));
        assert_eq!(check("open", ""), Ok(()), "apps without keys stay open");
        let named = |p| a.check_static_named(&access(Action::Publish, "live", p));
        assert_eq!(named("key=s3cret"), Ok(Some("publish_keys.live[0]")));
        assert_eq!(named("key=other"), Ok(Some("studio")));
        let strict = auth(|c| c.require_publish_key = true);
        assert_eq!(
            strict.check_static(&access(Action::Publish, "live", "key=x")),
            Err(Denied::AppClosed)
        );
    }

    #[test]
    fn play_tokens() {
        let a = auth(|c| c.play_tokens = vec!["tok".into()]);
        assert_eq!(
            a.check_static_named(&access(Action::Play, "live", "token=tok")),
            Ok(Some("play_tokens[0]"))
        );
        assert!(Auth::new(AuthConfig {
            play_tokens: vec!["".into()],
            ..Default::default()
        })
        .is_err());
        let check = |p| a.check_static(&access(Action::Play, "live", p));
        assert_eq!(check("token=tok"), Ok(()));
        assert_eq!(check("token=bad"), Err(Denied::WrongToken));
        assert_eq!(check(""), Err(Denied::MissingToken));
        assert_eq!(Denied::MissingToken.http_status(), 401);
        assert_eq!(Denied::WrongToken.http_status(), 403);
    }

    #[test]
    fn hook_url_must_be_http() {
        let bad = AuthConfig {
            hook_url: "https://x/y".into(),
            ..Default::default()
        };
        assert!(Auth::new(bad).is_err());
    }

    #[tokio::test]
    async fn hook_allows_on_2xx_and_refuses_otherwise() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for status in ["204 No Content", "403 Forbidden"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                // Read the head and the JSON body (small), then answer.
                while !String::from_utf8_lossy(&got).contains("\"action\"") {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let text = String::from_utf8_lossy(&got).to_string();
                assert!(text.starts_with("POST /hook?x=1 HTTP/1.1"), "{text}");
                assert!(text.contains("\"action\":\"publish\""), "{text}");
                s.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
            }
        });
        let a = auth(|c| {
            c.hook_url = format!("http://{addr}/hook?x=1");
            c.hook_timeout_ms = 2000;
        });
        let req = access(Action::Publish, "live", "key=k");
        assert_eq!(a.check(&req).await, Ok(()));
        assert_eq!(a.check(&req).await, Err(Denied::HookRefused(403)));
        let dead = auth(|c| {
            c.hook_url = "http://127.0.0.1:9/".into();
            c.hook_timeout_ms = 2000;
        });
        assert!(matches!(dead.check(&req).await, Err(Denied::HookFailed(_))));
    }
}
