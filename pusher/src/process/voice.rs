//! Voice effects on the host's voice (`--voice`): an echo (one feedback delay), a reverb
//! (Schroeder/Freeverb's structure: parallel feedback combs, then series allpasses) and a
//! pitch shift (two read heads sweeping a delay line, crossfaded). Each is set by what a
//! streamer hears: the echo's and the reverb's decay time (to 60 dB down), the pitch's
//! semitones. Pure: interleaved 16-bit samples in and out, state kept between calls, no
//! allocation after construction.
//!
//! Written here rather than taken from a crate: these are a few dozen lines each, and the
//! Rust DSP crates that have them (fundsp, for one) bring a whole synthesis graph for it.

use std::str::FromStr;

use crate::PushError;

/// One `--voice` effect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VoiceEffect {
    /// Repeats every `delay_ms`, the last above 60 dB below the voice at `decay_ms`.
    Echo { delay_ms: u32, decay_ms: u32 },
    /// A room whose sound takes `decay_ms` to fall by 60 dB.
    Reverb { decay_ms: u32 },
    /// Every frequency times 2^(semitones/12).
    Pitch { semitones: f32 },
}

impl FromStr for VoiceEffect {
    type Err = PushError;

    /// `echo[:DELAY_MS[:DECAY_MS]]`, `reverb[:DECAY_MS]`, `pitch:SEMITONES`.
    fn from_str(s: &str) -> Result<Self, PushError> {
        let bad = |why: &str| PushError::bad("--voice", format!("{s:?}: {why}"));
        let mut parts = s.split(':');
        let kind = parts.next().unwrap_or_default();
        let num = |p: Option<&str>, default: Option<f32>| -> Result<f32, PushError> {
            match p {
                Some(v) => v.parse().map_err(|_| bad("not a number")),
                None => default.ok_or_else(|| bad("needs a value")),
            }
        };
        let effect = match kind {
            "echo" => {
                let delay = num(parts.next(), Some(250.0))?;
                let decay = num(parts.next(), Some(1500.0))?;
                if !(20.0..=2000.0).contains(&delay) || decay < 2.0 * delay || decay > 10_000.0 {
                    return Err(bad("echo:DELAY_MS:DECAY_MS needs 20-2000 ms of delay and a decay of two delays or more, up to 10 s"));
                }
                VoiceEffect::Echo {
                    delay_ms: delay as u32,
                    decay_ms: decay as u32,
                }
            }
            "reverb" => {
                let decay = num(parts.next(), Some(1200.0))?;
                if !(100.0..=10_000.0).contains(&decay) {
                    return Err(bad("reverb:DECAY_MS needs 100 ms to 10 s"));
                }
                VoiceEffect::Reverb {
                    decay_ms: decay as u32,
                }
            }
            "pitch" => {
                let semitones = num(parts.next(), None)?;
                if !(-12.0..=12.0).contains(&semitones) {
                    return Err(bad("pitch:SEMITONES needs -12 to 12"));
                }
                VoiceEffect::Pitch { semitones }
            }
            _ => return Err(bad("expected echo, reverb or pitch:SEMITONES")),
        };
        if parts.next().is_some() {
            return Err(bad("too many values"));
        }
        Ok(effect)
    }
}

/// Level, relative to the voice, below which the echo and the reverb count as gone.
const DECAYED: f32 = 1e-3; // -60 dB
/// How loud the first echo is against the voice.
const ECHO_LEVEL: f32 = 0.6;
/// Freeverb's comb and allpass lengths, in samples at 44.1 kHz.
const COMBS: [usize; 8] = [1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617];
const ALLPASSES: [usize; 4] = [556, 441, 341, 225];
const ALLPASS_GAIN: f32 = 0.5;
/// Reverberant sound mixed to the dry voice.
const REVERB_WET: f32 = 0.35;
/// Pitch shifter's window: long enough for low voices, short enough not to smear.
const PITCH_WINDOW_MS: f32 = 40.0;

/// A delay line of one channel.
struct Line {
    buf: Vec<f32>,
    pos: usize,
}

