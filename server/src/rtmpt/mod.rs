//! RTMPT on the HTTP and HTTPS listeners: each session is an in-memory duplex pipe with
//! the one RTMP driver (`rtmp::driver`) at its far end, so RTMPT runs the same session
//! code as TCP and TLS. Here requests only move bytes between HTTP bodies and the pipe,
//! within the `[rtmpt]` bounds; every RTMPT rule is in `protocol`, every RTMP one in the
//! session. It must never parse RTMP, nor hold more than its bounded buffers per session.

pub mod protocol;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::{ms, Config, RtmptConfig};
use crate::control::Control;
use crate::http::body::ResponseBody;
use crate::hub::Hub;
use crate::limits::admit;
use protocol::{Command, PollInterval, Sequence, Table};

/// The RTMPT sessions of this server, shared by the HTTP and HTTPS listeners.
pub struct Rtmpt {
    control: Arc<Control>,
    hub: Hub,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    table: Mutex<Table<Arc<Tunnel>>>,
    random: ring::rand::SystemRandom,
}

/// The HTTP end of one session's pipe. Requests of a session take turns on it.
struct Tunnel {
    io: tokio::sync::Mutex<TunnelIo>,
}

struct TunnelIo {
    rd: ReadHalf<DuplexStream>,
    wr: WriteHalf<DuplexStream>,
    seq: Sequence,
    poll: PollInterval,
    /// The RTMP connection ended (its end of the pipe is gone).
    ended: bool,
}

/// Bytes moved from the pipe in one step.
const COPY_CHUNK: usize = 16 * 1024;

impl Rtmpt {
    /// The session table, and its task that closes sessions idle past
    /// `rtmpt.idle_timeout_ms` (until `shutdown`).
    pub fn start(
        control: Arc<Control>,
        hub: Hub,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Arc<Self> {
        let max = control.config().rtmpt.max_sessions;
        let rtmpt = Arc::new(Self {
            control,
            hub,
            shutdown,
            tasks: tasks.clone(),
            table: Mutex::new(Table::new(max)),
            random: ring::rand::SystemRandom::new(),
        });
        tasks.spawn(rtmpt.clone().close_idle());
        rtmpt
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table<Arc<Tunnel>>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sessions open now.
    pub fn sessions(&self) -> usize {
        self.table().len()
    }

    async fn close_idle(self: Arc<Self>) {
        loop {
            let idle = ms(self.control.config().rtmpt.idle_timeout_ms.max(1));
            let every = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            let gone = self.table().take_idle(Instant::now(), idle);
            for _ in gone {
                // Dropping the pipe's end ends the RTMP connection behind it.
                self.hub.metrics().refused("rtmpt_idle_timeout");
                tracing::info!(
                    ?idle,
                    "RTMPT session closed: no request within the idle timeout"
                );
            }
        }
        let all = self.table().take_idle(Instant::now(), Duration::ZERO);
        drop(all);
    }

    /// Answers one request on an RTMPT path (`protocol::parse_path` gave `Some`); `secure`
    /// when it came through the HTTPS listener (RTMPTS).
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        secure: bool,
    ) -> Response<ResponseBody> {
        let cfg = self.control.config();
        let path = req.uri().path().to_string();
        let Some(parsed) = protocol::parse_path(&path) else {
            return text(StatusCode::NOT_FOUND, "not found");
        };
        if !cfg.rtmpt.enabled {
            return text(StatusCode::NOT_FOUND, "RTMPT is disabled on this server");
        }
        let parsed = match parsed {
            Ok(p) => p,
            Err(e) => return self.refuse(StatusCode::BAD_REQUEST, "rtmpt_bad_request", e),
        };
        if req.method() != Method::POST {
            let mut r = self.refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "rtmpt_bad_request",
                "RTMPT requests are POSTs",
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return r;
        }
        if parsed.command == Command::Ident {
            // Flash asks, then opens anyway; Red5 without an ident answers the same.
            return fcs(StatusCode::NOT_FOUND, Bytes::new());
        }
        let content_type = req.headers().get(CONTENT_TYPE).map(|v| v.as_bytes());
        if !content_type.is_some_and(|t| t.eq_ignore_ascii_case(protocol::CONTENT_TYPE.as_bytes()))
        {
            return self.refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "rtmpt_bad_request",
                format!(
                    "RTMPT requests carry Content-Type: {}",
                    protocol::CONTENT_TYPE
                ),
            );
        }
        let session = parsed.session.map(|(id, n)| (id.to_string(), n));
        let announced = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if announced.is_some_and(|n| n > cfg.rtmpt.max_send_bytes as u64) {
            // Refused before a byte of it is read; the session's stream would have a hole.
            if let Some((id, _)) = &session {
                self.table().remove(id);
            }
            let (status, reason, msg) = too_large(&cfg.rtmpt);
            return self.refuse(status, reason, msg);
        }
        let mut body = Body::new(req.into_body(), &cfg.rtmpt);
        match (parsed.command, session) {
            (Command::Open, _) => {
                // Its body is one filler byte: read and dropped.
                loop {
                    match body.next().await {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err((status, reason, msg)) => return self.refuse(status, reason, msg),
                    }
                }
                self.open(peer, &cfg, if secure { "rtmpts" } else { "rtmpt" })
            }
            (command, Some((id, n))) => self.exchange(command, &id, n, body, &cfg).await,
            _ => text(StatusCode::BAD_REQUEST, "RTMPT request without a session"),
        }
    }

