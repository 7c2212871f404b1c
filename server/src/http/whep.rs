//! WHEP (WebRTC-HTTP Egress Protocol) resources: `POST /{app}/{stream}/whep` with an SDP
//! offer answers 201 with the SDP answer and a `Location`; `PATCH` on that location adds
//! trickled ICE candidates, `DELETE` ends the session. Authorization is HTTP-FLV's (play
//! tokens, then the hook). Only HTTP is here; sessions live in `crate::webrtc`.

use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use hyper::{Method, Request, Response, StatusCode};

use super::body::ResponseBody;
use super::{authorize, refuse, text, HttpContext};
use crate::clients::ClientRole;
use crate::hub::{parse_stream_name, StreamKey};

pub const METHODS: &str = "POST, PATCH, DELETE, OPTIONS";

/// How long the offer (or trickle) body may take to arrive after the request head.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// `/{app}/{stream}/whep` or `/{app}/{stream}/whep/{id}`, names valid.
fn whep_path(path: &str) -> Option<(StreamKey, Option<&str>)> {
    let mut parts = path.strip_prefix('/')?.split('/');
    let app = parts.next()?;
    let name = parts.next()?;
    if parts.next()? != "whep" {
        return None;
    }
    let id = parts.next();
    if parts.next().is_some() || id.is_some_and(|i| i.is_empty() || i.len() > 64) {
        return None;
    }
    parse_stream_name(app).ok()?;
    let (name, _) = parse_stream_name(name).ok()?;
    Some((StreamKey::new(app, name), id))
}

pub fn is_whep_path(path: &str) -> bool {
    whep_path(path).is_some()
}

pub async fn respond(
    ctx: &HttpContext,
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
    query: &str,
) -> Response<ResponseBody> {
    let path = req.uri().path().to_string();
    let Some((key, id)) = whep_path(&path) else {
        return text(StatusCode::NOT_FOUND, "not found");
    };
    let Some(webrtc) = ctx.webrtc.clone() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "WebRTC is not available on this server (disabled, or its UDP port could not be bound)",
        );
    };
    let max = webrtc.config().max_sdp_bytes;
    let method = req.method().clone();
    match (method, id) {
        (Method::POST, None) => {
            let credential = match authorize(ctx, &key, "webrtc", query, peer).await {
                Ok(c) => c,
                Err(d) => return refuse(ctx, &d),
            };
            let body = match read_body(req, max).await {
                Ok(b) => b,
                Err(res) => return res,
            };
            match webrtc.offer(&ctx.hub, &key, &body) {
                Ok(answer) => {
                    tracing::info!(stream = %key, session = %answer.id, "webrtc play started");
                    let client =
                        ctx.control
                            .clients
                            .register(peer, "webrtc", webrtc.stopper(&answer.id));
                    client.started(ClientRole::Viewer, key.clone(), credential);
                    webrtc.keep_listed(&answer.id, client);
                    let mut r = Response::new(ResponseBody::full(answer.sdp));
                    *r.status_mut() = StatusCode::CREATED;
                    let h = r.headers_mut();
                    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/sdp"));
                    let location = format!("/{}/{}/whep/{}", key.app, key.name, answer.id);
                    if let Ok(v) = HeaderValue::from_str(&location) {
                        h.insert(LOCATION, v);
                    }
                    h.insert(
                        hyper::header::ACCESS_CONTROL_EXPOSE_HEADERS,
                        HeaderValue::from_static("Location"),
                    );
                    r
                }
                Err(e) => {
                    ctx.hub.metrics().refused(e.reason());
                    tracing::warn!(stream = %key, reason = e.reason(), "webrtc play refused: {e}");
                    let status =
                        StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
                    text(status, e.to_string())
                }
            }
        }
        (Method::DELETE, Some(id)) => {
            if webrtc.delete(&key, id) {
                let mut r = Response::new(ResponseBody::empty());
                *r.status_mut() = StatusCode::OK;
                r
            } else {
                text(StatusCode::NOT_FOUND, "no such WHEP session")
            }
        }
        (Method::PATCH, Some(id)) => {
            let id = id.to_string();
            let body = match read_body(req, max).await {
                Ok(b) => b,
                Err(res) => return res,
            };
            let Ok(frag) = std::str::from_utf8(&body) else {
                return text(
                    StatusCode::BAD_REQUEST,
                    "the ICE fragment is not UTF-8 text",
                );
            };
            let candidates = frag
                .lines()
                .filter_map(|l| l.trim_end_matches('\r').strip_prefix("a="))
                .filter(|l| l.starts_with("candidate:"))
                .filter_map(|l| str0m::Candidate::from_sdp_string(l).ok())
                .collect();
            if webrtc.trickle(&key, &id, candidates) {
                let mut r = Response::new(ResponseBody::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            } else {
                text(StatusCode::NOT_FOUND, "no such WHEP session")
            }
        }
        _ => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            r.headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static(METHODS));
            r
        }
    }
}

/// The request body, at most `max` bytes, within `BODY_READ_TIMEOUT`.
async fn read_body(
    req: Request<Incoming>,
    max: usize,
) -> Result<bytes::Bytes, Response<ResponseBody>> {
    let too_large = || {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over this server's limit of {max} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let read = Limited::new(req.into_body(), max).collect();
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Err(_) => Err(text(
            StatusCode::REQUEST_TIMEOUT,
            "the body did not arrive in time",
        )),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Ok(Err(_)) => Err(text(StatusCode::BAD_REQUEST, "the body could not be read")),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whep_paths() {
        assert_eq!(
            whep_path("/live/cam/whep"),
            Some((StreamKey::new("live", "cam"), None))
        );
        assert_eq!(
            whep_path("/live/cam/whep/abc"),
            Some((StreamKey::new("live", "cam"), Some("abc")))
        );
        assert_eq!(whep_path("/live/cam/whep/"), None);
        assert_eq!(whep_path("/live/cam/whep/a/b"), None);
        assert_eq!(whep_path("/live/cam.flv"), None);
        assert_eq!(whep_path("/live/../whep"), None);
        assert_eq!(whep_path("/live/cam/other"), None);
    }
}
