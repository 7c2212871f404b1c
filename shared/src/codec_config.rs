//! A track's codec configuration as a parsed value, carried beside its frames: the codec's
//! own record (avcC, AudioSpecificConfig, and for Enhanced RTMP hvcC, av1C, vpcC, the Opus
//! ID header) with what outputs and the API need from it already read out. Built once at
//! ingest; outputs never re-parse it.

use bytes::Bytes;

use crate::aac::AudioSpecificConfig;
use crate::avc::AvcDecoderConfig;
use crate::codec::Codec;
use crate::frame::{MediaKind, TrackId};
use crate::mp3::Mp3Header;

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

    /// The MP3 header, when this is MP3.
    pub fn mp3(&self) -> Option<&Mp3Header> {
        match &self.params {
            CodecParams::Mp3(h) => Some(h),
            _ => None,
        }
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
