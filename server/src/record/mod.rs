//! Recording: every live stream of the configured apps kept on disk as fMP4 (or FLV)
//! files, one subscriber per stream like the HLS segmenter, and the playback API over
//! those files. The async task per stream only cuts fragments (`segment`); files are
//! written by a thread per stream (`disk`) behind a bounded queue, so a slow or full disk
//! drops the recording and never delays the live stream. It never changes the hub.

pub mod cut;
pub mod disk;
pub mod files;
pub mod http;
pub mod index;
pub mod segment;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::hub::{Hub, Item, Stream, StreamKey, Unit};
use segment::{Action, RecordSegmenter, SegmentConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordFormat {
    /// Fragmented MP4: every codec onair carries; crash-safe to the last fragment.
    #[default]
    Fmp4,
    /// FLV: H.264/AAC/MP3 as legacy tags, HEVC/AV1/VP9/Opus/FLAC as Enhanced FLV.
    Flv,
}

/// `[record]`: what is recorded, where, how files are cut, and every bound.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordConfig {
    pub enabled: bool,
    /// Files go to `{dir}/{app}/{stream}/YYYY-MM-DD_HH-MM-SS.mmm.mp4` (UTC start time).
    pub dir: PathBuf,
    pub format: RecordFormat,
    /// Apps recorded; empty records every app.
    pub apps: Vec<String>,
    /// A file rotates at the first keyframe after this much media (and on every
    /// publisher return or configuration change).
    pub segment_duration_ms: u64,
    /// Fragments start at keyframes at least this far apart.
    pub fragment_duration_ms: u64,
    /// Sample bytes one fragment may gather; a stream without keyframes for that long is
    /// cut at a non-keyframe rather than held in memory.
    pub max_fragment_bytes: usize,
    /// Retention: finished files older than this (by their last write) are deleted; 0 keeps them.
    pub max_age_ms: u64,
    /// Retention: oldest finished files are deleted while all recordings together are
    /// larger than this; 0 is no limit.
    pub max_bytes: u64,
    /// How often retention runs.
    pub retention_interval_ms: u64,
    /// The per-stream queue between the stream and its writer thread, in fragments...
    pub queue_max_fragments: usize,
    /// ...and in bytes. When either is full the recording of that stream is dropped
    /// (counted, logged) until the queue has room and a keyframe comes.
    pub queue_max_bytes: usize,
    /// A file's data is fsynced after a fragment once this has passed since its last
    /// sync (0: after every fragment); always when it closes.
    pub fsync_interval_ms: u64,
    /// After a disk error, the next file is tried this much later.
    pub retry_after_error_ms: u64,
    /// The longest clip `GET /recordings/{app}/{stream}?start&duration` serves.
    pub max_clip_duration_ms: u64,
    /// Most files `GET /api/recordings` lists (the newest ones).
    pub max_listed: usize,
}

impl Default for RecordConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            dir: PathBuf::from("recordings"),
            format: RecordFormat::Fmp4,
            apps: Vec::new(),
            segment_duration_ms: 3_600_000,
            fragment_duration_ms: 1_000,
            max_fragment_bytes: 32 << 20,
            max_age_ms: 0,
            max_bytes: 0,
            retention_interval_ms: 10_000,
            queue_max_fragments: 16,
            queue_max_bytes: 64 << 20,
            fsync_interval_ms: 1_000,
            retry_after_error_ms: 1_000,
            max_clip_duration_ms: 3_600_000,
            max_listed: 10_000,
        }
    }
}

impl RecordConfig {
    pub fn records(&self, app: &str) -> bool {
        self.enabled && (self.apps.is_empty() || self.apps.iter().any(|a| a == app))
    }

    pub fn stream_dir(&self, key: &StreamKey) -> PathBuf {
        self.dir.join(&key.app).join(&key.name)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct DropLabel {
    pub reason: String,
}

/// Recording metrics (`onair_record_*`).
#[derive(Debug, Default)]
pub struct RecordMetrics {
    pub bytes: Counter<u64, AtomicU64>,
    pub fragments: Counter<u64, AtomicU64>,
    pub files: Counter<u64, AtomicU64>,
    pub fsyncs: Counter<u64, AtomicU64>,
    pub deleted: Counter<u64, AtomicU64>,
    pub repaired: Counter<u64, AtomicU64>,
    pub active: Gauge,
    drops: Family<DropLabel, Counter>,
}

impl RecordMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("record");
        r.register("bytes", "Bytes written to recordings", self.bytes.clone());
        r.register(
            "writes",
            "Writes to recordings (init segments and fragments)",
            self.fragments.clone(),
        );
        r.register("files", "Recording files started", self.files.clone());
        r.register("fsyncs", "fsync calls on recordings", self.fsyncs.clone());
        r.register(
            "deleted",
            "Recording files deleted by retention",
            self.deleted.clone(),
        );
        r.register(
            "repaired",
            "Unfinished recording files repaired at start",
            self.repaired.clone(),
        );
        r.register("active", "Streams being recorded", self.active.clone());
        r.register(
            "dropped",
            "Recordings interrupted, by reason (queue_full: disk slower than the stream; disk_error)",
            self.drops.clone(),
        );
    }

