//! Where LL-HLS parts and segments close. Segments start at video keyframes once the
//! segment target is reached; parts close at the frame boundary nearest the part target;
//! a part is independent when it starts with a keyframe. Pure: frame times in, decisions
//! out, in whatever timescale the caller uses (milliseconds, 90 kHz, ...).
//!
//! A part is complete when the frame that closes it arrives: `on_frame` reports the close
//! for that frame, which itself opens the next part. In a stream with video, only video
//! frames close parts (audio joins the open part); in an audio-only stream audio does.

/// What the cutter needs of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    pub dts: u64,
    /// A video keyframe (ignored for audio: every audio frame is a sync sample).
    pub keyframe: bool,
    pub video: bool,
}

/// A part that just closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosedPart {
    pub msn: u64,
    /// Its index in its segment, from 0.
    pub index: u32,
    /// It starts with a keyframe (EXT-X-PART INDEPENDENT=YES).
    pub independent: bool,
    pub start_dts: u64,
    pub duration: u64,
    /// It is the last part of segment `msn`, which is complete now.
    pub ends_segment: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Before the first video keyframe: leave the frame out (a segment starts on one).
    Drop,
    /// The frame joins the open part.
    Append,
    /// The open part closed; the frame opens the next one (and, with `ends_segment`, the
    /// next segment).
    Close(ClosedPart),
}

#[derive(Debug, Clone, Copy)]
struct OpenPart {
    start: u64,
    independent: bool,
}

/// Cuts one stream's frames into parts and segments.
#[derive(Debug, Clone)]
pub struct Cutter {
    part_target: u64,
    segment_target: u64,
    has_video: bool,
    open: Option<OpenPart>,
    segment_start: u64,
    msn: u64,
    index: u32,
    /// DTS of the last frame of the driving track (video, or audio in an audio-only stream).
    last_dts: u64,
    /// The last step between two driving frames.
    interval: u64,
}

impl Cutter {
    /// Targets in the caller's timescale; `first_msn` numbers the first segment.
    pub fn new(part_target: u64, segment_target: u64, has_video: bool, first_msn: u64) -> Self {
        Self {
            part_target: part_target.max(1),
            segment_target: segment_target.max(part_target).max(1),
            has_video,
            open: None,
            segment_start: 0,
            msn: first_msn,
            index: 0,
            last_dts: 0,
            interval: 0,
        }
    }

    /// (msn, index) of the part being filled: what EXT-X-PRELOAD-HINT names. `None`
    /// before the first keyframe and after `finish`.
    pub fn open_part(&self) -> Option<(u64, u32)> {
        self.open.map(|_| (self.msn, self.index))
    }

    /// The msn the next segment will have (the one being built, while a part is open).
    pub fn next_msn(&self) -> u64 {
        self.msn
    }

    pub fn on_frame(&mut self, f: FrameInfo) -> Cut {
        let drives = f.video || !self.has_video;
        let sync = f.keyframe || !self.has_video;
        let Some(open) = self.open else {
            if !(drives && sync) {
                return Cut::Drop;
            }
            self.open = Some(OpenPart {
                start: f.dts,
                independent: true,
            });
            self.segment_start = f.dts;
            self.last_dts = f.dts;
            return Cut::Append;
        };
        if !drives {
            return Cut::Append;
        }
        self.interval = f.dts.saturating_sub(self.last_dts);
        self.last_dts = f.dts;
        // Close at the boundary nearest the target: when the frame is within half a frame
        // interval of it, or past it.
        let half = self.interval / 2;
        let in_part = f.dts.saturating_sub(open.start);
        let in_segment = f.dts.saturating_sub(self.segment_start);
        let part_full = in_part.saturating_add(half) >= self.part_target;
        let segment_full = in_segment.saturating_add(half) >= self.segment_target;
        // With video a keyframe past the target ends the segment wherever the part is (a
        // last, shorter part); audio-only segments end on a part boundary.
        let ends_segment = segment_full
            && if self.has_video {
                f.keyframe
            } else {
                part_full
            };
        if in_part == 0 || !(ends_segment || part_full) {
            return Cut::Append;
        }
        let closed = ClosedPart {
            msn: self.msn,
            index: self.index,
            independent: open.independent,
            start_dts: open.start,
            duration: in_part,
            ends_segment,
        };
        if ends_segment {
            self.msn = self.msn.saturating_add(1);
            self.index = 0;
            self.segment_start = f.dts;
        } else {
            self.index = self.index.saturating_add(1);
        }
        self.open = Some(OpenPart {
            start: f.dts,
            independent: sync,
        });
        Cut::Close(closed)
    }

