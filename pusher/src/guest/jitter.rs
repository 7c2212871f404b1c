//! The guest's audio jitter buffer: decoded PCM in, fixed 10 ms blocks out, bounded.
//! Policy: playback starts once `target` ms are buffered (prebuffering absorbs network
//! jitter); above `max` ms the oldest audio is dropped back down to `target` (latency never
//! grows without bound, at the cost of a skip); when it runs dry the missing part is
//! silence and it prebuffers again. The fade in/out at the mixer hides both edges.
//! Pure: no clock and no lock here; the caller says when to pull.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct JitterBuffer {
    samples: VecDeque<i16>,
    channels: usize,
    rate: u32,
    target_frames: usize,
    max_frames: usize,
    playing: bool,
    /// Sample frames dropped because the buffer was over `max`.
    pub dropped_frames: u64,
    /// Times the buffer ran dry while playing.
    pub underruns: u64,
}

impl JitterBuffer {
    pub fn new(rate: u32, channels: u8, target_ms: u32, max_ms: u32) -> Self {
        let frames = |ms: u32| (rate as u64 * ms as u64 / 1000) as usize;
        let max_frames = frames(max_ms.max(target_ms + 10));
        Self {
            samples: VecDeque::with_capacity(max_frames * channels as usize),
            channels: channels.max(1) as usize,
            rate,
            target_frames: frames(target_ms),
            max_frames,
            playing: false,
            dropped_frames: 0,
            underruns: 0,
        }
    }

    /// Appends interleaved samples (of this buffer's rate and channels).
    pub fn push(&mut self, samples: &[i16]) {
        self.samples.extend(samples);
        if self.frames() > self.max_frames {
            let drop = (self.frames() - self.target_frames) * self.channels;
            self.samples.drain(..drop);
            self.dropped_frames += (drop / self.channels) as u64;
        }
    }

    /// Fills `out` (interleaved); returns how many sample frames of it are real audio (the
    /// rest is silence: prebuffering or a dry buffer).
    pub fn pull(&mut self, out: &mut [i16]) -> usize {
        let want = out.len() / self.channels;
        if !self.playing && self.frames() >= self.target_frames.max(want) {
            self.playing = true;
        }
        if !self.playing {
            out.fill(0);
            return 0;
        }
        let have = self.frames().min(want);
        for (o, s) in out
            .iter_mut()
            .zip(self.samples.drain(..have * self.channels))
        {
            *o = s;
        }
        out[have * self.channels..].fill(0);
        if have < want {
            self.playing = false;
            self.underruns += 1;
        }
        have
    }

    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels
    }

    /// Audio buffered, in ms: the delay the buffer adds now.
    pub fn depth_ms(&self) -> u64 {
        self.frames() as u64 * 1000 / self.rate.max(1) as u64
    }

    /// Forgets everything (the guest went away).
    pub fn clear(&mut self) {
        self.samples.clear();
        self.playing = false;
    }
}

/// A linear fade, from silence to full level (and back) over `fade_ms`: the guest's audio
/// fades in when it arrives and out when it stops, instead of clicking.
#[derive(Debug, Clone)]
pub struct Fade {
    gain: f32,
    step_per_frame: f32,
}

impl Fade {
    pub fn new(rate: u32, fade_ms: u32) -> Self {
        Self {
            gain: 0.0,
            step_per_frame: 1000.0 / (rate.max(1) as f32 * fade_ms.max(1) as f32),
        }
    }

    pub fn gain(&self) -> f32 {
        self.gain
    }

    /// Mixes `guest` into `host` (both interleaved with `channels`), the gain moving toward
    /// 1 over the first `real` frames and toward 0 over the rest.
    pub fn mix(&mut self, host: &mut [i16], guest: &[i16], channels: usize, real: usize) {
        let ch = channels.max(1);
        for (i, (h, g)) in host.chunks_mut(ch).zip(guest.chunks(ch)).enumerate() {
            let target = if i < real { 1.0 } else { 0.0 };
            if self.gain < target {
                self.gain = (self.gain + self.step_per_frame).min(1.0);
            } else if self.gain > target {
                self.gain = (self.gain - self.step_per_frame).max(0.0);
            }
            for (hs, gs) in h.iter_mut().zip(g) {
                let v = *hs as f32 + *gs as f32 * self.gain;
                *hs = v.clamp(i16::MIN as f32, i16::MAX as f32) as i16;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prebuffers_then_plays_then_refills_after_running_dry() {
        let mut j = JitterBuffer::new(1000, 1, 30, 100);
        let mut out = [0i16; 10];
        j.push(&[7; 20]);
        assert_eq!(
            j.pull(&mut out),
            0,
            "20 ms < 30 ms target: still prebuffering"
        );
        j.push(&[7; 20]);
        assert_eq!(j.pull(&mut out), 10);
        assert_eq!(out, [7; 10]);
        assert_eq!(j.depth_ms(), 30);
        assert_eq!(j.pull(&mut out), 10);
        assert_eq!(j.pull(&mut out), 10);
        assert_eq!(j.pull(&mut out), 10);
        j.push(&[5; 4]);
        assert_eq!(j.pull(&mut out), 4, "4 ms left, then dry");
        assert_eq!(out[..5], [5, 5, 5, 5, 0]);
        assert_eq!(j.pull(&mut out), 0, "prebuffering again");
        assert_eq!(j.underruns, 1);
        assert_eq!(out, [0; 10]);
        j.push(&[3; 40]);
        assert_eq!(
            j.pull(&mut out),
            10,
            "playing after the target is buffered again"
        );
    }

    #[test]
    fn over_the_maximum_the_oldest_is_dropped_down_to_the_target() {
        let mut j = JitterBuffer::new(1000, 2, 30, 100);
        let ramp: Vec<i16> = (0..240).collect(); // 120 frames = 120 ms of stereo
        j.push(&ramp);
        assert_eq!(j.frames(), 30);
        assert_eq!(j.dropped_frames, 90);
        let mut out = [0i16; 4];
        j.pull(&mut out);
        assert_eq!(out, [180, 181, 182, 183], "the newest audio is kept");
    }

    #[test]
    fn fade_ramps_in_and_out_over_its_length() {
        let mut f = Fade::new(1000, 10);
        let mut host = [0i16; 20];
        f.mix(&mut host, &[1000; 20], 1, 20);
        assert_eq!(host[0], 100);
        assert_eq!(host[9], 1000);
        assert_eq!(host[19], 1000);
        let mut host = [0i16; 20];
        f.mix(&mut host, &[1000; 20], 1, 0);
        assert_eq!(host[0], 900);
        assert_eq!(host[9], 0);
        assert!((f.gain() - 0.0).abs() < 1e-6);
    }
}
