//! Publishing over RTMP (or RTMPS: the same over TLS, see `super::tls`) with rml_rtmp's
//! `ClientSession` on a tokio runtime of its own:
//! handshake, `connect`, `publish` (live), metadata, sequence headers, then frames popped
//! from the shared `SendQueue`. When the server goes away it reconnects with backoff
//! (250 ms doubling to 4 s) and resumes at a keyframe; the queue's drop policy keeps memory
//! bounded meanwhile. Packets are serialized only when they are written, in order, so the
//! chunk-header compression of rml_rtmp is never broken by a drop.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use onair_shared::flv::TagFrame;
use onair_shared::MediaKind;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::Notify;
use tokio::time::error::Elapsed;
use tokio::time::timeout;

use super::data_message::DataMessages;
use super::queue::SendQueue;
use super::tls::TlsFailure;
use crate::status::Stats;
use crate::PushError;

/// A connect, handshake or command reply slower than this fails the attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One write blocked this long means the link is dead: reconnect.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Kernel send buffer of the RTMP socket. Small on purpose: a link slower than the stream
/// must show up in our send queue (where the drop policy works) within a second or two,
/// not hide megabytes of stale media in the kernel.
pub const SEND_BUFFER: u32 = 256 * 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(4);

/// `rtmp://HOST[:PORT]/APP/STREAM` or `rtmps://…`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// `HOST:PORT`, to connect to.
    pub addr: String,
    /// The host alone (brackets off), the name TLS checks the certificate against.
    pub host: String,
    /// rtmps://: RTMP over TLS.
    pub tls: bool,
    /// Accept any certificate (`--insecure`).
    pub insecure: bool,
    pub app: String,
    pub stream: String,
    pub tc_url: String,
    pub url: String,
}

