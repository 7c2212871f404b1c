//! VP9 configuration: the VPCodecConfigurationRecord (vpcC) of the sequence start, and the
//! uncompressed header of a keyframe, the only place VP9 states its frame size.
//! Parsers take bytes and return values or a typed error; they never panic on bad input.

use crate::bits::{BitReader, EndOfBits};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Vp9Error {
    #[error("vpcC of {0} bytes is too short")]
    ConfigTruncated(usize),
    #[error("VP9 frame header truncated")]
    HeaderTruncated,
    #[error("VP9 frame marker {0}, expected 2")]
    FrameMarker(u32),
    #[error("VP9 keyframe sync code {0:#08x}, expected 0x498342")]
    SyncCode(u32),
    #[error("VP9 reserved bit set in the frame header")]
    Reserved,
}

impl From<EndOfBits> for Vp9Error {
    fn from(_: EndOfBits) -> Self {
        Vp9Error::HeaderTruncated
    }
}

/// VPCodecConfigurationRecord (VP codec ISOBMFF binding, version 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VpcConfig {
    pub profile: u8,
    /// 10 times the level number (31 = level 3.1).
    pub level: u8,
    pub bit_depth: u8,
    /// 0 = 4:2:0 vertical, 1 = 4:2:0 colocated, 2 = 4:2:2, 3 = 4:4:4.
    pub chroma_subsampling: u8,
    pub video_full_range: bool,
    pub colour_primaries: u8,
    pub transfer_characteristics: u8,
    pub matrix_coefficients: u8,
}

impl VpcConfig {
    /// Parses the record. FFmpeg writes the vpcC box's FullBox version (1) and flags (0)
    /// before it, as in MP4; both forms are accepted.
    pub fn parse(data: &[u8]) -> Result<Self, Vp9Error> {
        // With the FullBox prefix the bytes are 01 00 00 00 then the record; a bare record
        // cannot start that way, since its second byte (the level) is never 0.
        let rec = if data.len() >= 12 && data[..4] == [1, 0, 0, 0] {
            &data[4..]
        } else {
            data
        };
        if rec.len() < 8 {
            return Err(Vp9Error::ConfigTruncated(data.len()));
        }
        Ok(Self {
            profile: rec[0],
            level: rec[1],
            bit_depth: rec[2] >> 4,
            chroma_subsampling: (rec[2] >> 1) & 0x07,
            video_full_range: rec[2] & 0x01 != 0,
            colour_primaries: rec[3],
            transfer_characteristics: rec[4],
            matrix_coefficients: rec[5],
        })
    }
}

impl VpcConfig {
    /// The codec string of the VP9 ISOBMFF binding (short form), e.g. `vp09.00.31.08`.
    pub fn codec_string(&self) -> String {
        format!(
            "vp09.{:02}.{:02}.{:02}",
            self.profile, self.level, self.bit_depth
        )
    }
}

