//! One live stream: its publisher, the latest metadata and sequence headers, the GOP
//! cache, and the bounded broadcast every viewer subscribes to. The publisher never
//! waits for a viewer: the broadcast ring overwrites, and a viewer that fell behind
//! learns it lagged and resumes at the next keyframe.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use onair_shared::ingest::IngestError;
use onair_shared::metadata::{Metadata, ScriptData};
use onair_shared::timestamp::Timeline;
use onair_shared::{CodecConfig, Frame, MediaKind, TrackId};
use tokio::sync::broadcast;

use super::frame::SharedFrame;
use super::stats::Protocol;
use super::stats::{RateMeter, StreamCounters};
use super::{StreamKey, Subscription};
use crate::config::HubConfig;

/// No event of the stream is broadcast while this lives (`Stream::hold_sends`).
pub(crate) struct SendsHeld<'a> {
    _guard: MutexGuard<'a, State>,
}

/// What viewers receive, in publish order.
#[derive(Debug, Clone)]
pub enum Event {
    Frame(Arc<SharedFrame>),
    /// The publisher left; viewers keep waiting up to the grace period.
    PublisherLeft,
    /// A publisher (the same or a new one) is back; its sequence headers follow.
    PublisherReturned,
    /// The stream is over; viewers close.
    Ended,
}

/// An output that runs inside the publisher's push, under the stream's lock, for muxers
/// whose work per frame is a few microseconds (HLS). It sees every event in publish order,
/// never lags, and costs no task wake-up: a segmenter woken per frame on its own task made
/// the runtime wake a second worker for each frame (futex, eventfd and epoll calls that
/// cost more than the muxing). What it must wait on (files, sockets) it hands to a task.
pub(crate) trait Tap: Send + Sync {
    /// `served_video`: the stream serves a video track (known before its first frame).
    fn on_event(&self, event: &Event, served_video: bool);
}

/// The stream's taps, in the order they were added.
#[derive(Default)]
struct Taps(Vec<Arc<dyn Tap>>);

impl std::fmt::Debug for Taps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} taps", self.0.len())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PushError {
    #[error("this publisher was replaced by a newer one")]
    Replaced,
    /// The connection could not turn a message into frames (raised at ingest).
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// Media description for the API, derived from sequence headers and metadata.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MediaInfo {
    pub video_codec: Option<&'static str>,
    pub video_profile: Option<String>,
    pub video_level: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub audio_codec: Option<&'static str>,
    pub audio_sample_rate: Option<u32>,
    pub audio_channels: Option<u8>,
    pub metadata_fps: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct PublisherInfo {
    pub id: u64,
    pub addr: SocketAddr,
    pub since: Instant,
    /// What feeds the stream, as the public API names it: "publish" (a publisher
    /// connected here), "edge" (pulled from an origin), "rtmp" or "rtsp" (a `[[pull]]`).
    pub source: &'static str,
}

#[derive(Debug)]
pub(super) struct State {
    pub publisher: Option<PublisherInfo>,
    /// Publishers that have taken this stream, the first included.
    publishes: u64,
    /// Bumped when a publisher leaves, so a stale grace timer can tell it is stale.
    pub leave_generation: u64,
    pub ended: bool,
    /// When the current publisher last sent anything.
    last_input: Option<Instant>,
    timeline: Timeline,
    pub metadata: Option<Arc<SharedFrame>>,
    pub video_seq: Option<Arc<SharedFrame>>,
    pub audio_seq: Option<Arc<SharedFrame>>,
    gop: Vec<Arc<SharedFrame>>,
    gop_bytes: usize,
    /// False after a bound was hit, until the next keyframe restarts the cache.
    gop_valid: bool,
    pub media: MediaInfo,
    /// The configuration of every track, track 0 (the one outputs serve) included, as
    /// announced; for the API and for outputs that serve more than track 0.
    tracks: HashMap<(MediaKind, TrackId), Arc<CodecConfig>>,
    /// The track of each kind that outputs serve: the lowest id announced (track 0 for
    /// every legacy and most multitrack publishers).
    served_video: Option<TrackId>,
    served_audio: Option<TrackId>,
    pub meter: RateMeter,
    taps: Taps,
}

impl State {
    fn serves_video(&self) -> bool {
        self.served_video
            .is_some_and(|t| self.tracks.contains_key(&(MediaKind::Video, t)))
    }
}

#[derive(Debug)]
pub struct Stream {
    pub key: StreamKey,
    /// Every log line about this stream, whichever connection causes it, is in this span.
    pub span: tracing::Span,
    pub created: Instant,
    pub counters: StreamCounters,
    cfg: Arc<HubConfig>,
    metrics: Arc<crate::metrics::Metrics>,
    tx: broadcast::Sender<Event>,
    state: Mutex<State>,
    /// The fan-out loops writing to this stream's plain-TCP viewers.
    pub(crate) fanout: crate::fanout::Loops,
}