    /// A new session: a place among the RTMP connections, a pipe, and the driver on it.
    /// `protocol` (`rtmpt` or `rtmpts`) labels it in the metrics and the client list.
    fn open(
        &self,
        peer: SocketAddr,
        cfg: &Config,
        protocol: &'static str,
    ) -> Response<ResponseBody> {
        let metrics = self.hub.metrics().clone();
        {
            let mut table = self.table();
            table.set_max(cfg.rtmpt.max_sessions);
            if let Err(e) = table.has_room() {
                drop(table);
                return self.refuse(StatusCode::SERVICE_UNAVAILABLE, "rtmpt_max_sessions", e);
            }
        }
        let admission = match admit(&self.control.rtmp_limiter, peer.ip(), &metrics, protocol) {
            Ok(a) => a,
            Err(refusal) => {
                let reason = refusal.reason(protocol);
                return self.refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    reason,
                    format!("too many RTMP connections ({reason})"),
                );
            }
        };
        let mut random = [0u8; 16];
        if ring::rand::SecureRandom::fill(&self.random, &mut random).is_err() {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no randomness for a session id",
            );
        }
        let id = protocol::session_id(random);
        let capacity = cfg.rtmpt.buffer_bytes.max(COPY_CHUNK);
        let (near, far) = tokio::io::duplex(capacity);
        let (rd, wr) = tokio::io::split(near);
        let tunnel = Arc::new(Tunnel {
            io: tokio::sync::Mutex::new(TunnelIo {
                rd,
                wr,
                seq: Sequence::default(),
                poll: PollInterval::default(),
                ended: false,
            }),
        });
        if let Err(e) = self.table().insert(id.clone(), tunnel, Instant::now()) {
            return self.refuse(StatusCode::SERVICE_UNAVAILABLE, "rtmpt_max_sessions", e);
        }
        // Its own span, not a child of the request that opened it: it outlives the request.
        let span = tracing::info_span!(
            parent: None,
            "rtmp",
            peer = %peer,
            protocol,
            stream = tracing::field::Empty
        );
        let client = self
            .control
            .clients
            .register(peer, protocol, self.shutdown.child_token());
        let (rtmp, auth, hub) = (
            Arc::new(cfg.rtmp.clone()),
            self.control.auth(),
            self.hub.clone(),
        );
        self.tasks.spawn(
            async move {
                crate::rtmp::driver::run(far, peer, rtmp, hub, auth, client).await;
                drop(admission);
            }
            .instrument(span),
        );
        tracing::debug!(peer = %peer, "RTMPT session opened");
        fcs(StatusCode::OK, Bytes::from(protocol::open_reply(&id)))
    }

    /// `/send`, `/idle` or `/close` of session `id`: its body (for `/send`) streamed into
    /// the pipe a frame at a time, so the server never holds more of it than the pipe's
    /// bound; the reply carries what the RTMP session wrote meanwhile.
    async fn exchange(
        &self,
        command: Command,
        id: &str,
        n: u64,
        mut body: Body,
        cfg: &Config,
    ) -> Response<ResponseBody> {
        let Some(tunnel) = self.table().touch(id, Instant::now()) else {
            return self.refuse(
                StatusCode::NOT_FOUND,
                "rtmpt_unknown_session",
                "no such RTMPT session (closed, timed out, or never opened)",
            );
        };
        let mut io = tunnel.io.lock().await;
        if let Err(e) = io.seq.accept(n) {
            self.table().remove(id);
            return self.refuse(StatusCode::BAD_REQUEST, "rtmpt_bad_sequence", e);
        }
        let rc = &cfg.rtmpt;
        let max_reply = rc.max_reply_bytes.max(1);
        let write_limit = ms(self.hub.config().viewer_write_timeout_ms);
        let mut out = Vec::new();
        loop {
            let data = match body.next().await {
                Ok(Some(data)) => data,
                Ok(None) => break,
                Err((status, reason, msg)) => {
                    // The session's RTMP stream would have a hole: it ends here.
                    self.table().remove(id);
                    return self.refuse(status, reason, msg);
                }
            };
            // Idle and close bodies are one filler byte, not RTMP.
            if command != Command::Send {
                continue;
            }
            if feed(&mut io, &data, &mut out, max_reply, write_limit)
                .await
                .is_err()
            {
                self.table().remove(id);
                return self.refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "rtmpt_stalled",
                    "the RTMP session took none of the bytes sent",
                );
            }
        }
        if command == Command::Close {
            self.table().remove(id);
            tracing::debug!("RTMPT session closed by the client");
            return fcs(StatusCode::OK, Bytes::from_static(&protocol::CLOSE_REPLY));
        }
        let wait = match command {
            Command::Idle => ms(rc.idle_reply_wait_ms),
            _ => Duration::ZERO,
        };
        collect(&mut io, &mut out, max_reply, wait).await;
        if io.ended && out.is_empty() {
            self.table().remove(id);
            return text(StatusCode::NOT_FOUND, "this RTMPT session has ended");
        }
        let poll = io.poll.next(out.len());
        fcs(StatusCode::OK, Bytes::from(protocol::reply(poll, &out)))
    }

    /// A 4xx/5xx with a clear text, counted under `reason` and logged once.
    fn refuse(
        &self,
        status: StatusCode,
        reason: &'static str,
        msg: impl std::fmt::Display,
    ) -> Response<ResponseBody> {
        self.hub.metrics().refused(reason);
        tracing::warn!(reason, status = status.as_u16(), error = %msg, "RTMPT request refused");
        text(status, msg.to_string())
    }
}

