//! AAC in FLV: the audio tag header, the AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1)
//! and ADTS headers built from it. ADTS comes from the config, never from the FLV
//! sound-rate bits, which cannot say 48 kHz.

use crate::bits::BitReader;
use crate::codec::Codec;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AacError {
    #[error("audio tag too short: {len} bytes, need {need}")]
    TagTooShort { len: usize, need: usize },
    #[error("AudioSpecificConfig truncated")]
    ConfigTruncated,
    #[error("AudioSpecificConfig sampling frequency index {0} is reserved")]
    BadFrequencyIndex(u8),
    #[error("ADTS cannot carry audio object type {0} (only 1..=4)")]
    NotAdtsObjectType(u8),
    #[error("AAC frame of {0} bytes does not fit an ADTS frame")]
    FrameTooLarge(usize),
}

pub const SOUND_FORMAT_MP3: u8 = 2;
pub const SOUND_FORMAT_AAC: u8 = 10;
pub const AAC_SEQUENCE_HEADER: u8 = 0;
pub const AAC_RAW: u8 = 1;

pub const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// The first byte (and for AAC the second) of an FLV audio tag body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioTagHeader {
    pub sound_format: u8,
    pub sound_rate: u8,
    pub sound_size_16bit: bool,
    pub stereo: bool,
    /// AAC packet type; `None` for other formats.
    pub aac_packet_type: Option<u8>,
}

impl AudioTagHeader {
    pub fn parse(body: &[u8]) -> Result<Self, AacError> {
        let first = *body
            .first()
            .ok_or(AacError::TagTooShort { len: 0, need: 1 })?;
        let sound_format = first >> 4;
        let aac_packet_type = if sound_format == SOUND_FORMAT_AAC {
            Some(
                *body
                    .get(1)
                    .ok_or(AacError::TagTooShort { len: 1, need: 2 })?,
            )
        } else {
            None
        };
        Ok(Self {
            sound_format,
            sound_rate: (first >> 2) & 3,
            sound_size_16bit: first & 2 != 0,
            stereo: first & 1 != 0,
            aac_packet_type,
        })
    }

    pub fn codec(&self) -> Codec {
        match self.sound_format {
            SOUND_FORMAT_AAC => Codec::Aac,
            SOUND_FORMAT_MP3 => Codec::Mp3,
            other => Codec::Other(other),
        }
    }

    pub fn is_sequence_header(&self) -> bool {
        self.aac_packet_type == Some(AAC_SEQUENCE_HEADER)
    }

    /// Bytes before the codec payload.
    pub fn header_len(&self) -> usize {
        if self.aac_packet_type.is_some() {
            2
        } else {
            1
        }
    }
}

/// The first byte of an FLV AAC tag: AAC, 44 kHz flag, 16-bit, stereo (as the spec requires).
pub const FLV_AAC_TAG_BYTE: u8 = 0xaf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// Audio object type: 2 is AAC-LC, 5 SBR (HE-AAC), 29 PS.
    pub object_type: u8,
    pub frequency_index: u8,
    pub sample_rate: u32,
    pub channel_config: u8,
}

impl AudioSpecificConfig {
    pub fn parse(data: &[u8]) -> Result<Self, AacError> {
        let mut r = BitReader::new(data);
        let t = |_| AacError::ConfigTruncated;
        let mut object_type = r.bits(5).map_err(t)? as u8;
        if object_type == 31 {
            object_type = 32 + r.bits(6).map_err(t)? as u8;
        }
        let frequency_index = r.bits(4).map_err(t)? as u8;
        let sample_rate = if frequency_index == 15 {
            r.bits(24).map_err(t)?
        } else {
            *SAMPLE_RATES
                .get(frequency_index as usize)
                .ok_or(AacError::BadFrequencyIndex(frequency_index))?
        };
        let channel_config = r.bits(4).map_err(t)? as u8;
        Ok(Self {
            object_type,
            frequency_index,
            sample_rate,
            channel_config,
        })
    }

    /// An AAC-LC config for a sample rate from the standard table.
    pub fn aac_lc(sample_rate: u32, channels: u8) -> Option<Self> {
        let idx = SAMPLE_RATES.iter().position(|&r| r == sample_rate)? as u8;
        Some(Self {
            object_type: 2,
            frequency_index: idx,
            sample_rate,
            channel_config: channels,
        })
    }

