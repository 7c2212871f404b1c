//! Opus encoding with libopus (the `opus` crate, which links the system libopus): always at
//! 48 kHz (44.1 kHz input is resampled first), mono or stereo, 20 ms frames, the asked
//! bitrate. Also writes the Opus ID header (RFC 7845 5.1) that an Enhanced RTMP Opus
//! SequenceStart carries. Timestamps come from the sample count, like the AAC encoder's.

use opus::{Application, Bitrate, Channels, Encoder};

use crate::encode::aac::AccessUnit;
use crate::media::AudioBlock;
use crate::process::audio::Resampler;
use crate::PushError;

/// Opus always runs at 48 kHz here (it decodes at 48 kHz whatever the input was).
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples per channel in one 20 ms frame at 48 kHz.
pub const FRAME_LEN: usize = 960;
/// Bitrates libopus accepts for one stream (bit/s).
pub const BITRATES: std::ops::RangeInclusive<u32> = 6_000..=510_000;
/// Output buffer for one packet: libopus's recommended bound.
const MAX_PACKET: usize = 4000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusSettings {
    /// The input's rate: 48000, or 44100 (resampled to 48000).
    pub sample_rate: u32,
    pub channels: u8,
    /// bit/s
    pub bitrate: u32,
}

pub struct OpusEncoder {
    enc: Encoder,
    s: OpusSettings,
    resampler: Option<Resampler>,
    /// Encoder lookahead in 48 kHz samples: the ID header's pre-skip.
    pre_skip: u16,
    pending: Vec<i16>,
    out: Vec<u8>,
    t0_ms: Option<u64>,
    produced: u64,
    /// Real (not padding) samples per channel given so far, at 48 kHz.
    real_samples: u64,
}

impl OpusEncoder {
    pub fn new(s: OpusSettings) -> Result<Self, PushError> {
        let err = |e: opus::Error| PushError::Opus(e.to_string());
        let resampler = match s.sample_rate {
            SAMPLE_RATE => None,
            44_100 => Some(Resampler::new(44_100, SAMPLE_RATE, s.channels)),
            other => {
                return Err(PushError::Opus(format!(
                    "sample rate {other} (44100 or 48000)"
                )))
            }
        };
        let channels = match s.channels {
            1 => Channels::Mono,
            2 => Channels::Stereo,
            n => return Err(PushError::Opus(format!("{n} channels (1 or 2)"))),
        };
        if !BITRATES.contains(&s.bitrate) {
            return Err(PushError::Opus(format!(
                "bitrate {} bit/s ({} to {})",
                s.bitrate,
                BITRATES.start(),
                BITRATES.end()
            )));
        }
        let mut enc = Encoder::new(SAMPLE_RATE, channels, Application::Audio).map_err(err)?;
        enc.set_bitrate(Bitrate::Bits(s.bitrate as i32))
            .map_err(err)?;
        let lookahead = enc.get_lookahead().map_err(err)?;
        let pre_skip = u16::try_from(lookahead)
            .map_err(|_| PushError::Opus(format!("encoder lookahead {lookahead}")))?;
        Ok(Self {
            enc,
            s,
            resampler,
            pre_skip,
            pending: Vec::with_capacity(FRAME_LEN * 4),
            out: vec![0u8; MAX_PACKET],
            t0_ms: None,
            produced: 0,
            real_samples: 0,
        })
    }

    /// Samples at 48 kHz a decoder drops at the start (the encoder's lookahead).
    pub fn pre_skip(&self) -> u16 {
        self.pre_skip
    }

    /// The Opus ID header (RFC 7845 5.1), channel mapping family 0 (mono or stereo).
    pub fn id_header(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(19);
        h.extend_from_slice(b"OpusHead");
        h.push(1); // version
        h.push(self.s.channels);
        h.extend_from_slice(&self.pre_skip.to_le_bytes());
        h.extend_from_slice(&self.s.sample_rate.to_le_bytes());
        h.extend_from_slice(&0i16.to_le_bytes()); // output gain
        h.push(0); // mapping family
        h
    }

    pub fn encode(&mut self, block: &AudioBlock) -> Result<Vec<AccessUnit>, PushError> {
        if block.sample_rate != self.s.sample_rate || block.channels != self.s.channels {
            return Err(PushError::Opus(format!(
                "block of {} Hz x{} for an encoder of {} Hz x{}",
                block.sample_rate, block.channels, self.s.sample_rate, self.s.channels
            )));
        }
        self.t0_ms.get_or_insert(block.pts_ms);
        let samples = match &mut self.resampler {
            Some(r) => r.process(&block.samples),
            None => block.samples.clone(),
        };
        self.real_samples += (samples.len() / self.s.channels as usize) as u64;
        self.encode_samples(&samples)
    }

    /// At the end of the input: pushes silence through the encoder until every real sample
    /// has come out (its lookahead plus the last partial frame), and returns those packets.
    pub fn flush(&mut self) -> Result<Vec<AccessUnit>, PushError> {
        if self.t0_ms.is_none() {
            return Ok(Vec::new());
        }
        let pad = (self.pre_skip as usize + FRAME_LEN) * self.s.channels as usize;
        let (first, real) = (self.produced, self.real_samples);
        let packets = self.encode_samples(&vec![0; pad])?;
        // Keep the packets whose first decoded sample is real input.
        Ok(packets
            .into_iter()
            .zip(first..)
            .filter(|(_, n)| self.start_sample(*n) < real as i64)
            .map(|(p, _)| p)
            .collect())
    }

