//! The admin API on its own listener, behind bearer tokens: list and kick clients, kick a
//! stream's publisher, ban addresses, reload the config, and (optionally) `/metrics`. Every
//! action is logged with the token's name, the action and its target (the audit log). It
//! must never show a secret, and never be reachable without a token.

pub mod openapi;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::bans::{parse_net, BanError, BanInfo};
use crate::clients::ClientInfo;
use crate::control::{Control, ReloadError, ReloadReport};
use crate::http::body::ResponseBody;
use crate::hub::{parse_stream_name, Hub, StreamKey};
use crate::limits::accept_admitted;

#[derive(Clone)]
pub struct AdminContext {
    pub control: Arc<Control>,
    pub hub: Hub,
    pub qoe: Arc<crate::qoe::Qoe>,
}

/// An error, as every admin endpoint answers it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// A ban to add.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBan {
    /// An IP address (`203.0.113.7`) or a CIDR range (`10.0.0.0/8`).
    #[schema(value_type = openapi::BanAddress)]
    pub address: String,
    /// How long it lasts, in milliseconds (a second to a year).
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 1000, maximum = 31536000000_u64)]
    pub duration_ms: u64,
    /// Why, for the ban list and the log.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub reason: String,
}

/// A non-negative whole number, also when written `2000.0` (JSON Schema calls that an
/// integer too).
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
                .map(|f| f as u64)
        })
        .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a whole number of ms")))
}

/// A ban added, and the connections it closed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BanAdded {
    pub ban: BanInfo,
    /// Clients from the banned range that were connected and were kicked.
    pub kicked: Vec<ClientInfo>,
}

/// The clients kicked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Kicked {
    pub kicked: Vec<ClientInfo>,
}

