//! HEVC configuration: the HEVCDecoderConfigurationRecord (hvcC) with its VPS/SPS/PPS
//! arrays, and the SPS fields viewers care about (size after cropping, profile, level).
//! Parsers take bytes and return values or a typed error; they never panic on bad input.

use crate::bits::{nal_to_rbsp, BitReader, EndOfBits};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HevcError {
    #[error("hvcC truncated at byte {at} of {len}")]
    ConfigTruncated { at: usize, len: usize },
    #[error("hvcC version {0}, expected 1")]
    ConfigVersion(u8),
    #[error("hvcC has no SPS")]
    NoSps,
    #[error("HEVC SPS malformed: {0}")]
    Sps(&'static str),
}

impl From<EndOfBits> for HevcError {
    fn from(_: EndOfBits) -> Self {
        HevcError::Sps("truncated")
    }
}

pub const NAL_VPS: u8 = 32;
pub const NAL_SPS: u8 = 33;
pub const NAL_PPS: u8 = 34;

/// The HEVC NAL unit type (6 bits after the forbidden bit).
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| (b >> 1) & 0x3f)
}

/// IRAP pictures (BLA, IDR, CRA): NAL types 16..=23, where a decoder can start.
pub fn is_irap(nal_type: u8) -> bool {
    (16..=23).contains(&nal_type)
}

/// HEVCDecoderConfigurationRecord (ISO/IEC 14496-15, 8.3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcDecoderConfig {
    pub general_profile_space: u8,
    /// false = Main tier, true = High tier.
    pub general_tier_flag: bool,
    /// 1 = Main, 2 = Main 10, 3 = Main Still Picture, 4 = Range extensions.
    pub general_profile_idc: u8,
    pub general_profile_compatibility_flags: u32,
    /// 48 bits.
    pub general_constraint_indicator_flags: u64,
    /// 30 times the level number (93 = level 3.1).
    pub general_level_idc: u8,
    pub chroma_format_idc: u8,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    /// Bytes of each NAL unit's length prefix in coded frames (1, 2 or 4).
    pub nal_length_size: u8,
    pub vps: Vec<Vec<u8>>,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
}

impl HevcDecoderConfig {
    pub fn parse(data: &[u8]) -> Result<Self, HevcError> {
        let len = data.len();
        let trunc = |at: usize| HevcError::ConfigTruncated { at, len };
        if len < 23 {
            return Err(trunc(len));
        }
        if data[0] != 1 {
            return Err(HevcError::ConfigVersion(data[0]));
        }
        let mut cfg = HevcDecoderConfig {
            general_profile_space: data[1] >> 6,
            general_tier_flag: data[1] & 0x20 != 0,
            general_profile_idc: data[1] & 0x1f,
            general_profile_compatibility_flags: u32::from_be_bytes([
                data[2], data[3], data[4], data[5],
            ]),
            general_constraint_indicator_flags: data[6..12]
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | *b as u64),
            general_level_idc: data[12],
            chroma_format_idc: data[16] & 0x03,
            bit_depth_luma: (data[17] & 0x07) + 8,
            bit_depth_chroma: (data[18] & 0x07) + 8,
            nal_length_size: (data[21] & 0x03) + 1,
            vps: Vec::new(),
            sps: Vec::new(),
            pps: Vec::new(),
        };
        let arrays = data[22];
        let mut at = 23;
        for _ in 0..arrays {
            let head = data.get(at..at + 3).ok_or(trunc(at))?;
            let nal_type = head[0] & 0x3f;
            let count = u16::from_be_bytes([head[1], head[2]]);
            at += 3;
            for _ in 0..count {
                let l = data.get(at..at + 2).ok_or(trunc(at))?;
                let n = u16::from_be_bytes([l[0], l[1]]) as usize;
                at += 2;
                let nal = data.get(at..at + n).ok_or(trunc(at))?;
                at += n;
                match nal_type {
                    NAL_VPS => cfg.vps.push(nal.to_vec()),
                    NAL_SPS => cfg.sps.push(nal.to_vec()),
                    NAL_PPS => cfg.pps.push(nal.to_vec()),
                    // SEI and others: not needed to start decoding.
                    _ => {}
                }
            }
        }
        Ok(cfg)
    }

    /// The RFC 6381 / ISO 14496-15 E.3 codec string, e.g. `hvc1.1.6.L93.90`, for HLS
    /// CODECS and MSE.
    pub fn codec_string(&self) -> String {
        let space = ["", "A", "B", "C"][self.general_profile_space as usize & 3];
        let tier = if self.general_tier_flag { 'H' } else { 'L' };
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{tier}{}",
            self.general_profile_idc,
            self.general_profile_compatibility_flags.reverse_bits(),
            self.general_level_idc
        );
        // The six constraint bytes, trailing zero bytes left out.
        let bytes = self.general_constraint_indicator_flags.to_be_bytes();
        let used = bytes[2..]
            .iter()
            .rposition(|b| *b != 0)
            .map_or(0, |i| i + 1);
        for b in &bytes[2..2 + used] {
            s.push_str(&format!(".{b:X}"));
        }
        s
    }

    /// The first SPS's fields.
    pub fn sps_info(&self) -> Result<HevcSpsInfo, HevcError> {
        HevcSpsInfo::parse(self.sps.first().ok_or(HevcError::NoSps)?)
    }
}

