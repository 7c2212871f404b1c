//! Noise suppression with nnnoiseless (RNNoise in Rust): 480-sample frames at 48 kHz per
//! channel. Streaming: output has the input's length, delayed by one 10 ms frame.

use std::collections::VecDeque;

use nnnoiseless::DenoiseState;

pub const FRAME: usize = DenoiseState::FRAME_SIZE;

pub struct Denoiser {
    channels: usize,
    states: Vec<Box<DenoiseState<'static>>>,
    /// Input not yet processed, per channel.
    pending: Vec<Vec<f32>>,
    /// Processed interleaved samples not yet returned (starts with one frame of silence).
    out: VecDeque<i16>,
}

impl Denoiser {
    pub fn new(channels: u8) -> Self {
        let channels = channels.max(1) as usize;
        Self {
            channels,
            states: (0..channels).map(|_| DenoiseState::new()).collect(),
            pending: vec![Vec::with_capacity(FRAME); channels],
            out: std::iter::repeat_n(0, FRAME * channels).collect(),
        }
    }

    /// Denoises interleaved samples; returns as many samples as it was given.
    pub fn process(&mut self, input: &[i16]) -> Vec<i16> {
        let ch = self.channels;
        let mut frame_out = vec![[0f32; FRAME]; ch];
        for chunk in input.chunks_exact(ch) {
            for (c, &s) in chunk.iter().enumerate() {
                self.pending[c].push(s as f32);
            }
            if self.pending[0].len() == FRAME {
                for ((state, out), pending) in self
                    .states
                    .iter_mut()
                    .zip(frame_out.iter_mut())
                    .zip(self.pending.iter_mut())
                {
                    state.process_frame(out, pending);
                    pending.clear();
                }
                for i in 0..FRAME {
                    for fo in frame_out.iter() {
                        self.out
                            .push_back(fo[i].round().clamp(-32768.0, 32767.0) as i16);
                    }
                }
            }
        }
        let n = input.len().min(self.out.len());
        self.out.drain(..n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::audio::tone_power;

    /// A small deterministic noise generator (xorshift).
    fn noise(n: usize, amp: f64) -> Vec<f64> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * amp
            })
            .collect()
    }

    fn noise_floor(s: &[i16]) -> f64 {
        // Mean power at frequencies away from the 1 kHz tone.
        let freqs = [2_700.0, 4_300.0, 6_100.0, 8_900.0, 12_500.0];
        freqs.iter().map(|&f| tone_power(s, 48_000, f)).sum::<f64>() / freqs.len() as f64
    }

    #[test]
    fn lowers_the_noise_floor_of_a_noisy_tone() {
        let n = 48_000 * 3;
        let nz = noise(n, 3000.0);
        let input: Vec<i16> = (0..n)
            .map(|k| {
                let t = k as f64 / 48_000.0;
                (6000.0 * (std::f64::consts::TAU * 1000.0 * t).sin() + nz[k]) as i16
            })
            .collect();
        let mut d = Denoiser::new(1);
        let mut out = Vec::new();
        for block in input.chunks(441) {
            out.extend(d.process(block));
        }
        assert_eq!(out.len(), input.len());
        // Judge the last two seconds, after the model has settled.
        let (a, b) = (&input[48_000..], &out[48_000..]);
        let (before, after) = (noise_floor(a), noise_floor(b));
        let gain_db = 10.0 * (after / before).log10();
        assert!(gain_db < -6.0, "noise floor moved by {gain_db:.1} dB");
    }
}
