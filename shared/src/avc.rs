//! H.264 in FLV: the video tag header (legacy and Enhanced RTMP), the
//! AVCDecoderConfigurationRecord, the SPS fields viewers care about, and NAL unit framing.
//! Parsers take bytes and return values or a typed error; they never panic on bad input.

use crate::bits::{nal_to_rbsp, BitReader};
use crate::codec::Codec;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AvcError {
    #[error("video tag too short: {len} bytes, need {need}")]
    TagTooShort { len: usize, need: usize },
    #[error("AVCDecoderConfigurationRecord truncated at byte {at} of {len}")]
    ConfigTruncated { at: usize, len: usize },
    #[error("AVCDecoderConfigurationRecord version {0}, expected 1")]
    ConfigVersion(u8),
    #[error("SPS truncated or malformed ({0})")]
    Sps(&'static str),
    #[error("NAL unit length {len} at byte {at} runs past the end ({total} bytes)")]
    NaluOverrun { at: usize, len: usize, total: usize },
}

pub const VIDEO_CODEC_AVC: u8 = 7;
/// Legacy (pre-Enhanced RTMP) HEVC id used by some Chinese CDNs and old OBS forks.
pub const VIDEO_CODEC_HEVC_LEGACY: u8 = 12;

pub const FRAME_TYPE_KEY: u8 = 1;
pub const FRAME_TYPE_INTER: u8 = 2;

pub const AVC_SEQUENCE_HEADER: u8 = 0;
pub const AVC_NALU: u8 = 1;
pub const AVC_END_OF_SEQUENCE: u8 = 2;

/// What the first bytes of an FLV video tag body say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTagHeader {
    pub frame_type: u8,
    pub codec: Codec,
    /// Enhanced RTMP (FourCC ex-header) rather than the legacy codec id.
    pub enhanced: bool,
    /// Legacy AVC packet type or Enhanced RTMP packet type.
    pub packet_type: u8,
    /// Composition time offset in ms (signed 24 bits), 0 where the format has none.
    pub composition_time: i32,
    /// Bytes of header before the codec payload.
    pub header_len: usize,
}

impl VideoTagHeader {
    pub fn parse(body: &[u8]) -> Result<Self, AvcError> {
        let first = *body
            .first()
            .ok_or(AvcError::TagTooShort { len: 0, need: 1 })?;
        if first & 0x80 != 0 {
            return Self::parse_enhanced(body);
        }
        let frame_type = first >> 4;
        let codec_id = first & 0x0f;
        let codec = match codec_id {
            VIDEO_CODEC_AVC => Codec::H264,
            VIDEO_CODEC_HEVC_LEGACY => Codec::Hevc,
            other => Codec::Other(other),
        };
        if codec_id != VIDEO_CODEC_AVC && codec_id != VIDEO_CODEC_HEVC_LEGACY {
            return Ok(Self {
                frame_type,
                codec,
                enhanced: false,
                packet_type: 0,
                composition_time: 0,
                header_len: 1,
            });
        }
        if body.len() < 5 {
            return Err(AvcError::TagTooShort {
                len: body.len(),
                need: 5,
            });
        }
        Ok(Self {
            frame_type,
            codec,
            enhanced: false,
            packet_type: body[1],
            composition_time: i24(&body[2..5]),
            header_len: 5,
        })
    }

    fn parse_enhanced(body: &[u8]) -> Result<Self, AvcError> {
        if body.len() < 5 {
            return Err(AvcError::TagTooShort {
                len: body.len(),
                need: 5,
            });
        }
        let frame_type = (body[0] >> 4) & 0x07;
        let packet_type = body[0] & 0x0f;
        let codec = match &body[1..5] {
            b"avc1" => Codec::H264,
            b"hvc1" => Codec::Hevc,
            b"av01" => Codec::Av1,
            b"vp09" => Codec::Vp9,
            _ => Codec::Other(0xff),
        };
        // PacketTypeCodedFrames (1) carries a composition time for AVC and HEVC.
        let has_cts = packet_type == 1 && matches!(codec, Codec::H264 | Codec::Hevc);
        let (composition_time, header_len) = if has_cts {
            if body.len() < 8 {
                return Err(AvcError::TagTooShort {
                    len: body.len(),
                    need: 8,
                });
            }
            (i24(&body[5..8]), 8)
        } else {
            (0, 5)
        };
        Ok(Self {
            frame_type,
            codec,
            enhanced: true,
            packet_type,
            composition_time,
            header_len,
        })
    }

    pub fn is_keyframe(&self) -> bool {
        self.frame_type == FRAME_TYPE_KEY && !self.is_sequence_header()
    }

