//! Opus configuration: the ID header (`OpusHead`, RFC 7845 5.1), which an Enhanced RTMP
//! Opus SequenceStart carries. Parsers take bytes and return values or a typed error;
//! they never panic on bad input.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpusError {
    #[error("OpusHead truncated: {len} bytes, need {need}")]
    Truncated { len: usize, need: usize },
    #[error("not an OpusHead (magic {0:02x?})")]
    Magic([u8; 8]),
    #[error("OpusHead version {0} is not one this parser understands (major version 0)")]
    Version(u8),
    #[error("OpusHead says 0 channels")]
    NoChannels,
}

/// The channel mapping table of mapping families other than 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusMapping {
    pub stream_count: u8,
    pub coupled_count: u8,
    pub channel_mapping: Vec<u8>,
}

/// The Opus ID header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusHead {
    pub version: u8,
    pub channels: u8,
    /// Samples at 48 kHz to drop at the start.
    pub pre_skip: u16,
    /// The encoder's input rate; informational (Opus always decodes at 48 kHz).
    pub input_sample_rate: u32,
    /// Q7.8 dB.
    pub output_gain: i16,
    /// 0 = mono/stereo, 1 = Vorbis order surround, 255 = unspecified.
    pub mapping_family: u8,
    pub mapping: Option<OpusMapping>,
}

impl OpusHead {
    pub fn parse(data: &[u8]) -> Result<Self, OpusError> {
        let need = |n: usize| {
            if data.len() < n {
                Err(OpusError::Truncated {
                    len: data.len(),
                    need: n,
                })
            } else {
                Ok(())
            }
        };
        need(19)?;
        if &data[..8] != b"OpusHead" {
            let mut m = [0u8; 8];
            m.copy_from_slice(&data[..8]);
            return Err(OpusError::Magic(m));
        }
        let version = data[8];
        if version >> 4 != 0 {
            return Err(OpusError::Version(version));
        }
        let channels = data[9];
        if channels == 0 {
            return Err(OpusError::NoChannels);
        }
        let mapping_family = data[18];
        let mapping = if mapping_family != 0 {
            let n = 21 + channels as usize;
            need(n)?;
            Some(OpusMapping {
                stream_count: data[19],
                coupled_count: data[20],
                channel_mapping: data[21..n].to_vec(),
            })
        } else {
            None
        };
        Ok(Self {
            version,
            channels,
            pre_skip: u16::from_le_bytes([data[10], data[11]]),
            input_sample_rate: u32::from_le_bytes([data[12], data[13], data[14], data[15]]),
            output_gain: i16::from_le_bytes([data[16], data[17]]),
            mapping_family,
            mapping,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eflv::hex;

    #[test]
    fn libopus_stereo_head() {
        // Extradata of libopus stereo 48 kHz (FFmpeg 5.1, Ogg).
        let h = OpusHead::parse(&hex("4f707573486561640102380180bb0000000000")).unwrap();
        assert_eq!(h.version, 1);
        assert_eq!(
            (h.channels, h.pre_skip, h.input_sample_rate),
            (2, 312, 48000)
        );
        assert_eq!((h.output_gain, h.mapping_family, h.mapping), (0, 0, None));
    }

    #[test]
    fn surround_mapping_table() {
        let mut d = hex("4f707573486561640106380180bb00000000");
        d.extend_from_slice(&[1, 4, 2, 0, 4, 1, 2, 3, 5]);
        let h = OpusHead::parse(&d).unwrap();
        assert_eq!(h.channels, 6);
        let m = h.mapping.unwrap();
        assert_eq!((m.stream_count, m.coupled_count), (4, 2));
        assert_eq!(m.channel_mapping, vec![0, 4, 1, 2, 3, 5]);
        assert!(matches!(
            OpusHead::parse(&d[..25]),
            Err(OpusError::Truncated { .. })
        ));
    }

    #[test]
    fn bad_heads() {
        let good = hex("4f707573486561640102380180bb0000000000");
        assert!(matches!(
            OpusHead::parse(&good[..18]),
            Err(OpusError::Truncated { .. })
        ));
        let mut v = good.clone();
        v[0] = b'o';
        assert!(matches!(OpusHead::parse(&v), Err(OpusError::Magic(_))));
        let mut v = good.clone();
        v[8] = 0x10;
        assert_eq!(OpusHead::parse(&v), Err(OpusError::Version(0x10)));
        let mut v = good;
        v[9] = 0;
        assert_eq!(OpusHead::parse(&v), Err(OpusError::NoChannels));
    }
}