    /// Input sample (48 kHz) of the first sample packet `n` decodes to, before pre-skip.
    fn start_sample(&self, n: u64) -> i64 {
        (n * FRAME_LEN as u64) as i64 - self.pre_skip as i64
    }

    fn encode_samples(&mut self, samples: &[i16]) -> Result<Vec<AccessUnit>, PushError> {
        self.pending.extend_from_slice(samples);
        let chunk = FRAME_LEN * self.s.channels as usize;
        let mut packets = Vec::new();
        while self.pending.len() >= chunk {
            let len = self
                .enc
                .encode(&self.pending[..chunk], &mut self.out)
                .map_err(|e| PushError::Opus(e.to_string()))?;
            self.pending.drain(..chunk);
            let n = self.produced;
            self.produced += 1;
            // RFC 7845: packet n starts pre-skip samples before input sample n*960. FLV
            // timestamps cannot go below the stream start, so packet 0 is stamped at it.
            let start = self.start_sample(n).max(0) as u64;
            let dts_ms = self.t0_ms.unwrap_or(0) + start * 1000 / SAMPLE_RATE as u64;
            packets.push(AccessUnit {
                dts_ms,
                data: self.out[..len].to_vec(),
            });
        }
        Ok(packets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::audio::tone_power;
    use crate::source::tone::Tone;
    use onair_shared::opus::OpusHead;

    fn encode_one_second(rate: u32, ch: u8) -> (OpusEncoder, Vec<AccessUnit>) {
        let mut enc = OpusEncoder::new(OpusSettings {
            sample_rate: rate,
            channels: ch,
            bitrate: 96_000,
        })
        .unwrap();
        let mut tone = Tone::new(rate, ch);
        let mut packets = Vec::new();
        let block = rate as usize / 100;
        for i in 0..100u64 {
            let b = AudioBlock {
                sample_rate: rate,
                channels: ch,
                samples: tone.next_block(block),
                pts_ms: 500 + i * 10,
            };
            packets.extend(enc.encode(&b).unwrap());
        }
        packets.extend(enc.flush().unwrap());
        (enc, packets)
    }

    #[test]
    fn id_header_parses_back() {
        for (rate, ch) in [(48_000, 2u8), (44_100, 1u8)] {
            let enc = OpusEncoder::new(OpusSettings {
                sample_rate: rate,
                channels: ch,
                bitrate: 64_000,
            })
            .unwrap();
            let head = OpusHead::parse(&enc.id_header()).unwrap();
            assert_eq!(
                (head.version, head.channels, head.input_sample_rate),
                (1, ch, rate)
            );
            assert_eq!(head.pre_skip, enc.pre_skip());
            assert!(head.pre_skip > 0, "libopus has a lookahead");
            assert_eq!((head.mapping_family, head.mapping), (0, None));
        }
    }

    #[test]
    fn packets_decode_to_the_tone_with_20ms_steps() {
        for (rate, ch) in [(48_000, 2u8), (44_100, 1u8)] {
            let (enc, packets) = encode_one_second(rate, ch);
            // One second in 20 ms frames: 50 packets (the lookahead adds at most one).
            assert!(
                (50..=51).contains(&packets.len()),
                "{} packets at {rate} Hz",
                packets.len()
            );
            assert_eq!(packets[0].dts_ms, 500);
            for w in packets[1..].windows(2) {
                let step = w[1].dts_ms - w[0].dts_ms;
                assert!((19..=21).contains(&step), "step {step} ms at {rate} Hz");
            }
            // Packet 1 starts pre-skip samples before input sample 960.
            let start = (FRAME_LEN as u64 - enc.pre_skip() as u64) * 1000 / SAMPLE_RATE as u64;
            assert_eq!(packets[1].dts_ms, 500 + start);
            let channels = if ch == 1 {
                opus::Channels::Mono
            } else {
                opus::Channels::Stereo
            };
            let mut dec = opus::Decoder::new(SAMPLE_RATE, channels).unwrap();
            let mut pcm = Vec::new();
            let mut buf = vec![0i16; FRAME_LEN * ch as usize];
            for p in &packets {
                assert_eq!(dec.get_nb_samples(&p.data).unwrap(), FRAME_LEN);
                let n = dec.decode(&p.data, &mut buf, false).unwrap();
                assert_eq!(n, FRAME_LEN);
                pcm.extend(buf.iter().step_by(ch as usize));
            }
            let real = &pcm[enc.pre_skip() as usize..][..24_000];
            let p1k = tone_power(real, SAMPLE_RATE, 1000.0);
            let p3k = tone_power(real, SAMPLE_RATE, 3000.0);
            assert!(p1k > 100.0 * p3k.max(1.0), "1 kHz {p1k}, 3 kHz {p3k}");
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        for (rate, ch, bitrate) in [(22_050, 2, 64_000), (48_000, 6, 64_000), (48_000, 2, 1_000)] {
            assert!(OpusEncoder::new(OpusSettings {
                sample_rate: rate,
                channels: ch,
                bitrate
            })
            .is_err());
        }
    }
}
