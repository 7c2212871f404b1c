//! Ingest timestamp normalization: RTMP timestamps wrap (24-bit encoders at 4.66 h,
//! 32-bit at 49.7 days), jump, and sometimes go backwards. They are made monotonic
//! once, here, on a 64-bit millisecond timeline shared by audio and video, so that
//! no output has to care. Pure: the caller passes every input; no clock is read.

use crate::frame::MediaKind;

/// A jump larger than this (either way) is a discontinuity, not real time passing.
pub const DEFAULT_MAX_JUMP_MS: u32 = 10_000;
/// Step used in place of a jump: about one video frame.
const STEP_AFTER_JUMP_MS: u64 = 33;

/// Maps raw 32-bit wire timestamps onto one monotonic 64-bit timeline per stream.
#[derive(Debug, Clone)]
pub struct Timeline {
    max_jump_ms: u32,
    /// Last raw timestamp seen (any track) and the timeline value it mapped to.
    last_raw: Option<u32>,
    last_out: u64,
    /// Last output per track, to keep each track non-decreasing.
    last_audio: Option<u64>,
    last_video: Option<u64>,
    rebase_pending: bool,
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_JUMP_MS)
    }
}

impl Timeline {
    pub fn new(max_jump_ms: u32) -> Self {
        Self {
            max_jump_ms,
            last_raw: None,
            last_out: 0,
            last_audio: None,
            last_video: None,
            rebase_pending: false,
        }
    }

    /// A new publisher takes over the stream: its first timestamp continues the
    /// timeline just after the last one, whatever its raw value.
    pub fn rebase(&mut self) {
        self.rebase_pending = true;
    }

    /// Maps one raw timestamp. Returns the normalized decode time in ms.
    pub fn map(&mut self, kind: MediaKind, raw: u32) -> u64 {
        let out = match self.last_raw {
            None => 0,
            Some(_) if self.rebase_pending => self.last_out + STEP_AFTER_JUMP_MS,
            Some(prev) => {
                // Signed distance on the 32-bit circle handles the 49.7-day wrap.
                let delta = raw.wrapping_sub(prev) as i32 as i64;
                if delta.unsigned_abs() > self.max_jump_ms as u64 {
                    self.last_out + STEP_AFTER_JUMP_MS
                } else {
                    (self.last_out as i64 + delta).max(0) as u64
                }
            }
        };
        self.rebase_pending = false;
        self.last_raw = Some(raw);
        self.last_out = out;
        let track = match kind {
            MediaKind::Audio => &mut self.last_audio,
            MediaKind::Video => &mut self.last_video,
            MediaKind::Data => return out,
        };
        // Small backward steps within a track (reordered sends) are clamped, not passed on.
        let out = track.map_or(out, |t| out.max(t));
        *track = Some(out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MediaKind::*;

    #[test]
    fn starts_at_zero_and_keeps_deltas() {
        let mut t = Timeline::default();
        assert_eq!(t.map(Video, 5000), 0);
        assert_eq!(t.map(Audio, 5023), 23);
        assert_eq!(t.map(Video, 5033), 33);
    }

    #[test]
    fn crosses_the_32_bit_wrap() {
        let mut t = Timeline::default();
        t.map(Video, u32::MAX - 20);
        assert_eq!(t.map(Video, u32::MAX), 20);
        assert_eq!(t.map(Video, 12), 33);
    }

    #[test]
    fn a_24_bit_wrap_is_a_jump_replaced_by_one_step() {
        let mut t = Timeline::default();
        t.map(Video, 0xff_ffe0);
        let before = t.map(Video, 0xff_fff0);
        assert_eq!(t.map(Video, 0x10), before + 33);
        assert_eq!(t.map(Video, 0x30), before + 33 + 0x20);
    }

    #[test]
    fn tracks_never_go_backwards() {
        let mut t = Timeline::default();
        t.map(Video, 1000);
        t.map(Audio, 1100);
        assert_eq!(t.map(Audio, 1050), 100);
        assert_eq!(t.map(Video, 990), 0);
    }

    #[test]
    fn rebase_continues_after_last() {
        let mut t = Timeline::default();
        t.map(Video, 100);
        t.map(Video, 5100);
        t.rebase();
        assert_eq!(t.map(Video, 0), 5033);
        assert_eq!(t.map(Audio, 20), 5053);
    }
}
