//! Video message bodies: the legacy VideoTagHeader (AVC id 7, and HEVC id 12 as some CDNs
//! send it) and the Enhanced RTMP ExVideoTagHeader with ModEx, Multitrack and Metadata.
//! It only frames and classifies; codec configuration is parsed by the codec modules.

use std::collections::HashMap;

use bytes::Bytes;

use super::{
    for_each_track, read_modex, si24, ExError, FourCc, MultitrackType, Packet, PacketKind,
    ParseLimits, Reader,
};
use crate::codec::Codec;
use crate::metadata::{decode_amf0, Amf0Value};

const LEGACY_AVC: u8 = 7;
const LEGACY_HEVC: u8 = 12;

const PT_SEQUENCE_START: u8 = 0;
const PT_CODED_FRAMES: u8 = 1;
const PT_SEQUENCE_END: u8 = 2;
const PT_CODED_FRAMES_X: u8 = 3;
const PT_METADATA: u8 = 4;
const PT_MPEG2TS_SEQUENCE_START: u8 = 5;
const PT_MULTITRACK: u8 = 6;
const PT_MODEX: u8 = 7;

/// The 3-bit frame type of every video message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    Key,
    Inter,
    /// H.263 only.
    DisposableInter,
    /// Reserved for server use.
    GeneratedKey,
    /// A video command (seek start/end) instead of video data.
    Command,
    /// 0, 6 or 7: refused in enhanced messages, passed through in legacy ones as today.
    Reserved(u8),
}

impl FrameType {
    fn from_bits(v: u8) -> Self {
        match v {
            1 => FrameType::Key,
            2 => FrameType::Inter,
            3 => FrameType::DisposableInter,
            4 => FrameType::GeneratedKey,
            5 => FrameType::Command,
            other => FrameType::Reserved(other),
        }
    }

    pub fn is_key(self) -> bool {
        matches!(self, FrameType::Key | FrameType::GeneratedKey)
    }
}

/// The UI8 of a Command frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCommand {
    StartSeek,
    EndSeek,
    Other(u8),
}

/// HDR mastering display colour volume (SMPTE ST 2086), as the publisher sent it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MasteringDisplay {
    pub red_x: Option<f64>,
    pub red_y: Option<f64>,
    pub green_x: Option<f64>,
    pub green_y: Option<f64>,
    pub blue_x: Option<f64>,
    pub blue_y: Option<f64>,
    pub white_point_x: Option<f64>,
    pub white_point_y: Option<f64>,
    pub max_luminance: Option<f64>,
    pub min_luminance: Option<f64>,
}

/// The `colorInfo` object of a Metadata packet. Absent fields stay `None`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ColorInfo {
    pub bit_depth: Option<f64>,
    pub color_primaries: Option<f64>,
    pub transfer_characteristics: Option<f64>,
    pub matrix_coefficients: Option<f64>,
    pub max_fall: Option<f64>,
    pub max_cll: Option<f64>,
    pub mastering: Option<MasteringDisplay>,
}

/// One Metadata packet (VideoPacketType 4) of a track.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoMetadata {
    pub track: u8,
    /// `Some(None)`: colorInfo was reset (Undefined or `{}`); `None`: no colorInfo in it.
    pub color_info: Option<Option<ColorInfo>>,
    /// The AMF0 body as sent, kept for outputs that forward it.
    pub raw: Bytes,
}

/// Everything one video message said.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoMessage {
    /// Ex-header (IsExHeader bit set) rather than a legacy codec id.
    pub enhanced: bool,
    pub frame_type: FrameType,
    pub packets: Vec<Packet>,
    pub metadata: Vec<VideoMetadata>,
    /// Set for Command frames, which carry no video.
    pub command: Option<VideoCommand>,
    pub multitrack: Option<MultitrackType>,
}

