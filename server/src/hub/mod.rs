//! The stream hub: a registry of live streams by `app/name`, and the handles that
//! publishers and viewers hold. Everything shared between connections lives here;
//! connections keep only their own protocol state.

mod frame;
pub mod stats;
mod stream;
mod subscription;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use onair_shared::metadata::ScriptData;
use onair_shared::{CodecConfig, Frame};

pub use frame::{SharedFrame, Unit};
pub use stats::Protocol;
pub(crate) use stream::Tap;
pub use stream::{Event, MediaInfo, PublisherInfo, PushError, Stream};
pub(crate) use subscription::Admission;
pub use subscription::{next_batch_of, Item, StreamEnded, Subscription};

use crate::config::HubConfig;
use crate::metrics::Metrics;

/// The hub's clock: tokio's, so paused-time tests can move it; the real clock otherwise.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    pub app: String,
    pub name: String,
}

impl StreamKey {
    pub fn new(app: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            app: app.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.name)
    }
}

/// Splits `name?query` as OBS and ffmpeg send stream keys; the name must be non-empty
/// and printable, without path separators.
pub fn parse_stream_name(raw: &str) -> Result<(String, Option<String>), &'static str> {
    let (name, query) = match raw.split_once('?') {
        Some((n, q)) => (n, Some(q.to_string())),
        None => (raw, None),
    };
    if name.is_empty() {
        return Err("empty stream name (set a stream key)");
    }
    if name.len() > 200 {
        return Err("stream name longer than 200 bytes");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
        || name.starts_with('.')
    {
        return Err("stream name may only use letters, digits, '-', '_', '.' and '~'");
    }
    Ok((name.to_string(), query))
}

/// App names that would collide with the HTTP listener's fixed paths (RTMPT, the API,
/// the player, recordings): nothing may be published under them.
pub const RESERVED_APPS: [&str; 8] = [
    "fcs",
    "open",
    "send",
    "idle",
    "close",
    "api",
    "player",
    "recordings",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("app name {0:?} is reserved for the server's own HTTP paths (reserved: fcs, open, send, idle, close, api, player, recordings)")]
    ReservedApp(String),
    #[error("stream {0} is already being published")]
    AlreadyPublishing(StreamKey),
    #[error("the server already carries its limit of {0} streams")]
    TooManyStreams(usize),
    #[error("this server is an edge: publish to an origin")]
    EdgeRefuses,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error("stream {0} is not live")]
    NotFound(StreamKey),
    #[error("stream {0} already has its limit of {1} viewers")]
    TooManyViewers(StreamKey, usize),
}

#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    /// Swapped by a config reload; each stream keeps the one it was created with.
    cfg: arc_swap::ArcSwap<HubConfig>,
    metrics: Arc<Metrics>,
    /// Announces each stream when it is created, for per-stream services (HLS).
    created: tokio::sync::broadcast::Sender<Arc<Stream>>,
    streams: Mutex<HashMap<StreamKey, Arc<Stream>>>,
    next_publisher_id: AtomicU64,
    /// Pulls (edge, `[[pull]]`): asked before a viewer subscribes to a stream not published here.
    sources: std::sync::OnceLock<Arc<crate::pull::Sources>>,
}

impl Hub {
    pub fn new(cfg: HubConfig) -> Self {
        Self {
            inner: Arc::new(HubInner {
                cfg: arc_swap::ArcSwap::from_pointee(cfg),
                metrics: Arc::new(Metrics::new()),
                created: tokio::sync::broadcast::channel(64).0,
                streams: Mutex::new(HashMap::new()),
                next_publisher_id: AtomicU64::new(1),
                sources: std::sync::OnceLock::new(),
            }),
        }
    }

    pub fn config(&self) -> Arc<HubConfig> {
        self.inner.cfg.load_full()
    }

    /// Limits for what starts from now on (reload): new publishes, viewers and streams.
    pub fn set_config(&self, cfg: HubConfig) {
        self.inner.cfg.store(Arc::new(cfg));
    }

    /// Installs the pulls (once, at server start).
    pub fn set_sources(&self, sources: Arc<crate::pull::Sources>) {
        let _ = self.inner.sources.set(sources);
    }

    pub fn sources(&self) -> Option<&Arc<crate::pull::Sources>> {
        self.inner.sources.get()
    }

