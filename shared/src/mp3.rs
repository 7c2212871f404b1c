//! MPEG audio (MP3) frame headers: version, layer, bitrate, sample rate and channels, and
//! the MPEG-TS stream type they call for (0x03 MPEG-1, 0x04 MPEG-2/2.5). Parsers take bytes
//! and return values or a typed error; they never panic on bad input.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mp3Error {
    #[error("MPEG audio header needs 4 bytes, got {0}")]
    Truncated(usize),
    #[error("no MPEG audio frame sync (first bytes {0:02x?})")]
    NoSync([u8; 2]),
    #[error("reserved {0} in the MPEG audio header")]
    Reserved(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MpegVersion {
    Mpeg1,
    Mpeg2,
    /// The unofficial low-rate extension (8, 11.025, 12 kHz).
    Mpeg25,
}

/// One MPEG audio frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp3FrameHeader {
    pub version: MpegVersion,
    /// 1, 2 or 3.
    pub layer: u8,
    pub crc_protected: bool,
    /// 0 for free format.
    pub bitrate_kbps: u32,
    pub sample_rate: u32,
    pub padding: bool,
    pub channels: u8,
    pub samples_per_frame: u32,
    /// Bytes of the whole frame, header included; `None` for free format.
    pub frame_len: Option<usize>,
}

