//! HTTP on hyper: HTTP-FLV, the JSON API and (later) the player. Routing is a small
//! match rather than a framework router because the live body must reach hyper as
//! shared buffers (see `body`), which framework body types would copy.

mod api;
pub mod body;
mod flv;
pub mod player;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_TYPE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use body::ResponseBody;

use crate::config::{ms, HttpConfig};
use crate::hub::{parse_stream_name, Hub, Protocol, StreamKey};

#[derive(Clone)]
pub struct HttpContext {
    pub hub: Hub,
    /// `None` when HLS is disabled in the config.
    pub hls: Option<crate::hls::Hls>,
    pub cfg: Arc<HttpConfig>,
    pub player: Arc<player::PlayerFiles>,
}

pub async fn serve(
    listener: TcpListener,
    ctx: HttpContext,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let write_timeout = ms(ctx.hub.config().viewer_write_timeout_ms);
    loop {
        let (socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if open.load(Ordering::Relaxed) >= ctx.cfg.max_connections {
            tracing::warn!(peer = %peer, limit = ctx.cfg.max_connections, "http connection refused: max_connections reached");
            continue;
        }
        let _ = socket.set_nodelay(true);
        open.fetch_add(1, Ordering::Relaxed);
        let open2 = open.clone();
        // A viewer whose socket accepts nothing for the timeout is cut off by the stream itself.
        let mut io = TimeoutStream::new(socket);
        io.set_write_timeout(Some(write_timeout));
        let io = TokioIo::new(Box::pin(io));
        let header_timeout = ms(ctx.cfg.header_read_timeout_ms);
        let max_buf = ctx.cfg.max_header_bytes.max(8192);
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        let span = tracing::info_span!("http", peer = %peer);
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
                        tracing::debug!(error = %e, "http connection ended");
                    },
                    _ = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), conn).await;
                    }
                }
                open2.fetch_sub(1, Ordering::Relaxed);
            }
            .instrument(span),
        );
    }
}

fn with_cors(mut res: Response<ResponseBody>) -> Response<ResponseBody> {
    let h = res.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    h.insert(ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("*"));
    res
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response<ResponseBody> {
    let mut body = msg.into();
    body.push('\n');
    let mut res = Response::new(ResponseBody::full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

async fn route(
    ctx: &HttpContext,
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
) -> Response<ResponseBody> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let res = match (&method, path.as_str()) {
        (&Method::OPTIONS, _) => {
            let mut r = Response::new(ResponseBody::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        (m, _) if m != Method::GET && m != Method::HEAD => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            r.headers_mut().insert(
                hyper::header::ALLOW,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            r
        }
        (_, "/api/streams") => {
            let body = serde_json::to_vec_pretty(&api::streams(&ctx.hub)).unwrap_or_default();
            let mut r = Response::new(ResponseBody::full(body));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        (_, p) => match media_path(p) {
            Some((key, "flv")) => play_flv(ctx, &key, method == Method::HEAD),
            Some((key, "m3u8")) => hls_playlist(ctx, &key, peer).await,
            Some((key, "ts")) => hls_segment(ctx, &key),
            _ => ctx
                .player
                .respond(p)
                .unwrap_or_else(|| text(StatusCode::NOT_FOUND, "not found")),
        },
    };
    tracing::debug!(%method, %path, status = res.status().as_u16(), "request");
    with_cors(res)
}

/// `/{app}/{stream}.{ext}` with both names valid.
fn media_path(path: &str) -> Option<(StreamKey, &str)> {
    let rest = path.strip_prefix('/')?;
    let (app, file) = rest.split_once('/')?;
    let (name, ext) = file.rsplit_once('.')?;
    parse_stream_name(app).ok()?;
    let (name, _) = parse_stream_name(name).ok()?;
    Some((StreamKey::new(app, name), ext))
}

fn play_flv(ctx: &HttpContext, key: &StreamKey, head_only: bool) -> Response<ResponseBody> {
    if head_only {
        return match ctx.hub.get(key) {
            Some(_) => flv_response(ResponseBody::empty()),
            None => text(StatusCode::NOT_FOUND, format!("stream {key} is not live")),
        };
    }
    match ctx.hub.subscribe(key, Protocol::Flv) {
        Ok(sub) => {
            tracing::info!(stream = %key, "http-flv play started");
            flv_response(flv::live_body(sub))
        }
        Err(e) => text(StatusCode::NOT_FOUND, e.to_string()),
    }
}

async fn hls_playlist(
    ctx: &HttpContext,
    key: &StreamKey,
    peer: std::net::SocketAddr,
) -> Response<ResponseBody> {
    let Some(hls) = &ctx.hls else {
        return text(StatusCode::NOT_FOUND, "HLS is disabled on this server");
    };
    let Some(stream) = hls.get(key) else {
        return text(StatusCode::NOT_FOUND, format!("stream {key} is not live"));
    };
    stream.saw_client(peer.ip());
    // A stream that just started has no segment yet: wait for the first one rather than
    // make the player retry.
    let wait = Duration::from_millis(hls.config().segment_duration_ms * 2);
    match stream.playlist(wait).await {
        Some(text) => {
            let mut r = Response::new(ResponseBody::full(text));
            let h = r.headers_mut();
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.apple.mpegurl"),
            );
            // The playlist changes every segment; caches may hold it for a moment at most.
            h.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=1"));
            r
        }
        None => text(
            StatusCode::NOT_FOUND,
            format!("stream {key} has no HLS segment yet"),
        ),
    }
}

fn hls_segment(ctx: &HttpContext, key: &StreamKey) -> Response<ResponseBody> {
    let found = ctx.hls.as_ref().and_then(|hls| {
        let (name, seq) = crate::hls::parse_segment_name(&key.name)?;
        let stream = hls.get(&StreamKey::new(key.app.clone(), name))?;
        let data = stream.segment(seq)?;
        Some((data, hls.config()))
    });
    match found {
        Some((data, cfg)) => {
            let mut r = Response::new(ResponseBody::full(data));
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("video/mp2t"));
            // A segment never changes once published, so any cache may keep it.
            let max_age = (cfg.segment_duration_ms * cfg.window as u64 + cfg.keep_after_ms) / 1000;
            if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}, immutable")) {
                h.insert(CACHE_CONTROL, v);
            }
            r
        }
        None => text(StatusCode::NOT_FOUND, "no such segment"),
    }
}

fn flv_response(body: ResponseBody) -> Response<ResponseBody> {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("video/x-flv"));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_paths() {
        let (k, ext) = media_path("/live/t.flv").unwrap();
        assert_eq!((k.app.as_str(), k.name.as_str(), ext), ("live", "t", "flv"));
        assert!(media_path("/live/../t.flv").is_none());
        assert!(media_path("/live/a/b.flv").is_none());
        assert!(media_path("/t.flv").is_none());
        assert!(media_path("/live/.flv").is_none());
    }
}