/// The RTMP session accepted none of a request's bytes within the write timeout.
struct Stalled;

/// Writes `input` into the pipe while taking what the RTMP session writes into `out` (the
/// two at once, so a session blocked on its output cannot block our input), `out` holding
/// at most `max_reply` bytes. `Stalled` when the session takes nothing for `write_limit`.
async fn feed(
    io: &mut TunnelIo,
    input: &[u8],
    out: &mut Vec<u8>,
    max_reply: usize,
    write_limit: Duration,
) -> Result<(), Stalled> {
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut written = 0;
    while written < input.len() && !io.ended {
        let room = COPY_CHUNK.min(max_reply.saturating_sub(out.len()));
        let TunnelIo { rd, wr, ended, .. } = &mut *io;
        tokio::select! {
            r = tokio::time::timeout(write_limit, wr.write(&input[written..])) => match r {
                Err(_) => return Err(Stalled),
                Ok(Ok(n)) if n > 0 => written += n,
                Ok(_) => *ended = true,
            },
            r = rd.read(&mut buf[..room]), if room > 0 => match r {
                Ok(n) if n > 0 => out.extend_from_slice(&buf[..n]),
                _ => *ended = true,
            },
        }
    }
    Ok(())
}

/// Adds to `out` what the RTMP session has written, up to `max_reply` bytes, waiting up
/// to `wait` when there is nothing yet; marks the tunnel ended at the pipe's end.
async fn collect(io: &mut TunnelIo, out: &mut Vec<u8>, max_reply: usize, wait: Duration) {
    let mut buf = vec![0u8; COPY_CHUNK];
    if out.is_empty() && !io.ended && !wait.is_zero() {
        let room = COPY_CHUNK.min(max_reply);
        match tokio::time::timeout(wait, io.rd.read(&mut buf[..room])).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            Ok(_) => io.ended = true,
            Err(_) => {}
        }
    }
    while !io.ended && out.len() < max_reply {
        let room = COPY_CHUNK.min(max_reply - out.len());
        match io.rd.read(&mut buf[..room]).now_or_never() {
            None => break,
            Some(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            Some(_) => io.ended = true,
        }
    }
}

type BodyRefusal = (StatusCode, &'static str, String);

fn too_large(cfg: &RtmptConfig) -> BodyRefusal {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        "rtmpt_body_too_large",
        format!(
            "RTMPT request body over max_send_bytes ({} bytes)",
            cfg.max_send_bytes
        ),
    )
}

/// A request body read a frame at a time, within `max_send_bytes` in all and
/// `body_read_timeout_ms` from the request head.
struct Body {
    incoming: Incoming,
    read: usize,
    deadline: tokio::time::Instant,
    cfg: RtmptConfig,
}

impl Body {
    fn new(incoming: Incoming, cfg: &RtmptConfig) -> Self {
        Self {
            incoming,
            read: 0,
            deadline: tokio::time::Instant::now() + ms(cfg.body_read_timeout_ms),
            cfg: cfg.clone(),
        }
    }