    pub fn dropped(&self, reason: &str) {
        self.drops
            .get_or_create(&DropLabel {
                reason: reason.to_string(),
            })
            .inc();
    }
}

/// Whether a stream's names can be folder names under the recording folder: RTMP accepts
/// app names such as `..` that would lead out of it.
pub fn recordable(key: &StreamKey) -> Result<(), &'static str> {
    crate::hub::parse_stream_name(&key.app)
        .map_err(|_| "its app name cannot be a folder name (letters, digits, '-', '_', '.', '~'; not starting with '.')")?;
    match crate::hub::parse_stream_name(&key.name) {
        Ok((_, None)) => Ok(()),
        _ => Err("its stream name cannot be a folder name"),
    }
}

/// The recorder: a recording per stream of the recorded apps, retention, and the
/// settings the playback API reads.
#[derive(Clone)]
pub struct Recorder {
    cfg: Arc<RecordConfig>,
    metrics: Arc<crate::metrics::Metrics>,
    durations: Arc<DurationCache>,
    /// Streams being recorded now, by the address of their `Stream` (held by the recording
    /// task, so never reused meanwhile): a stream is never recorded twice, and a new stream
    /// of the same name is recorded even while the old one's file is still closing.
    recording: Arc<std::sync::Mutex<std::collections::HashSet<usize>>>,
}

/// A file's size and mtime when its duration was measured, and the duration.
type Measured = (u64, SystemTime, Option<f64>);

/// Durations of finished files by (path, size, modification time), so a listing reads
/// each file's fragments once, not on every request. Bounded: past `max` entries it
/// starts over.
#[derive(Debug, Default)]
pub struct DurationCache {
    max: usize,
    entries: std::sync::Mutex<std::collections::HashMap<PathBuf, Measured>>,
}

impl DurationCache {
    /// The duration of `f`, computed by `measure` when not known for its size and mtime.
    pub fn get(
        &self,
        f: &files::RecordingFile,
        measure: impl FnOnce() -> Option<f64>,
    ) -> Option<f64> {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((size, modified, d)) = e.get(&f.path) {
            if *size == f.size && *modified == f.modified {
                return *d;
            }
        }
        drop(e);
        let d = measure();
        e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if e.len() >= self.max.max(1) {
            e.clear();
        }
        // A file being written changes with every fragment: not worth keeping.
        if !f.in_progress {
            e.insert(f.path.clone(), (f.size, f.modified, d));
        }
        d
    }
}

impl Recorder {
    pub fn new(cfg: RecordConfig, metrics: Arc<crate::metrics::Metrics>) -> Self {
        let durations = Arc::new(DurationCache {
            max: cfg.max_listed.saturating_mul(4).max(64),
            ..DurationCache::default()
        });
        Self {
            cfg: Arc::new(cfg),
            metrics,
            durations,
            recording: Arc::default(),
        }
    }

    pub fn durations(&self) -> &Arc<DurationCache> {
        &self.durations
    }

    pub fn config(&self) -> &RecordConfig {
        &self.cfg
    }

    fn record_metrics(&self) -> &RecordMetrics {
        &self.metrics.record
    }

