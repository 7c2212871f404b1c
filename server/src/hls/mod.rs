//! HLS: the segmenters of each live stream, run as a tap on it (`tap.rs`: in the
//! publisher's push, like a viewer that never lags), started with the stream and stopped
//! with it; segments and playlists kept in memory (optionally mirrored to a folder by the
//! stream's HLS task) and served as bytes. Nothing here runs per HLS client beyond a lookup.

pub mod cmaf;
pub mod dvr;
pub mod playlist;
pub mod segmenter;
mod tap;
pub mod ts;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HlsConfig;
use crate::hub::{Hub, Protocol, Stream, StreamKey};
use cmaf::{CmafStream, HeldRequests};
use playlist::{Entry, Playlist};
use segmenter::{Segment, Segmenter, SegmenterConfig};
pub use ts::ts_refusal;

/// How long a client counts as watching after its last playlist request.
const CLIENT_TTL: Duration = Duration::from_secs(15);
/// Bound on distinct clients remembered per stream.
const MAX_CLIENTS: usize = 10_000;

#[derive(Clone)]
pub struct Hls {
    inner: Arc<HlsInner>,
}

struct HlsInner {
    /// Swapped by a config reload; a segmenter keeps the settings it started with.
    cfg: arc_swap::ArcSwap<HlsConfig>,
    metrics: Arc<crate::metrics::Metrics>,
    streams: Mutex<HashMap<StreamKey, Arc<HlsStream>>>,
    /// The fMP4 (CMAF) outputs, plain and low-latency.
    cmaf: Mutex<HashMap<StreamKey, Arc<CmafStream>>>,
    /// Blocking requests held now, within `max_blocking_requests`.
    held: HeldRequests,
    /// `[record]`, for the DVR window (`set_recording`).
    record: std::sync::OnceLock<Arc<crate::record::RecordConfig>>,
}

/// One stream's HLS output.
pub struct HlsStream {
    key: StreamKey,
    state: Mutex<HlsState>,
    /// Latest segment sequence published, for requests that wait for the first one.
    latest: watch::Sender<Option<u64>>,
    clients: Mutex<HashMap<IpAddr, Instant>>,
    /// Bytes of segments held at most (its share of `max_memory_bytes`).
    max_bytes: usize,
}

struct HlsState {
    playlist: Playlist,
    text: Bytes,
    segments: VecDeque<Stored>,
    next_seq: u64,
    ended_at: Option<Instant>,
}

struct Stored {
    seq: u64,
    data: Bytes,
    /// When it left the playlist; it is deleted `keep_after` later.
    left_at: Option<Instant>,
}

impl Hls {
    pub fn new(cfg: HlsConfig, metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self {
            inner: Arc::new(HlsInner {
                held: HeldRequests::new(
                    cfg.max_blocking_requests,
                    metrics.hls_blocking_requests.clone(),
                ),
                cfg: arc_swap::ArcSwap::from_pointee(cfg),
                metrics,
                streams: Mutex::new(HashMap::new()),
                cmaf: Mutex::new(HashMap::new()),
                record: std::sync::OnceLock::new(),
            }),
        }
    }

    /// What is recorded, and where: streams recorded as fMP4 get the DVR window.
    pub fn set_recording(&self, cfg: &crate::record::RecordConfig) {
        let _ = self.inner.record.set(Arc::new(cfg.clone()));
    }