/// Serves the admin API until `shutdown`. Bans do not apply here: an operator who banned
/// a wide range must still reach the API that lifts it; the tokens guard this listener.
pub async fn serve(
    listener: TcpListener,
    ctx: AdminContext,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let metrics = ctx.hub.metrics().clone();
    let limiter = ctx.control.admin_limiter.clone();
    while let Some((socket, peer, admission)) =
        accept_admitted(&listener, &limiter, None, &metrics, "admin", &shutdown).await
    {
        let _ = socket.set_nodelay(true);
        let io = TokioIo::new(socket);
        let cfg = ctx.control.config();
        let header_timeout = crate::config::ms(cfg.admin.header_read_timeout_ms);
        let max_buf = cfg.admin.max_header_bytes.max(8192);
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        let span = tracing::info_span!("admin", peer = %peer);
        tasks.spawn(
            async move {
                let service = hyper::service::service_fn(move |req| {
                    let ctx = ctx.clone();
                    async move { Ok::<_, Infallible>(route(&ctx, req, peer).await) }
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .max_buf_size(max_buf);
                let conn = builder.serve_connection(io, service);
                tokio::pin!(conn);
                tokio::select! {
                    r = conn.as_mut() => if let Err(e) = r {
                        tracing::debug!(error = %e, "admin connection ended");
                    },
                    _ = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                    }
                }
                drop(admission);
            }
            .instrument(span),
        );
    }
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<ResponseBody> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut r = Response::new(ResponseBody::full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response<ResponseBody> {
    json(status, &ErrorBody { error: msg.into() })
}

/// The name of the admin token the request carries, or why not (401: none, 403: wrong).
fn authenticate(
    control: &Control,
    req: &Request<Incoming>,
    peer: SocketAddr,
) -> Result<String, StatusCode> {
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(StatusCode::UNAUTHORIZED)?;
    match control.admin_tokens().name_of(given) {
        Some(name) => Ok(name.to_string()),
        None => {
            tracing::warn!(peer = %peer, "admin request with a wrong token");
            Err(StatusCode::FORBIDDEN)
        }
    }
}

fn refuse(status: StatusCode) -> Response<ResponseBody> {
    if status == StatusCode::FORBIDDEN {
        return error(status, "wrong admin token");
    }
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "an admin token is needed (Authorization: Bearer TOKEN)",
    );
    r.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// One audit line per admin action: who (the token's name), what, on what, and the outcome.
fn audit(token: &str, action: &str, resource: &str, status: StatusCode) {
    tracing::info!(
        target: "onair::audit",
        token,
        action,
        resource,
        status = status.as_u16(),
        "admin action"
    );
}

async fn route(
    ctx: &AdminContext,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ResponseBody> {
    let token = match authenticate(&ctx.control, &req, peer) {
        Ok(name) => name,
        Err(status) => return refuse(status),
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path
        .strip_prefix("/api/admin/")
        .map(|p| p.split('/').collect())
        .unwrap_or_default();
    let (action, resource, res) = match (&method, segments.as_slice()) {
        (&Method::GET, ["clients"]) => ("list_clients", String::new(), list_clients(ctx)),
        (&Method::DELETE, ["clients", id]) => ("kick_client", id.to_string(), kick_client(ctx, id)),
        (&Method::POST, ["streams", app, name, "kick"]) => (
            "kick_stream",
            format!("{app}/{name}"),
            kick_stream(ctx, app, name),
        ),
        (&Method::GET, ["bans"]) => ("list_bans", String::new(), list_bans(ctx)),
        (&Method::GET, ["pulls"]) => ("list_pulls", String::new(), list_pulls(ctx)),
        (&Method::POST, ["bans"]) => {
            let (resource, res) = add_ban(ctx, req).await;
            ("ban", resource, res)
        }
        (&Method::DELETE, ["bans", rest @ ..]) if !rest.is_empty() => {
            let address = percent_decode(&rest.join("/"));
            ("unban", address.clone(), remove_ban(ctx, &address))
        }
        (&Method::POST, ["reload"]) => ("reload", String::new(), reload(ctx).await),
        (&Method::GET, ["openapi.json"]) => ("openapi", String::new(), openapi_doc()),
        (&Method::GET, _) if path == "/metrics" && !ctx.control.metrics_public() => (
            "metrics",
            String::new(),
            crate::http::metrics_response(
                &ctx.hub,
                &ctx.qoe,
                &ctx.control.config().api.private_apps,
            ),
        ),
        (_, known) if allowed_methods(known).is_some() => {
            let mut r = error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not allowed on {path}"),
            );
            if let Some(allow) = allowed_methods(known) {
                r.headers_mut()
                    .insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
            }
            ("", String::new(), r)
        }
        _ => (
            "",
            String::new(),
            error(StatusCode::NOT_FOUND, format!("no admin endpoint {path}")),
        ),
    };
    let status = res.status();
    match action {
        "" => tracing::debug!(%method, %path, status = status.as_u16(), "admin request"),
        // Scrapes and the document name nobody: debug. Lists are audited like changes, since
        // the client list shows addresses.
        "openapi" | "metrics" => tracing::debug!(
            target: "onair::audit",
            token = %token,
            action,
            status = status.as_u16(),
            "admin read"
        ),
        _ => audit(&token, action, &resource, status),
    }
    res
}

/// The methods an admin path answers (for 405's `Allow`); `None` for unknown paths.
fn allowed_methods(segments: &[&str]) -> Option<&'static str> {
    Some(match segments {
        ["clients"] | ["openapi.json"] | ["pulls"] => "GET",
        ["clients", _] => "DELETE",
        ["bans"] => "GET, POST",
        ["bans", rest @ ..] if !rest.is_empty() => "DELETE",
        ["reload"] | ["streams", _, _, "kick"] => "POST",
        _ => return None,
    })
}

/// `%2F` and the like in a path segment (a CIDR's slash).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[utoipa::path(
    get,
    path = "/api/admin/pulls",
    tag = "pulls",
    responses(
        (status = 200, description = "Every running pull (edge, RTMP and RTSP sources) with the upstream it reads now, credentials removed", body = Vec<crate::pull::PullStatus>),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
    )
)]
fn list_pulls(ctx: &AdminContext) -> Response<ResponseBody> {
    let pulls = ctx.hub.sources().map(|s| s.status()).unwrap_or_default();
    json(StatusCode::OK, &pulls)
}

#[utoipa::path(
    get,
    path = "/api/admin/clients",
    tag = "clients",
    responses(
        (status = 200, description = "Every connected publisher and viewer (RTMP, HTTP-FLV)", body = Vec<ClientInfo>),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
    )
)]
fn list_clients(ctx: &AdminContext) -> Response<ResponseBody> {
    json(StatusCode::OK, &ctx.control.clients.list())
}