impl Line {
    fn new(len: usize) -> Self {
        Self {
            buf: vec![0.0; len.max(1)],
            pos: 0,
        }
    }

    /// The sample written `len` samples ago.
    fn oldest(&self) -> f32 {
        self.buf[self.pos]
    }

    fn push(&mut self, x: f32) {
        self.buf[self.pos] = x;
        self.pos = (self.pos + 1) % self.buf.len();
    }

    /// The sample written `delay` samples ago (1 = the last one), linearly interpolated.
    fn at(&self, delay: f32) -> f32 {
        let n = self.buf.len();
        let d = delay.clamp(1.0, (n - 1) as f32);
        let whole = d.floor() as usize;
        let frac = d - whole as f32;
        let a = self.buf[(self.pos + n - whole) % n];
        let b = self.buf[(self.pos + n - whole - 1) % n];
        a + (b - a) * frac
    }
}

enum State {
    Echo {
        lines: Vec<Line>,
        feedback: f32,
    },
    Reverb {
        /// Per channel: the combs with their feedback gains, then the allpasses.
        combs: Vec<Vec<(Line, f32)>>,
        allpasses: Vec<Vec<Line>>,
    },
    Pitch {
        lines: Vec<Line>,
        /// Position of the first read head in its sweep, 0 to 1 (the second is half a
        /// sweep ahead).
        phase: f32,
        /// Phase advance per sample.
        step: f32,
        window: f32,
    },
}

/// One effect running on one stream's audio.
pub struct Voice {
    channels: usize,
    state: State,
}

impl Voice {
    pub fn new(effect: VoiceEffect, sample_rate: u32, channels: u8) -> Self {
        let channels = channels.max(1) as usize;
        let rate = sample_rate.max(8_000) as f32;
        let per_channel = |f: &dyn Fn() -> Line| (0..channels).map(|_| f()).collect::<Vec<_>>();
        let state = match effect {
            VoiceEffect::Echo { delay_ms, decay_ms } => {
                let delay = (delay_ms as f32 * rate / 1000.0).round() as usize;
                // Echo n (n >= 1) is ECHO_LEVEL * feedback^(n-1), and it reaches DECAYED
                // half a repeat after decay_ms: the echo at decay_ms is the last one heard
                // above -60 dB.
                let repeats = decay_ms as f32 / delay_ms as f32 - 0.5;
                let feedback = (DECAYED / ECHO_LEVEL).powf(1.0 / repeats.max(1.0));
                State::Echo {
                    lines: per_channel(&|| Line::new(delay)),
                    feedback,
                }
            }
            VoiceEffect::Reverb { decay_ms } => {
                let scale = rate / 44_100.0;
                let decay_samples = decay_ms as f32 * rate / 1000.0;
                let combs = (0..channels)
                    .map(|_| {
                        COMBS
                            .iter()
                            .map(|&len| {
                                let len = (len as f32 * scale).round() as usize;
                                // Each pass through the comb loses 60 dB * len / decay.
                                let g = DECAYED.powf(len as f32 / decay_samples);
                                (Line::new(len), g)
                            })
                            .collect()
                    })
                    .collect();
                let allpasses = (0..channels)
                    .map(|_| {
                        ALLPASSES
                            .iter()
                            .map(|&len| Line::new((len as f32 * scale).round() as usize))
                            .collect()
                    })
                    .collect();
                State::Reverb { combs, allpasses }
            }
            VoiceEffect::Pitch { semitones } => {
                let ratio = 2f32.powf(semitones / 12.0);
                let window = PITCH_WINDOW_MS * rate / 1000.0;
                State::Pitch {
                    lines: per_channel(&|| Line::new(window.ceil() as usize + 2)),
                    phase: 0.0,
                    // The delay shrinks by (ratio - 1) samples per sample: read faster
                    // than written, by the pitch ratio.
                    step: (ratio - 1.0) / window,
                    window,
                }
            }
        };
        Self { channels, state }
    }

