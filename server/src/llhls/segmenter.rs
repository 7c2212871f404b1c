//! One stream's LL-HLS state, pure: samples in (with the wall clock as a parameter), and
//! out the init segment, parts, segments, the playlist value and the reload state. It
//! composes the cutter and the fMP4 fragmenter; it never blocks, locks or reads a clock.
//! Memory is bounded: parts live in segments, the oldest segments go when the window is
//! full or the bytes held pass `max_memory_bytes`, and a segment that grows past
//! `max_segment_bytes` without a keyframe to end it is dropped.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use onair_shared::fmp4::{init_segment, Fmp4Error, Fragmenter, Sample, Track, TrackMedia};

use super::cutter::{Cut, Cutter, FrameInfo};
use super::playlist::{LlPart, LlPlaylist, LlSegment, ServerControl};
use super::reload::ReloadState;

/// Limits and targets of one stream's LL-HLS output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlSegmenterConfig {
    pub part_duration: Duration,
    pub segment_duration: Duration,
    /// Complete segments listed (and kept) at most.
    pub window: usize,
    /// Bytes of parts held at most (complete segments and the one being built); the
    /// oldest segments go first.
    pub max_memory_bytes: usize,
    /// A segment being built that grows past this (no keyframe for too long) is dropped
    /// with its parts, and the stream resumes at the next keyframe after a discontinuity.
    pub max_segment_bytes: usize,
    /// Sample bytes one part may gather (a bound on the fragmenter's queue).
    pub max_part_bytes: usize,
    /// Closed segments remembered (times only, no media) for the DVR window, which
    /// serves them from the recording once they leave the live window; 0 keeps none.
    pub history: usize,
}

impl Default for LlSegmenterConfig {
    fn default() -> Self {
        Self {
            part_duration: Duration::from_millis(200),
            segment_duration: Duration::from_secs(1),
            window: 7,
            max_memory_bytes: 64 << 20,
            max_segment_bytes: 32 << 20,
            max_part_bytes: 16 << 20,
            history: 0,
        }
    }
}

#[derive(Debug, Clone)]
struct StoredPart {
    bytes: Bytes,
    duration: Duration,
    independent: bool,
}

#[derive(Debug, Clone)]
struct StoredSegment {
    msn: u64,
    parts: Vec<StoredPart>,
    program_date_time: SystemTime,
    discontinuity: bool,
}

impl StoredSegment {
    fn duration(&self) -> Duration {
        self.parts.iter().map(|p| p.duration).sum()
    }
    fn bytes(&self) -> usize {
        self.parts.iter().map(|p| p.bytes.len()).sum()
    }
}

/// A closed segment as the DVR window needs it once its media left memory: where it sits
/// on the stream's timeline and in the playlist. No media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PastSegment {
    pub msn: u64,
    pub program_date_time: SystemTime,
    pub duration: Duration,
    pub discontinuity: bool,
    /// Segments with a discontinuity before this one, since the segmenter was made: its
    /// playlist's EXT-X-DISCONTINUITY-SEQUENCE when it is listed first.
    pub discontinuities_before: u64,
    /// Restarts (new init segments) before it: the `g` of `-init{g}.mp4`.
    pub generation: u32,
    /// DTS of its first sample on the driving track, in `timescale` ticks.
    pub first_dts: u64,
    pub timescale: u32,
}

/// A part that became available with the last `push` or `finish`: wake the requests
/// held for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartReady {
    pub msn: u64,
    pub index: u32,
    /// Segment `msn` is complete too.
    pub ends_segment: bool,
}

/// What an HTTP path below a stream names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaName {
    Init,
    Segment(u64),
    Part(u64, u32),
}

impl MediaName {
    /// `init.mp4`, `seg{msn}.m4s`, `part{msn}.{index}.m4s`; anything else is `None`.
    pub fn parse(name: &str) -> Option<Self> {
        fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        }
        if name == "init.mp4" {
            return Some(MediaName::Init);
        }
        let stem = name.strip_suffix(".m4s")?;
        if let Some(n) = stem.strip_prefix("seg") {
            return digits(n).map(MediaName::Segment);
        }
        let (msn, index) = stem.strip_prefix("part")?.split_once('.')?;
        Some(MediaName::Part(digits(msn)?, digits(index)?))
    }

    pub fn file_name(self) -> String {
        match self {
            MediaName::Init => "init.mp4".to_string(),
            MediaName::Segment(m) => format!("seg{m}.m4s"),
            MediaName::Part(m, i) => format!("part{m}.{i}.m4s"),
        }
    }
}