/// Parses one video message body (an RTMP video message or an FLV video tag body).
pub fn parse_video(body: &Bytes, limits: &ParseLimits) -> Result<VideoMessage, ExError> {
    let first = *body.first().ok_or(ExError::EmptyVideo)?;
    let frame_type = FrameType::from_bits((first >> 4) & 0x07);
    let mut msg = VideoMessage {
        enhanced: first & 0x80 != 0,
        frame_type,
        packets: Vec::new(),
        metadata: Vec::new(),
        command: None,
        multitrack: None,
    };
    let mut r = Reader::new(body, 1);
    if !msg.enhanced {
        parse_legacy(&mut r, first & 0x0f, &mut msg)?;
        return Ok(msg);
    }
    let (mut packet_type, nano) = read_modex(&mut r, first & 0x0f, limits)?;
    if frame_type == FrameType::Command && packet_type != PT_METADATA {
        msg.command = Some(command(r.u8("video command")?));
        return Ok(msg);
    }
    let mut shared_fourcc = None;
    if packet_type == PT_MULTITRACK {
        let b = r.u8("multitrack type")?;
        let mt = MultitrackType::from_bits(b >> 4)?;
        packet_type = b & 0x0f;
        if packet_type == PT_MULTITRACK || packet_type == PT_MODEX {
            return Err(ExError::NestedMultitrack(packet_type));
        }
        if mt != MultitrackType::ManyTracksManyCodecs {
            shared_fourcc = Some(r.fourcc("multitrack FourCC")?);
        }
        msg.multitrack = Some(mt);
    }
    if packet_type > PT_MULTITRACK {
        return Err(ExError::ReservedVideoPacketType(packet_type));
    }
    if packet_type != PT_METADATA {
        if let FrameType::Reserved(v) = frame_type {
            return Err(ExError::ReservedFrameType(v));
        }
    }
    let keyframe = frame_type.is_key();
    let multitrack = msg.multitrack;
    let (packets, metadata) = (&mut msg.packets, &mut msg.metadata);
    for_each_track(
        &mut r,
        multitrack,
        shared_fourcc,
        limits,
        |track, fourcc, mut body| {
            let codec = Codec::from_video_fourcc(fourcc)
                .ok_or(ExError::UnknownVideoFourCc(FourCc(fourcc)))?;
            let mut composition_offset_ms = 0;
            let kind = match packet_type {
                PT_SEQUENCE_START => PacketKind::Config,
                PT_MPEG2TS_SEQUENCE_START if codec == Codec::Av1 => PacketKind::Mpeg2TsConfig,
                PT_MPEG2TS_SEQUENCE_START => {
                    return Err(ExError::PacketTypeNotForCodec {
                        packet_type,
                        codec: codec.name(),
                    })
                }
                PT_CODED_FRAMES => {
                    // Only the NALU codecs carry a composition offset; AV1 and VP9 do not.
                    if matches!(codec, Codec::H264 | Codec::Hevc) {
                        composition_offset_ms = si24(body.u24("composition time offset")?);
                    }
                    PacketKind::Frame
                }
                PT_CODED_FRAMES_X => PacketKind::Frame,
                PT_SEQUENCE_END => PacketKind::End,
                PT_METADATA => {
                    metadata.push(parse_metadata(track, body.rest(), limits)?);
                    return Ok(());
                }
                other => return Err(ExError::ReservedVideoPacketType(other)),
            };
            packets.push(Packet {
                track,
                codec,
                kind,
                keyframe,
                composition_offset_ms,
                timestamp_offset_ns: nano,
                payload: body.rest(),
            });
            Ok(())
        },
    )?;
    Ok(msg)
}

fn command(v: u8) -> VideoCommand {
    match v {
        0 => VideoCommand::StartSeek,
        1 => VideoCommand::EndSeek,
        other => VideoCommand::Other(other),
    }
}