    /// The two-byte form (object type < 31 and a table sample rate).
    pub fn to_bytes(&self) -> [u8; 2] {
        let v: u16 = ((self.object_type as u16 & 0x1f) << 11)
            | ((self.frequency_index as u16 & 0x0f) << 7)
            | ((self.channel_config as u16 & 0x0f) << 3);
        v.to_be_bytes()
    }

    /// A 7-byte ADTS header (no CRC) for one raw AAC frame of `payload_len` bytes.
    pub fn adts_header(&self, payload_len: usize) -> Result<[u8; 7], AacError> {
        if !(1..=4).contains(&self.object_type) {
            return Err(AacError::NotAdtsObjectType(self.object_type));
        }
        if self.frequency_index > 12 {
            return Err(AacError::BadFrequencyIndex(self.frequency_index));
        }
        let len = payload_len + 7;
        if len > 0x1fff {
            return Err(AacError::FrameTooLarge(payload_len));
        }
        let profile = self.object_type - 1;
        let ch = self.channel_config;
        Ok([
            0xff,
            0xf1, // MPEG-4, layer 0, no CRC
            (profile << 6) | (self.frequency_index << 2) | ((ch >> 2) & 1),
            ((ch & 3) << 6) | ((len >> 11) as u8 & 3),
            (len >> 3) as u8,
            (((len & 7) as u8) << 5) | 0x1f,
            0xfc,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flv_aac_header() {
        let h = AudioTagHeader::parse(&[0xaf, 0x00, 0x12, 0x10]).unwrap();
        assert_eq!(h.codec(), Codec::Aac);
        assert!(h.is_sequence_header() && h.stereo && h.sound_size_16bit);
        assert_eq!(h.header_len(), 2);
        assert!(AudioTagHeader::parse(&[0xaf]).is_err());
        let mp3 = AudioTagHeader::parse(&[0x2f, 0xff]).unwrap();
        assert_eq!(mp3.codec(), Codec::Mp3);
        assert_eq!(mp3.header_len(), 1);
    }

    #[test]
    fn parses_audio_specific_config() {
        // AAC-LC 44.1 kHz stereo: 00010 0100 0010 000
        let c = AudioSpecificConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!(
            (c.object_type, c.sample_rate, c.channel_config),
            (2, 44100, 2)
        );
        // AAC-LC 48 kHz mono: 00010 0011 0001 000
        let c = AudioSpecificConfig::parse(&[0x11, 0x88]).unwrap();
        assert_eq!(
            (c.object_type, c.sample_rate, c.channel_config),
            (2, 48000, 1)
        );
        assert_eq!(c.to_bytes(), [0x11, 0x88]);
        assert_eq!(AudioSpecificConfig::aac_lc(48000, 1), Some(c));
    }

    #[test]
    fn escaped_object_type_and_explicit_rate() {
        // object type 31 -> 32 + 0 ; frequency index 15 then 24-bit rate 0x00AC44 (44100); ch 1
        let bytes = [0xf8, 0x1e, 0x01, 0x58, 0x88, 0x20];
        let c = AudioSpecificConfig::parse(&bytes).unwrap();
        assert_eq!(c.object_type, 32);
        assert_eq!(c.sample_rate, 44100);
        assert_eq!(c.channel_config, 1);
    }

    #[test]
    fn bad_config_is_an_error() {
        assert_eq!(
            AudioSpecificConfig::parse(&[]),
            Err(AacError::ConfigTruncated)
        );
        assert_eq!(
            AudioSpecificConfig::parse(&[0x16, 0x80]),
            Err(AacError::BadFrequencyIndex(13))
        );
    }

    #[test]
    fn adts_header_bytes() {
        let c = AudioSpecificConfig::parse(&[0x12, 0x10]).unwrap();
        // 100-byte payload -> frame length 107
        assert_eq!(
            c.adts_header(100).unwrap(),
            [0xff, 0xf1, 0x50, 0x80, 0x0d, 0x7f, 0xfc]
        );
        assert!(c.adts_header(9000).is_err());
        let he = AudioSpecificConfig {
            object_type: 29,
            ..c
        };
        assert!(he.adts_header(10).is_err());
    }
}