pub struct LlSegmenter {
    cfg: LlSegmenterConfig,
    tracks: Vec<Track>,
    drive_track: u32,
    drive_timescale: u64,
    has_video: bool,
    init: Bytes,
    fragmenter: Fragmenter,
    cutter: Cutter,
    segments: VecDeque<StoredSegment>,
    current: Vec<StoredPart>,
    current_pdt: SystemTime,
    /// DTS (driving track) of the segment being built's first sample.
    current_first_dts: u64,
    current_discontinuity: bool,
    next_discontinuity: bool,
    discontinuity_sequence: u64,
    memory: usize,
    longest_segment: Duration,
    /// PART-TARGET, fixed by the first part that does not end a segment (see `part_target`).
    part_target: Option<Duration>,
    dropped_segments: u64,
    /// (dts of the driving track, wall clock) of the first frame since (re)start, so
    /// PROGRAM-DATE-TIME follows media time.
    anchor: Option<(u64, SystemTime)>,
    live: bool,
    ended: bool,
    /// The last `cfg.history` closed segments, oldest first.
    history: VecDeque<PastSegment>,
    /// Closed segments that followed a discontinuity, and restarts, so far.
    discontinuities: u64,
    generation: u32,
}

fn ticks(d: Duration, timescale: u64) -> u64 {
    (d.as_micros() as u64).saturating_mul(timescale) / 1_000_000
}

impl LlSegmenter {
    /// A segmenter for these tracks (at least one; the first video track drives the cuts,
    /// else the first track). Fails on what the init segment cannot hold.
    pub fn new(tracks: Vec<Track>, cfg: LlSegmenterConfig) -> Result<Self, Fmp4Error> {
        let init = init_segment(&tracks)?;
        let drive = tracks
            .iter()
            .find(|t| matches!(t.media, TrackMedia::Video { .. }))
            .or(tracks.first())
            .ok_or(Fmp4Error::NoTracks)?;
        let has_video = matches!(drive.media, TrackMedia::Video { .. });
        let ts = drive.timescale as u64;
        Ok(Self {
            cutter: Cutter::new(
                ticks(cfg.part_duration, ts),
                ticks(cfg.segment_duration, ts),
                has_video,
                0,
            ),
            drive_track: drive.id,
            drive_timescale: ts,
            has_video,
            fragmenter: Fragmenter::new(&tracks, cfg.max_part_bytes),
            tracks,
            init,
            cfg,
            segments: VecDeque::new(),
            current: Vec::new(),
            current_pdt: SystemTime::UNIX_EPOCH,
            current_first_dts: 0,
            current_discontinuity: false,
            next_discontinuity: false,
            discontinuity_sequence: 0,
            memory: 0,
            longest_segment: Duration::ZERO,
            part_target: None,
            dropped_segments: 0,
            anchor: None,
            // Made for a publisher that is live: requests wait for its first part.
            live: true,
            ended: false,
            history: VecDeque::new(),
            discontinuities: 0,
            generation: 0,
        })
    }

    /// The last closed segments (up to `history` of the config), oldest first, including
    /// those still in the live window.
    pub fn history(&self) -> &VecDeque<PastSegment> {
        &self.history
    }

    /// The number of the oldest segment in the live window.
    pub fn first_msn(&self) -> Option<u64> {
        self.segments.front().map(|s| s.msn)
    }

