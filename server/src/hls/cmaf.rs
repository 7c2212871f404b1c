//! fMP4 (CMAF) HLS, plain and low-latency: one `llhls::LlSegmenter` per live stream, fed
//! from the hub, and the answers to playlist, init, segment and part requests. Blocking
//! requests wait on a version counter, bounded server-wide; a waiting request never holds
//! the stream's lock, which the segmenter takes only for the moment of one push.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use onair_shared::fmp4::{Sample, Track, AUDIO_TRACK, VIDEO_TRACK};
use onair_shared::{CodecConfig, Frame, MediaKind};
use tokio::sync::watch;

use crate::hub::StreamKey;
use crate::llhls::{
    decide, render, render_plain, Decision, LlQuery, LlSegmenter, LlSegmenterConfig, QueryError,
    ReloadState,
};

/// Which playlist a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistKind {
    /// Parts, preload hint, blocking reload, delta updates.
    LowLatency,
    /// Complete fMP4 segments only.
    Plain,
}

/// A media file below a stream: `{name}-init{generation}.mp4`, `{name}-seg{msn}.m4s`,
/// `{name}-part{msn}.{index}.m4s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmafMedia {
    Init(u32),
    Segment(u64),
    Part(u64, u32),
}

impl CmafMedia {
    /// Splits a file name into the stream name and what it names.
    pub fn parse(file: &str) -> Option<(&str, CmafMedia)> {
        let (name, media) = file.rsplit_once('-')?;
        if name.is_empty() {
            return None;
        }
        if let Some(g) = media
            .strip_prefix("init")
            .and_then(|m| m.strip_suffix(".mp4"))
        {
            if g.is_empty() || !g.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            return Some((name, CmafMedia::Init(g.parse().ok()?)));
        }
        match crate::llhls::MediaName::parse(media)? {
            crate::llhls::MediaName::Segment(m) => Some((name, CmafMedia::Segment(m))),
            crate::llhls::MediaName::Part(m, i) => Some((name, CmafMedia::Part(m, i))),
            crate::llhls::MediaName::Init => None,
        }
    }
}

/// What a request gets.
#[derive(Debug)]
pub enum Answer {
    Playlist(Bytes),
    Media(Bytes),
    /// 400: a malformed query, or one asking for what can never be asked.
    BadRequest(String),
    /// 404: it does not exist and will not come (stale, ended, never will).
    NotFound(&'static str),
    /// 503: `hls.max_blocking_requests` requests are held already.
    Busy,
    /// 503: held for `hls.blocking_timeout_ms` and still not there.
    TimedOut,
}

/// Requests held at once, server-wide, within `hls.max_blocking_requests`.
#[derive(Debug, Default)]
pub struct HeldRequests {
    now: AtomicUsize,
    max: AtomicUsize,
    /// `onair_hls_blocking_requests`.
    gauge: prometheus_client::metrics::gauge::Gauge,
}

pub struct Held<'a>(&'a HeldRequests);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::AcqRel);
        self.0.gauge.dec();
    }
}

impl HeldRequests {
    pub fn new(max: usize, gauge: prometheus_client::metrics::gauge::Gauge) -> Self {
        Self {
            now: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
            gauge,
        }
    }

    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Release);
    }

    /// Requests held now.
    pub fn held(&self) -> usize {
        self.now.load(Ordering::Acquire)
    }

    fn try_hold(&self) -> Option<Held<'_>> {
        let max = self.max.load(Ordering::Acquire);
        self.now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| {
                self.gauge.inc();
                Held(self)
            })
    }
}

/// One stream's fMP4 output.
pub struct CmafStream {
    key: StreamKey,
    state: Mutex<CmafState>,
    /// Bumped after every change of the segmenter; held requests wait on it.
    version: watch::Sender<u64>,
    /// The DVR window's file indexes and plan (`hls::dvr`).
    dvr: tokio::sync::Mutex<super::dvr::DvrCache>,
}

