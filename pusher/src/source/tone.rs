//! The default audio source: a continuous 1 kHz tone at -20 dBFS, and each second a
//! 100 ms beep at 2 kHz at -6 dBFS, so a listener (or a test) hears time passing. Pure:
//! sample `k` depends on `k` only; pacing is the caller's.

use std::f64::consts::TAU;

pub struct Tone {
    sample_rate: u32,
    channels: u8,
    next: u64,
}

impl Tone {
    pub fn new(sample_rate: u32, channels: u8) -> Self {
        Self {
            sample_rate,
            channels: channels.max(1),
            next: 0,
        }
    }

    /// Mono sample `k`.
    pub fn sample(&self, k: u64) -> i16 {
        let rate = self.sample_rate.max(1) as u64;
        let in_second = k % rate;
        let t = in_second as f64 / rate as f64;
        let mut v = 0.1 * (TAU * 1000.0 * t).sin();
        if in_second < rate / 10 {
            v += 0.5 * (TAU * 2000.0 * t).sin();
        }
        (v * 32767.0).round().clamp(-32768.0, 32767.0) as i16
    }

    /// The next `frames` sample frames, interleaved over the channels.
    pub fn next_block(&mut self, frames: usize) -> Vec<i16> {
        let mut out = Vec::with_capacity(frames * self.channels as usize);
        for k in self.next..self.next + frames as u64 {
            let s = self.sample(k);
            for _ in 0..self.channels {
                out.push(s);
            }
        }
        self.next += frames as u64;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beep_at_the_start_of_each_second() {
        let mut t = Tone::new(48_000, 2);
        let block = t.next_block(48_000);
        assert_eq!(block.len(), 96_000);
        let peak = |s: &[i16]| s.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
        let beep = peak(&block[..9_000]);
        let quiet = peak(&block[20_000..]);
        assert!(beep > 15_000, "beep peak {beep}");
        assert!((3_000..3_500).contains(&quiet), "tone peak {quiet}");
        // Stereo channels are identical.
        assert_eq!(block[100], block[101]);
    }
}
