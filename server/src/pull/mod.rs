//! Streams this server pulls instead of receiving a publish: edge pulls from an origin
//! (`[cluster]`) and `[[pull]]` sources (RTMP from any server, RTSP cameras). Each pull feeds
//! the local hub like a publish, so every output serves it unchanged. One upstream per
//! stream; viewers that arrive while it starts wait for it within `edge_wait_ms`; an
//! on-demand pull stops `edge_idle_ms` after its last viewer. Source URLs and credentials
//! go to the log and the admin API only, never to the public API.

pub mod rtmp;
pub mod rtsp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::panic::AssertUnwindSafe;

use bytes::Bytes;
use futures_util::FutureExt;
use onair_shared::ingest::{IngestError, TagReader, TrackItem};
use onair_shared::{CodecConfig, Frame, MediaKind};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::cluster::config::{ClusterConfig, PullConfig, RtspTransport};
use crate::cluster::{hops, Cluster};
use crate::hub::{parse_stream_name, Hub, Protocol, PublishError, Publisher, PushError, StreamKey};

/// Why a pull session ended (logged with the source; never shown on the public API).
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("bad source URL {0:?}: {1}")]
    BadUrl(String, &'static str),
    #[error("connecting: {0}")]
    Connect(#[source] std::io::Error),
    #[error("no answer within {0:?} (connect, handshake and play)")]
    SetupTimeout(Duration),
    #[error("upstream sent nothing for {0:?} (stalled)")]
    Stalled(Duration),
    #[error("upstream closed the connection")]
    Closed,
    #[error("upstream I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("RTMP handshake with upstream failed: {0}")]
    Handshake(String),
    #[error("RTMP upstream protocol error: {0}")]
    Protocol(String),
    #[error("upstream refused: {0}")]
    Refused(String),
    #[error("upstream media: {0}")]
    Ingest(#[from] IngestError),
    #[error("RTSP: {0}")]
    Rtsp(String),
    #[error("publishing the pulled stream locally: {0}")]
    Publish(#[from] PublishError),
    #[error("a local publisher replaced the pulled stream")]
    Replaced,
    #[error("the pull task panicked")]
    Panicked,
}

impl From<PushError> for PullError {
    fn from(e: PushError) -> Self {
        match e {
            PushError::Replaced => PullError::Replaced,
            PushError::Ingest(i) => PullError::Ingest(i),
        }
    }
}

/// Why a viewer that asked for a pulled stream gets none.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WaitError {
    #[error(transparent)]
    Hops(#[from] hops::HopError),
    #[error("the pull did not start within edge_wait_ms ({0:?})")]
    Timeout(Duration),
    #[error("cluster.max_pulls ({0}) pulls are running already")]
    TooManyPulls(usize),
}

/// Where one stream comes from.
#[derive(Debug, Clone)]
enum SourceSpec {
    /// Edge: an origin from the directory or the `origins` list.
    Edge,
    Rtmp(String),
    Rtsp(String, RtspTransport),
}

impl SourceSpec {
    /// The kind shown on the public API.
    fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Edge => "edge",
            SourceSpec::Rtmp(_) => "rtmp",
            SourceSpec::Rtsp(..) => "rtsp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum UpState {
    Starting,
    Live,
    /// The pull ended (idle, shutdown); a viewer that joined it starts a new one.
    Stopped,
}

/// One running pull, shared by the task and the viewers waiting on it.
struct Upstream {
    state: watch::Sender<UpState>,
    /// Last HLS request (playlist or segment) for the stream: HLS viewers hold no
    /// connection, so this is how they count as present.
    touched: Mutex<Instant>,
    /// The URL pulled from now, for the admin API and logs.
    current: Mutex<Option<String>>,
}

/// What the admin API shows of one pull (URLs without credentials).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PullStatus {
    /// `app/name`.
    pub stream: String,
    /// "edge", "rtmp" or "rtsp".
    pub kind: &'static str,
    /// Media flows now (false while connecting or retrying).
    pub live: bool,
    /// The URL read now (or last tried), without user info or query.
    pub upstream: Option<String>,
}

/// The registry of pulls; installed in the hub so every protocol's play path reaches it.
pub struct Sources {
    cluster: Arc<Cluster>,
    pulls: HashMap<StreamKey, PullConfig>,
    upstreams: Mutex<HashMap<StreamKey, Arc<Upstream>>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Sources {
    pub fn new(
        cluster: Arc<Cluster>,
        pulls: &[PullConfig],
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> anyhow::Result<Self> {
        let mut map = HashMap::new();
        for p in pulls {
            let key = parse_key(&p.name)
                .ok_or_else(|| anyhow::anyhow!("[[pull]] name {:?} is not app/stream", p.name))?;
            if !(p.url.starts_with("rtmp://") || p.url.starts_with("rtsp://")) {
                anyhow::bail!("[[pull]] {}: url must be rtmp:// or rtsp://", p.name);
            }
            map.insert(key, p.clone());
        }
        Ok(Self {
            cluster,
            pulls: map,
            upstreams: Mutex::new(HashMap::new()),
            shutdown,
            tasks,
        })
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    fn config(&self) -> &ClusterConfig {
        self.cluster.config()
    }

    fn spec(&self, key: &StreamKey) -> Option<SourceSpec> {
        match self.pulls.get(key) {
            Some(p) if p.url.starts_with("rtsp://") => {
                Some(SourceSpec::Rtsp(p.url.clone(), p.transport))
            }
            Some(p) => Some(SourceSpec::Rtmp(p.url.clone())),
            None if self.config().is_edge() => Some(SourceSpec::Edge),
            None => None,
        }
    }

    fn upstreams(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, Arc<Upstream>>> {
        self.upstreams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the pulls that run from start to shutdown (`on_demand = false`).
    pub fn start_always_on(self: &Arc<Self>, hub: &Hub) {
        for (key, p) in &self.pulls {
            if !p.on_demand {
                if let Err(e) = self.upstream(hub, key, Vec::new(), false) {
                    tracing::warn!(stream = %key, error = %e, "pull not started");
                }
            }
        }
    }

    /// Called before a viewer subscribes: when `key` is not published here and has a
    /// source (a `[[pull]]`, or an origin in edge mode), starts or joins its pull and waits
    /// until it is live or `edge_wait_ms` passed. `query` is the play request's (its hop
    /// list). Returns `Ok` when there is nothing to pull too: subscribe then says 404.
    pub async fn ensure(
        self: &Arc<Self>,
        hub: &Hub,
        key: &StreamKey,
        query: &str,
    ) -> Result<(), WaitError> {
        let mut up = self.upstreams().get(key).cloned();
        let published_here = hub
            .get(key)
            .and_then(|s| s.publisher())
            .is_some_and(|p| p.source == "publish");
        if up.is_none() && (published_here || self.spec(key).is_none()) {
            // Published here, or nothing to pull: subscribe answers.
            return Ok(());
        }
        // Checked before joining a pull too: a request that passed this server already
        // is a loop (A pulls from B pulls from A) and would wait on itself.
        let via = hops::extend(
            &hops::parse(query),
            self.cluster.node_id(),
            self.config().max_hops,
        )
        .inspect_err(|e| tracing::warn!(stream = %key, error = %e, "pull refused"))?;
        let wait = Duration::from_millis(self.config().edge_wait_ms);
        let deadline = tokio::time::Instant::now() + wait;
        // Twice at most: a pull that stopped (idle) just as this viewer joined it is
        // started again.
        for _ in 0..2 {
            let u = match up.take() {
                Some(u) => u,
                None => self.upstream(hub, key, via.clone(), true)?,
            };
            *u.touched.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
            let mut rx = u.state.subscribe();
            let state = tokio::time::timeout_at(deadline, rx.wait_for(|s| *s != UpState::Starting))
                .await
                .ok()
                .and_then(|r| r.ok().map(|s| s.clone()));
            match state {
                Some(UpState::Live) => return Ok(()),
                Some(UpState::Stopped) => continue,
                _ => break,
            }
        }
        tracing::info!(stream = %key, ?wait, "viewer gave up waiting for the pull");
        Err(WaitError::Timeout(wait))
    }

    /// An HLS request for `key` (playlist or segment): keeps its pull going.
    pub fn touch(&self, key: &StreamKey) {
        if let Some(up) = self.upstreams().get(key) {
            *up.touched.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
    }

    /// Every pull running now, for the admin API.
    pub fn status(&self) -> Vec<PullStatus> {
        let mut v: Vec<_> = self
            .upstreams()
            .iter()
            .map(|(k, up)| PullStatus {
                stream: k.to_string(),
                kind: self.spec(k).map(|s| s.kind()).unwrap_or("edge"),
                live: *up.state.borrow() == UpState::Live,
                upstream: up
                    .current
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_deref()
                    .map(redact),
            })
            .collect();
        v.sort_by(|a, b| a.stream.cmp(&b.stream));
        v
    }

    /// Is this key pulled now (edge publish rules use it).
    pub fn is_pulling(&self, key: &StreamKey) -> bool {
        self.upstreams().contains_key(key)
    }

    /// Gets the running upstream of `key` or spawns one.
    fn upstream(
        self: &Arc<Self>,
        hub: &Hub,
        key: &StreamKey,
        via: Vec<String>,
        on_demand: bool,
    ) -> Result<Arc<Upstream>, WaitError> {
        let mut ups = self.upstreams();
        if let Some(up) = ups.get(key) {
            return Ok(up.clone());
        }
        let max = self.config().max_pulls;
        if ups.len() >= max {
            tracing::warn!(stream = %key, max, "pull refused: cluster.max_pulls reached");
            return Err(WaitError::TooManyPulls(max));
        }
        let up = Arc::new(Upstream {
            state: watch::Sender::new(UpState::Starting),
            touched: Mutex::new(Instant::now()),
            current: Mutex::new(None),
        });
        ups.insert(key.clone(), up.clone());
        drop(ups);
        let on_demand = on_demand && self.pulls.get(key).is_none_or(|p| p.on_demand);
        let spec = self.spec(key).unwrap_or(SourceSpec::Edge);
        let task = PullTask {
            sources: self.clone(),
            hub: hub.clone(),
            key: key.clone(),
            up: up.clone(),
            via,
            spec,
            on_demand,
        };
        let span = tracing::info_span!(parent: None, "pull", stream = %key);
        self.tasks.spawn(task.run().instrument(span));
        Ok(up)
    }
}

fn parse_key(name: &str) -> Option<StreamKey> {
    let (app, stream) = name.split_once('/')?;
    parse_stream_name(app).ok()?;
    let (stream, q) = parse_stream_name(stream).ok()?;
    q.is_none().then(|| StreamKey::new(app, stream))
}

/// A URL without its `user:password@`.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host_start = rest.find('@').map(|i| i + 1).unwrap_or(0);
            let rest = &rest[host_start..];
            // Tokens in queries are credentials too.
            let rest = rest.split_once('?').map(|(r, _)| r).unwrap_or(rest);
            format!("{scheme}://{rest}")
        }
        None => "(unparsable url)".into(),
    }
}

/// How a pull session ended when it did not fail.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// No viewer for `edge_idle_ms`: the pull stops.
    Idle,
    Shutdown,
}

/// The checks a session makes while it runs: idle, shutdown.
pub struct Watch<'a> {
    hub: &'a Hub,
    key: &'a StreamKey,
    up: &'a Upstream,
    on_demand: bool,
    idle: Duration,
    last_seen: Instant,
    pub shutdown: CancellationToken,
}

impl Watch<'_> {
    /// How often a session looks at its viewers.
    pub fn tick(&self) -> Duration {
        (self.idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }

    /// `Some(Idle)` once nobody has watched for `edge_idle_ms` (on-demand pulls only).
    pub fn check(&mut self) -> Option<Ended> {
        if self.shutdown.is_cancelled() {
            return Some(Ended::Shutdown);
        }
        if !self.on_demand {
            return None;
        }
        let now = Instant::now();
        let viewers: usize = self
            .hub
            .get(self.key)
            // HLS viewers hold no connection (the hub counts them over a longer
            // window): their requests touch the upstream instead.
            .map(|s| s.counters.viewers(Protocol::Rtmp) + s.counters.viewers(Protocol::Flv))
            .unwrap_or(0);
        let touched = *self.up.touched.lock().unwrap_or_else(|p| p.into_inner());
        if viewers > 0 {
            self.last_seen = now;
        }
        self.last_seen = self.last_seen.max(touched);
        (now.saturating_duration_since(self.last_seen) >= self.idle).then_some(Ended::Idle)
    }
}

struct PullTask {
    sources: Arc<Sources>,
    hub: Hub,
    key: StreamKey,
    up: Arc<Upstream>,
    via: Vec<String>,
    spec: SourceSpec,
    on_demand: bool,
}

impl PullTask {
    async fn run(self) {
        let cfg = self.sources.config().clone();
        let mut watch = Watch {
            hub: &self.hub,
            key: &self.key,
            up: &self.up,
            on_demand: self.on_demand,
            idle: Duration::from_millis(cfg.edge_idle_ms),
            last_seen: Instant::now(),
            shutdown: self.sources.shutdown.clone(),
        };
        let min = Duration::from_millis(cfg.retry_min_ms.max(1));
        let max = Duration::from_millis(cfg.retry_max_ms.max(cfg.retry_min_ms.max(1)));
        let mut backoff = min;
        tracing::info!(
            kind = self.spec.kind(),
            on_demand = self.on_demand,
            "pull started"
        );
        'outer: loop {
            let candidates = match &self.spec {
                SourceSpec::Edge => self.sources.cluster.candidates(&self.key).await,
                SourceSpec::Rtmp(u) | SourceSpec::Rtsp(u, _) => vec![u.clone()],
            };
            if candidates.is_empty() {
                tracing::warn!("no origin to pull from (empty list, directory without entry)");
            }
            for url in candidates {
                *self.up.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(url.clone());
                let mut feed = Feed::new(&self.hub, &self.key, self.spec.kind(), &self.up);
                let r = AssertUnwindSafe(self.session(&url, &mut feed, &mut watch))
                    .catch_unwind()
                    .await
                    .unwrap_or(Err(PullError::Panicked));
                let was_live = feed.was_live;
                drop(feed);
                if was_live && matches!(self.spec, SourceSpec::Edge) {
                    self.sources.cluster.reached(&url);
                }
                match r {
                    Ok(ended) => {
                        tracing::info!(upstream = %redact(&url), ?ended, "pull stopped");
                        break 'outer;
                    }
                    Err(e) => {
                        tracing::warn!(upstream = %redact(&url), error = %e, "pull failed");
                        if was_live {
                            backoff = min;
                        }
                    }
                }
                if let Some(ended) = watch.check() {
                    tracing::info!(?ended, "pull stopped");
                    break 'outer;
                }
            }
            self.up.state.send_replace(UpState::Starting);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = watch.shutdown.cancelled() => break,
            }
            if let Some(ended) = watch.check() {
                tracing::info!(?ended, "pull stopped while retrying");
                break;
            }
            backoff = (backoff * 2).min(max);
        }
        let mut ups = self.sources.upstreams();
        if ups.get(&self.key).is_some_and(|u| Arc::ptr_eq(u, &self.up)) {
            ups.remove(&self.key);
        }
        self.up.state.send_replace(UpState::Stopped);
    }

    /// One connection to one source; a panic in a protocol library ends only it.
    async fn session(
        &self,
        url: &str,
        feed: &mut Feed,
        watch: &mut Watch<'_>,
    ) -> Result<Ended, PullError> {
        let cfg = self.sources.config();
        match &self.spec {
            SourceSpec::Edge => {
                let play = hops::play_name(&self.key.name, &self.via, &cfg.origin_credential);
                let target = rtmp::Target::origin(url, &self.key.app, &play)?;
                rtmp::pull(&target, cfg, feed, watch).await
            }
            SourceSpec::Rtmp(u) => {
                let target = rtmp::Target::parse(u, &self.via)?;
                rtmp::pull(&target, cfg, feed, watch).await
            }
            SourceSpec::Rtsp(u, transport) => rtsp::pull(u, *transport, cfg, feed, watch).await,
        }
    }
}

/// Turns what a source sends into hub pushes: takes the stream name when the source's
/// first media arrives, and says the stream is live once a viewer can start on it (a video
/// keyframe, or audio when the source has no video).
pub struct Feed {
    hub: Hub,
    key: StreamKey,
    kind: &'static str,
    up: Arc<Upstream>,
    peer: SocketAddr,
    publisher: Option<Publisher>,
    tags: TagReader,
    has_video: bool,
    audio_frames: u32,
    pub was_live: bool,
}

/// Audio frames after which an audio-only source counts as live (no video config came).
const AUDIO_ONLY_AFTER: u32 = 50;

impl Feed {
    fn new(hub: &Hub, key: &StreamKey, kind: &'static str, up: &Arc<Upstream>) -> Self {
        Self {
            hub: hub.clone(),
            key: key.clone(),
            kind,
            up: up.clone(),
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            publisher: None,
            tags: TagReader::new(),
            has_video: false,
            audio_frames: 0,
            was_live: false,
        }
    }

    /// The upstream's address, shown as the publisher's in logs.
    pub fn set_peer(&mut self, peer: SocketAddr) {
        self.peer = peer;
    }

    fn publisher(&mut self) -> Result<&Publisher, PullError> {
        if self.publisher.is_none() {
            let p = self
                .hub
                .publish_as(self.key.clone(), self.peer, self.kind)?;
            self.publisher = Some(p);
        }
        Ok(self.publisher.as_ref().expect("set above"))
    }

    pub fn flv_video(&mut self, ts: u32, body: &Bytes) -> Result<(), PullError> {
        let got = self.tags.video_tag(ts, body)?;
        self.items(got.into_items(), body.len())
    }

    pub fn flv_audio(&mut self, ts: u32, body: &Bytes) -> Result<(), PullError> {
        let got = self.tags.audio_tag(ts, body)?;
        self.items(got.into_items(), body.len())
    }

    fn items(
        &mut self,
        items: impl Iterator<Item = TrackItem>,
        bytes: usize,
    ) -> Result<(), PullError> {
        self.publisher()?.count_in(bytes);
        for item in items {
            match item {
                TrackItem::Config(c) => self.config(c)?,
                TrackItem::Frame(f) => self.frame(f)?,
            }
        }
        Ok(())
    }

    pub fn config(&mut self, c: CodecConfig) -> Result<(), PullError> {
        self.has_video |= c.is_video();
        self.publisher()?.config(c)?;
        Ok(())
    }

    pub fn frame(&mut self, f: Frame) -> Result<(), PullError> {
        let startable = match f.kind {
            MediaKind::Video => f.keyframe,
            MediaKind::Audio => {
                self.audio_frames += 1;
                !self.has_video && self.audio_frames >= AUDIO_ONLY_AFTER
            }
            MediaKind::Data => false,
        };
        self.publisher()?.frame(f)?;
        if startable && !self.was_live {
            self.was_live = true;
            self.up.state.send_replace(UpState::Live);
            tracing::info!(peer = %self.peer, "pull live");
        }
        Ok(())
    }

    /// The source's `onMetaData`.
    pub fn metadata(
        &mut self,
        script: onair_shared::metadata::ScriptData,
    ) -> Result<(), PullError> {
        self.publisher()?.metadata(script)?;
        Ok(())
    }

    /// Raw bytes received (RTSP counts them itself).
    pub fn count_in(&mut self, bytes: usize) -> Result<(), PullError> {
        self.publisher()?.count_in(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pulls_are_bounded_and_viewers_wait_within_the_limit() {
        // An origin nobody listens on: pulls start and keep failing.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = ClusterConfig {
            origins: vec![format!("rtmp://127.0.0.1:{port}")],
            max_pulls: 1,
            edge_wait_ms: 100,
            ..ClusterConfig::default()
        };
        let cluster = Arc::new(Cluster::new(cfg, ([127, 0, 0, 1], 0).into(), false).unwrap());
        let shutdown = CancellationToken::new();
        let sources =
            Arc::new(Sources::new(cluster, &[], shutdown.clone(), TaskTracker::new()).unwrap());
        let hub = Hub::new(crate::config::HubConfig::default());
        let a = StreamKey::new("live", "a");
        let t0 = Instant::now();
        assert!(matches!(
            sources.ensure(&hub, &a, "").await,
            Err(WaitError::Timeout(_))
        ));
        assert!(t0.elapsed() >= Duration::from_millis(100));
        assert_eq!(sources.status().len(), 1);
        assert!(matches!(
            sources.ensure(&hub, &StreamKey::new("live", "b"), "").await,
            Err(WaitError::TooManyPulls(1))
        ));
        // A request that already passed this server is a loop.
        let via = format!("onair_via={}", sources.cluster().node_id());
        assert!(matches!(
            sources.ensure(&hub, &a, &via).await,
            Err(WaitError::Hops(hops::HopError::Loop(_)))
        ));
        shutdown.cancel();
    }

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact("rtsp://admin:secret@cam.local:554/stream1"),
            "rtsp://cam.local:554/stream1"
        );
        assert_eq!(
            redact("rtmp://o:1935/live/x?token=abc"),
            "rtmp://o:1935/live/x"
        );
        assert_eq!(parse_key("live/cam1"), Some(StreamKey::new("live", "cam1")));
        assert_eq!(parse_key("live"), None);
    }
}