    /// Applies the effect in place to interleaved samples.
    pub fn process(&mut self, samples: &mut [i16]) {
        let ch = self.channels;
        match &mut self.state {
            State::Echo { lines, feedback } => {
                for frame in samples.chunks_exact_mut(ch) {
                    for (s, line) in frame.iter_mut().zip(lines.iter_mut()) {
                        let x = *s as f32;
                        let echoed = line.oldest();
                        // The line holds the first echo's level; each pass feeds back less.
                        line.push(x * ECHO_LEVEL + echoed * *feedback);
                        *s = to_i16(x + echoed);
                    }
                }
            }
            State::Reverb { combs, allpasses } => {
                let n = COMBS.len() as f32;
                for frame in samples.chunks_exact_mut(ch) {
                    for ((s, combs), allpasses) in frame
                        .iter_mut()
                        .zip(combs.iter_mut())
                        .zip(allpasses.iter_mut())
                    {
                        let x = *s as f32;
                        let mut wet = 0.0;
                        for (line, g) in combs.iter_mut() {
                            let y = line.oldest();
                            line.push(x + y * *g);
                            wet += y;
                        }
                        let mut v = wet / n.sqrt();
                        for line in allpasses.iter_mut() {
                            let delayed = line.oldest();
                            let out = delayed - ALLPASS_GAIN * v;
                            line.push(v + ALLPASS_GAIN * out);
                            v = out;
                        }
                        *s = to_i16(x + REVERB_WET * v);
                    }
                }
            }
            State::Pitch {
                lines,
                phase,
                step,
                window,
            } => {
                for frame in samples.chunks_exact_mut(ch) {
                    // Two heads half a sweep apart; each fades out as it jumps back.
                    let p1 = *phase;
                    let p2 = (p1 + 0.5).fract();
                    let gain = |p: f32| 1.0 - (2.0 * p - 1.0).abs();
                    // Phase 0 = the longest delay when the pitch goes up (the delay
                    // shrinks), the shortest when it goes down.
                    let delay = |p: f32| {
                        if *step >= 0.0 {
                            (1.0 - p) * *window
                        } else {
                            p * *window
                        }
                    };
                    for (s, line) in frame.iter_mut().zip(lines.iter_mut()) {
                        line.push(*s as f32);
                        let y = gain(p1) * line.at(delay(p1) + 1.0)
                            + gain(p2) * line.at(delay(p2) + 1.0);
                        *s = to_i16(y);
                    }
                    *phase = (*phase + step.abs()).fract();
                }
            }
        }
    }
}

