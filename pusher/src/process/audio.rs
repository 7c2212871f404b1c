//! Audio processing on interleaved 16-bit PCM: gain in dB, channel up/down-mixing, a
//! streaming linear resampler, and a mixer that loops a second signal into the first.
//! Pure: samples in, samples out; saturating, never wrapping.

/// Linear factor of a gain in dB.
pub fn db_to_factor(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

/// Multiplies every sample by the gain, saturating at full scale.
pub fn apply_gain(samples: &mut [i16], db: f32) {
    let f = db_to_factor(db);
    for s in samples {
        *s = (*s as f32 * f).round().clamp(-32768.0, 32767.0) as i16;
    }
}

/// Root mean square of the samples (0 for none).
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| (s as f64) * (s as f64)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Power of one frequency in mono samples (Goertzel), normalized by length: a tone of
/// amplitude A gives about A²/4.
pub fn tone_power(samples: &[i16], sample_rate: u32, freq: f64) -> f64 {
    let n = samples.len();
    if n == 0 {
        return 0.0;
    }
    let w = std::f64::consts::TAU * freq / sample_rate as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (n as f64 * n as f64)
}

/// Converts between mono and stereo (stereo to mono averages; mono to stereo duplicates).
pub fn remix(samples: &[i16], from: u8, to: u8) -> Vec<i16> {
    match (from, to) {
        (1, 2) => samples.iter().flat_map(|&s| [s, s]).collect(),
        (2, 1) => samples
            .chunks_exact(2)
            .map(|c| ((c[0] as i32 + c[1] as i32) / 2) as i16)
            .collect(),
        _ => samples.to_vec(),
    }
}

/// Streaming linear-interpolation resampler for interleaved audio.
pub struct Resampler {
    from: u32,
    to: u32,
    channels: usize,
    /// Position of the next output frame in input frames, relative to the current block;
    /// -1..0 means between the previous block's last frame and this block's first.
    pos: f64,
    prev: Vec<i16>,
}

impl Resampler {
    pub fn new(from: u32, to: u32, channels: u8) -> Self {
        let channels = channels.max(1) as usize;
        Self {
            from,
            to,
            channels,
            pos: 0.0,
            prev: vec![0; channels],
        }
    }

    pub fn process(&mut self, input: &[i16]) -> Vec<i16> {
        if self.from == self.to {
            return input.to_vec();
        }
        let ch = self.channels;
        let n = input.len() / ch;
        if n == 0 {
            return Vec::new();
        }
        let step = self.from as f64 / self.to as f64;
        let get = |i: isize, c: usize| -> f64 {
            if i < 0 {
                self.prev[c] as f64
            } else {
                input[i as usize * ch + c] as f64
            }
        };
        let mut out = Vec::with_capacity((n as f64 / step) as usize * ch + ch);
        while self.pos <= (n - 1) as f64 {
            let i0 = self.pos.floor() as isize;
            let frac = self.pos - i0 as f64;
            for c in 0..ch {
                let a = get(i0, c);
                let b = if frac > 0.0 { get(i0 + 1, c) } else { a };
                out.push((a + (b - a) * frac).round() as i16);
            }
            self.pos += step;
        }
        self.pos -= n as f64;
        self.prev.copy_from_slice(&input[(n - 1) * ch..n * ch]);
        out
    }
}

/// Loops a second signal (already in the output's rate and channels) into the stream.
pub struct LoopMixer {
    signal: Vec<i16>,
    pos: usize,
}

impl LoopMixer {
    pub fn new(signal: Vec<i16>) -> Self {
        Self { signal, pos: 0 }
    }

    /// Adds the next samples of the looped signal to `out`, saturating.
    pub fn mix_into(&mut self, out: &mut [i16]) {
        if self.signal.is_empty() {
            return;
        }
        for s in out {
            *s = s.saturating_add(self.signal[self.pos]);
            self.pos = (self.pos + 1) % self.signal.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f64, amp: f64, frames: usize) -> Vec<i16> {
        (0..frames)
            .map(|k| (amp * (std::f64::consts::TAU * freq * k as f64 / rate as f64).sin()) as i16)
            .collect()
    }

    fn db(a: f64, b: f64) -> f64 {
        20.0 * (b / a).log10()
    }

    #[test]
    fn gain_changes_rms_by_the_asked_db() {
        let base = sine(48_000, 1000.0, 8000.0, 48_000);
        for asked in [-12.0f32, -6.0, 3.0, 6.0] {
            let mut s = base.clone();
            apply_gain(&mut s, asked);
            let got = db(rms(&base), rms(&s));
            assert!(
                (got - asked as f64).abs() < 0.05,
                "asked {asked} dB, got {got:.3}"
            );
        }
        // Saturates instead of wrapping.
        let mut loud = vec![30_000i16, -30_000];
        apply_gain(&mut loud, 12.0);
        assert_eq!(loud, vec![32767, -32768]);
    }

    #[test]
    fn mixing_adds_the_second_signal() {
        let rate = 48_000;
        let tone = sine(rate, 1000.0, 6000.0, 48_000);
        let other = sine(rate, 440.0, 6000.0, 4_800); // 100 ms, looped ten times
        let mut mixed = tone.clone();
        LoopMixer::new(other).mix_into(&mut mixed);
        let p = |s: &[i16], f| tone_power(s, rate, f);
        assert!(p(&tone, 440.0) < 1_000.0);
        assert!(
            p(&mixed, 440.0) > 5_000_000.0,
            "440 Hz power {}",
            p(&mixed, 440.0)
        );
        // The first signal is still there, unchanged in power.
        let ratio = p(&mixed, 1000.0) / p(&tone, 1000.0);
        assert!((0.95..1.05).contains(&ratio), "1 kHz ratio {ratio}");
        // And the sum is exactly sample-wise.
        assert_eq!(
            mixed[4_801],
            tone[4_801].saturating_add(sine(rate, 440.0, 6000.0, 2)[1])
        );
    }

    #[test]
    fn remix_and_resample() {
        assert_eq!(remix(&[1, 2], 1, 2), vec![1, 1, 2, 2]);
        assert_eq!(remix(&[10, 20, -4, 4], 2, 1), vec![15, 0]);
        // 44.1 -> 48 kHz keeps the tone and the duration, across block boundaries.
        let input = sine(44_100, 1000.0, 10_000.0, 44_100);
        let mut r = Resampler::new(44_100, 48_000, 1);
        let mut out = Vec::new();
        for block in input.chunks(441) {
            out.extend(r.process(block));
        }
        assert!(
            (out.len() as i64 - 48_000).abs() <= 2,
            "{} frames",
            out.len()
        );
        let expected = sine(48_000, 1000.0, 10_000.0, out.len());
        let err = out
            .iter()
            .zip(&expected)
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .max();
        assert!(err.unwrap_or(0) < 400, "max error {err:?}");
    }
}
