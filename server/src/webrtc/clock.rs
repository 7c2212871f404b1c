//! Media times to RTP times, pure: the start burst's squeeze, each viewer's RTP
//! timestamps and sender-report wallclock, and the Opus transcode's sample positions.
//! Nothing here reads a clock; callers pass `Instant`s in.
//!
//! Why squeeze the start burst: a new viewer gets the GOP cache at once (the decoder
//! needs every frame since the keyframe). Sent with their own timestamps, the browser's
//! jitter buffer would play those frames at their original pace, so the viewer would
//! sit the age of the cache behind live for good. Squeezed 1 ms apart and ending at
//! the newest cached frame, they decode in a flash and live frames follow on time.

use std::time::{Duration, Instant};

/// Spacing of squeezed start frames.
pub const SQUEEZE_STEP_MS: i64 = 1;

/// Output times (ms) for the start burst's video presentation times: same order, 1 ms
/// apart, the newest one unchanged, so live frames continue right after it.
pub fn squeeze(pts: &[i64]) -> Vec<i64> {
    let Some(&newest) = pts.iter().max() else {
        return Vec::new();
    };
    let mut order: Vec<usize> = (0..pts.len()).collect();
    order.sort_by_key(|&i| (pts[i], i));
    let n = pts.len() as i64;
    let mut out = vec![0; pts.len()];
    for (rank, &i) in order.iter().enumerate() {
        out[i] = newest - (n - 1 - rank as i64) * SQUEEZE_STEP_MS;
    }
    out
}

/// One viewer's mapping of output media time to RTP timestamps (random bases, as RFC
/// 3550 asks) and to the wallclock str0m puts in sender reports. Audio and video share
/// one anchor, so the browser's lip sync lines them up as they were published.
#[derive(Debug, Clone)]
pub struct ViewerClock {
    video_base: u32,
    audio_base: u32,
    anchor: Option<(Instant, i64)>,
}

impl ViewerClock {
    pub fn new(video_base: u32, audio_base: u32) -> Self {
        Self {
            video_base,
            audio_base,
            anchor: None,
        }
    }

    /// 90 kHz RTP time of a video frame shown at `out_ms`.
    pub fn video_rtp(&self, out_ms: i64) -> u32 {
        self.video_base.wrapping_add((out_ms * 90) as u32)
    }

    /// 48 kHz RTP time of an audio packet starting at sample `pos48`.
    pub fn audio_rtp(&self, pos48: u64) -> u32 {
        self.audio_base.wrapping_add(pos48 as u32)
    }

    /// The wallclock of media time `out_ms`; the first call fixes the mapping at `now`.
    pub fn wallclock(&mut self, out_ms: i64, now: Instant) -> Instant {
        let (at, ms) = *self.anchor.get_or_insert((now, out_ms));
        let d = out_ms - ms;
        if d >= 0 {
            at + Duration::from_millis(d as u64)
        } else {
            at.checked_sub(Duration::from_millis(d.unsigned_abs()))
                .unwrap_or(at)
        }
    }
}

/// 48 kHz sample positions per Opus frame (20 ms).
pub const OPUS_FRAME: u64 = 960;

/// Where the transcode puts decoded audio on the 48 kHz output timeline. The output
/// counts samples, so Opus timestamps run gap-free; it follows the input's timestamps
/// only when they stray more than one Opus frame from the count: forward (a gap, e.g.
/// a publisher that left and came back later) it jumps ahead, backward (input running
/// behind the output) it drops input until they meet. So audio stays within one Opus
/// frame (20 ms, under one video frame) of the video timeline, and a publisher's return,
/// which the hub puts just after the last frame, continues the count.
#[derive(Debug, Clone, Default)]
pub struct AudioTimeline {
    next: Option<u64>,
}

/// What to do with one chunk of decoded audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Append at this position (the running count, or the first chunk's time).
    At(u64),
    /// The input jumped ahead: finish the current Opus frame, restart at this position.
    JumpTo(u64),
    /// The input is behind the output by more than a frame: drop this chunk.
    Drop,
}