impl RtmpUrl {
    pub fn parse(url: &str) -> Result<Self, PushError> {
        let bad = |r: &str| PushError::bad("URL", format!("{url:?}: {r}"));
        let (tls, rest) = match (url.strip_prefix("rtmp://"), url.strip_prefix("rtmps://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(bad("must start with rtmp:// or rtmps://")),
        };
        let port = if tls { 443 } else { 1935 };
        let (host, path) = rest.split_once('/').ok_or_else(|| bad("no /APP/STREAM"))?;
        let (app, stream) = path
            .split_once('/')
            .ok_or_else(|| bad("no /STREAM after the app"))?;
        if host.is_empty() || app.is_empty() || stream.is_empty() {
            return Err(bad("host, app and stream must not be empty"));
        }
        let (addr, bare) = if let Some(v6) = host.strip_prefix('[') {
            let bare = v6.split_once(']').map_or(v6, |(h, _)| h);
            if host.contains("]:") {
                (host.to_string(), bare)
            } else {
                (format!("{host}:{port}"), bare)
            }
        } else if let Some((h, _)) = host.split_once(':') {
            (host.to_string(), h)
        } else {
            (format!("{host}:{port}"), host)
        };
        let scheme = if tls { "rtmps" } else { "rtmp" };
        Ok(Self {
            tc_url: format!("{scheme}://{addr}/{app}"),
            addr,
            host: bare.to_string(),
            tls,
            insecure: false,
            app: app.to_string(),
            stream: stream.to_string(),
            url: url.to_string(),
        })
    }
}

/// What the muxer and the publisher share.
pub struct Shared {
    pub queue: Mutex<SendQueue>,
    pub notify: Notify,
    pub stats: Arc<Stats>,
}

impl Shared {
    pub fn new(queue: SendQueue, stats: Arc<Stats>) -> Self {
        Self {
            queue: Mutex::new(queue),
            notify: Notify::new(),
            stats,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SendQueue> {
        // A panic while holding the lock leaves a queue that is still consistent enough
        // to drain: take it over rather than propagate the poison.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pushes a frame (the drop policy applies) and wakes the sender.
    pub fn push(&self, f: TagFrame) {
        let mut q = self.lock();
        let before = q.dropped_frames;
        q.push(f);
        self.stats
            .dropped
            .fetch_add(q.dropped_frames - before, Relaxed);
        self.publish_queue_stats(&q);
        drop(q);
        self.notify.notify_one();
    }

    pub fn finish(&self) {
        self.lock().finish();
        self.notify.notify_one();
    }

    fn publish_queue_stats(&self, q: &SendQueue) {
        self.stats.queue_frames.store(q.len() as u64, Relaxed);
        self.stats.queue_ms.store(q.span_ms(), Relaxed);
    }
}

/// Runs the publisher until the queue is finished and drained (or `stop` is set while
/// no server can be reached). Blocks the calling thread.
pub fn run_publisher(
    url: RtmpUrl,
    shared: Arc<Shared>,
    metadata: StreamMetadata,
    stop: Arc<AtomicBool>,
) -> Result<(), PushError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PushError::Rtmp {
            url: url.url.clone(),
            reason: format!("tokio runtime: {e}"),
        })?;
    rt.block_on(async move {
        let mut backoff = BACKOFF_MIN;
        let mut attempts = 0u64;
        loop {
            attempts += 1;
            if attempts > 1 {
                shared.stats.reconnects.fetch_add(1, Relaxed);
            }
            let mut published = false;
            let result = publish_once(&url, &shared, &metadata, &mut published).await;
            shared.stats.connected.store(false, Relaxed);
            match result {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let permanent = e.permanent();
                    let reason = e.to_string();
                    let finished = shared.lock().is_finished();
                    if permanent {
                        // Retrying cannot help (a refused certificate): stop the sources too,
                        // so the push ends now with this error.
                        stop.store(true, Relaxed);
                    }
                    if stop.load(Relaxed) || finished || permanent {
                        return Err(PushError::Rtmp {
                            url: url.url.clone(),
                            reason,
                        });
                    }
                    if published {
                        backoff = BACKOFF_MIN;
                    }
                    tracing::warn!(url = %url.url, %reason, retry_in_ms = backoff.as_millis() as u64, "publish interrupted");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    })
}

/// Why one publish attempt ended, with what was being done; only a refused certificate
/// (`permanent`) ends the push, anything else is retried.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} timed out after {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("server closed the connection")]
    Closed,
    #[error("{addr} resolves to no address")]
    NoAddress { addr: String },
    /// rml_rtmp's errors, which carry their detail only in `Debug`.
    #[error("RTMP {what}: {detail}")]
    Rtmp { what: &'static str, detail: String },
    #[error("server said {code}")]
    Status { code: String },
    #[error("connect rejected: {description}")]
    Rejected { description: String },
    #[error(transparent)]
    Tls(#[from] TlsFailure),
}

impl AttemptError {
    fn permanent(&self) -> bool {
        matches!(self, Self::Tls(t) if t.permanent)
    }
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AttemptError {
    let what = what.into();
    move |source| AttemptError::Io { what, source }
}

fn rtmp_error<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> AttemptError {
    move |e| AttemptError::Rtmp {
        what,
        detail: format!("{e:?}"),
    }
}

fn timed_out(what: impl Into<String>, after: Duration) -> impl FnOnce(Elapsed) -> AttemptError {
    let what = what.into();
    move |_| AttemptError::Timeout { what, after }
}

/// TCP, or TLS over TCP.
trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

struct Conn {
    sock: Box<dyn Transport>,
    session: ClientSession,
    buf: Vec<u8>,
    /// Data messages rml_rtmp has no call for (the VP9/AV1 frame clock), once publishing.
    data: Option<DataMessages>,
}

impl Conn {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), AttemptError> {
        // Flushed, since TLS may hold the last record back (a no-op on TCP).
        let write = async {
            self.sock.write_all(bytes).await?;
            self.sock.flush().await
        };
        timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(timed_out("write", WRITE_TIMEOUT))?
            .map_err(io_error("write"))
    }

    async fn read(&mut self) -> Result<usize, AttemptError> {
        match self.sock.read(&mut self.buf).await {
            Ok(0) => Err(AttemptError::Closed),
            Ok(n) => Ok(n),
            Err(e) => Err(io_error("read")(e)),
        }
    }

    async fn send(&mut self, r: ClientSessionResult) -> Result<(), AttemptError> {
        if let ClientSessionResult::OutboundResponse(p) = r {
            self.write(&p.bytes).await?;
        }
        Ok(())
    }

    /// Feeds bytes to the session, writes its responses, returns its events.
    async fn input(&mut self, bytes: &[u8]) -> Result<Vec<ClientSessionEvent>, AttemptError> {
        let results = self
            .session
            .handle_input(bytes)
            .map_err(rtmp_error("from the server"))?;
        let mut events = Vec::new();
        for r in results {
            match r {
                ClientSessionResult::OutboundResponse(p) => self.write(&p.bytes).await?,
                ClientSessionResult::RaisedEvent(e) => events.push(e),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        for e in &events {
            check_status(e)?;
        }
        Ok(events)
    }

    async fn wait_for(
        &mut self,
        what: &str,
        want: fn(&ClientSessionEvent) -> bool,
    ) -> Result<(), AttemptError> {
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        loop {
            let n = tokio::time::timeout_at(deadline, self.read())
                .await
                .map_err(timed_out(
                    format!("waiting for the {what}"),
                    CONNECT_TIMEOUT,
                ))??;
            let bytes = self.buf[..n].to_vec();
            if self.input(&bytes).await?.iter().any(want) {
                return Ok(());
            }
        }
    }
}

/// An `onStatus` whose code ends a publish (bad name, failed, rejected...).
fn check_status(e: &ClientSessionEvent) -> Result<(), AttemptError> {
    const ENDINGS: [&str; 5] = ["Failed", "NotFound", "BadName", "Rejected", "Forbidden"];
    match e {
        ClientSessionEvent::UnhandleableOnStatusCode { code }
            if ENDINGS.iter().any(|s| code.ends_with(s)) =>
        {
            Err(AttemptError::Status { code: code.clone() })
        }
        ClientSessionEvent::ConnectionRequestRejected { description } => {
            Err(AttemptError::Rejected {
                description: description.clone(),
            })
        }
        _ => Ok(()),
    }
}

async fn publish_once(
    url: &RtmpUrl,
    shared: &Shared,
    metadata: &StreamMetadata,
    published: &mut bool,
) -> Result<(), AttemptError> {
    let addr = tokio::net::lookup_host(&url.addr)
        .await
        .map_err(io_error(format!("resolve {}", url.addr)))?
        .next()
        .ok_or_else(|| AttemptError::NoAddress {
            addr: url.addr.clone(),
        })?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(io_error("socket"))?;
    socket
        .set_send_buffer_size(SEND_BUFFER)
        .map_err(io_error("SO_SNDBUF"))?;
    let sock = timeout(CONNECT_TIMEOUT, socket.connect(addr))
        .await
        .map_err(timed_out(format!("connect to {addr}"), CONNECT_TIMEOUT))?
        .map_err(io_error(format!("connect to {addr}")))?;
    sock.set_nodelay(true).map_err(io_error("TCP_NODELAY"))?;
    let sock: Box<dyn Transport> = if url.tls {
        let tls = timeout(
            CONNECT_TIMEOUT,
            super::tls::connect(sock, &url.host, url.insecure),
        )
        .await
        .map_err(timed_out(
            format!("TLS handshake with {addr}"),
            CONNECT_TIMEOUT,
        ))??;
        Box::new(tls)
    } else {
        Box::new(sock)
    };
    let mut config = ClientSessionConfig::new();
    config.tc_url = Some(url.tc_url.clone());
    let chunk_size = config.chunk_size;
    // Made now, its first messages sent after the handshake.
    let (session, initial) = ClientSession::new(config).map_err(rtmp_error("session"))?;
    let mut c = Conn {
        sock,
        session,
        buf: vec![0u8; 64 * 1024],
        data: None,
    };
    // Handshake.
    let mut hs = Handshake::new(PeerType::Client);
    let p0p1 = hs
        .generate_outbound_p0_and_p1()
        .map_err(rtmp_error("handshake"))?;
    c.write(&p0p1).await?;
    let leftover = loop {
        let n = timeout(CONNECT_TIMEOUT, c.read())
            .await
            .map_err(timed_out("handshake", CONNECT_TIMEOUT))??;
        match hs
            .process_bytes(&c.buf[..n])
            .map_err(rtmp_error("handshake"))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                c.write(&response_bytes).await?
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                c.write(&response_bytes).await?;
                break remaining_bytes;
            }
        }
    };
    for r in initial {
        c.send(r).await?;
    }
    let req = c
        .session
        .request_connection(url.app.clone())
        .map_err(rtmp_error("connect"))?;
    c.send(req).await?;
    let mut connected = false;
    if !leftover.is_empty() {
        connected = c
            .input(&leftover)
            .await?
            .contains(&ClientSessionEvent::ConnectionRequestAccepted);
    }
    if !connected {
        c.wait_for("connect reply", |e| {
            *e == ClientSessionEvent::ConnectionRequestAccepted
        })
        .await?;
    }
    let req = c
        .session
        .request_publishing(url.stream.clone(), PublishRequestType::Live)
        .map_err(rtmp_error("publish"))?;
    c.send(req).await?;
    c.wait_for("publish reply", |e| {
        *e == ClientSessionEvent::PublishRequestAccepted
    })
    .await?;
    *published = true;
    tracing::info!(url = %url.url, "publishing");
    let meta = c
        .session
        .publish_metadata(metadata)
        .map_err(rtmp_error("metadata"))?;
    if let ClientSessionResult::OutboundResponse(p) = &meta {
        c.data = Some(DataMessages::new(chunk_size, &p.bytes));
    }
    c.send(meta).await?;
    shared.lock().restart();
    shared.stats.connected.store(true, Relaxed);

    loop {
        // Send everything queued.
        loop {
            let (headers, frame, done) = {
                let mut q = shared.lock();
                let h = q.take_headers();
                let f = q.pop();
                shared.publish_queue_stats(&q);
                (h, f, q.is_finished() && q.is_empty())
            };
            for h in headers {
                send_frame(&mut c, &h).await?;
            }
            match frame {
                Some(f) => {
                    send_frame(&mut c, &f).await?;
                    if f.kind == MediaKind::Video {
                        shared.stats.video_frames.fetch_add(1, Relaxed);
                    }
                    shared
                        .stats
                        .bytes
                        .fetch_add(f.payload.len() as u64, Relaxed);
                }
                None if done => {
                    let r = c
                        .session
                        .stop_publishing()
                        .map_err(rtmp_error("unpublish"))?;
                    for r in r {
                        c.send(r).await?;
                    }
                    let _ = c.sock.shutdown().await;
                    return Ok(());
                }
                None => break,
            }
        }
        tokio::select! {
            _ = shared.notify.notified() => {}
            r = c.sock.read(&mut c.buf) => {
                let n = match r {
                    Ok(0) => return Err(AttemptError::Closed),
                    Ok(n) => n,
                    Err(e) => return Err(io_error("read")(e)),
                };
                let bytes = c.buf[..n].to_vec();
                c.input(&bytes).await?;
            }
        }
    }
}

async fn send_frame(c: &mut Conn, f: &TagFrame) -> Result<(), AttemptError> {
    let ts = RtmpTimestamp::new(f.wire_timestamp());
    let payload: Bytes = f.payload.clone();
    let s = &mut c.session;
    let r = match f.kind {
        MediaKind::Video => s.publish_video_data(payload, ts, false),
        MediaKind::Audio => s.publish_audio_data(payload, ts, false),
        MediaKind::Data => {
            let Some(bytes) = c.data.as_mut().and_then(|d| d.serialize(payload, ts.value)) else {
                return Ok(());
            };
            return c.write(&bytes).await;
        }
    }
    .map_err(rtmp_error("serialize"))?;
    c.send(r).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = RtmpUrl::parse("rtmp://127.0.0.1:1936/live/t").unwrap();
        assert_eq!(
            (u.addr.as_str(), u.app.as_str(), u.stream.as_str()),
            ("127.0.0.1:1936", "live", "t")
        );
        assert_eq!(u.tc_url, "rtmp://127.0.0.1:1936/live");
        let u = RtmpUrl::parse("rtmp://example.org/app/key?token=1").unwrap();
        assert_eq!(
            (u.addr.as_str(), u.stream.as_str()),
            ("example.org:1935", "key?token=1")
        );
        let u = RtmpUrl::parse("rtmp://[::1]/live/a/b").unwrap();
        assert_eq!((u.addr.as_str(), u.stream.as_str()), ("[::1]:1935", "a/b"));
        assert_eq!((u.host.as_str(), u.tls), ("::1", false));
        let u = RtmpUrl::parse("rtmps://live.example.com/app/key").unwrap();
        assert_eq!(
            (u.addr.as_str(), u.host.as_str(), u.tls),
            ("live.example.com:443", "live.example.com", true)
        );
        assert_eq!(u.tc_url, "rtmps://live.example.com:443/app");
        let u = RtmpUrl::parse("rtmps://127.0.0.1:1936/live/t").unwrap();
        assert_eq!(
            (u.addr.as_str(), u.host.as_str()),
            ("127.0.0.1:1936", "127.0.0.1")
        );
        let u = RtmpUrl::parse("rtmps://[::1]:8443/live/t").unwrap();
        assert_eq!((u.addr.as_str(), u.host.as_str()), ("[::1]:8443", "::1"));
        for bad in [
            "http://x/a/b",
            "rtmp://host/app",
            "rtmp:///a/b",
            "rtmp://h//s",
        ] {
            assert!(RtmpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_statuses_end_the_attempt() {
        let s = |c: &str| ClientSessionEvent::UnhandleableOnStatusCode { code: c.into() };
        assert!(check_status(&s("NetStream.Publish.BadName")).is_err());
        assert!(check_status(&s("NetStream.Publish.Start")).is_ok());
        assert!(check_status(&ClientSessionEvent::PublishRequestAccepted).is_ok());
    }
}