/// What the SPS says about the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HevcSpsInfo {
    /// Displayed size: coded size minus the conformance window.
    pub width: u32,
    pub height: u32,
    pub profile_idc: u8,
    pub tier_flag: bool,
    pub level_idc: u8,
    pub chroma_format_idc: u8,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
}

impl HevcSpsInfo {
    /// Parses an SPS NAL unit (2-byte NAL header included, emulation prevention in place).
    pub fn parse(nal: &[u8]) -> Result<Self, HevcError> {
        if nal.len() < 3 {
            return Err(HevcError::Sps("shorter than its header"));
        }
        if nal_type(nal) != NAL_SPS {
            return Err(HevcError::Sps("not an SPS NAL unit"));
        }
        let rbsp = nal_to_rbsp(&nal[2..]);
        let mut r = BitReader::new(&rbsp);
        r.skip(4)?; // sps_video_parameter_set_id
        let max_sub_layers_minus1 = r.bits(3)? as usize;
        r.skip(1)?; // sps_temporal_id_nesting_flag
                    // profile_tier_level(1, max_sub_layers_minus1): the general part is 96 bits.
        r.skip(2)?; // general_profile_space
        let tier_flag = r.bit()? == 1;
        let profile_idc = r.bits(5)? as u8;
        r.skip(32 + 48)?; // compatibility and constraint flags
        let level_idc = r.bits(8)? as u8;
        let mut sub_profile = [false; 8];
        let mut sub_level = [false; 8];
        for i in 0..max_sub_layers_minus1 {
            sub_profile[i] = r.bit()? == 1;
            sub_level[i] = r.bit()? == 1;
        }
        if max_sub_layers_minus1 > 0 {
            r.skip(2 * (8 - max_sub_layers_minus1))?; // reserved_zero_2bits
        }
        for i in 0..max_sub_layers_minus1 {
            if sub_profile[i] {
                r.skip(88)?;
            }
            if sub_level[i] {
                r.skip(8)?;
            }
        }
        r.ue()?; // sps_seq_parameter_set_id
        let chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Err(HevcError::Sps("chroma_format_idc above 3"));
        }
        let separate_colour_plane = chroma_format_idc == 3 && r.bit()? == 1;
        let coded_width = r.ue()?;
        let coded_height = r.ue()?;
        let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
        if r.bit()? == 1 {
            left = r.ue()?;
            right = r.ue()?;
            top = r.ue()?;
            bottom = r.ue()?;
        }
        let bit_depth_luma = r.ue()?;
        let bit_depth_chroma = r.ue()?;
        if bit_depth_luma > 8 || bit_depth_chroma > 8 {
            return Err(HevcError::Sps("bit depth above 16"));
        }
        // Conformance window offsets count chroma samples (H.265 7.4.3.2.1).
        let chroma = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (sub_w, sub_h) = match chroma {
            1 => (2u64, 2u64),
            2 => (2, 1),
            _ => (1, 1),
        };
        let crop_w = sub_w * (left as u64 + right as u64);
        let crop_h = sub_h * (top as u64 + bottom as u64);
        let width = (coded_width as u64)
            .checked_sub(crop_w)
            .ok_or(HevcError::Sps("conformance window wider than the picture"))?;
        let height = (coded_height as u64)
            .checked_sub(crop_h)
            .ok_or(HevcError::Sps("conformance window taller than the picture"))?;
        Ok(Self {
            width: width as u32,
            height: height as u32,
            profile_idc,
            tier_flag,
            level_idc,
            chroma_format_idc: chroma_format_idc as u8,
            bit_depth_luma: bit_depth_luma as u8 + 8,
            bit_depth_chroma: bit_depth_chroma as u8 + 8,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eflv::hex;

    /// hvcC of 1280x720 yuv420p from x265 3.5 (FFmpeg 5.1, `-x265-params info=0`, MP4).
    const HVCC_720P: &str = "0101600000009000000000005df000fcfdf8f800000f03a00001001840010c01ffff\
        01600000030090000003000003005d959809a10001002b42010101600000030090000003000003005da0\
        0280802d165959a4932bc05a020000030002000003003c10a2000100074401c172b46240";
    /// hvcC of 322x182 yuv420p10le (coded 328x184, cropped by the conformance window).
    const HVCC_322X182_MAIN10: &str =
        "0102200000009000000000003cf000fcfdfafa00000f03a00001001840010c\
        01ffff02200000030090000003000003003c959809a10001002c420101022000000300900000030000030\
        03ca00a480b9c94d96566924caf016808000003000800000300f040a2000100074401c172b46240";

    #[test]
    fn x265_720p_main() {
        let cfg = HevcDecoderConfig::parse(&hex(HVCC_720P)).unwrap();
        assert_eq!(cfg.general_profile_idc, 1);
        assert!(!cfg.general_tier_flag);
        assert_eq!(cfg.general_level_idc, 93);
        assert_eq!((cfg.chroma_format_idc, cfg.bit_depth_luma), (1, 8));
        assert_eq!(cfg.nal_length_size, 4);
        assert_eq!((cfg.vps.len(), cfg.sps.len(), cfg.pps.len()), (1, 1, 1));
        assert_eq!(nal_type(&cfg.vps[0]), NAL_VPS);
        assert_eq!(nal_type(&cfg.pps[0]), NAL_PPS);
        let sps = cfg.sps_info().unwrap();
        assert_eq!((sps.width, sps.height), (1280, 720));
        assert_eq!(
            (sps.profile_idc, sps.level_idc, sps.tier_flag),
            (1, 93, false)
        );
    }

    #[test]
    fn x265_main10_with_conformance_window() {
        let cfg = HevcDecoderConfig::parse(&hex(HVCC_322X182_MAIN10)).unwrap();
        assert_eq!((cfg.general_profile_idc, cfg.general_level_idc), (2, 60));
        let sps = cfg.sps_info().unwrap();
        assert_eq!((sps.width, sps.height), (322, 182));
        assert_eq!((sps.bit_depth_luma, sps.bit_depth_chroma), (10, 10));
        assert_eq!(cfg.codec_string(), "hvc1.2.4.L60.90");
    }

    #[test]
    fn truncated_or_garbage_never_panics() {
        let full = hex(HVCC_720P);
        for n in 0..full.len() {
            let _ = HevcDecoderConfig::parse(&full[..n]).map(|c| c.sps_info());
        }
        assert!(matches!(
            HevcDecoderConfig::parse(&full[..40]),
            Err(HevcError::ConfigTruncated { .. })
        ));
        let sps = HevcDecoderConfig::parse(&full).unwrap().sps[0].clone();
        for n in 0..sps.len() {
            let _ = HevcSpsInfo::parse(&sps[..n]);
        }
        assert!(HevcSpsInfo::parse(&sps[..12]).is_err());
        assert_eq!(
            HevcSpsInfo::parse(&[0x40, 0x01, 0x0c]),
            Err(HevcError::Sps("not an SPS NAL unit"))
        );
        let mut v = full.clone();
        v[0] = 0;
        assert_eq!(
            HevcDecoderConfig::parse(&v),
            Err(HevcError::ConfigVersion(0))
        );
        for seed in 0..200u32 {
            let junk: Vec<u8> = (0..64u32)
                .map(|i| (seed.wrapping_mul(2654435761).wrapping_add(i * 40503) >> 13) as u8)
                .collect();
            let _ = HevcSpsInfo::parse(&[&[0x42, 0x01][..], &junk].concat());
        }
    }
}