fn to_i16(x: f32) -> i16 {
    x.round().clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::audio::tone_power;

    const RATE: u32 = 48_000;

    fn tone(freq: f64, ms: u32, amplitude: f64) -> Vec<i16> {
        (0..RATE * ms / 1000)
            .map(|i| {
                (amplitude * (std::f64::consts::TAU * freq * i as f64 / RATE as f64).sin()) as i16
            })
            .collect()
    }

    /// The frequency with the most power between `lo` and `hi`, in 2 Hz steps.
    fn peak(samples: &[i16], lo: f64, hi: f64) -> f64 {
        let mut best = (lo, 0.0);
        let mut f = lo;
        while f <= hi {
            let p = tone_power(samples, RATE, f);
            if p > best.1 {
                best = (f, p);
            }
            f += 2.0;
        }
        best.0
    }

    /// A 100 ms 1 kHz beep, then silence, through `effect` (mono) in 10 ms blocks as the
    /// pipeline feeds it: how long after the beep's end the output stays above 60 dB
    /// below the beep's peak, in ms (5 ms resolution).
    fn decay_after_beep(effect: Option<VoiceEffect>) -> f64 {
        let mut signal = tone(1000.0, 100, 16_000.0);
        signal.extend(std::iter::repeat_n(0i16, RATE as usize * 12));
        if let Some(e) = effect {
            let mut v = Voice::new(e, RATE, 1);
            for block in signal.chunks_mut(480) {
                v.process(block);
            }
        }
        let threshold = 16_000.0 * DECAYED as f64;
        let beep_end = RATE as usize / 10;
        let last_loud = signal
            .iter()
            .rposition(|&s| (s as f64).abs() > threshold)
            .unwrap_or(0);
        let after = last_loud.saturating_sub(beep_end) as f64 * 1000.0 / RATE as f64;
        (after / 5.0).round() * 5.0
    }

    #[test]
    fn parses_each_effect_and_refuses_nonsense() {
        assert_eq!(
            "echo".parse::<VoiceEffect>().unwrap(),
            VoiceEffect::Echo {
                delay_ms: 250,
                decay_ms: 1500
            }
        );
        assert_eq!(
            "echo:300:2000".parse::<VoiceEffect>().unwrap(),
            VoiceEffect::Echo {
                delay_ms: 300,
                decay_ms: 2000
            }
        );
        assert_eq!(
            "reverb:800".parse::<VoiceEffect>().unwrap(),
            VoiceEffect::Reverb { decay_ms: 800 }
        );
        assert_eq!(
            "pitch:-3.5".parse::<VoiceEffect>().unwrap(),
            VoiceEffect::Pitch { semitones: -3.5 }
        );
        for bad in [
            "",
            "pitch",
            "pitch:x",
            "pitch:13",
            "echo:5",
            "echo:300:200",
            "reverb:50",
            "chorus",
            "reverb:500:1",
        ] {
            let e = bad.parse::<VoiceEffect>().unwrap_err().to_string();
            assert!(e.contains("--voice"), "{bad}: {e}");
        }
    }

    #[test]
    fn twelve_semitones_up_doubles_the_tone_and_twelve_down_halves_it() {
        for (semitones, want) in [(12.0, 2000.0), (-12.0, 500.0), (7.0, 1000.0 * 1.4983)] {
            let mut s = tone(1000.0, 1000, 12_000.0);
            let mut v = Voice::new(VoiceEffect::Pitch { semitones }, RATE, 1);
            for block in s.chunks_mut(480) {
                v.process(block);
            }
            // After the first window, which fills the line.
            let steady = &s[RATE as usize / 10..];
            let got = peak(steady, 300.0, 3000.0);
            eprintln!("{semitones} semitones: peak at {got} Hz (expected {want})");
            assert!(
                (got - want).abs() <= want * 0.02,
                "{semitones} semitones: peak at {got} Hz, expected {want}"
            );
            let shifted = tone_power(steady, RATE, want);
            let original = tone_power(steady, RATE, 1000.0);
            if semitones != 0.0 && (want - 1000.0).abs() > 50.0 {
                assert!(
                    shifted > original * 10.0,
                    "{semitones}: {shifted} vs {original}"
                );
            }
        }
    }

    #[test]
    fn echo_and_reverb_lengthen_the_beeps_decay_by_the_set_time() {
        let dry = decay_after_beep(None);
        assert_eq!(dry, 0.0, "the dry beep stops at once");
        for (effect, set_ms) in [
            (
                VoiceEffect::Echo {
                    delay_ms: 200,
                    decay_ms: 1400,
                },
                1400.0,
            ),
            (VoiceEffect::Reverb { decay_ms: 800 }, 800.0),
            (VoiceEffect::Reverb { decay_ms: 2500 }, 2500.0),
        ] {
            let decay = decay_after_beep(Some(effect));
            eprintln!("{effect:?}: rings on for {decay} ms");
            assert!(
                (decay - set_ms).abs() <= set_ms * 0.1,
                "{effect:?}: the beep rings on for {decay} ms, set {set_ms} ms"
            );
        }
    }

    #[test]
    fn stereo_channels_are_processed_apart_and_silence_stays_silent() {
        let mut v = Voice::new(VoiceEffect::Reverb { decay_ms: 500 }, RATE, 2);
        let mut silence = vec![0i16; 9600];
        v.process(&mut silence);
        assert!(silence.iter().all(|&s| s == 0));
        // Sound on the left only: the right stays silent.
        let mut s: Vec<i16> = tone(1000.0, 100, 10_000.0)
            .into_iter()
            .flat_map(|x| [x, 0])
            .collect();
        v.process(&mut s);
        assert!(s.iter().skip(1).step_by(2).all(|&r| r == 0));
        assert!(s.iter().step_by(2).any(|&l| l != 0));
    }
}
