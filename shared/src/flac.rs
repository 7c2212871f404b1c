//! FLAC configuration: the STREAMINFO metadata block of an Enhanced RTMP `fLaC`
//! SequenceStart. Parsers take bytes and return values or a typed error; they never panic
//! on bad input.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlacError {
    #[error("FLAC STREAMINFO truncated: {0} bytes")]
    Truncated(usize),
    #[error("first FLAC metadata block is type {0}, not STREAMINFO (0)")]
    NotStreamInfo(u8),
    #[error("FLAC STREAMINFO says sample rate 0")]
    NoSampleRate,
}

const STREAMINFO_LEN: usize = 34;

/// FLAC STREAMINFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlacStreamInfo {
    pub min_block_size: u16,
    pub max_block_size: u16,
    pub min_frame_size: u32,
    pub max_frame_size: u32,
    pub sample_rate: u32,
    pub channels: u8,
    pub bits_per_sample: u8,
    /// 0 = unknown (always so for live streams).
    pub total_samples: u64,
}

impl FlacStreamInfo {
    /// Accepts the spec's form ("fLaC", block header, STREAMINFO), a block header and
    /// STREAMINFO, or the bare 34-byte STREAMINFO that FFmpeg 8 sends.
    pub fn parse(data: &[u8]) -> Result<Self, FlacError> {
        let mut d = data;
        if d.starts_with(b"fLaC") {
            d = &d[4..];
        }
        if d.len() != STREAMINFO_LEN {
            // A metadata block header: last-block flag, 7-bit type, 24-bit length.
            let h = d.get(..4).ok_or(FlacError::Truncated(data.len()))?;
            let block_type = h[0] & 0x7f;
            if block_type != 0 {
                return Err(FlacError::NotStreamInfo(block_type));
            }
            d = &d[4..];
        }
        let s = d
            .get(..STREAMINFO_LEN)
            .ok_or(FlacError::Truncated(data.len()))?;
        let u24 = |b: &[u8]| ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        // 20 bits rate, 3 bits channels - 1, 5 bits bps - 1, 36 bits total samples.
        let packed = u64::from_be_bytes([s[10], s[11], s[12], s[13], s[14], s[15], s[16], s[17]]);
        let sample_rate = (packed >> 44) as u32;
        if sample_rate == 0 {
            return Err(FlacError::NoSampleRate);
        }
        Ok(Self {
            min_block_size: u16::from_be_bytes([s[0], s[1]]),
            max_block_size: u16::from_be_bytes([s[2], s[3]]),
            min_frame_size: u24(&s[4..7]),
            max_frame_size: u24(&s[7..10]),
            sample_rate,
            channels: ((packed >> 41) & 0x07) as u8 + 1,
            bits_per_sample: ((packed >> 36) & 0x1f) as u8 + 1,
            total_samples: packed & 0xf_ffff_ffff,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eflv::hex;

    /// The first 42 bytes of a FLAC file from FFmpeg 5.1 (44.1 kHz mono, 16-bit, 4410 samples).
    const FILE_START: &str =
        "664c614300000022120012000004b20004b20ac440f00000113a970a8602eaca9fdde598307ea787674b";

    #[test]
    fn all_three_forms() {
        let full = hex(FILE_START);
        for form in [&full[..], &full[4..], &full[8..]] {
            let s = FlacStreamInfo::parse(form).unwrap();
            assert_eq!(
                (s.sample_rate, s.channels, s.bits_per_sample),
                (44100, 1, 16)
            );
            assert_eq!((s.min_block_size, s.max_block_size), (4608, 4608));
            assert_eq!(s.total_samples, 4410);
        }
    }

    #[test]
    fn bad_streaminfo() {
        let full = hex(FILE_START);
        for n in 0..full.len() {
            let _ = FlacStreamInfo::parse(&full[..n]);
        }
        assert!(matches!(
            FlacStreamInfo::parse(&full[..20]),
            Err(FlacError::Truncated(_))
        ));
        let mut v = full.clone();
        v[4] = 0x84; // last block, type 4 (VORBIS_COMMENT)
        assert_eq!(FlacStreamInfo::parse(&v), Err(FlacError::NotStreamInfo(4)));
        let mut v = full[8..].to_vec();
        v[10] = 0;
        v[11] = 0;
        v[12] &= 0x0f;
        assert_eq!(FlacStreamInfo::parse(&v), Err(FlacError::NoSampleRate));
    }
}
