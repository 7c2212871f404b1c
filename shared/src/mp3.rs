//! MPEG audio (MP3) frame headers (ISO/IEC 11172-3 and 13818-3): the version, sample rate
//! and channels a muxer needs, read from the first four bytes of a frame. Pure; a header
//! that is not one is an error, never a guess.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mp3Error {
    #[error("MPEG audio frame shorter than its 4-byte header ({0} bytes)")]
    TooShort(usize),
    #[error("no MPEG audio frame sync")]
    NoSync,
    #[error("reserved MPEG audio version, layer or sample rate")]
    Reserved,
}

/// MPEG audio version: MPEG-1, MPEG-2 (half sample rates) or the unofficial MPEG-2.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpegVersion {
    Mpeg1,
    Mpeg2,
    Mpeg25,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp3Header {
    pub version: MpegVersion,
    /// 1, 2 or 3.
    pub layer: u8,
    pub sample_rate: u32,
    pub channels: u8,
}

impl Mp3Header {
    pub fn parse(frame: &[u8]) -> Result<Self, Mp3Error> {
        let h = frame.get(..4).ok_or(Mp3Error::TooShort(frame.len()))?;
        if h[0] != 0xff || h[1] & 0xe0 != 0xe0 {
            return Err(Mp3Error::NoSync);
        }
        let version = match (h[1] >> 3) & 3 {
            0 => MpegVersion::Mpeg25,
            2 => MpegVersion::Mpeg2,
            3 => MpegVersion::Mpeg1,
            _ => return Err(Mp3Error::Reserved),
        };
        let layer = match (h[1] >> 1) & 3 {
            1 => 3,
            2 => 2,
            3 => 1,
            _ => return Err(Mp3Error::Reserved),
        };
        let base = match (h[2] >> 2) & 3 {
            0 => 44100,
            1 => 48000,
            2 => 32000,
            _ => return Err(Mp3Error::Reserved),
        };
        let sample_rate = match version {
            MpegVersion::Mpeg1 => base,
            MpegVersion::Mpeg2 => base / 2,
            MpegVersion::Mpeg25 => base / 4,
        };
        let channels = if h[3] >> 6 == 3 { 1 } else { 2 };
        Ok(Self {
            version,
            layer,
            sample_rate,
            channels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_version_rate_and_channels() {
        // MPEG-1 layer III, 128 kbit/s, 44.1 kHz, joint stereo (what lame writes).
        let h = Mp3Header::parse(&[0xff, 0xfb, 0x90, 0x64]).unwrap();
        assert_eq!(
            h,
            Mp3Header {
                version: MpegVersion::Mpeg1,
                layer: 3,
                sample_rate: 44100,
                channels: 2
            }
        );
        // MPEG-2 layer III, 24 kHz (index 1 halved), mono.
        let h = Mp3Header::parse(&[0xff, 0xf3, 0x44, 0xc4]).unwrap();
        assert_eq!(h.version, MpegVersion::Mpeg2);
        assert_eq!((h.sample_rate, h.channels), (24000, 1));
        // MPEG-2.5, 8 kHz.
        let h = Mp3Header::parse(&[0xff, 0xe3, 0x08, 0x00]).unwrap();
        assert_eq!((h.version, h.sample_rate), (MpegVersion::Mpeg25, 8000));
    }

    #[test]
    fn refuses_what_is_not_a_header() {
        assert_eq!(Mp3Header::parse(&[0xff, 0xfb]), Err(Mp3Error::TooShort(2)));
        assert_eq!(Mp3Header::parse(&[0x12, 0x34, 0, 0]), Err(Mp3Error::NoSync));
        // Reserved version bits (01).
        assert_eq!(
            Mp3Header::parse(&[0xff, 0xeb, 0x90, 0]),
            Err(Mp3Error::Reserved)
        );
        // Reserved sample rate index 3.
        assert_eq!(
            Mp3Header::parse(&[0xff, 0xfb, 0x9c, 0]),
            Err(Mp3Error::Reserved)
        );
    }
}