    /// Repairs what a crash left, then records every stream the hub creates, until shutdown.
    pub async fn run(self, hub: Hub, shutdown: CancellationToken, tasks: TaskTracker) {
        let root = self.cfg.dir.clone();
        let repaired = tokio::task::spawn_blocking(move || files::repair_all(&root))
            .await
            .unwrap_or_default();
        for (path, r) in repaired {
            match r {
                Ok(what) => {
                    self.record_metrics().repaired.inc();
                    tracing::info!(file = %path.display(), result = ?what, "unfinished recording repaired");
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "unfinished recording could not be repaired")
                }
            }
        }
        let mut created = hub.watch_created();
        for s in hub.list() {
            self.spawn(&tasks, s, &shutdown);
        }
        let mut retention = tokio::time::interval(Duration::from_millis(
            self.cfg.retention_interval_ms.max(100),
        ));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = retention.tick() => self.retention().await,
                r = created.recv() => match r {
                    Ok(s) => self.spawn(&tasks, s, &shutdown),
                    Err(RecvError::Lagged(_)) => {
                        // Missed announcements: record what is not recorded yet.
                        for s in hub.list() {
                            self.spawn(&tasks, s, &shutdown);
                        }
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }

    fn spawn(&self, tasks: &TaskTracker, stream: Arc<Stream>, shutdown: &CancellationToken) {
        if !self.cfg.records(&stream.key.app) {
            return;
        }
        if let Err(why) = recordable(&stream.key) {
            tracing::warn!(parent: &stream.span, reason = why, "stream not recorded");
            return;
        }
        let mut recording = self.recording.lock().unwrap_or_else(|p| p.into_inner());
        if !recording.insert(Arc::as_ptr(&stream) as usize) {
            return;
        }
        drop(recording);
        tasks.spawn(self.clone().record(stream, shutdown.clone()));
    }

    /// Deletes what retention says, off the async workers.
    async fn retention(&self) {
        let cfg = self.cfg.clone();
        let max_age = (cfg.max_age_ms > 0).then(|| Duration::from_millis(cfg.max_age_ms));
        let max_bytes = (cfg.max_bytes > 0).then_some(cfg.max_bytes);
        if max_age.is_none() && max_bytes.is_none() {
            return;
        }
        let metrics = self.metrics.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let all = files::list_all(&cfg.dir);
            for i in files::retention_victims(&all, SystemTime::now(), max_age, max_bytes) {
                let f = &all[i];
                match std::fs::remove_file(&f.path) {
                    Ok(()) => {
                        metrics.record.deleted.inc();
                        tracing::info!(file = %f.path.display(), bytes = f.size, "recording deleted by retention");
                    }
                    Err(e) => tracing::warn!(file = %f.path.display(), error = %e, "retention could not delete"),
                }
            }
        })
        .await;
    }

    /// One stream's recording: frames in, actions to its writer thread, until it ends.
    async fn record(self, stream: Arc<Stream>, shutdown: CancellationToken) {
        let cfg = self.cfg.clone();
        let span = stream.span.clone();
        let writer = disk::WriterConfig {
            stream_dir: cfg.stream_dir(&stream.key),
            format: cfg.format,
            fsync_interval: Duration::from_millis(cfg.fsync_interval_ms),
            stream: stream.key.to_string(),
        };
        let (queue, thread) = match disk::start(
            writer,
            cfg.queue_max_fragments,
            cfg.queue_max_bytes,
            self.metrics.clone(),
        ) {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!(parent: &span, error = %e, "recording thread could not start");
                self.recording
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&(Arc::as_ptr(&stream) as usize));
                return;
            }
        };
        let rm = self.record_metrics();
        rm.active.inc();
        let mut seg = RecordSegmenter::new(SegmentConfig {
            format: cfg.format,
            segment_duration: Duration::from_millis(cfg.segment_duration_ms.max(1)),
            fragment_duration: Duration::from_millis(cfg.fragment_duration_ms),
            max_fragment_bytes: cfg.max_fragment_bytes,
        });
        let mut sub = crate::hub::Subscription::internal(&stream);
        let mut out = Vec::new();
        // While dropping (queue full or disk error), nothing is queued until this passes
        // and the segmenter opens a new file at a keyframe.
        let mut dropping_until: Option<tokio::time::Instant> = None;
        let retry = Duration::from_millis(cfg.retry_after_error_ms);
        // One warning per interruption, not one per failed retry.
        let mut interrupted = false;
        loop {
            let item = tokio::select! {
                _ = shutdown.cancelled() => break,
                i = sub.next_item() => i,
            };
            let now = SystemTime::now();
            match item {
                Ok(Item::Frame(f)) => match &f.unit {
                    Unit::Frame { frame, .. } => {
                        if let Err(e) = seg.push_frame(frame, now, &mut out) {
                            tracing::debug!(parent: &span, error = %e, "frame left out of the recording");
                        }
                    }
                    Unit::Config(c) => seg.push_config(c, &mut out),
                },
                Ok(Item::PublisherLeft) | Ok(Item::Lagged(_)) => seg.break_file(&mut out),
                Ok(Item::PublisherReturned) => seg.publisher_returned(&mut out),
                Err(_) => break,
            }
            if queue.shared.failed.swap(false, Ordering::Relaxed) {
                // The writer logs the failure and, when a file starts again, the resumption.
                seg.abandon();
                out.clear();
                dropping_until = Some(tokio::time::Instant::now() + retry);
                continue;
            }
            if let Some(t) = dropping_until {
                if tokio::time::Instant::now() < t {
                    seg.abandon();
                    out.clear();
                    continue;
                }
                // Resume only with a new file.
                if !out.iter().any(|a| matches!(a, Action::Open { .. })) {
                    out.clear();
                    continue;
                }
                dropping_until = None;
            }
            for a in out.drain(..) {
                let opens = matches!(a, Action::Open { .. });
                match queue.try_send(a) {
                    Ok(()) => {
                        if opens && interrupted {
                            interrupted = false;
                            tracing::info!(parent: &span, "recording resumed");
                        }
                    }
                    Err(disk::Refused::Full) => {
                        rm.dropped("queue_full");
                        if !interrupted {
                            tracing::warn!(parent: &span, "recording dropped: the disk is slower than the stream");
                        }
                        interrupted = true;
                        seg.abandon();
                        dropping_until = Some(tokio::time::Instant::now());
                        break;
                    }
                    Err(disk::Refused::Gone) => {
                        seg.abandon();
                        break;
                    }
                }
            }
            out.clear();
        }
        seg.finish(&mut out);
        for a in out.drain(..) {
            let _ = queue.try_send(a);
        }
        drop(queue);
        rm.active.dec();
        self.recording
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(Arc::as_ptr(&stream) as usize));
        // Shutdown waits for the file to be closed and synced.
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        tracing::debug!(parent: &span, "recording stopped");
    }
}

#[cfg(test)]
mod tests;