fn parse_legacy(r: &mut Reader, codec_id: u8, msg: &mut VideoMessage) -> Result<(), ExError> {
    if msg.frame_type == FrameType::Command {
        msg.command = Some(command(r.u8("video command")?));
        return Ok(());
    }
    let keyframe = msg.frame_type.is_key();
    let codec = match codec_id {
        LEGACY_AVC => Codec::H264,
        LEGACY_HEVC => Codec::Hevc,
        other => {
            // Codecs onair does not carry are named, not refused here: the caller decides.
            msg.packets.push(Packet {
                track: 0,
                codec: Codec::Other(other),
                kind: PacketKind::Frame,
                keyframe,
                composition_offset_ms: 0,
                timestamp_offset_ns: 0,
                payload: r.rest(),
            });
            return Ok(());
        }
    };
    let packet_type = r.u8("AVC packet type")?;
    let cts = si24(r.u24("composition time offset")?);
    let kind = match packet_type {
        0 => PacketKind::Config,
        1 => PacketKind::Frame,
        2 => PacketKind::End,
        other => {
            return Err(ExError::ReservedLegacyPacketType {
                codec: codec.name(),
                packet_type: other,
            })
        }
    };
    msg.packets.push(Packet {
        track: 0,
        codec,
        kind,
        keyframe,
        // Only a coded frame has a presentation time; configs and ends carry none.
        composition_offset_ms: if kind == PacketKind::Frame { cts } else { 0 },
        timestamp_offset_ns: 0,
        payload: r.rest(),
    });
    Ok(())
}

fn parse_metadata(track: u8, raw: Bytes, limits: &ParseLimits) -> Result<VideoMetadata, ExError> {
    let values = decode_amf0(&raw, limits.max_amf_depth)?;
    let mut color_info = None;
    // A series of [name, value] pairs; only colorInfo is defined.
    let mut it = values.iter();
    while let Some(name) = it.next() {
        let value = it.next();
        if let Amf0Value::Utf8String(name) = name {
            if name == "colorInfo" {
                color_info = Some(match value {
                    Some(Amf0Value::Object(o)) if !o.is_empty() => Some(color_info_from(o)),
                    _ => None,
                });
            }
        }
    }
    Ok(VideoMetadata {
        track,
        color_info,
        raw,
    })
}

fn color_info_from(o: &HashMap<String, Amf0Value>) -> ColorInfo {
    fn obj<'a>(
        o: &'a HashMap<String, Amf0Value>,
        key: &str,
    ) -> Option<&'a HashMap<String, Amf0Value>> {
        match o.get(key) {
            Some(Amf0Value::Object(inner)) => Some(inner),
            _ => None,
        }
    }
    fn num(o: Option<&HashMap<String, Amf0Value>>, key: &str) -> Option<f64> {
        match o?.get(key) {
            Some(Amf0Value::Number(n)) => Some(*n),
            _ => None,
        }
    }
    let config = obj(o, "colorConfig");
    let cll = obj(o, "hdrCll");
    let mdcv = obj(o, "hdrMdcv");
    ColorInfo {
        bit_depth: num(config, "bitDepth"),
        color_primaries: num(config, "colorPrimaries"),
        transfer_characteristics: num(config, "transferCharacteristics"),
        matrix_coefficients: num(config, "matrixCoefficients"),
        max_fall: num(cll, "maxFall"),
        max_cll: num(cll, "maxCLL"),
        mastering: mdcv.map(|m| MasteringDisplay {
            red_x: num(Some(m), "redX"),
            red_y: num(Some(m), "redY"),
            green_x: num(Some(m), "greenX"),
            green_y: num(Some(m), "greenY"),
            blue_x: num(Some(m), "blueX"),
            blue_y: num(Some(m), "blueY"),
            white_point_x: num(Some(m), "whitePointX"),
            white_point_y: num(Some(m), "whitePointY"),
            max_luminance: num(Some(m), "maxLuminance"),
            min_luminance: num(Some(m), "minLuminance"),
        }),
    }
}