/// What a frame's uncompressed header says (VP9 bitstream spec 6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp9FrameHeader {
    pub profile: u8,
    /// show_existing_frame: the frame only repeats an earlier one; nothing else is read.
    pub show_existing_frame: bool,
    pub keyframe: bool,
    /// Keyframes only.
    pub bit_depth: Option<u8>,
    /// 0 = unknown, 1 = BT.601, 2 = BT.709, ... 7 = sRGB.
    pub color_space: Option<u8>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl Vp9FrameHeader {
    /// Parses the start of a frame (or of a superframe, whose first frame comes first).
    pub fn parse(frame: &[u8]) -> Result<Self, Vp9Error> {
        let mut r = BitReader::new(frame);
        let marker = r.bits(2)?;
        if marker != 2 {
            return Err(Vp9Error::FrameMarker(marker));
        }
        let low = r.bit()?;
        let high = r.bit()?;
        let profile = ((high << 1) | low) as u8;
        if profile == 3 && r.bit()? != 0 {
            return Err(Vp9Error::Reserved);
        }
        let mut h = Self {
            profile,
            show_existing_frame: r.bit()? == 1,
            keyframe: false,
            bit_depth: None,
            color_space: None,
            width: None,
            height: None,
        };
        if h.show_existing_frame {
            return Ok(h);
        }
        h.keyframe = r.bit()? == 0; // frame_type 0 = KEY_FRAME
        r.skip(2)?; // show_frame, error_resilient_mode
        if !h.keyframe {
            return Ok(h);
        }
        let sync = r.bits(24)?;
        if sync != 0x49_83_42 {
            return Err(Vp9Error::SyncCode(sync));
        }
        // color_config()
        let bit_depth = if profile >= 2 {
            if r.bit()? == 1 {
                12
            } else {
                10
            }
        } else {
            8
        };
        let color_space = r.bits(3)? as u8;
        const CS_RGB: u8 = 7;
        if color_space != CS_RGB {
            r.skip(1)?; // color_range
            if profile == 1 || profile == 3 {
                r.skip(2)?; // subsampling_x, subsampling_y
                if r.bit()? != 0 {
                    return Err(Vp9Error::Reserved);
                }
            }
        } else if (profile == 1 || profile == 3) && r.bit()? != 0 {
            return Err(Vp9Error::Reserved);
        }
        h.bit_depth = Some(bit_depth);
        h.color_space = Some(color_space);
        h.width = Some(r.bits(16)? + 1);
        h.height = Some(r.bits(16)? + 1);
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eflv::hex;

    #[test]
    fn libvpx_vpcc_with_and_without_fullbox_prefix() {
        // vpcC box payload of 1280x720 yuv420p from libvpx (FFmpeg 5.1, MP4).
        let boxed = hex("01000000001f820202020000");
        let c = VpcConfig::parse(&boxed).unwrap();
        assert_eq!(
            (c.profile, c.level, c.bit_depth, c.chroma_subsampling),
            (0, 31, 8, 1)
        );
        assert!(!c.video_full_range);
        assert_eq!(
            (
                c.colour_primaries,
                c.transfer_characteristics,
                c.matrix_coefficients
            ),
            (2, 2, 2)
        );
        assert_eq!(VpcConfig::parse(&boxed[4..]).unwrap(), c);
        assert_eq!(c.codec_string(), "vp09.00.31.08");
        assert_eq!(
            VpcConfig::parse(&boxed[4..10]),
            Err(Vp9Error::ConfigTruncated(6))
        );
    }

    #[test]
    fn libvpx_keyframe_headers() {
        // First bytes of libvpx keyframes (IVF): 322x182 profile 0, and profile 2 10-bit.
        let h = Vp9FrameHeader::parse(&hex("824983420014100b560638241c184a000a605f7dbfc6fff2"))
            .unwrap();
        assert!(h.keyframe && !h.show_existing_frame);
        assert_eq!((h.profile, h.bit_depth), (0, Some(8)));
        assert_eq!((h.width, h.height), (Some(322), Some(182)));
        let h = Vp9FrameHeader::parse(&hex("92498342000a0805ab031c120e0c2c0005185f7e27c6fff6"))
            .unwrap();
        assert_eq!((h.profile, h.bit_depth), (2, Some(10)));
        assert_eq!((h.width, h.height), (Some(322), Some(182)));
    }

    #[test]
    fn inter_frames_and_bad_headers() {
        // An inter frame (frame_type 1) from the same stream: no size.
        let h = Vp9FrameHeader::parse(&[0x86, 0x00, 0x40]).unwrap();
        assert!(!h.keyframe);
        assert_eq!(h.width, None);
        assert_eq!(
            Vp9FrameHeader::parse(&[0x42]),
            Err(Vp9Error::FrameMarker(1))
        );
        assert_eq!(
            Vp9FrameHeader::parse(&[0x82, 0x49, 0x83, 0x43, 0]),
            Err(Vp9Error::SyncCode(0x498343))
        );
        let key = hex("824983420014100b560638241c184a00");
        for n in 0..key.len() {
            let _ = Vp9FrameHeader::parse(&key[..n]);
        }
        assert_eq!(
            Vp9FrameHeader::parse(&key[..6]),
            Err(Vp9Error::HeaderTruncated)
        );
    }
}