    /// Restarts so far: the generation of the init segment in use.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    pub fn init(&self) -> &Bytes {
        &self.init
    }

    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Bytes of parts held.
    pub fn memory_bytes(&self) -> usize {
        self.memory
    }

    /// Segments dropped for passing `max_segment_bytes`.
    pub fn dropped_segments(&self) -> u64 {
        self.dropped_segments
    }

    fn wallclock(&self, dts: u64) -> SystemTime {
        match self.anchor {
            Some((d0, t0)) => {
                let us = dts.saturating_sub(d0).saturating_mul(1_000_000) / self.drive_timescale;
                t0 + Duration::from_micros(us)
            }
            None => SystemTime::UNIX_EPOCH,
        }
    }

    /// Takes one sample of `track_id` (DTS in that track's timescale). `now` is the wall
    /// clock at its arrival, used for the first frame after a (re)start. A refused sample
    /// (DTS going back, too many bytes in one part, ...) changes nothing.
    pub fn push(
        &mut self,
        track_id: u32,
        sample: Sample,
        now: SystemTime,
    ) -> Result<Option<PartReady>, Fmp4Error> {
        self.fragmenter.check(track_id, &sample)?;
        let info = FrameInfo {
            dts: sample.dts,
            keyframe: sample.keyframe,
            video: self.has_video,
        };
        let drives = track_id == self.drive_track;
        // Frames of other tracks only join an open part.
        let cut = if drives {
            self.cutter.on_frame(info)
        } else if self.cutter.open_part().is_some() {
            Cut::Append
        } else {
            Cut::Drop
        };
        if cut == Cut::Drop {
            return Ok(None);
        }
        if self.anchor.is_none() {
            self.anchor = Some((sample.dts, now));
            self.current_pdt = now;
            self.current_first_dts = sample.dts;
            self.current_discontinuity = std::mem::take(&mut self.next_discontinuity);
            self.live = true;
        }
        let dts = sample.dts;
        self.fragmenter
            .push(track_id, sample)
            .expect("checked by Fragmenter::check above");
        let Cut::Close(closed) = cut else {
            return Ok(None);
        };
        let frag = self.fragmenter.take_fragment()?;
        if let Some(frag) = frag {
            self.store_part(frag.bytes, closed.duration, closed.independent);
            if self.part_target.is_none() && !closed.ends_segment {
                self.part_target = self.current.last().map(|p| self.advertised(p.duration));
            }
        }
        if closed.ends_segment {
            self.close_segment(self.wallclock(dts), dts);
        } else if self.current.iter().map(|p| p.bytes.len()).sum::<usize>()
            > self.cfg.max_segment_bytes
        {
            self.drop_current_segment();
        }
        Ok(Some(PartReady {
            msn: closed.msn,
            index: closed.index,
            ends_segment: closed.ends_segment,
        }))
    }

    /// Parts close at the frame boundary nearest the configured duration, so with a frame
    /// rate that does not divide it (24 fps: 5 frames = 208 ms for 200) they run a little
    /// longer. PART-TARGET must cover them and must not change, so it is fixed from the
    /// first regular part: the configured duration, or that part plus 1 ms of timestamp
    /// jitter, rounded up to a millisecond.
    fn advertised(&self, first_part: Duration) -> Duration {
        if first_part <= self.cfg.part_duration {
            return self.cfg.part_duration;
        }
        let us = (first_part + Duration::from_millis(1)).as_micros() as u64;
        Duration::from_millis(us.div_ceil(1000))
    }

    /// PART-TARGET: the configured part duration until the first regular part is out.
    pub fn part_target(&self) -> Duration {
        self.part_target.unwrap_or(self.cfg.part_duration)
    }

    fn store_part(&mut self, bytes: Bytes, duration_ticks: u64, independent: bool) {
        self.memory += bytes.len();
        self.current.push(StoredPart {
            bytes,
            duration: Duration::from_micros(
                duration_ticks.saturating_mul(1_000_000) / self.drive_timescale,
            ),
            independent,
        });
        self.evict();
    }

    fn close_segment(&mut self, next_pdt: SystemTime, next_first_dts: u64) {
        let first_dts = std::mem::replace(&mut self.current_first_dts, next_first_dts);
        let seg = StoredSegment {
            msn: self.cutter.next_msn().saturating_sub(1),
            parts: std::mem::take(&mut self.current),
            program_date_time: self.current_pdt,
            discontinuity: self.current_discontinuity,
        };
        self.current_pdt = next_pdt;
        self.current_discontinuity = false;
        if seg.parts.is_empty() {
            return;
        }
        self.longest_segment = self.longest_segment.max(seg.duration());
        if self.cfg.history > 0 {
            if self.history.len() >= self.cfg.history {
                self.history.pop_front();
            }
            self.history.push_back(PastSegment {
                msn: seg.msn,
                program_date_time: seg.program_date_time,
                duration: seg.duration(),
                discontinuity: seg.discontinuity,
                discontinuities_before: self.discontinuities,
                generation: self.generation,
                first_dts,
                timescale: self.drive_timescale as u32,
            });
        }
        self.discontinuities += seg.discontinuity as u64;
        self.segments.push_back(seg);
        self.evict();
    }

    fn evict(&mut self) {
        while self.segments.len() > self.cfg.window.max(1)
            || (self.memory > self.cfg.max_memory_bytes && !self.segments.is_empty())
        {
            let Some(old) = self.segments.pop_front() else {
                break;
            };
            self.memory -= old.bytes();
            if old.discontinuity {
                self.discontinuity_sequence += 1;
            }
        }
    }

    /// No keyframe came to end a segment within its byte bound: its parts go, its msn is
    /// never completed (requests held for it wait for the next segment), and the stream
    /// resumes at the next keyframe after a discontinuity.
    fn drop_current_segment(&mut self) {
        let bytes: usize = self.current.drain(..).map(|p| p.bytes.len()).sum();
        self.memory -= bytes;
        let _ = self.cutter.finish();
        // The samples still queued belong to the dropped segment.
        let _ = self.fragmenter.flush();
        self.anchor = None;
        self.next_discontinuity = true;
        self.dropped_segments += 1;
    }

    /// The publisher left: the open part closes (every queued sample goes out) and ends
    /// its segment; the next segment, if the publisher returns, follows a discontinuity.
    /// Requests for parts that would come next are answered 404 until then.
    pub fn finish(&mut self) -> Result<Option<PartReady>, Fmp4Error> {
        self.live = false;
        let Some(closed) = self.cutter.finish() else {
            return Ok(None);
        };
        if let Some(frag) = self.fragmenter.flush()? {
            self.store_part(frag.bytes, closed.duration, closed.independent);
        }
        self.close_segment(SystemTime::UNIX_EPOCH, 0);
        self.anchor = None;
        self.next_discontinuity = true;
        Ok(Some(PartReady {
            msn: closed.msn,
            index: closed.index,
            ends_segment: true,
        }))
    }

    /// The tracks changed (a codec configuration came, went or changed): later parts need
    /// a new init segment. The open part closes as with `finish`; the segments listed so
    /// far go, since they decode with the old init; numbering continues and the next
    /// segment follows a discontinuity. On an error (tracks the init cannot hold) nothing
    /// changes.
    pub fn restart(&mut self, tracks: Vec<Track>) -> Result<Option<PartReady>, Fmp4Error> {
        let init = init_segment(&tracks)?;
        let drive = tracks
            .iter()
            .find(|t| matches!(t.media, TrackMedia::Video { .. }))
            .or(tracks.first())
            .ok_or(Fmp4Error::NoTracks)?;
        let (drive_track, has_video, ts) = (
            drive.id,
            matches!(drive.media, TrackMedia::Video { .. }),
            drive.timescale as u64,
        );
        let ready = self.finish()?;
        for old in self.segments.drain(..) {
            self.memory -= old.bytes();
            if old.discontinuity {
                self.discontinuity_sequence += 1;
            }
        }
        self.cutter = Cutter::new(
            ticks(self.cfg.part_duration, ts),
            ticks(self.cfg.segment_duration, ts),
            has_video,
            self.cutter.next_msn(),
        );
        self.fragmenter = Fragmenter::new(&tracks, self.cfg.max_part_bytes);
        self.drive_track = drive_track;
        self.drive_timescale = ts;
        self.has_video = has_video;
        self.tracks = tracks;
        self.init = init;
        self.next_discontinuity = true;
        self.live = true;
        self.ended = false;
        self.generation = self.generation.wrapping_add(1);
        Ok(ready)
    }

    /// Whether the publisher is sending (false after `finish` until the next frame).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The stream is over for good: the playlist gets EXT-X-ENDLIST.
    pub fn end(&mut self) {
        self.live = false;
        self.ended = true;
    }

    pub fn part(&self, msn: u64, index: u32) -> Option<Bytes> {
        let parts = if msn == self.cutter.next_msn() {
            &self.current
        } else {
            &self.segments.iter().find(|s| s.msn == msn)?.parts
        };
        parts.get(index as usize).map(|p| p.bytes.clone())
    }

    /// A complete segment, as its parts' bytes in order (write them one after another).
    pub fn segment(&self, msn: u64) -> Option<Vec<Bytes>> {
        let s = self.segments.iter().find(|s| s.msn == msn)?;
        Some(s.parts.iter().map(|p| p.bytes.clone()).collect())
    }

    /// The playlist, naming media `prefix` + `MediaName::file_name`.
    pub fn playlist(&self, prefix: &str) -> LlPlaylist {
        let name = |n: MediaName| format!("{prefix}{}", n.file_name());
        let parts = |msn: u64, parts: &[StoredPart]| -> Vec<LlPart> {
            parts
                .iter()
                .enumerate()
                .map(|(i, p)| LlPart {
                    uri: name(MediaName::Part(msn, i as u32)),
                    duration: p.duration,
                    independent: p.independent,
                })
                .collect()
        };
        let target = self.longest_segment.max(self.cfg.segment_duration);
        let next_msn = self.cutter.next_msn();
        LlPlaylist {
            target_duration: target,
            part_target: self.part_target(),
            discontinuity_sequence: self.discontinuity_sequence,
            map_uri: name(MediaName::Init),
            segments: self
                .segments
                .iter()
                .map(|s| LlSegment {
                    msn: s.msn,
                    uri: name(MediaName::Segment(s.msn)),
                    duration: s.duration(),
                    program_date_time: s.program_date_time,
                    discontinuity: s.discontinuity,
                    parts: parts(s.msn, &s.parts),
                    map_uri: None,
                })
                .collect(),
            next_msn,
            next_parts: parts(next_msn, &self.current),
            next_discontinuity: self.current_discontinuity,
            preload_hint_uri: self
                .cutter
                .open_part()
                .map(|(m, i)| name(MediaName::Part(m, i))),
            server_control: ServerControl::standard(
                Duration::from_secs(target.as_secs_f64().ceil() as u64),
                self.part_target(),
            ),
            ended: self.ended,
        }
    }

    pub fn reload_state(&self) -> ReloadState {
        let next_msn = self.cutter.next_msn();
        ReloadState {
            live: self.live,
            next_msn,
            next_parts: self.current.len() as u64,
            last_segment_parts: self
                .segments
                .back()
                .filter(|s| s.msn + 1 == next_msn)
                .map_or(0, |s| s.parts.len() as u64),
            parts_per_segment: (self.cfg.segment_duration.as_millis()
                / self.cfg.part_duration.as_millis().max(1))
            .max(1) as u64,
            part_target: self.part_target(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llhls::{decide, render, Decision, LlQuery};
    use onair_shared::Codec;

    // avcC of x264 high profile 1280x720 (SPS from avc.rs tests, a short PPS).
    fn avcc() -> Bytes {
        let sps = [
            0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00,
            0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
        ];
        let pps = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
        Bytes::from(
            onair_shared::avc::AvcDecoderConfig::from_parameter_sets(&sps, &pps)
                .unwrap()
                .to_bytes(),
        )
    }

    fn tracks() -> Vec<Track> {
        vec![
            Track {
                id: 1,
                codec: Codec::H264,
                timescale: 90_000,
                config: avcc(),
                media: TrackMedia::Video {
                    width: 1280,
                    height: 720,
                },
            },
            Track {
                id: 2,
                codec: Codec::Aac,
                timescale: 48_000,
                config: Bytes::from_static(&[0x11, 0x90]),
                media: TrackMedia::Audio {
                    sample_rate: 48_000,
                    channels: 2,
                },
            },
        ]
    }

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_119_200)
    }

    /// 30 fps video (keyframe every 30 frames) and 48 kHz AAC, interleaved by time, from
    /// frame `from` to `to` (video frame numbers).
    fn feed(s: &mut LlSegmenter, from: u64, to: u64, size: usize) -> Vec<PartReady> {
        let mut ready = Vec::new();
        let mut audio_next = from * 1600 / 1024;
        for k in from..to {
            let dts = k * 3000;
            while audio_next * 1024 * 90_000 / 48_000 <= dts {
                let a = Sample {
                    dts: audio_next * 1024,
                    cts_offset: 0,
                    keyframe: true,
                    data: Bytes::from(vec![0xaa; 10]),
                };
                ready.extend(s.push(2, a, t0()).unwrap());
                audio_next += 1;
            }
            let v = Sample {
                dts,
                cts_offset: 3000,
                keyframe: k % 30 == 0,
                data: Bytes::from(vec![k as u8; size]),
            };
            ready.extend(s.push(1, v, t0()).unwrap());
        }
        ready
    }

    #[test]
    fn parts_segments_playlist_and_reload_state() {
        let mut s = LlSegmenter::new(tracks(), LlSegmenterConfig::default()).unwrap();
        assert_eq!(
            decide(&LlQuery::parse(None), &s.reload_state()),
            Decision::Hold {
                msn: 0,
                part: Some(0)
            }
        );
        let ready = feed(&mut s, 0, 67, 100);
        // 2 s of segments (5 parts each) and a part of segment 2 (frame 66 opened a second).
        assert_eq!(ready.len(), 11);
        assert_eq!(
            ready[4],
            PartReady {
                msn: 0,
                index: 4,
                ends_segment: true
            }
        );
        assert_eq!(s.reload_state().next_msn, 2);
        assert_eq!(s.reload_state().next_parts, 1);
        assert_eq!(s.reload_state().last_segment_parts, 5);
        let text = render(&s.playlist("live/"), false);
        assert!(
            text.contains("#EXT-X-MAP:URI=\"live/init.mp4\"\n"),
            "{text}"
        );
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2026-12-01T10:00:00.000Z\n"));
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2026-12-01T10:00:01.000Z\n"));
        assert!(text.contains(
            "#EXT-X-PART:DURATION=0.20000,URI=\"live/part1.4.m4s\"\n#EXTINF:1.00000,\nlive/seg1.m4s\n"
        ));
        assert!(text.contains("URI=\"live/part2.0.m4s\",INDEPENDENT=YES\n"));
        assert!(text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"live/part2.1.m4s\"\n"));
        // The segment is its parts, in order; each part is a moof + mdat.
        let seg = s.segment(1).unwrap();
        assert_eq!(seg.len(), 5);
        assert_eq!(seg[0], s.part(1, 0).unwrap());
        assert_eq!(&seg[0][4..8], b"moof");
        assert!(s.part(2, 0).is_some() && s.part(2, 1).is_none());
        assert_eq!(s.segment(2), None);
        // Blocking: the next part is held; it is there once the frame closing it comes.
        let q = LlQuery::parse(Some("_HLS_msn=2&_HLS_part=1"));
        assert_eq!(
            decide(&q, &s.reload_state()),
            Decision::Hold {
                msn: 2,
                part: Some(1)
            }
        );
        let ready = feed(&mut s, 67, 73, 100);
        assert_eq!(
            ready,
            vec![PartReady {
                msn: 2,
                index: 1,
                ends_segment: false
            }]
        );
        assert_eq!(decide(&q, &s.reload_state()), Decision::Now);
    }

    #[test]
    fn memory_and_window_are_bounded() {
        let cfg = LlSegmenterConfig {
            window: 3,
            max_memory_bytes: 60_000,
            ..Default::default()
        };
        let mut s = LlSegmenter::new(tracks(), cfg).unwrap();
        // 1 KB frames: about 30 KB a segment, so two segments fit, not three.
        feed(&mut s, 0, 30 * 20 + 1, 1000);
        assert!(s.memory_bytes() <= 60_000, "{}", s.memory_bytes());
        let p = s.playlist("");
        assert!(p.segments.len() <= 2, "{}", p.segments.len());
        assert_eq!(p.segments.last().unwrap().msn, 19);
        assert_eq!(s.segment(10), None);
        // Without the byte bound the window decides.
        let cfg = LlSegmenterConfig {
            max_memory_bytes: usize::MAX,
            ..cfg
        };
        let mut s = LlSegmenter::new(tracks(), cfg).unwrap();
        feed(&mut s, 0, 30 * 20 + 1, 10);
        assert_eq!(s.playlist("").segments.len(), 3);
    }

    #[test]
    fn a_publisher_leaving_mid_part_and_returning() {
        let mut s = LlSegmenter::new(tracks(), LlSegmenterConfig::default()).unwrap();
        feed(&mut s, 0, 40, 50); // segment 0, then frames 30..39 of segment 1
        let last = s.finish().unwrap().unwrap();
        assert_eq!((last.msn, last.ends_segment), (1, true));
        assert_eq!(s.finish().unwrap(), None);
        // Segment 1 is complete: 1/3 s (frames 30..=39), every sample in it.
        let p = s.playlist("");
        assert_eq!(p.segments.len(), 2);
        assert_eq!(p.segments[1].duration, Duration::from_micros(333_333));
        assert_eq!(p.preload_hint_uri, None);
        // Waiting for parts that would come next: 404 at once while the publisher is away.
        let q = LlQuery::parse(Some("_HLS_msn=2&_HLS_part=0"));
        assert_eq!(decide(&q, &s.reload_state()), Decision::NotFound);
        // It comes back (timestamps rebased by ingest): a discontinuity, a new segment.
        feed(&mut s, 300, 310, 50);
        let p = s.playlist("");
        assert!(!p.segments.iter().any(|x| x.discontinuity));
        assert!(p.next_discontinuity);
        let text = render(&p, false);
        assert!(
            text.contains("seg1.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-PART:"),
            "{text}"
        );
        feed(&mut s, 310, 331, 50);
        let p = s.playlist("");
        assert!(p.segments.last().unwrap().discontinuity);
        assert_eq!(decide(&q, &s.reload_state()), Decision::Now);
        s.end();
        assert!(render(&s.playlist(""), false).ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn refused_samples_change_nothing() {
        let mut s = LlSegmenter::new(tracks(), LlSegmenterConfig::default()).unwrap();
        feed(&mut s, 0, 10, 50);
        let before = render(&s.playlist(""), false);
        let back = Sample {
            dts: 0,
            cts_offset: 0,
            keyframe: true,
            data: Bytes::from_static(b"x"),
        };
        assert!(matches!(
            s.push(1, back, t0()),
            Err(Fmp4Error::DtsWentBack { .. })
        ));
        let empty = Sample {
            dts: 30_000,
            cts_offset: 0,
            keyframe: false,
            data: Bytes::new(),
        };
        assert!(s.push(1, empty, t0()).is_err());
        assert_eq!(render(&s.playlist(""), false), before);
        assert_eq!(s.reload_state().next_parts, 1);
    }

    #[test]
    fn part_target_covers_parts_when_the_frame_rate_does_not_divide_it() {
        let mut s = LlSegmenter::new(tracks(), LlSegmenterConfig::default()).unwrap();
        assert_eq!(s.part_target(), Duration::from_millis(200));
        // 24 fps (3750 ticks), a keyframe every 24 frames: parts of 5 frames, 208.3 ms.
        for k in 0..24 * 4 + 1 {
            let v = Sample {
                dts: k * 3750,
                cts_offset: 0,
                keyframe: k % 24 == 0,
                data: Bytes::from_static(b"frame"),
            };
            s.push(1, v, t0()).unwrap();
        }
        assert_eq!(s.part_target(), Duration::from_millis(210));
        let p = s.playlist("");
        assert_eq!(p.part_target, Duration::from_millis(210));
        assert_eq!(p.server_control.part_hold_back, Duration::from_millis(630));
        let parts: Vec<&LlPart> = p.segments.iter().flat_map(|s| &s.parts).collect();
        assert!(parts.len() >= 15);
        assert!(parts.iter().all(|x| x.duration <= p.part_target));
        assert!(render(&p, false).contains("#EXT-X-PART-INF:PART-TARGET=0.21000\n"));
        // 30 fps divides 200 ms: the configured target stays.
        let mut s = LlSegmenter::new(tracks(), LlSegmenterConfig::default()).unwrap();
        feed(&mut s, 0, 40, 10);
        assert_eq!(s.part_target(), Duration::from_millis(200));
    }

    #[test]
    fn a_segment_without_an_end_is_dropped_not_grown() {
        let cfg = LlSegmenterConfig {
            max_segment_bytes: 20_000,
            ..Default::default()
        };
        let mut s = LlSegmenter::new(tracks(), cfg).unwrap();
        feed(&mut s, 0, 31, 500); // segment 0 complete, frame 30 opens segment 1
                                  // Then 10 s with no keyframe: 500-byte frames pass 20 KB after about 1.3 s.
        let mut dropped_at = None;
        for k in 31..331u64 {
            let v = Sample {
                dts: k * 3000,
                cts_offset: 0,
                keyframe: false,
                data: Bytes::from(vec![1; 500]),
            };
            s.push(1, v, t0()).unwrap();
            assert!(
                s.memory_bytes() <= 20_000 + 16_000 + 3_200,
                "{}",
                s.memory_bytes()
            );
            if dropped_at.is_none() && s.dropped_segments() == 1 {
                dropped_at = Some(k);
            }
        }
        assert!(dropped_at.is_some());
        assert_eq!(
            s.dropped_segments(),
            1,
            "later frames are dropped until a keyframe"
        );
        // Segment 1 never completes; the next keyframe starts segment 2 after a
        // discontinuity.
        assert_eq!(s.playlist("").segments.len(), 1);
        assert_eq!(s.part(1, 0), None);
        feed(&mut s, 360, 391, 500);
        let p = s.playlist("");
        assert_eq!(
            p.segments.iter().map(|x| x.msn).collect::<Vec<_>>(),
            vec![0, 2]
        );
        assert!(p.segments[1].discontinuity);
    }

    #[test]
    fn a_restart_keeps_numbering_and_marks_a_discontinuity() {
        let mut s = LlSegmenter::new(tracks(), LlSegmenterConfig::default()).unwrap();
        feed(&mut s, 0, 40, 50); // segment 0, and frames 30..39 open segment 1
        let init_before = s.init().clone();
        // Audio goes away: video only from now on.
        let ready = s.restart(tracks()[..1].to_vec()).unwrap().unwrap();
        assert_eq!((ready.msn, ready.ends_segment), (1, true));
        assert_ne!(s.init(), &init_before);
        assert_eq!(s.memory_bytes(), 0);
        assert!(s.playlist("").segments.is_empty());
        assert_eq!(s.reload_state().next_msn, 2);
        // Video alone: audio samples are refused, video goes on from segment 2.
        assert!(s
            .push(
                2,
                Sample {
                    dts: 48_000,
                    cts_offset: 0,
                    keyframe: true,
                    data: Bytes::from_static(b"a")
                },
                t0()
            )
            .is_err());
        for k in 60..91u64 {
            let v = Sample {
                dts: k * 3000,
                cts_offset: 0,
                keyframe: k % 30 == 0,
                data: Bytes::from(vec![1; 50]),
            };
            s.push(1, v, t0()).unwrap();
        }
        let p = s.playlist("");
        assert_eq!(p.segments.len(), 1);
        assert_eq!(p.segments[0].msn, 2);
        assert!(p.segments[0].discontinuity);
        // A refused restart changes nothing.
        assert!(s.restart(Vec::new()).is_err());
        assert_eq!(s.playlist("").segments.len(), 1);
    }

    #[test]
    fn media_names() {
        assert_eq!(MediaName::parse("init.mp4"), Some(MediaName::Init));
        assert_eq!(MediaName::parse("seg12.m4s"), Some(MediaName::Segment(12)));
        assert_eq!(
            MediaName::parse("part12.3.m4s"),
            Some(MediaName::Part(12, 3))
        );
        for bad in [
            "seg.m4s",
            "seg-1.m4s",
            "seg+1.m4s",
            "part1.m4s",
            "part1.x.m4s",
            "part1.99999999999.m4s",
            "seg99999999999999999999999.m4s",
            "seg1.ts",
            "../init.mp4",
        ] {
            assert_eq!(MediaName::parse(bad), None, "{bad}");
        }
        for n in [
            MediaName::Init,
            MediaName::Segment(7),
            MediaName::Part(7, 2),
        ] {
            assert_eq!(MediaName::parse(&n.file_name()), Some(n));
        }
    }

    #[test]
    fn history_remembers_closed_segments_across_restarts() {
        let cfg = LlSegmenterConfig {
            window: 2,
            history: 3,
            ..Default::default()
        };
        let mut s = LlSegmenter::new(tracks(), cfg).unwrap();
        // Keyframes every 30 frames (1 s): segments 0..=3 close.
        feed(&mut s, 0, 30 * 4 + 1, 10);
        let h: Vec<_> = s.history().iter().copied().collect();
        // Three remembered (the bound), though the live window holds two.
        assert_eq!(h.iter().map(|x| x.msn).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(s.first_msn(), Some(2));
        for x in &h {
            assert_eq!(x.first_dts, x.msn * 90_000);
            assert_eq!(x.timescale, 90_000);
            assert_eq!(x.duration, Duration::from_secs(1));
            assert_eq!((x.generation, x.discontinuities_before), (0, 0));
            assert!(!x.discontinuity);
        }
        // A restart: the segment it closes keeps generation 0, the next follows a
        // discontinuity in generation 1.
        s.restart(tracks()).unwrap();
        assert_eq!(s.generation(), 1);
        for k in 150..211u64 {
            let v = Sample {
                dts: k * 3000,
                cts_offset: 0,
                keyframe: k % 30 == 0,
                data: Bytes::from(vec![1; 10]),
            };
            s.push(1, v, t0()).unwrap();
        }
        let h: Vec<_> = s.history().iter().copied().collect();
        assert_eq!(h.iter().map(|x| x.msn).collect::<Vec<_>>(), vec![4, 5, 6]);
        assert_eq!((h[0].generation, h[0].discontinuity), (0, false));
        assert_eq!((h[1].generation, h[1].discontinuity), (1, true));
        assert_eq!(h[1].first_dts, 150 * 3000);
        assert_eq!(
            (h[2].discontinuities_before, h[2].discontinuity),
            (1, false)
        );
        // Without `history` nothing is kept.
        let mut s = LlSegmenter::new(tracks(), LlSegmenterConfig::default()).unwrap();
        feed(&mut s, 0, 61, 10);
        assert!(s.history().is_empty());
    }
}