    /// The publisher left: the open part closes (its last frame lasting as long as the one
    /// before it) and ends its segment. The next frame must be a keyframe again.
    pub fn finish(&mut self) -> Option<ClosedPart> {
        let open = self.open.take()?;
        let closed = ClosedPart {
            msn: self.msn,
            index: self.index,
            independent: open.independent,
            start_dts: open.start,
            duration: self
                .last_dts
                .saturating_add(self.interval)
                .saturating_sub(open.start)
                .max(1),
            ends_segment: true,
        };
        self.msn = self.msn.saturating_add(1);
        self.index = 0;
        self.interval = 0;
        Some(closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(dts: u64, keyframe: bool) -> FrameInfo {
        FrameInfo {
            dts,
            keyframe,
            video: true,
        }
    }

    fn audio(dts: u64) -> FrameInfo {
        FrameInfo {
            dts,
            keyframe: true,
            video: false,
        }
    }

    /// Feeds frames `k` at `dts(k)`, keyframe when `key(k)`; returns the closed parts.
    fn run(
        c: &mut Cutter,
        n: u64,
        dts: impl Fn(u64) -> u64,
        key: impl Fn(u64) -> bool,
    ) -> Vec<ClosedPart> {
        (0..n)
            .filter_map(|k| match c.on_frame(video(dts(k), key(k))) {
                Cut::Close(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    /// 30 fps in milliseconds, as RTMP timestamps have it: 0, 33, 67, 100, ...
    fn ms30(k: u64) -> u64 {
        (k * 1000 + 15) / 30
    }

    #[test]
    fn thirty_fps_one_second_gops() {
        let mut c = Cutter::new(200, 1000, true, 0);
        let parts = run(&mut c, 61, ms30, |k| k % 30 == 0);
        let got: Vec<(u64, u32, bool, u64, bool)> = parts
            .iter()
            .map(|p| (p.msn, p.index, p.independent, p.duration, p.ends_segment))
            .collect();
        let mut want = Vec::new();
        for msn in 0..2 {
            for i in 0..5 {
                want.push((msn, i, i == 0, 200, i == 4));
            }
        }
        assert_eq!(got, want);
        assert_eq!(parts[5].start_dts, 1000);
        // Frame 60 (2 s, a keyframe) opened segment 2's first part.
        assert_eq!(c.open_part(), Some((2, 0)));
    }

    #[test]
    fn long_gops_make_long_segments_and_parts_stay_near_the_target() {
        // 24 fps, a keyframe every 2 s, 1 s segment target: segments last the GOP.
        let mut c = Cutter::new(200, 1000, true, 7);
        let dts = |k: u64| (k * 1000 + 12) / 24;
        let parts = run(&mut c, 49, dts, |k| k % 48 == 0);
        assert!(parts.iter().all(|p| p.msn == 7));
        assert!(parts.last().unwrap().ends_segment);
        assert_eq!(parts.iter().map(|p| p.duration).sum::<u64>(), 2000);
        // 41.7 ms frames: every part but a segment's last is within half a frame of 200 ms.
        for p in parts.iter().filter(|p| !p.ends_segment) {
            assert!(p.duration.abs_diff(200) <= 21, "{p:?}");
        }
        assert_eq!(parts.iter().filter(|p| p.independent).count(), 1);
        assert_eq!(c.next_msn(), 8);
    }

    #[test]
    fn independent_only_when_a_part_starts_on_a_keyframe() {
        let mut c = Cutter::new(200, 1000, true, 0);
        // Extra keyframes at frame 12 (400 ms, a part boundary) and 14 (mid-part).
        let parts = run(&mut c, 31, ms30, |k| [0, 12, 14, 30].contains(&k));
        let flags: Vec<bool> = parts.iter().map(|p| p.independent).collect();
        assert_eq!(flags, vec![true, false, true, false, false]);
        // A keyframe before the segment target does not start a segment.
        assert_eq!(parts.iter().filter(|p| p.ends_segment).count(), 1);
    }

    #[test]
    fn frames_before_the_first_keyframe_are_dropped_and_audio_follows_video() {
        let mut c = Cutter::new(200, 1000, true, 0);
        assert_eq!(c.on_frame(video(0, false)), Cut::Drop);
        assert_eq!(c.on_frame(audio(10)), Cut::Drop);
        assert_eq!(c.open_part(), None);
        assert_eq!(c.on_frame(video(33, true)), Cut::Append);
        // Audio never closes a part in a stream with video, however late it is.
        assert_eq!(c.on_frame(audio(900)), Cut::Append);
        assert_eq!(c.on_frame(video(66, false)), Cut::Append);
        assert!(matches!(c.on_frame(video(233, false)), Cut::Close(p) if p.duration == 200));
    }

    #[test]
    fn audio_only_streams_cut_on_audio() {
        // AAC at 48 kHz in its own timescale: 1024-sample frames, 9600-tick parts.
        let mut c = Cutter::new(9_600, 48_000, false, 0);
        let mut parts = Vec::new();
        for k in 0..120u64 {
            if let Cut::Close(p) = c.on_frame(audio(k * 1024)) {
                parts.push(p);
            }
        }
        assert!(parts.iter().all(|p| p.independent));
        // No short parts: segments end on part boundaries, the first one past 1 s.
        assert!(
            parts.iter().all(|p| p.duration.abs_diff(9_600) <= 512),
            "{parts:?}"
        );
        let ends: Vec<u64> = parts
            .iter()
            .filter(|p| p.ends_segment)
            .map(|p| p.start_dts + p.duration)
            .collect();
        assert_eq!(ends, vec![6 * 9216, 12 * 9216]);
    }

    #[test]
    fn finish_closes_the_open_part_and_a_returning_publisher_starts_a_segment() {
        let mut c = Cutter::new(200, 1000, true, 0);
        let parts = run(&mut c, 10, ms30, |k| k == 0);
        assert_eq!(parts.len(), 1);
        // Frames 6..=9 (200..300 ms) are open; the last lasts one more interval.
        let last = c.finish().unwrap();
        assert_eq!((last.msn, last.index, last.ends_segment), (0, 1, true));
        assert_eq!((last.start_dts, last.duration), (200, 133));
        assert_eq!(c.finish(), None);
        assert_eq!(c.open_part(), None);
        assert_eq!(c.on_frame(video(5000, false)), Cut::Drop);
        assert_eq!(c.on_frame(video(5033, true)), Cut::Append);
        assert_eq!(c.open_part(), Some((1, 0)));
    }

    #[test]
    fn odd_timestamps_never_panic_or_make_empty_parts() {
        let mut c = Cutter::new(200, 1000, true, 0);
        c.on_frame(video(1000, true));
        // Repeated and backwards DTS: no part of zero length, no panic.
        for dts in [1000, 1000, 400, 0, u64::MAX, 5] {
            if let Cut::Close(p) = c.on_frame(video(dts, true)) {
                assert!(p.duration > 0, "{p:?}");
            }
        }
        let _ = c.finish();
        let mut z = Cutter::new(0, 0, false, u64::MAX - 1);
        z.on_frame(audio(0));
        assert!(matches!(z.on_frame(audio(1)), Cut::Close(_)));
    }
}
