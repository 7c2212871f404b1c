//! HTTP on hyper: HTTP-FLV, the JSON API and (later) the player. Routing is a small
//! match rather than a framework router because the live body must reach hyper as
//! shared buffers (see `body`), which framework body types would copy.

mod api;
pub mod body;
mod flv;
mod hls_cmaf;
pub mod player;
mod rewind;
mod sniff;
mod whep;

use crate::hls::ts_refusal;
use std::convert::Infallible;
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

use crate::auth::{Access, Action, Auth, Denied};
use crate::clients::ClientRole;
use crate::config::{ms, ApiConfig, HttpConfig};
use crate::control::Control;
use crate::hub::{parse_stream_name, Hub, Protocol, StreamKey};
use crate::limits::accept_admitted;
use crate::tls::Tls;
use bytes::Bytes;

#[derive(Clone)]
pub struct HttpContext {
    pub hub: Hub,
    pub auth: Arc<Auth>,
    pub allowed: Arc<AllowCache>,
    /// `None` when HLS is disabled in the config.
    pub hls: Option<crate::hls::Hls>,
    pub cfg: Arc<HttpConfig>,
    pub api: Arc<ApiConfig>,
    pub player: Arc<player::PlayerFiles>,
    pub qoe: Arc<crate::qoe::Qoe>,
    /// The reloadable config, the client list and the bans.
    pub control: Arc<Control>,
    /// RTMPT sessions (`/open/1`, `/send/…`); none: those paths answer 404.
    pub rtmpt: Option<Arc<crate::rtmpt::Rtmpt>>,
    /// This connection came through the HTTPS listener (RTMPT on it is RTMPTS).
    pub secure: bool,
    /// Recording settings, for the playback API (`with_recorder`).
    pub record: Option<crate::record::Recorder>,
    /// `None` when WebRTC is disabled (or its port could not be bound).
    pub webrtc: Option<crate::webrtc::WebRtc>,
}

impl HttpContext {
    pub fn new(
        hub: Hub,
        control: Arc<Control>,
        hls: Option<crate::hls::Hls>,
        player: Arc<player::PlayerFiles>,
        qoe: Arc<crate::qoe::Qoe>,
    ) -> Self {
        let mut ctx = Self {
            hub,
            auth: Arc::default(),
            allowed: Arc::default(),
            hls,
            cfg: Arc::default(),
            api: Arc::default(),
            player,
            qoe,
            control,
            rtmpt: None,
            secure: false,
            record: None,
            webrtc: None,
        };
        ctx.refresh();
        ctx
    }

    /// Serves RTMPT through `rtmpt`.
    pub fn with_rtmpt(mut self, rtmpt: Arc<crate::rtmpt::Rtmpt>) -> Self {
        self.rtmpt = Some(rtmpt);
        self
    }

    /// Serves the playback API over this recorder's folder.
    pub fn with_recorder(mut self, recorder: crate::record::Recorder) -> Self {
        self.record = Some(recorder);
        self
    }

    /// Takes the running config and credentials (they change on reload).
    fn refresh(&mut self) {
        let cfg = self.control.config();
        self.auth = self.control.auth();
        self.cfg = Arc::new(cfg.http.clone());
        self.api = Arc::new(cfg.api.clone());
    }
}

/// Accepts HTTP connections until `shutdown`. With `tls` it is the HTTPS listener: the
/// same service over TLS, within the same connection limits as plain HTTP.
pub async fn serve(
    listener: TcpListener,
    ctx: HttpContext,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    tls: Option<Arc<Tls>>,
) {
    let limiter = ctx.control.http_limiter.clone();
    let metrics = ctx.hub.metrics().clone();
    let protocol = if tls.is_some() { "https" } else { "http" };
    while let Some((socket, peer, admission)) = accept_admitted(
        &listener,
        &limiter,
        Some(&ctx.control.bans),
        &metrics,
        protocol,
        &shutdown,
    )
    .await
    {
        let mut ctx = ctx.clone();
        ctx.refresh();
        ctx.secure = tls.is_some();
        let _ = socket.set_nodelay(true);
        let shutdown = shutdown.clone();
        let handshake_limit = ms(ctx.control.config().tls.handshake_timeout_ms);
        let span = tracing::info_span!("http", peer = %peer, protocol);
        let tls = tls.clone();
        tasks.spawn(
            async move {
                match tls {
                    None => serve_plain(socket, ctx, peer, shutdown).await,
                    // Boxed: a task's future is as large as its largest state, and every
                    // plain HTTP-FLV viewer's task would carry the TLS and hyper states.
                    Some(tls) => {
                        Box::pin(serve_tls(socket, tls, handshake_limit, ctx, peer, shutdown)).await
                    }
                }
                drop(admission);
            }
            .instrument(span),
        );
    }
}

