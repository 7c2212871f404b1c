//! Cuts one stream's frames into MPEG-TS segments (sans-IO). A segment starts at a video
//! keyframe and closes at the first keyframe after the target duration, so its real length
//! is max(target, GOP); audio-only streams cut at any frame. The caller passes wall time.

use std::time::SystemTime;

use bytes::Bytes;
use mpeg2ts::es::StreamType;
use onair_shared::avc::AvcDecoderConfig;
use onair_shared::hevc::HevcDecoderConfig;
use onair_shared::{Codec, CodecConfig, CodecParams, Frame, MediaKind};

use super::ts::{audio_stream_type, TsMuxer};

#[derive(Debug, Clone)]
pub struct Segment {
    pub seq: u64,
    pub duration_ms: u64,
    /// The segment follows a break in timestamps or configuration.
    pub discontinuity: bool,
    /// Wall-clock time of the segment's first frame (EXT-X-PROGRAM-DATE-TIME).
    pub program_date_time: SystemTime,
    pub data: Bytes,
}

#[derive(Debug, Clone, Copy)]
pub struct SegmenterConfig {
    pub target_ms: u64,
    /// A segment growing past this (no keyframe for too long) is dropped, not kept growing.
    pub max_segment_bytes: usize,
}

struct Open {
    seq: u64,
    start_dts: u64,
    last_dts: u64,
    discontinuity: bool,
    started: SystemTime,
    data: Vec<u8>,
}

pub struct Segmenter {
    cfg: SegmenterConfig,
    mux: TsMuxer,
    avc: Option<AvcDecoderConfig>,
    /// HEVC's configuration, when the video is HEVC (then `avc` is `None`).
    hevc: Option<HevcDecoderConfig>,
    /// The audio configuration, when TS can carry it, and its stream type.
    audio: Option<(CodecConfig, StreamType)>,
    open: Option<Open>,
    next_seq: u64,
    pending_discontinuity: bool,
    /// Typical frame spacing, to give the last segment of a stream a duration.
    last_step_ms: u64,
    dropped_oversized: u64,
    /// Size of the last closed segment, to size the next one's buffer.
    last_len: usize,
}