#[utoipa::path(
    delete,
    path = "/api/admin/clients/{id}",
    tag = "clients",
    params(("id" = u64, Path, description = "The client's id from the client list")),
    responses(
        (status = 200, description = "Kicked: a publisher gets a status then its connection closes (its viewers get the grace period); a viewer's connection closes", body = ClientInfo),
        (status = 400, description = "Not a client id", body = ErrorBody),
        (status = 404, description = "No such client", body = ErrorBody),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
    )
)]
fn kick_client(ctx: &AdminContext, id: &str) -> Response<ResponseBody> {
    let Ok(id) = id.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not a client id"),
        );
    };
    match ctx.control.clients.kick(id) {
        Some(info) => json(StatusCode::OK, &info),
        None => error(StatusCode::NOT_FOUND, format!("no client {id}")),
    }
}

#[utoipa::path(
    post,
    path = "/api/admin/streams/{app}/{name}/kick",
    tag = "streams",
    params(
        ("app" = openapi::StreamName, Path, description = "The stream's app"),
        ("name" = openapi::StreamName, Path, description = "The stream's name"),
    ),
    responses(
        (status = 200, description = "Its publisher was kicked; viewers get the grace period, then the stream ends", body = Kicked),
        (status = 400, description = "Not a valid stream name", body = ErrorBody),
        (status = 404, description = "No publisher is connected to that stream", body = ErrorBody),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
    )
)]
fn kick_stream(ctx: &AdminContext, app: &str, name: &str) -> Response<ResponseBody> {
    let (Ok(_), Ok((name, None))) = (parse_stream_name(app), parse_stream_name(name)) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{app:?}/{name:?} is not a stream name"),
        );
    };
    let key = StreamKey::new(app, name);
    let kicked = ctx.control.clients.kick_publishers(&key);
    if kicked.is_empty() {
        return error(StatusCode::NOT_FOUND, format!("no publisher on {key}"));
    }
    json(StatusCode::OK, &Kicked { kicked })
}

#[utoipa::path(
    get,
    path = "/api/admin/bans",
    tag = "bans",
    responses(
        (status = 200, description = "Bans in force: from the config, by operators, automatic", body = Vec<BanInfo>),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
    )
)]
fn list_bans(ctx: &AdminContext) -> Response<ResponseBody> {
    json(StatusCode::OK, &ctx.control.bans.list(Instant::now()))
}

#[utoipa::path(
    post,
    path = "/api/admin/bans",
    tag = "bans",
    request_body = NewBan,
    responses(
        (status = 201, description = "Banned: new connections from it are refused at accept on the RTMP and HTTP ports, and its open connections were kicked", body = BanAdded),
        (status = 400, description = "Not a JSON ban", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Bad address or duration, or the ban list is full", body = ErrorBody),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
    )
)]
async fn add_ban(ctx: &AdminContext, req: Request<Incoming>) -> (String, Response<ResponseBody>) {
    let limit = ctx.control.config().admin.max_body_bytes;
    let body = match http_body_util::Limited::new(req.into_body(), limit)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let too_big = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            return (
                String::new(),
                if too_big {
                    error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("body over {limit} bytes"),
                    )
                } else {
                    error(StatusCode::BAD_REQUEST, format!("reading the body: {e}"))
                },
            );
        }
    };
    let ban: NewBan = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return (
                String::new(),
                error(StatusCode::BAD_REQUEST, format!("not a ban: {e}")),
            )
        }
    };
    if ban.reason.chars().count() > 200 {
        return (
            ban.address,
            error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "reason longer than 200 characters",
            ),
        );
    }
    let net = match parse_net(&ban.address) {
        Ok(n) => n,
        Err(e) => {
            return (
                ban.address,
                error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            )
        }
    };
    let reason = if ban.reason.is_empty() {
        "banned by an operator".to_string()
    } else {
        ban.reason
    };
    match ctx
        .control
        .bans
        .add(net, ban.duration_ms, reason, Instant::now())
    {
        Ok(info) => {
            let kicked = ctx.control.clients.kick_addresses(&net);
            (
                net.to_string(),
                json(StatusCode::CREATED, &BanAdded { ban: info, kicked }),
            )
        }
        Err(e) => (
            net.to_string(),
            error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        ),
    }
}