impl Stream {
    pub(super) fn new(
        key: StreamKey,
        cfg: Arc<HubConfig>,
        metrics: Arc<crate::metrics::Metrics>,
        now: Instant,
    ) -> Self {
        let (tx, _) = broadcast::channel(cfg.viewer_queue_frames.max(16));
        let span = tracing::info_span!(parent: None, "stream", key = %key);
        Self {
            key,
            span,
            created: now,
            counters: StreamCounters::default(),
            cfg,
            metrics,
            tx,
            state: Mutex::new(State {
                publisher: None,
                publishes: 0,
                leave_generation: 0,
                ended: false,
                last_input: None,
                timeline: Timeline::default(),
                metadata: None,
                video_seq: None,
                audio_seq: None,
                gop: Vec::new(),
                gop_bytes: 0,
                gop_valid: false,
                media: MediaInfo::default(),
                tracks: HashMap::new(),
                served_video: None,
                served_audio: None,
                meter: RateMeter::new(5),
                taps: Taps::default(),
            }),
            fanout: crate::fanout::Loops::default(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock is a bug in this module; the data stays usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn config(&self) -> &HubConfig {
        &self.cfg
    }

    /// A receiver of every event from now on, for a fan-out loop's wake-up only (its
    /// viewers read the events through their own subscriptions).
    pub(crate) fn wake_receiver(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Holds off every broadcast until dropped (each send holds this lock), so that the
    /// receivers drained meanwhile all stop at the same place: the broadcast's tail.
    pub(crate) fn hold_sends(&self) -> SendsHeld<'_> {
        SendsHeld {
            _guard: self.lock(),
        }
    }

    pub(super) fn broadcast(&self, event: Event) {
        let st = self.lock();
        self.send(&st, event);
    }

    /// To the taps, then to every receiver, under the lock so both see one order.
    fn send(&self, st: &State, event: Event) {
        if !st.taps.0.is_empty() {
            let video = st.serves_video();
            for tap in &st.taps.0 {
                tap.on_event(&event, video);
            }
        }
        // No receivers is normal (no viewers yet).
        let _ = self.tx.send(event);
    }

    /// Adds a tap, first giving it the start frames a new viewer gets (metadata, sequence
    /// headers, GOP cache), under the lock, so it misses and repeats nothing.
    pub(crate) fn add_tap(&self, tap: Arc<dyn Tap>) {
        let mut st = self.lock();
        let video = st.serves_video();
        let start = st.metadata.iter().chain(&st.video_seq).chain(&st.audio_seq);
        for f in start.chain(&st.gop) {
            tap.on_event(&Event::Frame(f.clone()), video);
        }
        if st.publisher.is_none() && st.leave_generation > 0 {
            tap.on_event(&Event::PublisherLeft, video);
        }
        if st.ended {
            tap.on_event(&Event::Ended, video);
        }
        st.taps.0.push(tap);
    }

    /// Removes a tap (its output stopped); it gets no event after this returns.
    pub(crate) fn remove_tap(&self, tap: &Arc<dyn Tap>) {
        let same = |t: &Arc<dyn Tap>| std::ptr::addr_eq(Arc::as_ptr(t), Arc::as_ptr(tap));
        self.lock().taps.0.retain(|t| !same(t));
    }

    /// A new viewer: the start frames (metadata, sequence headers, GOP cache) and a
    /// receiver positioned exactly after them, taken under one lock so nothing is
    /// missed or repeated.
    pub(super) fn subscribe(self: &Arc<Self>, protocol: Option<Protocol>) -> Subscription {
        let st = self.lock();
        let mut start: Vec<Arc<SharedFrame>> = Vec::with_capacity(3 + st.gop.len());
        start.extend(st.metadata.iter().cloned());
        start.extend(st.video_seq.iter().cloned());
        start.extend(st.audio_seq.iter().cloned());
        start.extend(st.gop.iter().cloned());
        let rx = self.tx.subscribe();
        let has_video = st.video_seq.is_some();
        let publisher_present = st.publisher.is_some();
        drop(st);
        Subscription::new(
            self.clone(),
            rx,
            start,
            has_video,
            publisher_present,
            protocol,
        )
    }

    /// Called by the hub when a publisher (new or returning) takes the stream.
    pub(super) fn attach_publisher(&self, info: PublisherInfo) -> bool {
        let mut st = self.lock();
        let returning = st.publisher.is_none() && st.leave_generation > 0;
        let replacing = st.publisher.is_some();
        if returning || replacing {
            st.timeline.rebase();
            // The newcomer sends its own configuration; old frames must not be served with it.
            st.gop.clear();
            st.gop_bytes = 0;
            st.gop_valid = false;
            // The newcomer announces its own tracks; the served ones stay until it does.
            let (v, a) = (st.served_video, st.served_audio);
            st.tracks.retain(|(kind, track), _| match kind {
                MediaKind::Video => Some(*track) == v,
                MediaKind::Audio => Some(*track) == a,
                MediaKind::Data => false,
            });
        }
        st.last_input = Some(info.since);
        st.publisher = Some(info);
        st.publishes += 1;
        drop(st);
        if returning || replacing {
            self.broadcast(Event::PublisherReturned);
        }
        returning
    }

    /// Returns the leave generation if `id` was the current publisher.
    pub(super) fn detach_publisher(&self, id: u64) -> Option<u64> {
        let mut st = self.lock();
        if st.publisher.as_ref().map(|p| p.id) != Some(id) {
            return None;
        }
        st.publisher = None;
        st.leave_generation += 1;
        st.gop.clear();
        st.gop_bytes = 0;
        st.gop_valid = false;
        let generation = st.leave_generation;
        drop(st);
        self.broadcast(Event::PublisherLeft);
        Some(generation)
    }

    /// The publisher has sent nothing for at least `limit` (a dead connection not yet noticed).
    pub(super) fn publisher_stale(&self, now: Instant, limit: std::time::Duration) -> bool {
        let st = self.lock();
        st.publisher.is_some()
            && st
                .last_input
                .is_some_and(|t| now.saturating_duration_since(t) >= limit)
    }

    pub fn push_metadata(
        &self,
        id: u64,
        script: ScriptData,
        now: Instant,
    ) -> Result<(), PushError> {
        let mut st = self.lock();
        check_publisher(&st, id)?;
        st.last_input = Some(now);
        // Script data carries no media time; players take it as it comes.
        let frame = Arc::new(SharedFrame::frame(Frame::data(0, script.body), None));
        st.media.metadata_fps = script.metadata.framerate;
        apply_metadata_media(&mut st.media, &script.metadata);
        st.metadata = Some(frame.clone());
        st.meter.record(now, frame.len(), false);
        drop(st);
        self.broadcast(Event::Frame(frame));
        Ok(())
    }

    /// A track's configuration, parsed at ingest. A repeat of the current one is not
    /// a change (some encoders resend it per GOP); a new video configuration restarts
    /// the GOP cache, since old frames must not be served with it.
    pub fn push_config(&self, id: u64, config: CodecConfig, now: Instant) -> Result<(), PushError> {
        let mut st = self.lock();
        check_publisher(&st, id)?;
        st.last_input = Some(now);
        let config = Arc::new(config);
        st.tracks
            .insert((config.kind, config.track), config.clone());
        let lowest = st
            .tracks
            .keys()
            .filter(|(kind, _)| *kind == config.kind)
            .map(|(_, track)| *track)
            .min();
        let served = match config.kind {
            MediaKind::Video => &mut st.served_video,
            _ => &mut st.served_audio,
        };
        *served = lowest;
        if Some(config.track) != lowest {
            // Outputs serve the lowest track; further tracks are known, not yet carried.
            return Ok(());
        }
        let video = config.is_video();
        let s = &config.summary;
        if video {
            st.media.video_codec = Some(config.codec.name());
            if s.width.is_some() {
                st.media.video_profile = s.profile.clone();
                st.media.video_level = s.level;
                st.media.width = s.width;
                st.media.height = s.height;
            }
        } else {
            st.media.audio_codec = Some(config.codec.name());
            if s.sample_rate.is_some() {
                st.media.audio_sample_rate = s.sample_rate;
                st.media.audio_channels = s.channels;
            }
        }
        let slot = if video { &st.video_seq } else { &st.audio_seq };
        if slot
            .as_ref()
            .and_then(|s| s.codec_config())
            .is_some_and(|c| c.same_as(&config))
        {
            return Ok(());
        }
        let frame = Arc::new(SharedFrame::config(config));
        if video {
            st.video_seq = Some(frame.clone());
            st.gop.clear();
            st.gop_bytes = 0;
            st.gop_valid = false;
        } else {
            st.audio_seq = Some(frame.clone());
        }
        drop(st);
        self.broadcast(Event::Frame(frame));
        Ok(())
    }

    /// One audio or video frame, parsed at ingest, at its raw wire timestamp (`dts`);
    /// it is put on the stream's timeline here. A frame whose track has no configuration
    /// of its codec yet is dropped: no viewer could decode it.
    pub fn push_frame(&self, id: u64, frame: Frame, now: Instant) -> Result<(), PushError> {
        let mut st = self.lock();
        check_publisher(&st, id)?;
        st.last_input = Some(now);
        let served = match frame.kind {
            MediaKind::Video => st.served_video,
            MediaKind::Audio => st.served_audio,
            MediaKind::Data => {
                // Script data on the timeline (a frame's capture clock): after the frame
                // it follows, in the GOP cache with it, to the outputs that carry it.
                let dts = st.timeline.map(frame.kind, frame.dts as u32);
                let frame = Arc::new(SharedFrame::frame(Frame { dts, ..frame }, None));
                self.cache_and_send(st, frame);
                return Ok(());
            }
        };
        if served != Some(frame.track) {
            return Ok(());
        }
        let slot = match frame.kind {
            MediaKind::Video => &st.video_seq,
            MediaKind::Audio => &st.audio_seq,
            MediaKind::Data => return Ok(()),
        };
        let Some(config) = slot
            .as_ref()
            .and_then(|s| s.codec_config())
            .filter(|c| c.codec == frame.codec)
            .cloned()
        else {
            return Ok(());
        };
        let dts = st.timeline.map(frame.kind, frame.dts as u32);
        let video = frame.is_video();
        let frame = Arc::new(SharedFrame::frame(Frame { dts, ..frame }, Some(config)));
        st.meter.record(now, frame.len(), video);
        self.cache_and_send(st, frame);
        Ok(())
    }

    /// Appends to the GOP cache (restarting it at each keyframe) and broadcasts,
    /// both under the lock so a subscriber sees one consistent order.
    fn cache_and_send(&self, mut st: MutexGuard<'_, State>, frame: Arc<SharedFrame>) {
        if frame.is_keyframe() {
            st.gop.clear();
            st.gop_bytes = 0;
            st.gop_valid = true;
        }
        // Audio-only streams have no keyframe to start from and need no GOP cache.
        if st.gop_valid {
            if st.gop.len() >= self.cfg.gop_cache_max_frames
                || st.gop_bytes + frame.len() > self.cfg.gop_cache_max_bytes
            {
                st.gop.clear();
                st.gop_bytes = 0;
                st.gop_valid = false;
            } else {
                st.gop_bytes += frame.len();
                st.gop.push(frame.clone());
            }
        }
        self.send(&st, Event::Frame(frame));
    }

    pub fn publisher(&self) -> Option<PublisherInfo> {
        self.lock().publisher.clone()
    }

    /// Publishers that have taken this stream so far.
    pub fn publishes(&self) -> u64 {
        self.lock().publishes
    }

    /// Every track's configuration, video first, then by track id.
    pub fn tracks(&self) -> Vec<Arc<CodecConfig>> {
        let mut v: Vec<_> = self.lock().tracks.values().cloned().collect();
        v.sort_by_key(|c| (!c.is_video(), c.track));
        v
    }

    /// The configurations of the tracks outputs serve (the lowest id of each kind).
    pub fn served_tracks(&self) -> Vec<Arc<CodecConfig>> {
        let st = self.lock();
        [
            (MediaKind::Video, st.served_video),
            (MediaKind::Audio, st.served_audio),
        ]
        .into_iter()
        .filter_map(|(kind, track)| st.tracks.get(&(kind, track?)).cloned())
        .collect()
    }

    pub fn media(&self) -> MediaInfo {
        self.lock().media.clone()
    }

    pub fn rates(&self, now: Instant) -> (f64, f64) {
        self.lock().meter.rates(now)
    }

    pub fn gop_cache_len(&self) -> (usize, usize) {
        let st = self.lock();
        (st.gop.len(), st.gop_bytes)
    }

    pub fn has_video(&self) -> bool {
        self.lock().video_seq.is_some()
    }

    pub fn has_audio(&self) -> bool {
        self.lock().audio_seq.is_some() || self.lock().media.audio_codec.is_some()
    }
}

fn check_publisher(st: &State, id: u64) -> Result<(), PushError> {
    match &st.publisher {
        Some(p) if p.id == id => Ok(()),
        _ => Err(PushError::Replaced),
    }
}

fn apply_metadata_media(media: &mut MediaInfo, m: &Metadata) {
    // Sequence headers are authoritative; metadata only fills gaps.
    if media.width.is_none() {
        media.width = m.width.map(|w| w as u32);
    }
    if media.height.is_none() {
        media.height = m.height.map(|h| h as u32);
    }
}

impl Stream {
    /// Media bytes received from the publisher, as they came on the wire.
    pub(super) fn add_in(&self, bytes: usize) {
        self.counters
            .bytes_in
            .fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
        self.metrics.bytes_in.inc_by(bytes as u64);
    }

    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// Bytes written to a viewer of this stream.
    pub fn add_out(&self, bytes: usize) {
        self.counters.add_out(bytes);
        self.metrics.bytes_out.inc_by(bytes as u64);
    }

    pub(super) fn add_dropped(&self, frames: u64) {
        self.counters
            .frames_dropped
            .fetch_add(frames, std::sync::atomic::Ordering::Relaxed);
        self.metrics.frames_dropped.inc_by(frames);
    }
}