const BITRATES_V1: [[u32; 15]; 3] = [
    [
        0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
    ],
    [
        0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
    ],
    [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ],
];
const BITRATES_V2: [[u32; 15]; 2] = [
    [
        0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
    ],
    [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
];

impl Mp3FrameHeader {
    pub fn parse(data: &[u8]) -> Result<Self, Mp3Error> {
        let h: [u8; 4] = data
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(Mp3Error::Truncated(data.len()))?;
        if h[0] != 0xff || h[1] & 0xe0 != 0xe0 {
            return Err(Mp3Error::NoSync([h[0], h[1]]));
        }
        let version = match (h[1] >> 3) & 3 {
            0 => MpegVersion::Mpeg25,
            2 => MpegVersion::Mpeg2,
            3 => MpegVersion::Mpeg1,
            _ => return Err(Mp3Error::Reserved("version")),
        };
        let layer = match (h[1] >> 1) & 3 {
            1 => 3,
            2 => 2,
            3 => 1,
            _ => return Err(Mp3Error::Reserved("layer")),
        };
        let bitrate_index = (h[2] >> 4) as usize;
        if bitrate_index == 15 {
            return Err(Mp3Error::Reserved("bitrate index"));
        }
        let bitrate_kbps = match version {
            MpegVersion::Mpeg1 => BITRATES_V1[layer as usize - 1][bitrate_index],
            _ => BITRATES_V2[(layer != 1) as usize][bitrate_index],
        };
        let rate_index = ((h[2] >> 2) & 3) as usize;
        if rate_index == 3 {
            return Err(Mp3Error::Reserved("sample rate index"));
        }
        let sample_rate = match version {
            MpegVersion::Mpeg1 => [44_100, 48_000, 32_000][rate_index],
            MpegVersion::Mpeg2 => [22_050, 24_000, 16_000][rate_index],
            MpegVersion::Mpeg25 => [11_025, 12_000, 8_000][rate_index],
        };
        let padding = h[2] & 0x02 != 0;
        let samples_per_frame = match (layer, version) {
            (1, _) => 384,
            (2, _) | (3, MpegVersion::Mpeg1) => 1152,
            _ => 576,
        };
        let frame_len = (bitrate_kbps != 0).then(|| {
            let bytes_per_sample_slot = if layer == 1 { 4 } else { 1 };
            let slots =
                samples_per_frame / 8 * bitrate_kbps * 1000 / sample_rate / bytes_per_sample_slot;
            ((slots + padding as u32) * bytes_per_sample_slot) as usize
        });
        Ok(Self {
            version,
            layer,
            crc_protected: h[1] & 1 == 0,
            bitrate_kbps,
            sample_rate,
            padding,
            channels: if h[3] >> 6 == 3 { 1 } else { 2 },
            samples_per_frame,
            frame_len,
        })
    }

    /// MPEG-TS stream_type: 0x03 for MPEG-1 audio, 0x04 for MPEG-2 (and 2.5) audio.
    pub fn ts_stream_type(&self) -> u8 {
        match self.version {
            MpegVersion::Mpeg1 => 0x03,
            _ => 0x04,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // First bytes of libmp3lame frames (FFmpeg 5.1, 64 kbit/s, no Xing/ID3).
    #[test]
    fn lame_mpeg1_stereo_44k() {
        let h = Mp3FrameHeader::parse(&[0xff, 0xfb, 0x50, 0x64]).unwrap();
        assert_eq!(
            (h.version, h.layer, h.bitrate_kbps),
            (MpegVersion::Mpeg1, 3, 64)
        );
        assert_eq!(
            (h.sample_rate, h.channels, h.samples_per_frame),
            (44_100, 2, 1152)
        );
        assert_eq!(h.frame_len, Some(208)); // 144 * 64000 / 44100
        assert_eq!(h.ts_stream_type(), 0x03);
        assert!(!h.crc_protected);
    }

    #[test]
    fn lame_mpeg2_and_25_mono() {
        let h = Mp3FrameHeader::parse(&[0xff, 0xf3, 0x80, 0xc4]).unwrap();
        assert_eq!(
            (h.version, h.bitrate_kbps, h.sample_rate),
            (MpegVersion::Mpeg2, 64, 22_050)
        );
        assert_eq!(
            (h.channels, h.samples_per_frame, h.frame_len),
            (1, 576, Some(208))
        );
        assert_eq!(h.ts_stream_type(), 0x04);
        let h = Mp3FrameHeader::parse(&[0xff, 0xe3, 0x88, 0xc4]).unwrap();
        assert_eq!(
            (h.version, h.sample_rate, h.frame_len),
            (MpegVersion::Mpeg25, 8_000, Some(576))
        );
        assert_eq!(h.ts_stream_type(), 0x04);
    }

    #[test]
    fn layer_one_and_two_lengths() {
        // MPEG-1 Layer II 192 kbit/s 48 kHz: 144 * 192000 / 48000 = 576.
        let h = Mp3FrameHeader::parse(&[0xff, 0xfd, 0xa4, 0x00]).unwrap();
        assert_eq!((h.layer, h.bitrate_kbps, h.frame_len), (2, 192, Some(576)));
        // MPEG-1 Layer I 384 kbit/s 48 kHz, padded: (12 * 384000 / 48000 + 1) * 4 = 388.
        let h = Mp3FrameHeader::parse(&[0xff, 0xff, 0xc6, 0x00]).unwrap();
        assert_eq!(
            (h.layer, h.samples_per_frame, h.frame_len),
            (1, 384, Some(388))
        );
    }

    #[test]
    fn bad_headers() {
        assert_eq!(
            Mp3FrameHeader::parse(&[0xff, 0xfb]),
            Err(Mp3Error::Truncated(2))
        );
        assert_eq!(
            Mp3FrameHeader::parse(&[0x49, 0x44, 0x33, 3]),
            Err(Mp3Error::NoSync([0x49, 0x44]))
        );
        assert_eq!(
            Mp3FrameHeader::parse(&[0xff, 0xeb, 0x50, 0]),
            Err(Mp3Error::Reserved("version"))
        );
        assert_eq!(
            Mp3FrameHeader::parse(&[0xff, 0xf9, 0x50, 0]),
            Err(Mp3Error::Reserved("layer"))
        );
        assert_eq!(
            Mp3FrameHeader::parse(&[0xff, 0xfb, 0xf0, 0]),
            Err(Mp3Error::Reserved("bitrate index"))
        );
        assert_eq!(
            Mp3FrameHeader::parse(&[0xff, 0xfb, 0x5c, 0]),
            Err(Mp3Error::Reserved("sample rate index"))
        );
        let free = Mp3FrameHeader::parse(&[0xff, 0xfb, 0x00, 0]).unwrap();
        assert_eq!((free.bitrate_kbps, free.frame_len), (0, None));
        for a in 0..=255u8 {
            for b in [0u8, 0x55, 0xaa, 0xff] {
                let _ = Mp3FrameHeader::parse(&[0xff, a, b, b]);
            }
        }
    }
}