struct CmafState {
    cfg: LlSegmenterConfig,
    seg: Option<LlSegmenter>,
    /// The served tracks' configurations (the lowest track id of each kind).
    video: Option<Arc<CodecConfig>>,
    audio: Option<Arc<CodecConfig>>,
    /// The configurations changed since the segmenter was made: it restarts (a new init
    /// segment) at the next keyframe.
    stale_tracks: bool,
    /// Numbers the init segment: a new one per restart, so each stays immutable.
    generation: u32,
    ended_at: Option<Instant>,
    /// Playlists rendered since the last change: low-latency, with skip, plain.
    rendered: [Option<Bytes>; 3],
    /// The same with the DVR window before them, and the plan they were rendered with.
    rendered_dvr: [Option<(u64, Bytes)>; 3],
    refused_samples: u64,
}

/// A frame's time (ms plus nanoseconds) in `timescale` ticks.
fn ticks(ms: u64, nanos: u32, timescale: u32) -> u64 {
    let ts = timescale as u64;
    ms.saturating_mul(ts) / 1000 + nanos as u64 * ts / 1_000_000_000
}

impl CmafState {
    fn tracks(&self) -> Vec<Track> {
        [&self.video, &self.audio]
            .into_iter()
            .flatten()
            .filter_map(|c| Track::from_config(c))
            .collect()
    }

    fn on_config(&mut self, c: &Arc<CodecConfig>) {
        let slot = match c.kind {
            MediaKind::Video => &mut self.video,
            MediaKind::Audio => &mut self.audio,
            MediaKind::Data => return,
        };
        if let Some(old) = slot.as_ref() {
            if old.track < c.track || old.same_as(c) {
                return;
            }
        }
        if Track::from_config(c).is_none() {
            return;
        }
        *slot = Some(c.clone());
        if self.seg.is_some() {
            self.stale_tracks = true;
        }
    }

    /// One frame; true when a part (or the init) changed.
    fn on_frame(
        &mut self,
        key: &StreamKey,
        f: &Frame,
        expect_video: impl FnOnce() -> bool,
        now: SystemTime,
    ) -> bool {
        let (track_id, cfg) = match (f.kind, &self.video, &self.audio) {
            (MediaKind::Video, Some(c), _) => (VIDEO_TRACK, c),
            (MediaKind::Audio, _, Some(c)) => (AUDIO_TRACK, c),
            _ => return false,
        };
        if f.track != cfg.track || f.codec != cfg.codec {
            return false;
        }
        let Some(track) = Track::from_config(cfg) else {
            return false;
        };
        // Where a segmenter may begin: a video keyframe, or any audio frame of a stream
        // without video.
        let start_point = match f.kind {
            MediaKind::Video => f.keyframe,
            _ => self.video.is_none() && !expect_video(),
        };
        let mut changed = false;
        if (self.seg.is_none() || self.stale_tracks) && start_point {
            let tracks = self.tracks();
            let made = match self.seg.as_mut() {
                None => LlSegmenter::new(tracks, self.cfg).map(|s| {
                    self.seg = Some(s);
                }),
                Some(s) => s.restart(tracks).map(|_| {
                    self.generation = self.generation.wrapping_add(1);
                }),
            };
            match made {
                Ok(()) => {
                    self.stale_tracks = false;
                    changed = true;
                }
                Err(e) => {
                    tracing::warn!(stream = %key, error = %e, "fmp4 hls: tracks refused");
                    self.video = None;
                    self.audio = None;
                    return false;
                }
            }
        }
        let Some(seg) = self.seg.as_mut() else {
            return false;
        };
        let sample = Sample {
            dts: ticks(f.dts, f.nanos, track.timescale),
            cts_offset: (f.cts as i64 * track.timescale as i64 / 1000)
                .clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            keyframe: f.keyframe || f.kind == MediaKind::Audio,
            data: f.data.clone(),
        };
        match seg.push(track_id, sample, now) {
            Ok(ready) => changed || ready.is_some(),
            Err(e) => {
                self.refused_samples += 1;
                if self.refused_samples.is_power_of_two() {
                    tracing::debug!(stream = %key, error = %e, refused = self.refused_samples, "fmp4 hls: sample refused");
                }
                changed
            }
        }
    }