#[utoipa::path(
    delete,
    path = "/api/admin/bans/{address}",
    tag = "bans",
    params(("address" = openapi::BanAddress, Path, description = "The banned address or range as listed; a range's slash as %2F (`10.0.0.0%2F8`)")),
    responses(
        (status = 204, description = "Lifted"),
        (status = 400, description = "Not an address or range", body = ErrorBody),
        (status = 404, description = "No such ban", body = ErrorBody),
        (status = 409, description = "Listed in the config file: remove it there and reload", body = ErrorBody),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
    )
)]
fn remove_ban(ctx: &AdminContext, address: &str) -> Response<ResponseBody> {
    let net = match parse_net(address) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match ctx.control.bans.remove(net, Instant::now()) {
        Ok(true) => {
            let mut r = Response::new(ResponseBody::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Ok(false) => error(StatusCode::NOT_FOUND, format!("{net} is not banned")),
        Err(e @ BanError::FromConfig(_)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

#[utoipa::path(
    post,
    path = "/api/admin/reload",
    tag = "config",
    responses(
        (status = 200, description = "Reloaded (the same as SIGHUP): keys, tokens, hook, limits, bans and HLS settings apply to new connections and streams; live streams keep flowing", body = ReloadReport),
        (status = 422, description = "The file does not parse or holds an invalid value; nothing changed", body = ErrorBody),
        (status = 500, description = "The reload task itself failed (a bug); see the log", body = ErrorBody),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
    )
)]
async fn reload(ctx: &AdminContext) -> Response<ResponseBody> {
    // It reads a file: off the async workers.
    let control = ctx.control.clone();
    match tokio::task::spawn_blocking(move || control.reload()).await {
        Ok(Ok(report)) => json(StatusCode::OK, &report),
        Ok(Err(e @ (ReloadError::Invalid(_) | ReloadError::NoSource))) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the reload did not finish: {e}"),
        ),
    }
}

#[utoipa::path(
    get,
    path = "/api/admin/openapi.json",
    tag = "config",
    responses(
        (status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object),
        (status = 401, description = "No admin token", body = ErrorBody),
        (status = 403, description = "Wrong admin token", body = ErrorBody),
    )
)]
fn openapi_doc() -> Response<ResponseBody> {
    let mut r = Response::new(ResponseBody::full(openapi::json()));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_durations_are_whole_numbers() {
        let parse = |d: &str| {
            serde_json::from_str::<NewBan>(&format!(
                r#"{{"address":"10.0.0.1","duration_ms":{d}}}"#
            ))
            .map(|b| b.duration_ms)
        };
        assert_eq!(parse("2000").unwrap(), 2000);
        assert_eq!(parse("2000.0").unwrap(), 2000);
        assert_eq!(parse("2e3").unwrap(), 2000);
        for bad in ["1.5", "-1", "\"1000\"", "null"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let unknown = r#"{"address":"10.0.0.1","duration_ms":1000,"until":5}"#;
        assert!(serde_json::from_str::<NewBan>(unknown).is_err());
    }

    #[test]
    fn methods_per_path() {
        assert_eq!(allowed_methods(&["bans"]), Some("GET, POST"));
        assert_eq!(allowed_methods(&["bans", "10.0.0.0", "8"]), Some("DELETE"));
        assert_eq!(
            allowed_methods(&["streams", "live", "t", "kick"]),
            Some("POST")
        );
        assert_eq!(allowed_methods(&["nothing"]), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("10.0.0.0%2F8"), "10.0.0.0/8");
        assert_eq!(percent_decode("10.0.0.0%2f8"), "10.0.0.0/8");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