/// A TLS connection: the handshake within `handshake_limit`, then hyper.
async fn serve_tls(
    socket: tokio::net::TcpStream,
    tls: Arc<Tls>,
    handshake_limit: std::time::Duration,
    ctx: HttpContext,
    peer: std::net::SocketAddr,
    shutdown: CancellationToken,
) {
    let accepted = tokio::select! {
        r = tls.accept(socket, handshake_limit) => r,
        _ = shutdown.cancelled() => return,
    };
    match accepted {
        Ok(stream) => serve_connection(stream, ctx, peer, shutdown).await,
        Err(e) => {
            ctx.hub.metrics().refused(e.reason());
            tracing::warn!(error = %e, reason = e.reason(), "connection closed");
        }
    }
}

/// A plain connection: its first request, if it is a live HTTP-FLV GET, is served
/// without hyper (`flv::serve_direct`); anything else is hyper's, from the first byte.
/// The head is read within `http.header_read_timeout_ms` and `http.max_header_bytes`.
async fn serve_plain(
    mut socket: tokio::net::TcpStream,
    ctx: HttpContext,
    peer: std::net::SocketAddr,
    shutdown: CancellationToken,
) {
    use tokio::io::AsyncReadExt;
    let max_head = ctx.cfg.max_header_bytes.max(1024);
    let deadline = tokio::time::Instant::now() + ms(ctx.cfg.header_read_timeout_ms);
    let mut buf = Vec::with_capacity(1024);
    loop {
        match sniff::sniff(&buf, max_head) {
            sniff::Sniff::NeedMore => {}
            sniff::Sniff::Hyper => {
                let io = rewind::Rewind::new(buf.into(), socket);
                // Boxed so that a direct HTTP-FLV viewer's task does not carry hyper's
                // connection state (several KB) inline.
                return Box::pin(serve_connection(io, ctx, peer, shutdown)).await;
            }
            sniff::Sniff::FlvGet { path, query, .. } => {
                drop(buf);
                return flv::serve_direct(socket, path, query, ctx, peer, shutdown).await;
            }
        }
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(1024);
        }
        let read = tokio::select! {
            r = tokio::time::timeout_at(deadline, socket.read_buf(&mut buf)) => r,
            _ = shutdown.cancelled() => return,
        };
        match read {
            Ok(Ok(0)) => return,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "http connection ended");
                return;
            }
            Err(_) => {
                tracing::debug!("no request head within the header read timeout");
                return;
            }
        }
    }
}

/// Runs hyper on one connection, plain or TLS, until it ends, `shutdown`, or a kick.
async fn serve_connection<I>(
    socket: I,
    ctx: HttpContext,
    peer: std::net::SocketAddr,
    shutdown: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let write_timeout = ms(ctx.hub.config().viewer_write_timeout_ms);
    // A viewer whose socket accepts nothing for the timeout is cut off by the stream itself.
    let mut io = TimeoutStream::new(socket);
    io.set_write_timeout(Some(write_timeout));
    let io = TokioIo::new(Box::pin(io));
    let header_timeout = ms(ctx.cfg.header_read_timeout_ms);
    let max_buf = ctx.cfg.max_header_bytes.max(8192);
    // Closes this connection when its HTTP-FLV viewer is kicked.
    let kill = CancellationToken::new();
    let killed = kill.clone();
    let service = hyper::service::service_fn(move |req| {
        let mut ctx = ctx.clone();
        ctx.refresh();
        let kill = kill.clone();
        async move { Ok::<_, Infallible>(route(&ctx, req, peer, &kill).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(max_buf);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    // Polled on every wake of a viewer's connection: the stop waits cost nothing until
    // their tokens fire (see `crate::stop`).
    let stop = crate::stop::StopSignal::new(shutdown);
    let kicked = crate::stop::StopSignal::new(killed);
    tokio::select! {
        biased;
        r = conn.as_mut() => if let Err(e) = r {
            tracing::debug!(error = %e, "http connection ended");
        },
        _ = stop => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), conn).await;
        }
        _ = kicked => tracing::info!("kicked by an operator"),
    }
}

/// The methods a path answers: GET and HEAD everywhere, POST only for QoE beacons.
fn allowed_methods(path: &str) -> &'static str {
    if path == crate::qoe::PATH {
        "POST, OPTIONS"
    } else if whep::is_whep_path(path) {
        whep::METHODS
    } else {
        "GET, HEAD, OPTIONS"
    }
}