    fn reload_state(&self) -> ReloadState {
        match &self.seg {
            Some(s) => {
                let mut rs = s.reload_state();
                rs.live &= self.ended_at.is_none();
                rs
            }
            None => ReloadState {
                live: self.ended_at.is_none(),
                next_msn: 0,
                next_parts: 0,
                last_segment_parts: 0,
                parts_per_segment: (self.cfg.segment_duration.as_millis()
                    / self.cfg.part_duration.as_millis().max(1))
                .max(1) as u64,
                part_target: self.cfg.part_duration,
            },
        }
    }

    fn has_segments(&self) -> bool {
        self.seg
            .as_ref()
            .is_some_and(|s| !s.playlist("").segments.is_empty())
    }
}

impl CmafStream {
    pub fn new(key: StreamKey, cfg: LlSegmenterConfig) -> Self {
        Self {
            key,
            state: Mutex::new(CmafState {
                cfg,
                seg: None,
                video: None,
                audio: None,
                stale_tracks: false,
                generation: 0,
                ended_at: None,
                rendered: [None, None, None],
                rendered_dvr: [None, None, None],
                refused_samples: 0,
            }),
            version: watch::channel(0).0,
            dvr: Default::default(),
        }
    }

    pub(crate) fn dvr_cache(&self) -> &tokio::sync::Mutex<super::dvr::DvrCache> {
        &self.dvr
    }

    /// The number of the oldest segment in the live window.
    pub fn first_live_msn(&self) -> Option<u64> {
        self.lock().seg.as_ref().and_then(|s| s.first_msn())
    }

    /// The segments before `first_live`, newest back while they started after `since`,
    /// at most `max`, oldest first.
    pub fn past_segments(
        &self,
        first_live: u64,
        since: SystemTime,
        max: usize,
    ) -> Vec<crate::llhls::PastSegment> {
        let st = self.lock();
        let Some(seg) = st.seg.as_ref() else {
            return Vec::new();
        };
        let mut out: Vec<_> = seg
            .history()
            .iter()
            .rev()
            .filter(|h| h.msn < first_live)
            .take_while(|h| h.program_date_time >= since)
            .take(max)
            .copied()
            .collect();
        out.reverse();
        out
    }

