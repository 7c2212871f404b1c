//! AAC-LC encoding with fdk-aac (raw access units, no ADTS), 44.1 or 48 kHz, mono or
//! stereo, constant bitrate. Timestamps come from the sample count since the first block
//! (one capture clock, no drift), shifted back by the encoder delay so the decoded audio
//! lines up with the video; access units that would start before zero (priming) are dropped.

use fdk_aac::enc::{AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport};

use crate::media::AudioBlock;
use crate::PushError;

/// Samples per channel in one AAC-LC access unit.
pub const FRAME_LEN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacSettings {
    pub sample_rate: u32,
    pub channels: u8,
    /// bit/s
    pub bitrate: u32,
}

pub struct AacEncoder {
    enc: Encoder,
    s: AacSettings,
    asc: Vec<u8>,
    delay: u64,
    pending: Vec<i16>,
    out: Vec<u8>,
    /// Capture time of the first sample.
    t0_ms: Option<u64>,
    /// Access units produced so far.
    produced: u64,
    /// Real (not padding) samples per channel given so far.
    real_samples: u64,
}

/// One encoded access unit and its timestamp in ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    pub dts_ms: u64,
    pub data: Vec<u8>,
}

impl AacEncoder {
    pub fn new(s: AacSettings) -> Result<Self, PushError> {
        if !matches!(s.sample_rate, 44_100 | 48_000) {
            return Err(PushError::Aac(format!(
                "sample rate {} (44100 or 48000)",
                s.sample_rate
            )));
        }
        let channels = match s.channels {
            1 => ChannelMode::Mono,
            2 => ChannelMode::Stereo,
            n => return Err(PushError::Aac(format!("{n} channels (1 or 2)"))),
        };
        let enc = Encoder::new(EncoderParams {
            bit_rate: BitRate::Cbr(s.bitrate),
            sample_rate: s.sample_rate,
            transport: Transport::Raw,
            channels,
            audio_object_type: AudioObjectType::Mpeg4LowComplexity,
        })
        .map_err(|e| PushError::Aac(e.to_string()))?;
        let info = enc.info().map_err(|e| PushError::Aac(e.to_string()))?;
        let asc = info.confBuf[..(info.confSize as usize).min(info.confBuf.len())].to_vec();
        if asc.len() < 2 {
            return Err(PushError::Aac(
                "no AudioSpecificConfig from the encoder".into(),
            ));
        }
        Ok(Self {
            enc,
            s,
            asc,
            delay: info.nDelay as u64,
            pending: Vec::with_capacity(FRAME_LEN * 4),
            out: vec![0u8; (info.maxOutBufBytes as usize).max(8192)],
            t0_ms: None,
            produced: 0,
            real_samples: 0,
        })
    }

    /// The AudioSpecificConfig for the sequence header.
    pub fn audio_specific_config(&self) -> &[u8] {
        &self.asc
    }

    /// Encoder delay in samples per channel.
    pub fn delay(&self) -> u64 {
        self.delay
    }

    /// At the end of the input: pushes silence through the encoder until every real sample
    /// has come out (its delay plus the last partial frame), and returns those units.
    pub fn flush(&mut self) -> Result<Vec<AccessUnit>, PushError> {
        let Some(t0) = self.t0_ms else {
            return Ok(Vec::new());
        };
        let pad = (self.delay as usize + FRAME_LEN) * self.s.channels as usize;
        let units = self.encode_samples(&vec![0; pad])?;
        let end_ms = t0 + self.real_samples * 1000 / self.s.sample_rate as u64;
        Ok(units.into_iter().filter(|u| u.dts_ms < end_ms).collect())
    }

    pub fn encode(&mut self, block: &AudioBlock) -> Result<Vec<AccessUnit>, PushError> {
        if block.sample_rate != self.s.sample_rate || block.channels != self.s.channels {
            return Err(PushError::Aac(format!(
                "block of {} Hz x{} for an encoder of {} Hz x{}",
                block.sample_rate, block.channels, self.s.sample_rate, self.s.channels
            )));
        }
        self.t0_ms.get_or_insert(block.pts_ms);
        self.real_samples += (block.samples.len() / self.s.channels as usize) as u64;
        self.encode_samples(&block.samples)
    }

    fn encode_samples(&mut self, samples: &[i16]) -> Result<Vec<AccessUnit>, PushError> {
        self.pending.extend_from_slice(samples);
        let chunk = FRAME_LEN * self.s.channels as usize;
        let mut units = Vec::new();
        while self.pending.len() >= chunk {
            let info = self
                .enc
                .encode(&self.pending[..chunk], &mut self.out)
                .map_err(|e| PushError::Aac(e.to_string()))?;
            let consumed = info.input_consumed.clamp(1, chunk);
            self.pending.drain(..consumed);
            if info.output_size > 0 {
                let n = self.produced;
                self.produced += 1;
                // Decoded sample 0 of AU n is input sample n*1024 - delay.
                let start = (n * FRAME_LEN as u64) as i64 - self.delay as i64;
                if start < 0 {
                    continue;
                }
                let dts_ms =
                    self.t0_ms.unwrap_or(0) + (start as u64 * 1000) / self.s.sample_rate as u64;
                units.push(AccessUnit {
                    dts_ms,
                    data: self.out[..info.output_size].to_vec(),
                });
            }
        }
        Ok(units)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::tone::Tone;
    use onair_shared::aac::AudioSpecificConfig;

    #[test]
    fn config_and_timestamps() {
        for (rate, ch) in [(48_000, 1u8), (44_100, 2u8)] {
            let mut enc = AacEncoder::new(AacSettings {
                sample_rate: rate,
                channels: ch,
                bitrate: 128_000,
            })
            .unwrap();
            let asc = AudioSpecificConfig::parse(enc.audio_specific_config()).unwrap();
            assert_eq!(
                (asc.object_type, asc.sample_rate, asc.channel_config),
                (2, rate, ch)
            );
            let mut tone = Tone::new(rate, ch);
            let mut units = Vec::new();
            let block = rate as usize / 100;
            for i in 0..100u64 {
                let b = AudioBlock {
                    sample_rate: rate,
                    channels: ch,
                    samples: tone.next_block(block),
                    pts_ms: 500 + i * 10,
                };
                units.extend(enc.encode(&b).unwrap());
            }
            let tail = enc.flush().unwrap();
            assert!(!tail.is_empty(), "flush gave nothing");
            let end = tail.last().map_or(0, |u| u.dts_ms) + 1024 * 1000 / rate as u64;
            assert!(
                (end as i64 - 1500).abs() <= 25,
                "last unit ends at {end} ms, input at 1500"
            );
            // One second in: about rate/1024 units minus the delay, evenly spaced from 500 ms.
            let expected = (rate as u64 - enc.delay()) / 1024;
            assert!(
                (units.len() as i64 - expected as i64).abs() <= 2,
                "{} units",
                units.len()
            );
            assert!(units[0].dts_ms >= 500 && units[0].dts_ms < 500 + 1024 * 1000 / rate as u64);
            for w in units.windows(2) {
                let d = w[1].dts_ms - w[0].dts_ms;
                assert!((21..=24).contains(&d), "step {d} ms");
            }
        }
        assert!(AacEncoder::new(AacSettings {
            sample_rate: 22_050,
            channels: 1,
            bitrate: 64_000
        })
        .is_err());
    }
}