impl Segmenter {
    pub fn new(cfg: SegmenterConfig, first_seq: u64) -> Self {
        Self {
            cfg,
            mux: TsMuxer::default(),
            avc: None,
            hevc: None,
            audio: None,
            open: None,
            next_seq: first_seq,
            pending_discontinuity: first_seq > 0,
            last_step_ms: 33,
            dropped_oversized: 0,
            last_len: 0,
        }
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Timestamps or configuration break here (publisher returned, viewer lag): close
    /// what is open and flag the next segment.
    pub fn discontinuity(&mut self) -> Option<Segment> {
        self.pending_discontinuity = true;
        self.finish()
    }

    /// Closes the open segment (stream ended or paused).
    pub fn finish(&mut self) -> Option<Segment> {
        let open = self.open.take()?;
        let end = open.last_dts + self.last_step_ms;
        Some(self.close(open, end))
    }

    /// A track's configuration. A changed one closes the open segment (decoders must
    /// reset, and the segment holds the old parameters); a repeat changes nothing.
    pub fn push_config(&mut self, config: &CodecConfig) -> Option<Segment> {
        match config.kind {
            MediaKind::Video => {
                // H.264 and HEVC go into TS; other video is not segmented.
                let had_video = self.has_video();
                let changed = match &config.params {
                    CodecParams::Avc(cfg) => {
                        let changed = self.avc.as_ref() != Some(cfg);
                        self.avc = Some(cfg.clone());
                        self.hevc = None;
                        changed
                    }
                    CodecParams::Hevc(cfg) => {
                        let changed = self.hevc.as_ref() != Some(cfg);
                        self.hevc = Some(cfg.clone());
                        self.avc = None;
                        changed
                    }
                    _ => return None,
                };
                (had_video && changed)
                    .then(|| self.discontinuity())
                    .flatten()
            }
            MediaKind::Audio => {
                let new = audio_stream_type(config).map(|t| (config.clone(), t));
                let changed = match (&self.audio, &new) {
                    (Some((old, _)), Some((c, _))) => !old.same_as(c),
                    (Some(_), None) => true,
                    _ => false,
                };
                self.audio = new;
                changed.then(|| self.discontinuity()).flatten()
            }
            MediaKind::Data => None,
        }
    }

    /// One frame (access unit) of the stream.
    pub fn push(&mut self, frame: &Frame, now: SystemTime) -> Option<Segment> {
        match frame.kind {
            MediaKind::Video
                if (self.avc.is_some() && frame.codec == Codec::H264)
                    || (self.hevc.is_some() && frame.codec == Codec::Hevc) =>
            {
                self.push_video(frame, now)
            }
            MediaKind::Audio
                if self
                    .audio
                    .as_ref()
                    .is_some_and(|(c, _)| c.codec == frame.codec) =>
            {
                self.push_audio(frame, now)
            }
            _ => None,
        }
    }

    fn push_video(&mut self, frame: &Frame, now: SystemTime) -> Option<Segment> {
        // Only a keyframe may start a segment.
        let closed = if frame.keyframe {
            self.cut_point(frame.dts, now, true)
        } else {
            None
        };
        let open = self.open.as_mut()?;
        self.last_step_ms = frame.dts.saturating_sub(open.last_dts).clamp(1, 100);
        open.last_dts = open.last_dts.max(frame.dts);
        let written = match (&self.avc, &self.hevc) {
            (Some(avc), _) => self.mux.write_video(&mut open.data, frame, avc),
            (None, Some(hevc)) => self.mux.write_hevc(&mut open.data, frame, hevc),
            (None, None) => return closed,
        };
        if written.is_err() {
            return closed;
        }
        self.check_size();
        closed
    }

    fn push_audio(&mut self, frame: &Frame, now: SystemTime) -> Option<Segment> {
        let (cfg, _) = self.audio.clone()?;
        let audio_only = !self.has_video();
        // Audio-only streams may cut at any frame.
        let closed = if audio_only {
            self.cut_point(frame.dts, now, false)
        } else {
            None
        };
        // With video, audio joins the segment a keyframe opened (before that it is dropped).
        let open = self.open.as_mut()?;
        open.last_dts = open.last_dts.max(frame.dts);
        if self
            .mux
            .write_audio(&mut open.data, frame, &cfg, audio_only)
            .is_err()
        {
            return closed;
        }
        self.check_size();
        closed
    }

    /// At a frame that may start a segment: closes the open one once it reached the
    /// target, and opens the next if none is open.
    fn cut_point(&mut self, dts: u64, now: SystemTime, has_video: bool) -> Option<Segment> {
        let due = self
            .open
            .as_ref()
            .is_some_and(|o| dts.saturating_sub(o.start_dts) >= self.cfg.target_ms);
        let closed = if due {
            self.open.take().map(|open| self.close(open, dts))
        } else {
            None
        };
        if self.open.is_none() {
            self.start(dts, now, has_video);
        }
        closed
    }

    fn start(&mut self, dts: u64, now: SystemTime, has_video: bool) {
        // Sized from the last segment so the buffer rarely regrows (each regrowth copies
        // and leaves the allocator a hole).
        let mut data = Vec::with_capacity(self.last_len + self.last_len / 4 + 64 * 1024);
        let audio = self.audio.as_ref().map(|(_, t)| *t);
        let video = match (&self.hevc, has_video) {
            (_, false) => None,
            (Some(_), true) => Some(StreamType::H265),
            (None, true) => Some(StreamType::H264),
        };
        if self.mux.write_tables_for(&mut data, video, audio).is_err() {
            return;
        }
        self.open = Some(Open {
            seq: self.next_seq,
            start_dts: dts,
            last_dts: dts,
            discontinuity: std::mem::take(&mut self.pending_discontinuity),
            started: now,
            data,
        });
        self.next_seq += 1;
    }

    fn has_video(&self) -> bool {
        self.avc.is_some() || self.hevc.is_some()
    }

    fn check_size(&mut self) {
        if self
            .open
            .as_ref()
            .is_some_and(|o| o.data.len() > self.cfg.max_segment_bytes)
        {
            // Without a keyframe there is nowhere to cut; drop rather than grow without bound.
            self.open = None;
            self.pending_discontinuity = true;
            self.dropped_oversized += 1;
        }
    }

    fn close(&mut self, open: Open, end_dts: u64) -> Segment {
        self.last_len = open.data.len();
        Segment {
            seq: open.seq,
            duration_ms: end_dts.saturating_sub(open.start_dts),
            discontinuity: open.discontinuity,
            program_date_time: open.started,
            // Exact size: a window of segments holds no spare capacity.
            data: Bytes::from(open.data.into_boxed_slice()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ts::tests::{aac_config, audio, avc_config, packets, video};
    use super::*;

    fn seg() -> Segmenter {
        Segmenter::new(
            SegmenterConfig {
                target_ms: 2000,
                max_segment_bytes: 4 << 20,
            },
            0,
        )
    }

    fn config_frames() -> (CodecConfig, CodecConfig) {
        (avc_config(), aac_config(44100, 2))
    }

    /// Feeds `secs` of 30 fps video with a keyframe every `gop` frames and 43 Hz audio.
    fn feed(s: &mut Segmenter, from_frame: u64, frames: u64, gop: u64) -> Vec<Segment> {
        let now = SystemTime::now();
        let mut out = Vec::new();
        for i in from_frame..from_frame + frames {
            let dts = i * 1000 / 30;
            out.extend(s.push(&video(dts, 0, i % gop == 0, 300), now));
            out.extend(s.push(&audio(dts + 5, 100), now));
        }
        out
    }

    #[test]
    fn cuts_at_keyframes_once_target_reached() {
        let mut s = seg();
        let (v, a) = config_frames();
        s.push_config(&v);
        s.push_config(&a);
        // 1 s GOP: segments of 2 s (two GOPs each).
        let segs = feed(&mut s, 0, 30 * 7, 30);
        assert_eq!(segs.len(), 3);
        assert_eq!(
            segs.iter().map(|x| x.seq).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        for x in &segs {
            assert_eq!(x.duration_ms, 2000);
            let ps = packets(&x.data);
            assert_eq!(
                (ps[0].0, ps[1].0),
                (0, 0x1000),
                "segment opens with PAT and PMT"
            );
            assert_eq!(ps[2].0, 0x100, "then video: the keyframe");
            assert_eq!(ps[2].3[0] & 0x40, 0x40, "random access");
        }
        let last = s.finish().unwrap();
        assert_eq!(last.seq, 3);
    }

    #[test]
    fn long_gop_makes_long_segments() {
        let mut s = seg();
        let (v, a) = config_frames();
        s.push_config(&v);
        s.push_config(&a);
        // 3 s GOP with a 2 s target: each segment is one GOP, 3 s.
        let segs = feed(&mut s, 0, 30 * 10, 90);
        assert!(
            segs.iter().all(|x| x.duration_ms == 3000),
            "{:?}",
            segs.iter().map(|x| x.duration_ms).collect::<Vec<_>>()
        );
    }

    #[test]
    fn nothing_before_configuration_and_first_keyframe() {
        let mut s = seg();
        let now = SystemTime::now();
        assert!(s.push(&video(0, 0, true, 10), now).is_none());
        let (v, a) = config_frames();
        s.push_config(&v);
        s.push_config(&a);
        s.push(&video(33, 0, false, 10), now);
        s.push(&audio(40, 10), now);
        assert!(s.finish().is_none(), "no segment opens on a non-keyframe");
    }

    #[test]
    fn changed_configuration_and_returns_mark_discontinuity() {
        let mut s = seg();
        let (v, a) = config_frames();
        s.push_config(&v);
        s.push_config(&a);
        feed(&mut s, 0, 90, 30);
        // An identical sequence header is not a change.
        assert!(s.push_config(&v).is_none());
        let closed = s.discontinuity().expect("open segment closed");
        assert!(!closed.discontinuity);
        let segs = feed(&mut s, 200, 150, 30);
        assert!(segs[0].discontinuity);
        assert!(!segs[1].discontinuity);
        // New audio configuration: discontinuity again.
        let a48 = aac_config(48000, 2);
        assert!(s.push_config(&a48).is_some());
        let segs = feed(&mut s, 400, 90, 30);
        assert!(segs[0].discontinuity);
    }

    #[test]
    fn audio_only_streams_cut_by_time() {
        let mut s = seg();
        let (_, a) = config_frames();
        s.push_config(&a);
        let mut segs = Vec::new();
        for i in 0..(43 * 5) {
            segs.extend(s.push(&audio(i * 1024 * 1000 / 44100, 50), SystemTime::now()));
        }
        assert_eq!(segs.len(), 2);
        assert!(segs.iter().all(|x| (2000..2050).contains(&x.duration_ms)));
        let ps = packets(&segs[0].data);
        assert!(ps.iter().all(|p| p.0 != 0x100), "no video PID");
    }

    #[test]
    fn oversized_segment_is_dropped_not_grown() {
        let mut s = Segmenter::new(
            SegmenterConfig {
                target_ms: 2000,
                max_segment_bytes: 50_000,
            },
            0,
        );
        let (v, _) = config_frames();
        s.push_config(&v);
        let now = SystemTime::now();
        s.push(&video(0, 0, true, 1000), now);
        for i in 1..200 {
            s.push(&video(i * 33, 0, false, 1000), now);
        }
        assert!(s.finish().is_none(), "dropped once over the bound");
        s.push(&video(7000, 0, true, 100), now);
        assert!(s.finish().unwrap().discontinuity);
    }
}