    fn lock(&self) -> MutexGuard<'_, CmafState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rendered playlists are stale; wake held requests.
    fn changed(&self, mut st: MutexGuard<'_, CmafState>) {
        st.rendered = [None, None, None];
        st.rendered_dvr = [None, None, None];
        drop(st);
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn on_config(&self, c: &Arc<CodecConfig>) {
        self.lock().on_config(c);
    }

    pub fn on_frame(&self, f: &Frame, expect_video: impl FnOnce() -> bool, now: SystemTime) {
        let mut st = self.lock();
        if st.on_frame(&self.key, f, expect_video, now) {
            self.changed(st);
        }
    }

    /// The publisher left (or frames were skipped): the open part ends the segment.
    pub fn finish(&self) {
        let mut st = self.lock();
        if let Some(s) = st.seg.as_mut() {
            if matches!(s.finish(), Ok(Some(_))) || !s.is_live() {
                self.changed(st);
            }
        }
    }

    /// The stream is over: EXT-X-ENDLIST, and held requests get 404.
    pub fn end(&self) {
        let mut st = self.lock();
        if let Some(s) = st.seg.as_mut() {
            let _ = s.finish();
            s.end();
        }
        st.ended_at = Some(Instant::now());
        self.changed(st);
    }

    /// The stream came back after it ended: start over at the next keyframe, numbering on.
    pub fn reopen(&self) {
        let mut st = self.lock();
        st.ended_at = None;
        st.video = None;
        st.audio = None;
        st.stale_tracks = st.seg.is_some();
        self.changed(st);
    }

    pub fn is_ended(&self) -> bool {
        self.lock().ended_at.is_some()
    }

    pub fn ended_for(&self, now: Instant, keep: Duration) -> bool {
        self.lock()
            .ended_at
            .is_some_and(|t| now.saturating_duration_since(t) >= keep)
    }

    /// Bytes of parts held.
    pub fn memory_bytes(&self) -> usize {
        self.lock().seg.as_ref().map_or(0, |s| s.memory_bytes())
    }

    /// PART-TARGET now (the configured part duration until the first part is out).
    pub fn part_target(&self) -> Duration {
        let st = self.lock();
        st.seg
            .as_ref()
            .map_or(st.cfg.part_duration, |s| s.part_target())
    }

    /// Waits (holding `held` once it must wait, and no lock) until `attempt` has an
    /// answer, the stream changes past `deadline`, or the held-request bound is reached.
    async fn wait_for(
        &self,
        held: &HeldRequests,
        limit: Duration,
        mut attempt: impl FnMut(&mut CmafState) -> Option<Answer>,
    ) -> Answer {
        let mut rx = self.version.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        let mut guard = None;
        loop {
            rx.borrow_and_update();
            let answer = {
                let mut st = self.lock();
                attempt(&mut st)
            };
            if let Some(a) = answer {
                return a;
            }
            if guard.is_none() {
                match held.try_hold() {
                    Some(g) => guard = Some(g),
                    None => return Answer::Busy,
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Err(_) => return Answer::TimedOut,
                Ok(Err(_)) => return Answer::NotFound("the stream ended"),
                Ok(Ok(())) => {}
            }
        }
    }

    /// The playlist for `raw_query`, held while it asks for a part that is on its way.
    pub async fn playlist(
        &self,
        kind: PlaylistKind,
        raw_query: Option<&str>,
        held: &HeldRequests,
        limit: Duration,
        dvr: Option<&Arc<super::dvr::DvrPlan>>,
    ) -> Answer {
        let query: Result<LlQuery, QueryError> = match kind {
            PlaylistKind::LowLatency => LlQuery::parse(raw_query),
            PlaylistKind::Plain => Ok(LlQuery::default()),
        };
        let name = self.key.name.clone();
        self.wait_for(held, limit, |st| {
            let decision = match kind {
                PlaylistKind::LowLatency => decide(&query, &st.reload_state()),
                PlaylistKind::Plain if st.has_segments() => Decision::Now,
                PlaylistKind::Plain if st.reload_state().live => {
                    Decision::Hold { msn: 0, part: None }
                }
                PlaylistKind::Plain => Decision::NotFound,
            };
            match decision {
                Decision::Now => Some(render_cached(st, &name, kind, &query, dvr)),
                Decision::Hold { .. } => None,
                Decision::BadRequest(r) => Some(Answer::BadRequest(r.to_string())),
                Decision::NotFound => Some(Answer::NotFound(
                    "the stream is not live; the part asked for will not come",
                )),
            }
        })
        .await
    }

    /// An init segment, segment or part; a part on its way (the preload hint) is held.
    pub async fn media(&self, media: CmafMedia, held: &HeldRequests, limit: Duration) -> Answer {
        self.wait_for(held, limit, |st| {
            let generation = st.generation;
            let seg = match st.seg.as_ref() {
                Some(s) => s,
                None if st.reload_state().live && matches!(media, CmafMedia::Part(0, 0)) => {
                    return None
                }
                None => return Some(Answer::NotFound("no such media")),
            };
            match media {
                CmafMedia::Init(g) if g == generation => Some(Answer::Media(seg.init().clone())),
                CmafMedia::Init(_) => Some(Answer::NotFound("no such init segment")),
                CmafMedia::Segment(msn) => Some(match seg.segment(msn) {
                    Some(parts) => {
                        let mut all = BytesMut::with_capacity(parts.iter().map(|p| p.len()).sum());
                        for p in parts {
                            all.extend_from_slice(&p);
                        }
                        Answer::Media(all.freeze())
                    }
                    None => Answer::NotFound("no such segment"),
                }),
                CmafMedia::Part(msn, index) => {
                    if let Some(b) = seg.part(msn, index) {
                        return Some(Answer::Media(b));
                    }
                    let q = Ok(LlQuery {
                        msn: Some(msn),
                        part: Some(index as u64),
                        skip: Default::default(),
                    });
                    let rs = st.reload_state();
                    match decide(&q, &rs) {
                        // Only the part being built (or the first of the next segment) is
                        // worth waiting for; an old or far one is gone or never comes.
                        Decision::Hold { .. }
                            if msn == rs.next_msn
                                && index as u64 <= rs.next_parts.saturating_add(1) =>
                        {
                            None
                        }
                        Decision::Hold { .. } if msn == rs.next_msn + 1 && index == 0 => None,
                        Decision::BadRequest(r) => Some(Answer::BadRequest(r.to_string())),
                        _ => Some(Answer::NotFound("no such part")),
                    }
                }
            }
        })
        .await
    }
}

/// The playlist text for the current state, rendered once per change and kind.
fn render_cached(
    st: &mut CmafState,
    name: &str,
    kind: PlaylistKind,
    query: &Result<LlQuery, QueryError>,
    dvr: Option<&Arc<super::dvr::DvrPlan>>,
) -> Answer {
    let skip = query.as_ref().is_ok_and(|q| q.wants_skip());
    let slot = match (kind, skip) {
        (PlaylistKind::LowLatency, false) => 0,
        (PlaylistKind::LowLatency, true) => 1,
        (PlaylistKind::Plain, _) => 2,
    };
    let plan_id = dvr.map(|p| p.id);
    match (plan_id, &st.rendered[slot], &st.rendered_dvr[slot]) {
        (None, Some(b), _) => return Answer::Playlist(b.clone()),
        (Some(id), _, Some((made_with, b))) if *made_with == id => {
            return Answer::Playlist(b.clone())
        }
        _ => {}
    }
    let Some(seg) = st.seg.as_ref() else {
        return Answer::NotFound("no fMP4 segment yet");
    };
    let mut p = seg.playlist(&format!("{name}-"));
    p.map_uri = format!("{name}-init{}.mp4", st.generation);
    if let Some(plan) = dvr {
        super::dvr::prepend(&mut p, plan, seg.history().iter(), name, st.generation);
    }
    let text = Bytes::from(match kind {
        PlaylistKind::LowLatency => render(&p, skip),
        PlaylistKind::Plain => render_plain(&p),
    });
    match plan_id {
        Some(id) => st.rendered_dvr[slot] = Some((id, text.clone())),
        None => st.rendered[slot] = Some(text.clone()),
    }
    Answer::Playlist(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_names() {
        assert_eq!(
            CmafMedia::parse("my-cam-init3.mp4"),
            Some(("my-cam", CmafMedia::Init(3)))
        );
        assert_eq!(
            CmafMedia::parse("cam-seg12.m4s"),
            Some(("cam", CmafMedia::Segment(12)))
        );
        assert_eq!(
            CmafMedia::parse("cam-part12.4.m4s"),
            Some(("cam", CmafMedia::Part(12, 4)))
        );
        for bad in [
            "cam-init.mp4",
            "cam-init-1.mp4",
            "cam-initx.mp4",
            "-seg1.m4s",
            "cam-seg1.ts",
            "cam-part1.m4s",
            "camseg1.m4s",
        ] {
            assert_eq!(CmafMedia::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ticks_follow_milliseconds_and_nanoseconds() {
        assert_eq!(ticks(1000, 0, 90_000), 90_000);
        assert_eq!(ticks(21, 333_333, 48_000), 1008 + 15);
        assert_eq!(ticks(u64::MAX, 0, 90_000), u64::MAX / 1000);
    }

    #[test]
    fn held_requests_are_bounded() {
        let h = HeldRequests::new(2, Default::default());
        let a = h.try_hold().unwrap();
        let _b = h.try_hold().unwrap();
        assert!(h.try_hold().is_none());
        assert_eq!(h.held(), 2);
        drop(a);
        assert!(h.try_hold().is_some());
        assert_eq!(h.held(), 1);
    }
}