    /// The DVR window of `key`: `hls.dvr_window_ms` is on and the stream is recorded as fMP4.
    pub fn dvr(&self, key: &StreamKey) -> Option<dvr::DvrSettings> {
        let cfg = self.config();
        let rec = self.inner.record.get()?;
        (cfg.dvr_window_ms > 0
            && cfg.variant.has_fmp4()
            && rec.records(&key.app)
            && rec.format == crate::record::RecordFormat::Fmp4
            && crate::record::recordable(key).is_ok())
        .then(|| dvr::DvrSettings {
            window: Duration::from_millis(cfg.dvr_window_ms),
            max_segments: cfg.dvr_max_segments.max(1),
            dir: rec.stream_dir(key),
        })
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, Arc<HlsStream>>> {
        self.inner.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn config(&self) -> Arc<HlsConfig> {
        self.inner.cfg.load_full()
    }

    /// Settings for streams that start from now on (reload).
    pub fn set_config(&self, cfg: HlsConfig) {
        self.inner.held.set_max(cfg.max_blocking_requests);
        self.inner.cfg.store(Arc::new(cfg));
    }

    pub fn get(&self, key: &StreamKey) -> Option<Arc<HlsStream>> {
        self.streams().get(key).cloned()
    }

    fn cmaf_streams(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, Arc<CmafStream>>> {
        self.inner.cmaf.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fMP4 output of `key`, when the fMP4 segmenter runs for it.
    pub fn get_cmaf(&self, key: &StreamKey) -> Option<Arc<CmafStream>> {
        self.cmaf_streams().get(key).cloned()
    }

    /// Blocking requests held now, server-wide.
    pub fn held(&self) -> &HeldRequests {
        &self.inner.held
    }

    /// Each variant's share of `max_memory_bytes`: half each when both run.
    fn memory_share(&self) -> usize {
        let cfg = self.config();
        if cfg.variant.has_ts() && cfg.variant.has_fmp4() {
            cfg.max_memory_bytes / 2
        } else {
            cfg.max_memory_bytes
        }
    }

    /// Starts the segmenters the variant asks for on a stream.
    fn start(&self, s: Arc<Stream>, shutdown: &CancellationToken, tasks: &TaskTracker) {
        let variant = self.config().variant;
        if variant.has_ts() || variant.has_fmp4() {
            tasks.spawn(self.clone().segment(s, shutdown.clone()));
        }
    }

    /// Takes the outputs the variant asks for on `key` before its segmenters start (a
    /// pull that just went live): a playlist request then waits for the first segment
    /// instead of answering 404.
    pub(crate) fn prepare(&self, key: &StreamKey) {
        let variant = self.config().variant;
        if variant.has_ts() && self.get(key).is_none() {
            self.attach(key);
        }
        if variant.has_fmp4() && self.get_cmaf(key).is_none() {
            self.attach_cmaf(key);
        }
    }

    /// Whether a stream has a running segmenter (of either kind).
    fn is_segmented(&self, key: &StreamKey) -> bool {
        self.get(key).is_some_and(|h| !h.is_ended())
            || self.get_cmaf(key).is_some_and(|h| !h.is_ended())
    }

    fn attach_cmaf(&self, key: &StreamKey) -> Arc<CmafStream> {
        let mut streams = self.cmaf_streams();
        if let Some(h) = streams.get(key) {
            h.reopen();
            return h.clone();
        }
        let cfg = self.config();
        let ll = crate::llhls::LlSegmenterConfig {
            part_duration: Duration::from_millis(cfg.part_duration_ms.clamp(20, 5_000)),
            segment_duration: Duration::from_millis(cfg.segment_duration_ms.max(100)),
            // Delta updates skip what is six target durations old: list more than that.
            window: cfg.window.max(10),
            max_memory_bytes: self.memory_share(),
            max_segment_bytes: cfg.max_segment_bytes,
            max_part_bytes: cfg.max_segment_bytes.min(16 << 20),
            // The DVR window lists past segments: remember their times (no media).
            history: if cfg.dvr_window_ms > 0 {
                cfg.dvr_max_segments.saturating_add(cfg.window.max(10))
            } else {
                0
            },
        };
        let h = Arc::new(CmafStream::new(key.clone(), ll));
        streams.insert(key.clone(), h.clone());
        h
    }

    /// Starts a segmenter for every stream the hub creates, until shutdown.
    pub async fn run(self, hub: Hub, shutdown: CancellationToken, tasks: TaskTracker) {
        let mut created = hub.watch_created();
        // Streams that exist before we subscribed (none at startup, but cheap to be sure).
        for s in hub.list() {
            self.start(s, &shutdown, &tasks);
        }
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = sweep.tick() => self.sweep(Instant::now()),
                r = created.recv() => match r {
                    Ok(s) => self.start(s, &shutdown, &tasks),
                    Err(RecvError::Lagged(_)) => {
                        // Missed announcements: start what is not segmented yet.
                        for s in hub.list() {
                            if !self.is_segmented(&s.key) {
                                self.start(s, &shutdown, &tasks);
                            }
                        }
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }

    /// The segmenters of one stream, as a tap on it (they run in the publisher's push),
    /// and this task, which publishes each closed TS segment, until the stream ends.
    async fn segment(self, stream: Arc<Stream>, shutdown: CancellationToken) {
        let variant = self.config().variant;
        let hs = variant.has_ts().then(|| self.attach(&stream.key));
        let cs = variant.has_fmp4().then(|| self.attach_cmaf(&stream.key));
        let ts = hs.as_ref().map(|hs| {
            let cfg = SegmenterConfig {
                target_ms: self.config().segment_duration_ms,
                max_segment_bytes: self.config().max_segment_bytes,
            };
            Segmenter::new(cfg, hs.next_seq())
        });
        let (tx, mut closed) = tokio::sync::mpsc::channel(tap::SEGMENT_BACKLOG);
        let hls_tap = Arc::new(tap::HlsTap::new(ts, cs.clone(), tx));
        let as_tap: Arc<dyn crate::hub::Tap> = hls_tap.clone();
        stream.add_tap(as_tap.clone());
        let span = stream.span.clone();
        // The stream holds the tap; a strong reference here would keep it alive.
        let stream = Arc::downgrade(&stream);
        loop {
            let s = tokio::select! {
                _ = shutdown.cancelled() => break,
                s = closed.recv() => s,
            };
            let (Some(s), Some(hs)) = (s, &hs) else {
                // The tap dropped its sender: the stream ended.
                break;
            };
            self.publish(hs, s).await;
            if let Some(stream) = stream.upgrade() {
                hs.count_clients(&stream);
            }
        }
        if let Some(stream) = stream.upgrade() {
            stream.remove_tap(&as_tap);
        }
        let last = hls_tap.stop();
        if let Some(hs) = &hs {
            while let Ok(s) = closed.try_recv() {
                self.publish(hs, s).await;
            }
            if let Some(s) = last {
                self.publish(hs, s).await;
            }
            hs.end();
        }
        if let Some(cs) = &cs {
            cs.end();
        }
        tracing::debug!(parent: &span, "hls segmenters stopped");
    }

    /// The HLS output for `key`, continuing sequence numbers if it existed before.
    pub(crate) fn attach(&self, key: &StreamKey) -> Arc<HlsStream> {
        let mut streams = self.streams();
        if let Some(h) = streams.get(key) {
            h.reopen();
            return h.clone();
        }
        let h = Arc::new(HlsStream {
            key: key.clone(),
            state: Mutex::new(HlsState {
                playlist: Playlist::new(self.config().window, self.config().segment_duration_ms),
                text: Bytes::new(),
                segments: VecDeque::new(),
                next_seq: 0,
                ended_at: None,
            }),
            latest: watch::channel(None).0,
            clients: Mutex::new(HashMap::new()),
            max_bytes: self.memory_share(),
        });
        streams.insert(key.clone(), h.clone());
        h
    }

    async fn publish(&self, hs: &Arc<HlsStream>, s: Segment) {
        let seq = s.seq;
        let (text, _gone) = hs.add(s.clone());
        if let Some(dir) = self.dir_of(&hs.key) {
            mirror(&dir, &s, &text).await;
        }
        let _ = hs.latest.send(Some(seq));
        self.inner.metrics.hls_segments.inc();
    }

    fn dir_of(&self, key: &StreamKey) -> Option<PathBuf> {
        let cfg = self.config();
        let d = &cfg.dir;
        (!d.as_os_str().is_empty()).then(|| d.join(&key.app).join(&key.name))
    }

    /// Drops expired segments and forgets ended streams once their last segment expired.
    fn sweep(&self, now: Instant) {
        let keep = Duration::from_millis(self.config().keep_after_ms);
        let mut gone_streams = Vec::new();
        let mut streams = self.streams();
        streams.retain(|key, h| {
            let expired = h.expire(now, keep);
            if let Some(dir) = self.dir_of(key) {
                for seq in expired {
                    let _ = std::fs::remove_file(dir.join(format!("{seq}.ts")));
                }
            }
            let keep_stream = !h.ended_for(now, keep);
            if !keep_stream {
                gone_streams.push(key.clone());
            }
            keep_stream
        });
        drop(streams);
        self.cmaf_streams().retain(|_, h| !h.ended_for(now, keep));
        for key in gone_streams {
            if let Some(dir) = self.dir_of(&key) {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// Writes the segment and playlist under the stream's folder (the sweep deletes them).
async fn mirror(dir: &std::path::Path, s: &Segment, playlist: &Bytes) {
    if let Err(e) = tokio::fs::create_dir_all(dir).await {
        tracing::warn!(dir = %dir.display(), error = %e, "hls dir");
        return;
    }
    let _ = tokio::fs::write(dir.join(format!("{}.ts", s.seq)), &s.data).await;
    // Write then rename, so a reader never sees half a playlist.
    let tmp = dir.join("index.m3u8.tmp");
    if tokio::fs::write(&tmp, playlist).await.is_ok() {
        let _ = tokio::fs::rename(&tmp, dir.join("index.m3u8")).await;
    }
}

impl HlsStream {
    fn lock(&self) -> std::sync::MutexGuard<'_, HlsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    fn is_ended(&self) -> bool {
        self.lock().ended_at.is_some()
    }

    fn reopen(&self) {
        self.lock().ended_at = None;
    }

    fn end(&self) {
        let mut st = self.lock();
        st.ended_at = Some(Instant::now());
        st.text = Bytes::from(st.playlist.render(|s| segment_uri(&self.key, s), true));
    }

    /// Adds a segment; returns the new playlist text and the sequence numbers that left it.
    fn add(&self, s: Segment) -> (Bytes, Vec<u64>) {
        let now = Instant::now();
        let mut st = self.lock();
        st.next_seq = s.seq + 1;
        let gone = st.playlist.push(Entry {
            seq: s.seq,
            duration_ms: s.duration_ms,
            discontinuity: s.discontinuity,
            program_date_time: s.program_date_time,
        });
        for g in &gone {
            if let Some(x) = st.segments.iter_mut().find(|x| x.seq == *g) {
                x.left_at = Some(now);
            }
        }
        st.segments.push_back(Stored {
            seq: s.seq,
            data: s.data,
            left_at: None,
        });
        // Within the stream's memory share, the oldest segments go first (listed or not).
        let mut held: usize = st.segments.iter().map(|x| x.data.len()).sum();
        while held > self.max_bytes && st.segments.len() > 1 {
            if let Some(old) = st.segments.pop_front() {
                held -= old.data.len();
            }
        }
        st.text = Bytes::from(st.playlist.render(|q| segment_uri(&self.key, q), false));
        (st.text.clone(), gone)
    }

    fn expire(&self, now: Instant, keep: Duration) -> Vec<u64> {
        let mut st = self.lock();
        let mut expired = Vec::new();
        st.segments.retain(|x| {
            let keep_it = x
                .left_at
                .is_none_or(|t| now.saturating_duration_since(t) < keep);
            if !keep_it {
                expired.push(x.seq);
            }
            keep_it
        });
        expired
    }

    fn ended_for(&self, now: Instant, keep: Duration) -> bool {
        self.lock()
            .ended_at
            .is_some_and(|t| now.saturating_duration_since(t) >= keep)
    }

    /// The playlist, waiting up to `limit` for the first segment of a new stream.
    pub async fn playlist(&self, limit: Duration) -> Option<Bytes> {
        let mut rx = self.latest.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|v| v.is_some())).await;
        let st = self.lock();
        (!st.playlist.is_empty()).then(|| st.text.clone())
    }

    pub fn segment(&self, seq: u64) -> Option<Bytes> {
        self.lock()
            .segments
            .iter()
            .find(|x| x.seq == seq)
            .map(|x| x.data.clone())
    }

    /// Notes a client by address; the count of recent ones is the stream's HLS viewers.
    pub fn saw_client(&self, ip: IpAddr) {
        let mut c = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() >= MAX_CLIENTS && !c.contains_key(&ip) {
            let now = Instant::now();
            c.retain(|_, t| now.saturating_duration_since(*t) < CLIENT_TTL);
            if c.len() >= MAX_CLIENTS {
                return;
            }
        }
        c.insert(ip, Instant::now());
    }

    fn count_clients(&self, stream: &Stream) {
        let now = Instant::now();
        let mut c = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        c.retain(|_, t| now.saturating_duration_since(*t) < CLIENT_TTL);
        stream.counters.set_viewers(Protocol::Hls, c.len());
    }
}

/// Segment URI relative to the playlist at `/{app}/{name}.m3u8`.
pub fn segment_uri(key: &StreamKey, seq: u64) -> String {
    format!("{}-{seq}.ts", key.name)
}

/// Splits `name-123` into the stream name and segment number.
pub fn parse_segment_name(file_stem: &str) -> Option<(&str, u64)> {
    let (name, seq) = file_stem.rsplit_once('-')?;
    Some((name, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names() {
        let k = StreamKey::new("live", "my-cam");
        assert_eq!(segment_uri(&k, 42), "my-cam-42.ts");
        assert_eq!(parse_segment_name("my-cam-42"), Some(("my-cam", 42)));
        assert_eq!(parse_segment_name("cam-x"), None);
        assert_eq!(parse_segment_name("cam"), None);
    }
}
