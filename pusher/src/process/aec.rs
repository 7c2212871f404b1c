//! Echo cancellation with WebRTC's audio processing module (Debian's
//! libwebrtc-audio-processing 0.3 through the webrtc-audio-processing crate 0.4): the far
//! end (what the host's speakers play: the guest, or a WAV) is given as the render stream,
//! the microphone as the capture stream, 10 ms at 48 kHz at a time, and the echo of the far
//! end is taken out of the capture. Delay-agnostic mode: no device delay needs to be known.

use webrtc_audio_processing::{
    Config, EchoCancellation, EchoCancellationSuppressionLevel, InitializationConfig, Processor,
    NUM_SAMPLES_PER_FRAME,
};

use crate::PushError;

/// Sample frames per call: 10 ms at 48 kHz.
pub const FRAME: usize = NUM_SAMPLES_PER_FRAME as usize;

pub struct EchoCanceller {
    proc: Processor,
    channels: usize,
    capture: Vec<f32>,
    render: Vec<f32>,
}

impl EchoCanceller {
    /// For 48 kHz audio with `channels` on both sides.
    pub fn new(channels: u8) -> Result<Self, PushError> {
        let ch = channels.clamp(1, 2) as i32;
        let mut proc = Processor::new(&InitializationConfig {
            num_capture_channels: ch,
            num_render_channels: ch,
            ..Default::default()
        })
        .map_err(|e| PushError::format("echo canceller", e.to_string()))?;
        proc.set_config(Config {
            echo_cancellation: Some(EchoCancellation {
                suppression_level: EchoCancellationSuppressionLevel::High,
                enable_extended_filter: true,
                enable_delay_agnostic: true,
                stream_delay_ms: None,
            }),
            enable_high_pass_filter: true,
            ..Default::default()
        });
        Ok(Self {
            proc,
            channels: ch as usize,
            capture: Vec::new(),
            render: Vec::new(),
        })
    }

    /// Cancels the echo of `far` (what is being played) from `near` (the microphone), in
    /// place. Both interleaved, the same length, a whole number of 10 ms frames; other
    /// lengths are processed up to the last whole frame.
    pub fn process(&mut self, far: &[i16], near: &mut [i16]) -> Result<(), PushError> {
        let step = FRAME * self.channels;
        let err =
            |e: webrtc_audio_processing::Error| PushError::format("echo canceller", e.to_string());
        for (f, n) in far.chunks_exact(step).zip(near.chunks_exact_mut(step)) {
            self.render.clear();
            self.render.extend(f.iter().map(|&s| s as f32 / 32768.0));
            self.proc
                .process_render_frame(&mut self.render)
                .map_err(err)?;
            self.capture.clear();
            self.capture.extend(n.iter().map(|&s| s as f32 / 32768.0));
            self.proc
                .process_capture_frame(&mut self.capture)
                .map_err(err)?;
            for (o, v) in n.iter_mut().zip(&self.capture) {
                *o = (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
            }
        }
        Ok(())
    }
}
