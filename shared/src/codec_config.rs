//! A track's codec configuration as a parsed value, carried beside its frames: the codec's
//! own record (avcC, AudioSpecificConfig, and for Enhanced RTMP hvcC, av1C, vpcC, the Opus
//! ID header) with what outputs and the API need from it already read out. Built once at
//! ingest; outputs never re-parse it.

use bytes::Bytes;

use crate::aac::AudioSpecificConfig;
use crate::av1::Av1Config;
use crate::avc::AvcDecoderConfig;
use crate::codec::Codec;
use crate::flac::FlacStreamInfo;
use crate::frame::{MediaKind, TrackId};
use crate::hevc::HevcDecoderConfig;
use crate::mp3::Mp3Header;
use crate::opus::OpusHead;
use crate::vp9::VpcConfig;

/// The codec-specific part of a configuration. A new codec adds a variant here (and its
/// parser in its own module); outputs match on the variants they can carry and skip the
/// rest by `CodecConfig::codec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecParams {
    /// H.264: the AVCDecoderConfigurationRecord (SPS/PPS, NAL length size).
    Avc(AvcDecoderConfig),
    /// AAC: the AudioSpecificConfig.
    Aac(AudioSpecificConfig),
    /// MP3 has no record: the first frame's header, and again whenever it changes.
    Mp3(Mp3Header),
    /// HEVC: the HEVCDecoderConfigurationRecord (hvcC: VPS/SPS/PPS, NAL length size).
    Hevc(HevcDecoderConfig),
    /// AV1: the AV1CodecConfigurationRecord (av1C, with its sequence header OBU).
    Av1(Av1Config),
    /// VP9: the VPCodecConfigurationRecord (vpcC); the size comes from a keyframe.
    Vp9(VpcConfig),
    /// Opus: the ID header (OpusHead).
    Opus(OpusHead),
    /// FLAC: STREAMINFO.
    Flac(FlacStreamInfo),
    /// A codec onair relays without knowing it (legacy FLV audio such as Speex or
    /// Nellymoser): no record, nothing parsed.
    Opaque,
}

/// Video or audio parameters, for the API and for outputs that announce them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaSummary {
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Codec profile name, e.g. "High" (H.264) or "Main 10" (HEVC).
    pub profile: Option<String>,
    /// Codec level as a number, e.g. 3.1.
    pub level: Option<f64>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
}

/// One track's configuration. Two configs with equal `codec`, `record` and
/// `flv_sound_flags` are the same configuration (a repeat, not a change).
#[derive(Debug, Clone, PartialEq)]
pub struct CodecConfig {
    pub kind: MediaKind,
    pub track: TrackId,
    pub codec: Codec,
    /// The codec's configuration record as MP4 and (Enhanced) FLV carry it: avcC,
    /// AudioSpecificConfig, hvcC, av1C, vpcC, OpusHead, FLAC STREAMINFO. Empty where
    /// the codec has none (MP3).
    pub record: Bytes,
    pub params: CodecParams,
    pub summary: MediaSummary,
    /// The low four bits of a legacy FLV audio tag's first byte (rate, size, channels)
    /// as the publisher sent them, so legacy audio goes out byte for byte as it came in.
    /// `None` for video and for audio that arrived in Enhanced RTMP form.
    pub flv_sound_flags: Option<u8>,
    /// The colour description an Enhanced RTMP publisher sent in a Metadata packet
    /// (colorInfo: primaries, transfer, matrix, bit depth, HDR light levels), kept for
    /// outputs that signal it; `None` when none was sent (or it was reset). Not part of
    /// `same_as`: decoders need no restart for it.
    pub color: Option<Box<crate::eflv::ColorInfo>>,
}

impl CodecConfig {
    /// Same configuration, ignoring how it was announced (track, parsed summary).
    pub fn same_as(&self, other: &CodecConfig) -> bool {
        self.codec == other.codec
            && self.record == other.record
            && self.flv_sound_flags == other.flv_sound_flags
            && self.params == other.params
    }

    pub fn is_video(&self) -> bool {
        self.kind == MediaKind::Video
    }

    pub fn is_audio(&self) -> bool {
        self.kind == MediaKind::Audio
    }

    /// The H.264 record, when this is H.264.
    pub fn avc(&self) -> Option<&AvcDecoderConfig> {
        match &self.params {
            CodecParams::Avc(c) => Some(c),
            _ => None,
        }
    }

    /// The AAC AudioSpecificConfig, when this is AAC.
    pub fn aac(&self) -> Option<&AudioSpecificConfig> {
        match &self.params {
            CodecParams::Aac(c) => Some(c),
            _ => None,
        }
    }

    /// The HEVC record, when this is HEVC.
    pub fn hevc(&self) -> Option<&HevcDecoderConfig> {
        match &self.params {
            CodecParams::Hevc(c) => Some(c),
            _ => None,
        }
    }

    /// The RFC 6381 codec string (`avc1.64001f`, `hvc1.1.6.L93.B0`, `av01.0.04M.08`,
    /// `vp09.00.31.08`, `mp4a.40.2`, `mp4a.6B`, `opus`, `flac`), as MSE and HLS want
    /// it; `None` for a codec without one.
    pub fn codec_string(&self) -> Option<String> {
        Some(match &self.params {
            CodecParams::Avc(c) => format!(
                "avc1.{:02x}{:02x}{:02x}",
                c.profile, c.compatibility, c.level
            ),
            CodecParams::Hevc(c) => c.codec_string(),
            CodecParams::Av1(c) => c.codec_string(),
            CodecParams::Vp9(c) => c.codec_string(),
            CodecParams::Aac(c) => format!("mp4a.40.{}", c.object_type),
            CodecParams::Mp3(_) => "mp4a.6B".to_string(),
            CodecParams::Opus(_) => "opus".to_string(),
            CodecParams::Flac(_) => "flac".to_string(),
            CodecParams::Opaque => return None,
        })
    }

    /// The MP3 header, when this is MP3.
    pub fn mp3(&self) -> Option<&Mp3Header> {
        match &self.params {
            CodecParams::Mp3(h) => Some(h),
            _ => None,
        }
    }
}

/// HEVC `general_profile_idc` as the name players show.
pub fn hevc_profile_name(idc: u8) -> &'static str {
    match idc {
        1 => "Main",
        2 => "Main 10",
        3 => "Main Still Picture",
        4 => "Range Extensions",
        _ => "Other",
    }
}

/// AV1 `seq_profile` as the name players show.
pub fn av1_profile_name(profile: u8) -> &'static str {
    match profile {
        0 => "Main",
        1 => "High",
        2 => "Professional",
        _ => "Other",
    }
}

/// H.264 `profile_idc` as the name players show.
pub fn avc_profile_name(idc: u8) -> &'static str {
    match idc {
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 => "High 10",
        122 => "High 4:2:2",
        244 => "High 4:4:4",
        _ => "Other",
    }
}
