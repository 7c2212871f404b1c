//! Voice activity detection with RNNoise's voice probability (nnnoiseless): the audio's
//! channels averaged, 10 ms frames at 48 kHz, and a decision with hysteresis (on above
//! `ON`, off only after `HANGOVER_FRAMES` frames below `OFF`), so a pause between words
//! does not read as silence. Pure: samples in, decisions out.

use nnnoiseless::DenoiseState;

/// RNNoise frame: 10 ms at 48 kHz.
pub const FRAME: usize = DenoiseState::FRAME_SIZE;
/// Probability above which a frame starts speech.
pub const ON: f32 = 0.6;
/// Probability below which frames count toward the end of speech.
pub const OFF: f32 = 0.3;
/// Frames (10 ms) below `OFF` before speech ends.
pub const HANGOVER_FRAMES: u32 = 15;

pub struct VoiceDetector {
    state: Box<DenoiseState<'static>>,
    channels: usize,
    pending: Vec<f32>,
    scratch: Vec<f32>,
    speaking: bool,
    quiet_frames: u32,
    /// The decision of every 10 ms frame seen since the last `take_decisions`.
    decisions: Vec<bool>,
}

impl VoiceDetector {
    /// Needs 48 kHz audio (RNNoise's rate).
    pub fn new(channels: u8) -> Self {
        Self {
            state: DenoiseState::new(),
            channels: channels.max(1) as usize,
            pending: Vec::with_capacity(FRAME),
            scratch: vec![0.0; FRAME],
            speaking: false,
            quiet_frames: 0,
            decisions: Vec::new(),
        }
    }

    /// Feeds interleaved samples; returns whether speech is on after them.
    pub fn process(&mut self, input: &[i16]) -> bool {
        let ch = self.channels;
        for frame in input.chunks_exact(ch) {
            let mono = frame.iter().map(|&s| s as f32).sum::<f32>() / ch as f32;
            self.pending.push(mono);
            if self.pending.len() == FRAME {
                let p = self.state.process_frame(&mut self.scratch, &self.pending);
                self.pending.clear();
                self.decide(p);
            }
        }
        self.speaking
    }

    fn decide(&mut self, p: f32) {
        if p >= ON {
            self.speaking = true;
            self.quiet_frames = 0;
        } else if self.speaking && p < OFF {
            self.quiet_frames += 1;
            if self.quiet_frames >= HANGOVER_FRAMES {
                self.speaking = false;
            }
        } else if self.speaking {
            self.quiet_frames = 0;
        }
        if self.decisions.len() < 1 << 20 {
            self.decisions.push(self.speaking);
        }
    }

    pub fn speaking(&self) -> bool {
        self.speaking
    }

    /// The per-frame decisions so far (bounded at about 3 hours), and forgets them.
    pub fn take_decisions(&mut self) -> Vec<bool> {
        std::mem::take(&mut self.decisions)
    }
}

/// `--vad-gate`: while no one speaks, the block is replaced by digital silence, which the
/// AAC and Opus encoders send in a fraction of the bytes (comfort silence). Returns
/// whether it gated.
pub fn gate(samples: &mut [i16], speaking: bool) -> bool {
    if !speaking {
        samples.fill(0);
    }
    !speaking
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_not_speech_and_the_gate_silences() {
        // (RNNoise takes a steady tone for voice: the detector is for speech and silence,
        // which tests/pusher_vad.rs checks on real speech from espeak-ng.)
        let mut v = VoiceDetector::new(2);
        let silence = vec![0i16; 960 * 20];
        assert!(!v.process(&silence));
        let d = v.take_decisions();
        assert_eq!(d, vec![false; 20]);
        let mut b = vec![5i16; 8];
        assert!(gate(&mut b, false));
        assert_eq!(b, [0; 8]);
        let mut b = vec![5i16; 8];
        assert!(!gate(&mut b, true));
        assert_eq!(b, [5; 8]);
    }
}
