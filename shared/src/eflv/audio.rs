//! Audio message bodies: the legacy AudioTagHeader (AAC 10, MP3 2 and 14, others named)
//! and the Enhanced RTMP v2 ExAudioTagHeader (SoundFormat 9) with ModEx, Multitrack and
//! MultichannelConfig. It only frames and classifies; configs are parsed by codec modules.

use bytes::Bytes;

use super::{
    for_each_track, read_modex, ExError, FourCc, MultitrackType, Packet, PacketKind, ParseLimits,
    Reader,
};
use crate::codec::Codec;

const SOUND_FORMAT_MP3: u8 = 2;
const SOUND_FORMAT_EX_HEADER: u8 = 9;
const SOUND_FORMAT_AAC: u8 = 10;
const SOUND_FORMAT_MP3_8K: u8 = 14;

const PT_SEQUENCE_START: u8 = 0;
const PT_CODED_FRAMES: u8 = 1;
const PT_SEQUENCE_END: u8 = 2;
const PT_MULTICHANNEL_CONFIG: u8 = 4;
const PT_MULTITRACK: u8 = 5;
const PT_MODEX: u8 = 7;

/// The legacy header's rate/size/type bits (meaningful for MP3; fixed for AAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LegacySoundInfo {
    /// The SoundFormat nibble as sent.
    pub sound_format: u8,
    /// 0 = 5.5 kHz, 1 = 11 kHz, 2 = 22 kHz, 3 = 44 kHz.
    pub rate_code: u8,
    pub sample_size_16bit: bool,
    pub stereo: bool,
}

/// How a MultichannelConfig orders its channels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChannelOrder {
    /// Only the channel count is known.
    Unspecified,
    /// Channels present as a mask of AudioChannelMask bits, in native order.
    Native { channel_mask: u32 },
    /// One AudioChannel speaker id per channel, in bitstream order.
    Custom { mapping: Vec<u8> },
}

/// AudioPacketType MultichannelConfig of one track.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MultichannelConfig {
    pub track: u8,
    pub codec: Codec,
    pub channel_count: u8,
    pub order: ChannelOrder,
}

/// Everything one audio message said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioMessage {
    /// SoundFormat 9 (FourCC mode) rather than a legacy sound format.
    pub enhanced: bool,
    /// Set for legacy messages.
    pub legacy: Option<LegacySoundInfo>,
    /// Empty for the zero-length "silence" message.
    pub packets: Vec<Packet>,
    pub multichannel: Vec<MultichannelConfig>,
    pub multitrack: Option<MultitrackType>,
}

/// Parses one audio message body (an RTMP audio message or an FLV audio tag body).
pub fn parse_audio(body: &Bytes, limits: &ParseLimits) -> Result<AudioMessage, ExError> {
    let mut msg = AudioMessage {
        enhanced: false,
        legacy: None,
        packets: Vec::new(),
        multichannel: Vec::new(),
        multitrack: None,
    };
    // An empty message is RTMP's audio silence signal, not an error.
    let Some(&first) = body.first() else {
        return Ok(msg);
    };
    let sound_format = first >> 4;
    let mut r = Reader::new(body, 1);
    if sound_format != SOUND_FORMAT_EX_HEADER {
        msg.legacy = Some(LegacySoundInfo {
            sound_format,
            rate_code: (first >> 2) & 0x03,
            sample_size_16bit: first & 0x02 != 0,
            stereo: first & 0x01 != 0,
        });
        let (codec, kind) = match sound_format {
            SOUND_FORMAT_AAC => {
                let kind = match r.u8("AAC packet type")? {
                    0 => PacketKind::Config,
                    1 => PacketKind::Frame,
                    other => {
                        return Err(ExError::ReservedLegacyPacketType {
                            codec: "aac",
                            packet_type: other,
                        })
                    }
                };
                (Codec::Aac, kind)
            }
            SOUND_FORMAT_MP3 | SOUND_FORMAT_MP3_8K => (Codec::Mp3, PacketKind::Frame),
            other => (Codec::Other(other), PacketKind::Frame),
        };
        msg.packets.push(Packet {
            track: 0,
            codec,
            kind,
            keyframe: true,
            composition_offset_ms: 0,
            timestamp_offset_ns: 0,
            payload: r.rest(),
        });
        return Ok(msg);
    }
    msg.enhanced = true;
    let (mut packet_type, nano) = read_modex(&mut r, first & 0x0f, limits)?;
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
    if !matches!(
        packet_type,
        PT_SEQUENCE_START | PT_CODED_FRAMES | PT_SEQUENCE_END | PT_MULTICHANNEL_CONFIG
    ) {
        return Err(ExError::ReservedAudioPacketType(packet_type));
    }
    let multitrack = msg.multitrack;
    let (packets, multichannel) = (&mut msg.packets, &mut msg.multichannel);
    for_each_track(
        &mut r,
        multitrack,
        shared_fourcc,
        limits,
        |track, fourcc, mut body| {
            let codec = Codec::from_audio_fourcc(fourcc)
                .ok_or(ExError::UnknownAudioFourCc(FourCc(fourcc)))?;
            let kind = match packet_type {
                PT_SEQUENCE_START => PacketKind::Config,
                PT_CODED_FRAMES => PacketKind::Frame,
                PT_SEQUENCE_END => PacketKind::End,
                _ => {
                    multichannel.push(parse_multichannel(track, codec, &mut body)?);
                    return Ok(());
                }
            };
            packets.push(Packet {
                track,
                codec,
                kind,
                keyframe: true,
                composition_offset_ms: 0,
                timestamp_offset_ns: nano,
                payload: body.rest(),
            });
            Ok(())
        },
    )?;
    Ok(msg)
}

fn parse_multichannel(
    track: u8,
    codec: Codec,
    r: &mut Reader,
) -> Result<MultichannelConfig, ExError> {
    let order = r.u8("channel order")?;
    let channel_count = r.u8("channel count")?;
    let order = match order {
        0 => ChannelOrder::Unspecified,
        1 => {
            r.need("channel mask", 4)?;
            let b = r.take("channel mask", 4)?;
            ChannelOrder::Native {
                channel_mask: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            }
        }
        2 => ChannelOrder::Custom {
            mapping: r.take("channel mapping", channel_count as usize)?.to_vec(),
        },
        other => return Err(ExError::ReservedChannelOrder(other)),
    };
    Ok(MultichannelConfig {
        track,
        codec,
        channel_count,
        order,
    })
}