    pub fn is_sequence_header(&self) -> bool {
        // Legacy AVC_SEQUENCE_HEADER and Enhanced PacketTypeSequenceStart are both 0.
        matches!(
            self.codec,
            Codec::H264 | Codec::Hevc | Codec::Av1 | Codec::Vp9
        ) && self.packet_type == AVC_SEQUENCE_HEADER
    }
}

fn i24(b: &[u8]) -> i32 {
    let v = ((b[0] as i32) << 16) | ((b[1] as i32) << 8) | b[2] as i32;
    (v << 8) >> 8
}

/// AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.2.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcDecoderConfig {
    pub profile: u8,
    pub compatibility: u8,
    pub level: u8,
    /// Bytes in each NAL unit length prefix (1, 2 or 4).
    pub nalu_length_size: u8,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
}

impl AvcDecoderConfig {
    pub fn parse(data: &[u8]) -> Result<Self, AvcError> {
        let mut at = 0usize;
        let truncated = |at| AvcError::ConfigTruncated {
            at,
            len: data.len(),
        };
        let byte = |at: usize| data.get(at).copied().ok_or(truncated(at));
        let version = byte(0)?;
        if version != 1 {
            return Err(AvcError::ConfigVersion(version));
        }
        let profile = byte(1)?;
        let compatibility = byte(2)?;
        let level = byte(3)?;
        let nalu_length_size = (byte(4)? & 0x03) + 1;
        at += 5;
        let read_sets = |count: usize, at: &mut usize| -> Result<Vec<Vec<u8>>, AvcError> {
            let mut sets = Vec::with_capacity(count);
            for _ in 0..count {
                let len = ((byte(*at)? as usize) << 8) | byte(*at + 1)? as usize;
                *at += 2;
                let set = data.get(*at..*at + len).ok_or(truncated(*at))?;
                sets.push(set.to_vec());
                *at += len;
            }
            Ok(sets)
        };
        let sps_count = (byte(at)? & 0x1f) as usize;
        at += 1;
        let sps = read_sets(sps_count, &mut at)?;
        let pps_count = byte(at)? as usize;
        at += 1;
        let pps = read_sets(pps_count, &mut at)?;
        Ok(Self {
            profile,
            compatibility,
            level,
            nalu_length_size,
            sps,
            pps,
        })
    }

    /// Builds a record from one SPS and one PPS (NAL units without start codes).
    pub fn from_parameter_sets(sps: &[u8], pps: &[u8]) -> Result<Self, AvcError> {
        if sps.len() < 4 {
            return Err(AvcError::Sps("SPS shorter than 4 bytes"));
        }
        Ok(Self {
            profile: sps[1],
            compatibility: sps[2],
            level: sps[3],
            nalu_length_size: 4,
            sps: vec![sps.to_vec()],
            pps: vec![pps.to_vec()],
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![
            1,
            self.profile,
            self.compatibility,
            self.level,
            0xfc | (self.nalu_length_size.saturating_sub(1) & 3),
            0xe0 | (self.sps.len() as u8 & 0x1f),
        ];
        for s in &self.sps {
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s);
        }
        out.push(self.pps.len() as u8);
        for p in &self.pps {
            out.extend_from_slice(&(p.len() as u16).to_be_bytes());
            out.extend_from_slice(p);
        }
        out
    }

    /// The first SPS, decoded.
    pub fn sps_info(&self) -> Result<SpsInfo, AvcError> {
        let sps = self.sps.first().ok_or(AvcError::Sps("no SPS in record"))?;
        SpsInfo::parse(sps)
    }
}

/// The SPS fields a viewer list shows.
#[derive(Debug, Clone, PartialEq)]
pub struct SpsInfo {
    pub profile_idc: u8,
    pub level_idc: u8,
    pub width: u32,
    pub height: u32,
    /// From VUI timing info when present.
    pub fps: Option<f64>,
}

impl SpsInfo {
    /// Parses an SPS NAL unit (header byte included, emulation prevention still in).
    pub fn parse(nal: &[u8]) -> Result<Self, AvcError> {
        let rbsp = nal_to_rbsp(nal);
        Self::parse_rbsp(&rbsp).map_err(|_| AvcError::Sps("bitstream ended early"))
    }