    /// The next piece of data; `None` at the end.
    async fn next(&mut self) -> Result<Option<Bytes>, BodyRefusal> {
        loop {
            let frame = match tokio::time::timeout_at(self.deadline, self.incoming.frame()).await {
                Err(_) => {
                    return Err((
                        StatusCode::REQUEST_TIMEOUT,
                        "rtmpt_body_timeout",
                        format!(
                            "RTMPT request body not received within {} ms",
                            self.cfg.body_read_timeout_ms
                        ),
                    ))
                }
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        "rtmpt_bad_request",
                        format!("reading the RTMPT body: {e}"),
                    ))
                }
                Ok(Some(Ok(frame))) => frame,
            };
            // Trailers carry nothing for us.
            let Ok(data) = frame.into_data() else {
                continue;
            };
            self.read += data.len();
            if self.read > self.cfg.max_send_bytes {
                return Err(too_large(&self.cfg));
            }
            return Ok(Some(data));
        }
    }
}

fn fcs(status: StatusCode, body: Bytes) -> Response<ResponseBody> {
    let mut r = Response::new(ResponseBody::full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(protocol::CONTENT_TYPE),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response<ResponseBody> {
    let mut body = msg.into();
    body.push('\n');
    let mut r = Response::new(ResponseBody::full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our end of a pipe of `capacity` bytes each way, and the far (driver's) end.
    fn pipe(capacity: usize) -> (TunnelIo, DuplexStream) {
        let (near, far) = tokio::io::duplex(capacity);
        let (rd, wr) = tokio::io::split(near);
        let io = TunnelIo {
            rd,
            wr,
            seq: Sequence::default(),
            poll: PollInterval::default(),
            ended: false,
        };
        (io, far)
    }

    const LONG: Duration = Duration::from_secs(5);

    /// One request's worth: `input` fed, then what is there collected.
    async fn transfer(
        io: &mut TunnelIo,
        input: &[u8],
        max_reply: usize,
        wait: Duration,
        write_limit: Duration,
    ) -> Result<Vec<u8>, Stalled> {
        let mut out = Vec::new();
        feed(io, input, &mut out, max_reply, write_limit).await?;
        collect(io, &mut out, max_reply, wait).await;
        Ok(out)
    }

    #[tokio::test(start_paused = true)]
    async fn input_gets_through_while_the_session_is_blocked_on_its_output() {
        let (mut io, mut far) = pipe(64);
        // The session writes 1000 bytes (blocking after 64) before it reads anything.
        let session = tokio::spawn(async move {
            far.write_all(&[7u8; 1000]).await.unwrap();
            let mut got = vec![0u8; 200];
            far.read_exact(&mut got).await.unwrap();
            got
        });
        let out = transfer(&mut io, &[9u8; 200], 4096, Duration::ZERO, LONG)
            .await
            .ok()
            .unwrap();
        assert!(out.len() >= 1000 - 64, "{}", out.len());
        assert!(out.iter().all(|&b| b == 7));
        assert_eq!(session.await.unwrap(), vec![9u8; 200]);
        assert!(!io.ended);
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_that_takes_nothing_is_stalled_at_the_write_limit() {
        let (mut io, _far) = pipe(64);
        let t0 = tokio::time::Instant::now();
        let limit = Duration::from_millis(300);
        let r = transfer(&mut io, &[1u8; 1000], 4096, Duration::ZERO, limit).await;
        assert!(r.is_err());
        assert_eq!(t0.elapsed(), limit);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_the_first_bytes_and_replies_are_bounded() {
        let (mut io, mut far) = pipe(16 * 1024);
        // Nothing there and no wait: an empty reply at once.
        let out = transfer(&mut io, &[], 1000, Duration::ZERO, LONG).await;
        assert_eq!(out.ok().unwrap(), Vec::<u8>::new());
        // Bytes 100 ms into a 1 s wait come back then.
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            far.write_all(&[5u8; 2500]).await.unwrap();
            far
        });
        let t0 = tokio::time::Instant::now();
        let out = transfer(&mut io, &[], 1000, Duration::from_secs(1), LONG).await;
        assert_eq!(
            out.ok().unwrap().len(),
            1000,
            "one reply holds max_reply bytes"
        );
        assert!(t0.elapsed() < Duration::from_secs(1));
        let far = writer.await.unwrap();
        let out = transfer(&mut io, &[], 1000, Duration::ZERO, LONG).await;
        assert_eq!(out.ok().unwrap().len(), 1000);
        let out = transfer(&mut io, &[], 1000, Duration::ZERO, LONG).await;
        assert_eq!(out.ok().unwrap().len(), 500);
        // The session's end of the pipe gone: the tunnel knows it has ended.
        drop(far);
        let out = transfer(&mut io, &[], 1000, Duration::from_secs(1), LONG).await;
        assert!(out.ok().unwrap().is_empty());
        assert!(io.ended);
    }
}