impl AudioTimeline {
    /// Places a chunk of `samples48` output samples whose input timestamp is `dts_ms`.
    pub fn place(&mut self, dts_ms: u64, samples48: u64) -> Placement {
        let target = dts_ms * 48;
        let placement = match self.next {
            None => Placement::At(target),
            Some(next) if target > next + OPUS_FRAME => Placement::JumpTo(target),
            Some(next) if target + OPUS_FRAME < next => return Placement::Drop,
            Some(next) => Placement::At(next),
        };
        let (Placement::At(p) | Placement::JumpTo(p)) = placement else {
            unreachable!("Drop returned above")
        };
        self.next = Some(p + samples48);
        placement
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeeze_keeps_order_and_ends_at_the_newest_frame() {
        // A 2 s GOP at 30 fps.
        let pts: Vec<i64> = (0..60).map(|i| 10_000 + i * 33).collect();
        let out = squeeze(&pts);
        assert_eq!(*out.last().unwrap(), 10_000 + 59 * 33);
        assert_eq!(out[0], 10_000 + 59 * 33 - 59);
        assert!(out.windows(2).all(|w| w[1] - w[0] == 1));
        // B-frame order (presentation out of decode order) is kept.
        let out = squeeze(&[0, 100, 33, 66]);
        assert_eq!(out, vec![97, 100, 98, 99]);
        assert!(squeeze(&[]).is_empty());
    }

    #[test]
    fn audio_and_video_share_one_wallclock_mapping() {
        let t0 = Instant::now();
        let mut c = ViewerClock::new(u32::MAX - 10, 5);
        assert_eq!(c.wallclock(2_000, t0), t0);
        assert_eq!(
            c.wallclock(2_040, t0 + Duration::from_secs(9)),
            t0 + Duration::from_millis(40)
        );
        assert_eq!(c.wallclock(1_990, t0), t0 - Duration::from_millis(10));
        // RTP times wrap instead of overflowing.
        assert_eq!(c.video_rtp(1), 79);
        assert_eq!(c.audio_rtp(48), 53);
    }

    /// AAC at 44.1 kHz: 1024 samples per frame, dts rounded to ms as RTMP carries them.
    fn aac_dts(first_ms: u64, n: u64) -> Vec<u64> {
        (0..n)
            .map(|i| first_ms + i * 1024 * 1000 / 44_100)
            .collect()
    }

    const AAC_OUT: u64 = 1024 * 48_000 / 44_100;

    #[test]
    fn positions_count_samples_and_stay_within_a_frame_of_the_timestamps() {
        let mut t = AudioTimeline::default();
        let mut last = None;
        for dts in aac_dts(5_000, 500) {
            let Placement::At(p) = t.place(dts, AAC_OUT) else {
                panic!("continuous input placed as {:?}", t.place(dts, AAC_OUT));
            };
            if let Some(l) = last {
                assert_eq!(p, l + AAC_OUT, "gap-free");
            }
            assert!(p.abs_diff(dts * 48) <= OPUS_FRAME, "in sync at {dts} ms");
            last = Some(p);
        }
    }

    #[test]
    fn a_publishers_return_continues_the_count() {
        let mut t = AudioTimeline::default();
        let first = aac_dts(0, 100);
        let mut end = 0;
        for &d in &first {
            let Placement::At(p) = t.place(d, AAC_OUT) else {
                panic!()
            };
            end = p + AAC_OUT;
        }
        // The hub continues the timeline 33 ms after the last frame on a return.
        let back = aac_dts(first.last().unwrap() + 33, 50);
        let p = t.place(back[0], AAC_OUT);
        assert_eq!(p, Placement::At(end), "continues with no jump");
        let mut pos = end;
        for &d in &back[1..] {
            pos += AAC_OUT;
            assert_eq!(t.place(d, AAC_OUT), Placement::At(pos));
            assert!(
                pos.abs_diff(d * 48) <= OPUS_FRAME,
                "still in sync with video"
            );
        }
    }

    #[test]
    fn jumps_ahead_on_a_gap_and_drops_input_that_runs_behind() {
        let mut t = AudioTimeline::default();
        assert_eq!(t.place(1_000, 960), Placement::At(48_000));
        assert_eq!(t.place(3_000, 960), Placement::JumpTo(144_000));
        // Input 100 ms behind the count is dropped, not stacked on top.
        assert_eq!(t.place(2_900, 960), Placement::Drop);
        assert_eq!(t.place(3_020, 960), Placement::At(144_960));
    }
}