    fn parse_rbsp(rbsp: &[u8]) -> Result<Self, crate::bits::EndOfBits> {
        let mut r = BitReader::new(rbsp);
        r.skip(8)?; // NAL header
        let profile_idc = r.bits(8)? as u8;
        r.skip(8)?; // constraint flags
        let level_idc = r.bits(8)? as u8;
        r.ue()?; // seq_parameter_set_id
        let mut chroma_format_idc = 1;
        let mut separate_colour_plane = false;
        if matches!(
            profile_idc,
            100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
        ) {
            chroma_format_idc = r.ue()?;
            if chroma_format_idc == 3 {
                separate_colour_plane = r.bit()? == 1;
            }
            r.ue()?; // bit_depth_luma_minus8
            r.ue()?; // bit_depth_chroma_minus8
            r.bit()?; // qpprime_y_zero_transform_bypass
            if r.bit()? == 1 {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.bit()? == 1 {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        r.ue()?; // log2_max_frame_num_minus4
        match r.ue()? {
            0 => {
                r.ue()?;
            }
            1 => {
                r.bit()?;
                r.se()?;
                r.se()?;
                let cycle = r.ue()?;
                for _ in 0..cycle.min(256) {
                    r.se()?;
                }
            }
            _ => {}
        }
        r.ue()?; // max_num_ref_frames
        r.bit()?; // gaps_in_frame_num_value_allowed
        let width_mbs = r.ue()? as u64 + 1;
        let height_map_units = r.ue()? as u64 + 1;
        let frame_mbs_only = r.bit()? as u64;
        if frame_mbs_only == 0 {
            r.bit()?;
        }
        r.bit()?; // direct_8x8_inference
        let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
        if r.bit()? == 1 {
            crop_l = r.ue()? as u64;
            crop_r = r.ue()? as u64;
            crop_t = r.ue()? as u64;
            crop_b = r.ue()? as u64;
        }
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (sub_w, sub_h) = match chroma_array_type {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let crop_unit_x = if chroma_array_type == 0 { 1 } else { sub_w };
        let crop_unit_y = if chroma_array_type == 0 {
            2 - frame_mbs_only
        } else {
            sub_h * (2 - frame_mbs_only)
        };
        let width = (width_mbs * 16).saturating_sub(crop_unit_x * (crop_l + crop_r));
        let height = ((2 - frame_mbs_only) * height_map_units * 16)
            .saturating_sub(crop_unit_y * (crop_t + crop_b));
        let fps = parse_vui_fps(&mut r).ok().flatten();
        Ok(Self {
            profile_idc,
            level_idc,
            width: width.min(u32::MAX as u64) as u32,
            height: height.min(u32::MAX as u64) as u32,
            fps,
        })
    }
}

fn skip_scaling_list(r: &mut BitReader, size: usize) -> Result<(), crate::bits::EndOfBits> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            // delta_scale is -128..=127 in a valid SPS; a broken one may carry any i32.
            let delta = i64::from(r.se()?);
            next = (i64::from(last) + delta + 256).rem_euclid(256) as i32;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

fn parse_vui_fps(r: &mut BitReader) -> Result<Option<f64>, crate::bits::EndOfBits> {
    if r.bit()? == 0 {
        return Ok(None);
    }
    if r.bit()? == 1 && r.bits(8)? == 255 {
        r.skip(32)?; // sar width, height
    }
    if r.bit()? == 1 {
        r.bit()?; // overscan_appropriate
    }
    if r.bit()? == 1 {
        r.skip(4)?; // video_format, full_range
        if r.bit()? == 1 {
            r.skip(24)?;
        }
    }
    if r.bit()? == 1 {
        r.ue()?;
        r.ue()?;
    }
    if r.bit()? == 1 {
        let units = r.bits(32)?;
        let scale = r.bits(32)?;
        if units > 0 {
            return Ok(Some(scale as f64 / (2.0 * units as f64)));
        }
    }
    Ok(None)
}

/// Splits a payload of length-prefixed NAL units (AVCC form) into NAL units.
pub fn split_length_prefixed(data: &[u8], length_size: u8) -> Result<Vec<&[u8]>, AvcError> {
    let n = length_size.clamp(1, 4) as usize;
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let prefix = data.get(at..at + n).ok_or(AvcError::NaluOverrun {
            at,
            len: n,
            total: data.len(),
        })?;
        let len = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        at += n;
        let nal = data.get(at..at + len).ok_or(AvcError::NaluOverrun {
            at,
            len,
            total: data.len(),
        })?;
        out.push(nal);
        at += len;
    }
    Ok(out)
}

/// Splits an Annex B byte stream (start codes 00 00 01 or 00 00 00 01) into NAL units.
pub fn split_annexb(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, &(_, begin)) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |&(s, _)| s);
        // A 4-byte start code leaves its leading zero on the previous unit.
        while end > begin && data[end - 1] == 0 && k + 1 < starts.len() {
            end -= 1;
        }
        if end > begin {
            out.push(&data[begin..end]);
        }
    }
    out
}

/// H.264 NAL unit type of a NAL unit (its first byte's low 5 bits).
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

pub const NAL_IDR: u8 = 5;
pub const NAL_SEI: u8 = 6;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

#[cfg(test)]
mod tests {
    use super::*;