    /// Before a viewer subscribes: starts or joins the pull of `key` when it is not
    /// published here and has a source, and waits for it (see `pull::Sources::ensure`).
    /// `query` is the play request's. A refused or timed-out pull leaves `subscribe` to
    /// say the stream is not live.
    pub async fn pull_if_needed(&self, key: &StreamKey, query: &str) {
        if let Some(s) = self.sources() {
            let _ = s.ensure(self, key, query).await;
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, Arc<Stream>>> {
        self.inner.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims `key` for a publisher. A stream whose publisher left within the grace
    /// period is taken over (its viewers stay); a live one is refused unless takeover
    /// is configured.
    pub fn publish(&self, key: StreamKey, addr: SocketAddr) -> Result<Publisher, PublishError> {
        self.publish_as(key, addr, "publish")
    }

    /// `publish` for a stream fed by `source` (see `PublisherInfo::source`): pulls.
    pub fn publish_as(
        &self,
        key: StreamKey,
        addr: SocketAddr,
        source: &'static str,
    ) -> Result<Publisher, PublishError> {
        if RESERVED_APPS.contains(&key.app.as_str()) {
            return Err(PublishError::ReservedApp(key.app));
        }
        let now = now();
        let cfg = self.config();
        let id = self.inner.next_publisher_id.fetch_add(1, Ordering::Relaxed);
        let info = PublisherInfo {
            id,
            addr,
            since: now,
            source,
        };
        let mut streams = self.streams();
        let stream = match streams.get(&key) {
            Some(s) => {
                let stale_ms = cfg.publisher_stale_ms;
                let stale = stale_ms > 0 && s.publisher_stale(now, Duration::from_millis(stale_ms));
                if s.publisher().is_some() && !cfg.publisher_takeover && !stale {
                    return Err(PublishError::AlreadyPublishing(key));
                }
                if stale {
                    tracing::info!(parent: &s.span, peer = %addr, "replacing a publisher that went silent");
                }
                s.clone()
            }
            None => {
                if streams.len() >= cfg.max_streams {
                    return Err(PublishError::TooManyStreams(cfg.max_streams));
                }
                let s = Arc::new(Stream::new(
                    key.clone(),
                    cfg.clone(),
                    self.inner.metrics.clone(),
                    now,
                ));
                streams.insert(key.clone(), s.clone());
                let _ = self.inner.created.send(s.clone());
                s
            }
        };
        let returning = stream.attach_publisher(info);
        drop(streams);
        tracing::info!(parent: &stream.span, peer = %addr, returning, "publish started");
        Ok(Publisher {
            hub: self.clone(),
            stream,
            id,
        })
    }

    pub fn subscribe(
        &self,
        key: &StreamKey,
        protocol: Protocol,
    ) -> Result<Subscription, SubscribeError> {
        let stream = self
            .streams()
            .get(key)
            .cloned()
            .ok_or_else(|| SubscribeError::NotFound(key.clone()))?;
        let max = self.config().max_viewers_per_stream;
        let now: usize = Protocol::ALL
            .iter()
            .map(|&p| stream.counters.viewers(p))
            .sum();
        if now >= max {
            self.inner.metrics.refused("max_viewers_per_stream");
            return Err(SubscribeError::TooManyViewers(key.clone(), max));
        }
        Ok(stream.subscribe(Some(protocol)))
    }

    /// Streams created from now on. On lag, `list` tells what exists.
    pub fn watch_created(&self) -> tokio::sync::broadcast::Receiver<Arc<Stream>> {
        self.inner.created.subscribe()
    }

    pub fn get(&self, key: &StreamKey) -> Option<Arc<Stream>> {
        self.streams().get(key).cloned()
    }

    /// All streams, sorted by key.
    pub fn list(&self) -> Vec<Arc<Stream>> {
        let mut v: Vec<_> = self.streams().values().cloned().collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    /// Ends every stream (server shutdown).
    pub fn close_all(&self) {
        let all: Vec<_> = self.streams().drain().map(|(_, s)| s).collect();
        for s in all {
            s.broadcast(Event::Ended);
        }
    }

    fn publisher_left(&self, stream: &Arc<Stream>, id: u64) {
        let Some(generation) = stream.detach_publisher(id) else {
            return;
        };
        tracing::info!(parent: &stream.span, "publisher left; waiting for it to return");
        let grace = Duration::from_millis(self.config().publisher_grace_ms);
        let hub = self.clone();
        let stream = stream.clone();
        let end = move || hub.end_if_abandoned(&stream, generation);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    tokio::time::sleep(grace).await;
                    end();
                });
            }
            // Outside a runtime (a dropped handle at shutdown) there is no one to wait for.
            Err(_) => end(),
        }
    }

    fn end_if_abandoned(&self, stream: &Arc<Stream>, generation: u64) {
        let mut streams = self.streams();
        {
            let mut st = stream.lock();
            if st.publisher.is_some() || st.leave_generation != generation || st.ended {
                return;
            }
            st.ended = true;
        }
        if streams
            .get(&stream.key)
            .is_some_and(|s| Arc::ptr_eq(s, stream))
        {
            streams.remove(&stream.key);
        }
        drop(streams);
        tracing::info!(parent: &stream.span, "stream ended");
        stream.broadcast(Event::Ended);
    }
}

impl Subscription {
    /// A subscription for a server-side consumer (the HLS segmenter): not counted as a viewer.
    pub fn internal(stream: &Arc<Stream>) -> Subscription {
        stream.subscribe(None)
    }
}

/// The right to publish one stream; dropping it starts the grace period.
pub struct Publisher {
    hub: Hub,
    stream: Arc<Stream>,
    id: u64,
}

impl Publisher {
    pub fn key(&self) -> &StreamKey {
        &self.stream.key
    }

    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// A track's configuration, parsed at ingest.
    pub fn config(&self, config: CodecConfig) -> Result<(), PushError> {
        self.stream.push_config(self.id, config, now())
    }

    /// A frame parsed at ingest, `dts` being its raw wire timestamp.
    pub fn frame(&self, frame: Frame) -> Result<(), PushError> {
        self.stream.push_frame(self.id, frame, now())
    }

    /// Media bytes received, counted as they came (tag headers included).
    pub fn count_in(&self, bytes: usize) {
        self.stream.add_in(bytes);
    }

    pub fn metadata(&self, script: ScriptData) -> Result<(), PushError> {
        self.stream.push_metadata(self.id, script, now())
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.hub.publisher_left(&self.stream, self.id);
    }
}