fn with_cors(mut res: Response<ResponseBody>, methods: &'static str) -> Response<ResponseBody> {
    let h = res.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
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
    kill: &CancellationToken,
) -> Response<ResponseBody> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let methods = allowed_methods(&path);
    // RTMPT's fixed routes win over `/{app}/{stream}` (their names are reserved apps).
    if crate::rtmpt::protocol::parse_path(&path).is_some() {
        return match &ctx.rtmpt {
            Some(rtmpt) => rtmpt.handle(req, peer, ctx.secure).await,
            None => text(StatusCode::NOT_FOUND, "not found"),
        };
    }
    if method == Method::POST && path == crate::qoe::PATH {
        // A beacon needs no credential and grants nothing: no auth check here.
        let outcome = ctx.qoe.receive(&ctx.hub, req, peer.ip()).await;
        ctx.hub.metrics().qoe_beacon(outcome.reason());
        tracing::debug!(result = outcome.reason(), "qoe beacon");
        let res = match outcome {
            crate::qoe::Outcome::Accepted => {
                let mut r = Response::new(ResponseBody::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
            o => text(o.status(), o.message()),
        };
        return with_cors(res, methods);
    }
    let query = req.uri().query().unwrap_or("");
    let range = req
        .headers()
        .get(hyper::header::RANGE)
        .and_then(|v| v.to_str().ok());
    let res = match (&method, path.as_str()) {
        (&Method::OPTIONS, _) => {
            let mut r = Response::new(ResponseBody::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        (m, p) if m != Method::OPTIONS && whep::is_whep_path(p) => {
            let query = query.to_string();
            whep::respond(ctx, req, peer, &query).await
        }
        (m, p) if (m != Method::GET && m != Method::HEAD) || p == crate::qoe::PATH => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            r.headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static(methods));
            r
        }
        (_, "/metrics") if ctx.control.metrics_public() => {
            metrics_response(&ctx.hub, &ctx.qoe, &ctx.api.private_apps)
        }
        (_, "/api/streams") if ctx.api.public_list => json(&api::streams(
            &ctx.hub,
            &ctx.api,
            &ctx.qoe,
            ctx.hls.as_ref(),
        )),
        (_, "/api/streams") => text(
            StatusCode::NOT_FOUND,
            "the stream list is not public on this server",
        ),
        (_, p) if p == "/api/recordings" || p.starts_with("/recordings/") => {
            crate::record::http::respond(ctx, p, query, range, peer).await
        }
        (_, p) if p.starts_with("/api/streams/") => {
            match api_stream_path(p)
                .and_then(|k| api::stream(&ctx.hub, &k, &ctx.qoe, ctx.hls.as_ref()))
            {
                Some(info) => json(&info),
                None => text(StatusCode::NOT_FOUND, "no such stream"),
            }
        }
        (_, p) if p.ends_with(".m4s") || p.ends_with(".mp4") => {
            match hls_cmaf::parse_media_path(p) {
                Some((key, media)) => match authorize_segment(ctx, query) {
                    Ok(()) => hls_cmaf::media(ctx, &key, media).await,
                    Err(d) => refuse(ctx, &d),
                },
                None => text(StatusCode::NOT_FOUND, "not found"),
            }
        }
        (_, p) => match media_path(p) {
            Some((key, "flv")) if method == Method::HEAD => {
                match authorize(ctx, &key, "flv", query, peer).await {
                    Ok(_) => flv_head(ctx, &key),
                    Err(d) => refuse(ctx, &d),
                }
            }
            Some((key, "flv")) => match open_flv(ctx, &key, query, peer, kill).await {
                Ok((sub, client)) => flv_response(flv::live_body(sub, client)),
                Err(refused) => refused,
            },
            Some((key, "m3u8")) => match authorize(ctx, &key, "hls", query, peer).await {
                Ok(_) => {
                    ctx.hub.pull_if_needed(&key, query).await;
                    // A pull that just went live may not have its segmenters yet (they
                    // start in their own tasks).
                    if let (Some(hls), Some(_)) = (&ctx.hls, ctx.hub.get(&key)) {
                        hls.prepare(&key);
                    }
                    hls_playlist(ctx, &key, peer, query).await
                }
                Err(d) => refuse(ctx, &d),
            },
            Some((key, "ts")) => match authorize_segment(ctx, query) {
                Ok(()) => hls_segment(ctx, &key),
                Err(d) => refuse(ctx, &d),
            },
            _ => ctx
                .player
                .respond(p)
                .unwrap_or_else(|| text(StatusCode::NOT_FOUND, "not found")),
        },
    };
    tracing::debug!(%method, %path, status = res.status().as_u16(), "request");
    with_cors(res, methods)
}

/// The Prometheus exposition (on this port, or on the admin listener: `[metrics] listener`).
/// Viewer-experience figures of `private_apps` are left out, as in the stream list.
pub fn metrics_response(
    hub: &Hub,
    qoe: &crate::qoe::Qoe,
    private_apps: &[String],
) -> Response<ResponseBody> {
    let streams = hub.list();
    let viewers: Vec<(&str, usize)> = crate::hub::Protocol::ALL
        .iter()
        .map(|&p| {
            (
                p.name(),
                streams.iter().map(|s| s.counters.viewers(p)).sum(),
            )
        })
        .collect();
    let summaries: Vec<_> = qoe
        .summaries(std::time::Instant::now())
        .into_iter()
        .filter(|(k, _)| !private_apps.contains(&k.app))
        .collect();
    hub.metrics()
        .set_viewer_experience(&summaries, qoe.tracked_clients());
    let body = hub.metrics().render(streams.len(), &viewers);
    let mut r = Response::new(ResponseBody::full(body));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

fn json(value: &impl serde::Serialize) -> Response<ResponseBody> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut r = Response::new(ResponseBody::full(body));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `/api/streams/{app}/{stream}` with both names valid.
fn api_stream_path(path: &str) -> Option<StreamKey> {
    let (app, name) = path.strip_prefix("/api/streams/")?.split_once('/')?;
    parse_stream_name(app).ok()?;
    let (name, _) = parse_stream_name(name).ok()?;
    Some(StreamKey::new(app, name))
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

/// Play authorization for HTTP-FLV and HLS playlists: tokens, then the hook. For HLS the
/// hook's yes is remembered per client and stream for a while, since players poll the
/// playlist every few seconds. Gives the name of the token used, if one was needed.
pub(crate) async fn authorize(
    ctx: &HttpContext,
    key: &StreamKey,
    protocol: &'static str,
    query: &str,
    peer: std::net::SocketAddr,
) -> Result<Option<String>, Denied> {
    let access = Access {
        action: Action::Play,
        protocol,
        app: key.app.clone(),
        stream: key.name.clone(),
        client_ip: peer.ip(),
        param: query.to_string(),
    };
    let cache_key = (peer.ip(), key.clone());
    if protocol == "hls" && ctx.auth.has_hook() && ctx.allowed.recently_allowed(&cache_key) {
        return ctx.auth.check_static(&access).map(|()| None);
    }
    match ctx.auth.check_named(&access).await {
        Ok(credential) => {
            if protocol == "hls" && ctx.auth.has_hook() {
                ctx.allowed.remember(cache_key);
            }
            Ok(credential)
        }
        Err(d) => {
            tracing::warn!(stream = %key, reason = d.reason(), "play refused: {d}");
            Err(d)
        }
    }
}

/// Segments only need the token: their playlist request already passed the hook.
fn authorize_segment(ctx: &HttpContext, query: &str) -> Result<(), Denied> {
    let access = Access {
        action: Action::Play,
        protocol: "hls",
        app: String::new(),
        stream: String::new(),
        client_ip: std::net::IpAddr::from([0, 0, 0, 0]),
        param: query.to_string(),
    };
    ctx.auth.check_static(&access)
}

pub(crate) fn refuse(ctx: &HttpContext, d: &Denied) -> Response<ResponseBody> {
    ctx.hub.metrics().refused(d.reason());
    let status = StatusCode::from_u16(d.http_status()).unwrap_or(StatusCode::FORBIDDEN);
    text(status, d.to_string())
}

/// Recent hook approvals for HLS clients, bounded in size and age.
#[derive(Default)]
pub struct AllowCache {
    entries: std::sync::Mutex<
        std::collections::HashMap<(std::net::IpAddr, StreamKey), std::time::Instant>,
    >,
}

const ALLOW_TTL: Duration = Duration::from_secs(30);
const ALLOW_MAX: usize = 10_000;

impl AllowCache {
    fn recently_allowed(&self, k: &(std::net::IpAddr, StreamKey)) -> bool {
        let e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.get(k).is_some_and(|t| t.elapsed() < ALLOW_TTL)
    }

    fn remember(&self, k: (std::net::IpAddr, StreamKey)) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if e.len() >= ALLOW_MAX {
            e.retain(|_, t| t.elapsed() < ALLOW_TTL);
            if e.len() >= ALLOW_MAX {
                return;
            }
        }
        e.insert(k, std::time::Instant::now());
    }
}

/// The answer to `HEAD /{app}/{stream}.flv`: whether it is live.
fn flv_head(ctx: &HttpContext, key: &StreamKey) -> Response<ResponseBody> {
    match ctx.hub.get(key) {
        Some(_) => flv_response(ResponseBody::empty()),
        None => text(StatusCode::NOT_FOUND, format!("stream {key} is not live")),
    }
}

/// Opens a live HTTP-FLV play: the authorization, a pull when the stream lives on
/// another server, the subscription and the client-list entry (closed by `kill`).
/// A refusal is the response to send.
async fn open_flv(
    ctx: &HttpContext,
    key: &StreamKey,
    query: &str,
    peer: std::net::SocketAddr,
    kill: &CancellationToken,
) -> Result<(crate::hub::Subscription, crate::clients::ClientHandle), Response<ResponseBody>> {
    let credential = authorize(ctx, key, "flv", query, peer)
        .await
        .map_err(|d| refuse(ctx, &d))?;
    ctx.hub.pull_if_needed(key, query).await;
    match ctx.hub.subscribe(key, Protocol::Flv) {
        Ok(sub) => {
            tracing::info!(stream = %key, "http-flv play started");
            let client = ctx.control.clients.register(peer, "flv", kill.clone());
            client.started(ClientRole::Viewer, key.clone(), credential);
            Ok((sub, client))
        }
        Err(e @ crate::hub::SubscribeError::TooManyViewers(..)) => {
            Err(text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
        }
        Err(e) => Err(text(StatusCode::NOT_FOUND, e.to_string())),
    }
}

async fn hls_playlist(
    ctx: &HttpContext,
    key: &StreamKey,
    peer: std::net::SocketAddr,
    query: &str,
) -> Response<ResponseBody> {
    let Some(hls) = &ctx.hls else {
        return text(StatusCode::NOT_FOUND, "HLS is disabled on this server");
    };
    match hls_cmaf::choose(hls.config().variant, query) {
        hls_cmaf::Chosen::Ts => {}
        hls_cmaf::Chosen::Cmaf(kind) => {
            return hls_cmaf::playlist(ctx, hls, key, peer, query, kind).await
        }
        hls_cmaf::Chosen::Off(why) => return text(StatusCode::NOT_FOUND, why),
    }
    // AV1, VP9, Opus and FLAC do not fit in TS segments: say so rather than wait.
    if let Some(reason) = ctx
        .hub
        .get(key)
        .and_then(|s| ts_refusal(s.served_tracks().iter().map(|c| c.codec)))
    {
        return text(StatusCode::NOT_FOUND, reason);
    }
    let Some(stream) = hls.get(key) else {
        return text(StatusCode::NOT_FOUND, format!("stream {key} is not live"));
    };
    stream.saw_client(peer.ip());
    // A stream that just started has no segment yet: wait for the first one rather than
    // make the player retry.
    let wait = Duration::from_millis(hls.config().segment_duration_ms * 2);
    match stream.playlist(wait).await {
        Some(text) => {
            // With play tokens, segment URIs carry the client's token along.
            let text = match crate::auth::query_param(query, "token") {
                Some(t) if ctx.auth.needs_play_token() => Bytes::from(
                    String::from_utf8_lossy(&text).replace(".ts\n", &format!(".ts?token={t}\n")),
                ),
                _ => text,
            };
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
        if let Some(s) = ctx.hub.sources() {
            s.touch(&StreamKey::new(key.app.clone(), name));
        }
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

/// A live body that counts its bytes for the client list and leaves the list when dropped.
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

    #[test]
    fn api_stream_paths() {
        let k = api_stream_path("/api/streams/live/t").unwrap();
        assert_eq!((k.app.as_str(), k.name.as_str()), ("live", "t"));
        assert!(api_stream_path("/api/streams/live").is_none());
        assert!(api_stream_path("/api/streams/live/a/b").is_none());
        assert!(api_stream_path("/api/streams/../t").is_none());
    }
}