    // SPS of x264 1280x720 high profile (ffmpeg testsrc2), with VUI timing 30 fps.
    const SPS_720P: [u8; 26] = [
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
    ];

    #[test]
    fn legacy_avc_header_with_negative_cts() {
        let h = VideoTagHeader::parse(&[0x27, 0x01, 0xff, 0xff, 0xf6]).unwrap();
        assert_eq!(h.codec, Codec::H264);
        assert_eq!(h.composition_time, -10);
        assert!(!h.is_keyframe());
        assert_eq!(h.header_len, 5);
    }

    #[test]
    fn enhanced_rtmp_hevc_is_recognised() {
        // isExHeader | keyframe(1) << 4 | PacketTypeCodedFrames(1), 'hvc1', cts 0x000010
        let h = VideoTagHeader::parse(&[0x91, b'h', b'v', b'c', b'1', 0, 0, 0x10]).unwrap();
        assert!(h.enhanced);
        assert_eq!(h.codec, Codec::Hevc);
        assert_eq!(h.composition_time, 16);
        assert!(h.is_keyframe());
        let seq = VideoTagHeader::parse(&[0x90, b'a', b'v', b'0', b'1']).unwrap();
        assert_eq!(seq.codec, Codec::Av1);
        assert!(seq.is_sequence_header());
    }

    #[test]
    fn truncated_tag_is_an_error() {
        assert!(VideoTagHeader::parse(&[]).is_err());
        assert!(VideoTagHeader::parse(&[0x17, 0x01]).is_err());
        assert!(VideoTagHeader::parse(&[0x91, b'h', b'v', b'c', b'1', 0]).is_err());
    }

    #[test]
    fn config_record_roundtrip_and_sps() {
        let pps = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
        let cfg = AvcDecoderConfig::from_parameter_sets(&SPS_720P, &pps).unwrap();
        let bytes = cfg.to_bytes();
        assert_eq!(&bytes[..6], &[1, 0x64, 0x00, 0x1f, 0xff, 0xe1]);
        let back = AvcDecoderConfig::parse(&bytes).unwrap();
        assert_eq!(back, cfg);
        let info = back.sps_info().unwrap();
        assert_eq!((info.profile_idc, info.level_idc), (100, 31));
        assert_eq!((info.width, info.height), (1280, 720));
        assert_eq!(info.fps, Some(30.0));
    }

    #[test]
    fn truncated_config_is_an_error_not_a_panic() {
        let cfg = AvcDecoderConfig::from_parameter_sets(&SPS_720P, &[0x68, 1])
            .unwrap()
            .to_bytes();
        for n in 0..cfg.len() {
            assert!(AvcDecoderConfig::parse(&cfg[..n]).is_err(), "prefix {n}");
        }
        assert_eq!(
            AvcDecoderConfig::parse(&[2, 0, 0, 0, 0, 0, 0]),
            Err(AvcError::ConfigVersion(2))
        );
    }

    #[test]
    fn sps_garbage_never_panics() {
        for n in 0..SPS_720P.len() {
            let _ = SpsInfo::parse(&SPS_720P[..n]);
        }
        let _ = SpsInfo::parse(&[0x67, 0x64, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn huge_scaling_list_delta_does_not_overflow() {
        // Found by the avc_aac_config fuzz target: profile 86 with a scaling matrix whose
        // delta_scale is se(v) = 2^31 - 1, which overflowed `last + delta + 256` in i32.
        let sps = [
            0x64, 0x56, 0x00, 0x42, 0xff, 0x00, 0x00, 0x00, 0x01, 0xff, 0xff, 0xff, 0xd9,
        ];
        assert!(SpsInfo::parse(&sps).is_err());
    }

    #[test]
    fn nal_framing() {
        let avcc = [0, 0, 0, 2, 0x65, 0xaa, 0, 0, 0, 1, 0x41];
        assert_eq!(
            split_length_prefixed(&avcc, 4).unwrap(),
            vec![&[0x65, 0xaa][..], &[0x41][..]]
        );
        assert!(split_length_prefixed(&[0, 0, 0, 9, 1], 4).is_err());
        let annexb = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4,
        ];
        let nals = split_annexb(&annexb);
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4][..]]
        );
        assert_eq!(nal_type(nals[2]), NAL_IDR);
    }
}
