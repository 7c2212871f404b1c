//! FLV container framing: the file header, tag headers, and a push-style demuxer.
//! Writers build a whole tag once so it can be shared by every viewer; the demuxer
//! takes bytes as they arrive and never trusts a length it has not bounded.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::aac::AudioTagHeader;
use crate::avc::VideoTagHeader;
use crate::codec::Codec;
use crate::codec_config::CodecConfig;
use crate::frame::{Frame, MediaKind};

pub const TAG_AUDIO: u8 = 8;
pub const TAG_VIDEO: u8 = 9;
pub const TAG_SCRIPT: u8 = 18;

/// FLV file header plus the first (zero) PreviousTagSize.
pub fn header(has_audio: bool, has_video: bool) -> [u8; 13] {
    let flags = (if has_audio { 4 } else { 0 }) | (if has_video { 1 } else { 0 });
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// The 11-byte tag header. FLV timestamps are 24 bits plus an 8-bit extension (the high byte).
pub fn tag_header(tag_type: u8, timestamp: u32, body_len: usize) -> [u8; 11] {
    let len = body_len as u32;
    [
        tag_type,
        (len >> 16) as u8,
        (len >> 8) as u8,
        len as u8,
        (timestamp >> 16) as u8,
        (timestamp >> 8) as u8,
        timestamp as u8,
        (timestamp >> 24) as u8,
        0,
        0,
        0,
    ]
}

/// A whole tag: header, body, and the PreviousTagSize that follows it.
pub fn encode_tag(tag_type: u8, timestamp: u32, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(11 + body.len() + 4);
    out.put_slice(&tag_header(tag_type, timestamp, body.len()));
    out.put_slice(body);
    out.put_u32(11 + body.len() as u32);
    out.freeze()
}

/// Legacy FLV sound flags (rate, size, channels) when the publisher's are unknown:
/// 44 kHz, 16-bit, stereo, as the FLV spec requires for AAC.
const DEFAULT_SOUND_FLAGS: u8 = 0x0f;

/// The FLV tag type (and RTMP message type) that carries a frame of this kind.
pub fn tag_type(kind: MediaKind) -> u8 {
    match kind {
        MediaKind::Audio => TAG_AUDIO,
        MediaKind::Video => TAG_VIDEO,
        MediaKind::Data => TAG_SCRIPT,
    }
}

/// A whole tag from body parts written one after the other (one copy of each).
pub fn encode_tag_parts(tag_type: u8, timestamp: u32, parts: &[&[u8]]) -> Bytes {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = BytesMut::with_capacity(11 + len + 4);
    out.put_slice(&tag_header(tag_type, timestamp, len));
    for p in parts {
        out.put_slice(p);
    }
    out.put_u32(11 + len as u32);
    out.freeze()
}

/// Legacy FLV codec header of a frame: up to 5 bytes and their length. `None` for a
/// codec legacy FLV cannot carry (Enhanced FLV is built elsewhere).
fn legacy_frame_header(frame: &Frame, config: Option<&CodecConfig>) -> Option<([u8; 5], usize)> {
    let flags = config
        .and_then(|c| c.flv_sound_flags)
        .unwrap_or(DEFAULT_SOUND_FLAGS);
    Some(match (frame.kind, frame.codec) {
        (MediaKind::Video, Codec::H264) => {
            let frame_type = if frame.keyframe {
                crate::avc::FRAME_TYPE_KEY
            } else {
                crate::avc::FRAME_TYPE_INTER
            };
            let cts = frame.cts.to_be_bytes();
            (
                [
                    frame_type << 4 | crate::avc::VIDEO_CODEC_AVC,
                    crate::avc::AVC_NALU,
                    cts[1],
                    cts[2],
                    cts[3],
                ],
                5,
            )
        }
        (MediaKind::Audio, Codec::Aac) => (
            [
                crate::aac::SOUND_FORMAT_AAC << 4 | flags,
                crate::aac::AAC_RAW,
                0,
                0,
                0,
            ],
            2,
        ),
        (MediaKind::Audio, Codec::Mp3) => {
            ([crate::aac::SOUND_FORMAT_MP3 << 4 | flags, 0, 0, 0, 0], 1)
        }
        (MediaKind::Audio, Codec::Other(format)) if format < 16 => {
            ([format << 4 | flags, 0, 0, 0, 0], 1)
        }
        (MediaKind::Data, _) => ([0; 5], 0),
        _ => return None,
    })
}

/// A frame as one whole legacy FLV tag (header, body, PreviousTagSize), the body being
/// exactly what a legacy publisher sent for it. `config` is the track's configuration
/// (for the audio sound flags). `None` when legacy FLV cannot carry the codec.
pub fn encode_frame_tag(frame: &Frame, config: Option<&CodecConfig>) -> Option<Bytes> {
    let (head, n) = legacy_frame_header(frame, config)?;
    Some(encode_tag_parts(
        tag_type(frame.kind),
        frame.wire_timestamp(),
        &[&head[..n], &frame.data],
    ))
}

/// A frame as one whole Enhanced FLV tag, for the codecs legacy FLV cannot carry (HEVC,
/// AV1, VP9 video; Opus, FLAC audio): ex-header, CodedFrames (with the composition
/// offset for HEVC), single track. Never Metadata, ModEx or Multitrack. `None` for a
/// codec onair does not write in either form.
pub fn encode_enhanced_frame_tag(frame: &Frame) -> Option<Bytes> {
    let head = enhanced_header(
        frame.kind,
        frame.codec,
        crate::eflv::PacketKind::Frame,
        frame.keyframe,
        frame.cts,
    )?;
    Some(encode_tag_parts(
        tag_type(frame.kind),
        frame.wire_timestamp(),
        &[&head, &frame.data],
    ))
}

/// A configuration as an Enhanced FLV SequenceStart tag with its record (hvcC, av1C,
/// vpcC, OpusHead, FLAC STREAMINFO). `None` where the codec has no Enhanced form.
pub fn encode_enhanced_config_tag(config: &CodecConfig, timestamp: u32) -> Option<Bytes> {
    let head = enhanced_header(
        config.kind,
        config.codec,
        crate::eflv::PacketKind::Config,
        true,
        0,
    )?;
    Some(encode_tag_parts(
        tag_type(config.kind),
        timestamp,
        &[&head, &config.record],
    ))
}

/// The ex-header of one Enhanced FLV message (everything before the payload).
fn enhanced_header(
    kind: MediaKind,
    codec: Codec,
    packet: crate::eflv::PacketKind,
    keyframe: bool,
    cts: i32,
) -> Option<Bytes> {
    use crate::eflv::write::{audio_body, video_body};
    match (kind, codec) {
        (MediaKind::Video, Codec::Hevc | Codec::Av1 | Codec::Vp9) => {
            video_body(codec, packet, keyframe, cts, &[]).ok()
        }
        (MediaKind::Audio, Codec::Opus | Codec::Flac) => audio_body(codec, packet, None, &[]).ok(),
        _ => None,
    }
}

/// A configuration as its legacy FLV sequence header tag (AVC sequence header, AAC
/// sequence header). `None` where FLV has none (MP3, opaque audio) or cannot carry it.
pub fn encode_config_tag(config: &CodecConfig, timestamp: u32) -> Option<Bytes> {
    let flags = config.flv_sound_flags.unwrap_or(DEFAULT_SOUND_FLAGS);
    let (head, tag): (&[u8], u8) = match (config.kind, config.codec) {
        (MediaKind::Video, Codec::H264) => (
            &[
                crate::avc::FRAME_TYPE_KEY << 4 | crate::avc::VIDEO_CODEC_AVC,
                crate::avc::AVC_SEQUENCE_HEADER,
                0,
                0,
                0,
            ],
            TAG_VIDEO,
        ),
        (MediaKind::Audio, Codec::Aac) => (
            &[
                crate::aac::SOUND_FORMAT_AAC << 4 | flags,
                crate::aac::AAC_SEQUENCE_HEADER,
            ],
            TAG_AUDIO,
        ),
        _ => return None,
    };
    Some(encode_tag_parts(tag, timestamp, &[head, &config.record]))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    #[error("not an FLV stream (signature {0:02x?})")]
    BadSignature([u8; 3]),
    #[error("FLV tag of {len} bytes exceeds the limit of {max}")]
    TagTooLarge { len: usize, max: usize },
    #[error("FLV header size {0} is smaller than 9")]
    BadHeaderSize(u32),
}

/// One parsed FLV tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    pub tag_type: u8,
    pub timestamp: u32,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlvEvent {
    Header { has_audio: bool, has_video: bool },
    Tag(FlvTag),
}

/// Push-style FLV demuxer: feed bytes with `push`, take events with `next_event`.
pub struct FlvDemuxer {
    buf: BytesMut,
    header_done: bool,
    max_tag_size: usize,
}

impl FlvDemuxer {
    pub fn new(max_tag_size: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            header_done: false,
            max_tag_size,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn next_event(&mut self) -> Result<Option<FlvEvent>, FlvError> {
        if !self.header_done {
            if self.buf.len() < 9 {
                return Ok(None);
            }
            if &self.buf[..3] != b"FLV" {
                return Err(FlvError::BadSignature([
                    self.buf[0],
                    self.buf[1],
                    self.buf[2],
                ]));
            }
            let size = u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]);
            if size < 9 {
                return Err(FlvError::BadHeaderSize(size));
            }
            // Header plus PreviousTagSize0.
            let need = size as usize + 4;
            if self.buf.len() < need {
                return Ok(None);
            }
            let flags = self.buf[4];
            self.buf.advance(need);
            self.header_done = true;
            return Ok(Some(FlvEvent::Header {
                has_audio: flags & 4 != 0,
                has_video: flags & 1 != 0,
            }));
        }
        if self.buf.len() < 11 {
            return Ok(None);
        }
        let len =
            ((self.buf[1] as usize) << 16) | ((self.buf[2] as usize) << 8) | self.buf[3] as usize;
        if len > self.max_tag_size {
            return Err(FlvError::TagTooLarge {
                len,
                max: self.max_tag_size,
            });
        }
        if self.buf.len() < 11 + len + 4 {
            return Ok(None);
        }
        let tag_type = self.buf[0] & 0x1f;
        let timestamp = ((self.buf[7] as u32) << 24)
            | ((self.buf[4] as u32) << 16)
            | ((self.buf[5] as u32) << 8)
            | self.buf[6] as u32;
        self.buf.advance(11);
        let body = self.buf.split_to(len).freeze();
        self.buf.advance(4);
        Ok(Some(FlvEvent::Tag(FlvTag {
            tag_type,
            timestamp,
            body,
        })))
    }
}

/// One FLV audio, video or script tag body, classified: what the pusher muxes and sends.
/// The server does not carry these; it turns them into `Frame`s and `CodecConfig`s once
/// at ingest (`crate::ingest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFrame {
    pub kind: MediaKind,
    pub codec: Codec,
    /// Decode timestamp in milliseconds on the stream's normalized timeline.
    pub dts: u64,
    /// Composition offset (PTS - DTS) in milliseconds; signed, usually 0 or positive.
    pub cts: i32,
    /// A video frame a decoder can start from (IDR for H.264).
    pub keyframe: bool,
    /// Codec configuration (AVCDecoderConfigurationRecord / AudioSpecificConfig), not media.
    pub sequence_header: bool,
    /// The FLV tag body, codec header bytes included. Cloning is a reference count.
    pub payload: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagFrameError {
    #[error("empty {0:?} message")]
    Empty(MediaKind),
    #[error(transparent)]
    Video(#[from] crate::avc::AvcError),
    #[error(transparent)]
    Audio(#[from] crate::aac::AacError),
}

impl TagFrame {
    /// Classifies an FLV video tag body.
    pub fn video(dts: u64, payload: Bytes) -> Result<TagFrame, TagFrameError> {
        let h = VideoTagHeader::parse(&payload)?;
        Ok(TagFrame {
            kind: MediaKind::Video,
            codec: h.codec,
            dts,
            cts: h.composition_time,
            keyframe: h.is_keyframe(),
            sequence_header: h.is_sequence_header(),
            payload,
        })
    }

    /// Classifies an FLV audio tag body.
    pub fn audio(dts: u64, payload: Bytes) -> Result<TagFrame, TagFrameError> {
        let h = AudioTagHeader::parse(&payload)?;
        Ok(TagFrame {
            kind: MediaKind::Audio,
            codec: h.codec(),
            dts,
            cts: 0,
            keyframe: false,
            sequence_header: h.is_sequence_header(),
            payload,
        })
    }

    /// A script data frame (e.g. an `onMetaData` body).
    pub fn data(dts: u64, payload: Bytes) -> TagFrame {
        TagFrame {
            kind: MediaKind::Data,
            codec: Codec::Script,
            dts,
            cts: 0,
            keyframe: false,
            sequence_header: false,
            payload,
        }
    }

    /// The FLV tag type (and RTMP message type) that carries this frame.
    pub fn tag_type(&self) -> u8 {
        match self.kind {
            MediaKind::Audio => TAG_AUDIO,
            MediaKind::Video => TAG_VIDEO,
            MediaKind::Data => TAG_SCRIPT,
        }
    }

    /// Timestamp as carried by FLV and RTMP: 32 bits, wrapping after 49.7 days.
    pub fn wire_timestamp(&self) -> u32 {
        self.dts as u32
    }

    /// Presentation time in milliseconds.
    pub fn pts(&self) -> i64 {
        self.dts as i64 + self.cts as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_flags() {
        assert_eq!(header(true, true)[4], 5);
        assert_eq!(header(true, false)[4], 4);
        assert_eq!(header(false, true)[4], 1);
        assert_eq!(&header(true, true)[5..], &[0, 0, 0, 9, 0, 0, 0, 0]);
    }

    #[test]
    fn tag_bytes_with_extended_timestamp() {
        let tag = encode_tag(TAG_VIDEO, 0x1234_5678, &[0xaa, 0xbb]);
        assert_eq!(
            &tag[..],
            &[9, 0, 0, 2, 0x34, 0x56, 0x78, 0x12, 0, 0, 0, 0xaa, 0xbb, 0, 0, 0, 13]
        );
    }

    #[test]
    fn demux_roundtrip_byte_by_byte() {
        let mut stream = header(true, false).to_vec();
        stream.extend_from_slice(&encode_tag(TAG_AUDIO, 0xff00_0001, &[1, 2, 3]));
        stream.extend_from_slice(&encode_tag(TAG_SCRIPT, 0, &[]));
        let mut d = FlvDemuxer::new(1024);
        let mut events = Vec::new();
        for b in &stream {
            d.push(&[*b]);
            while let Some(e) = d.next_event().unwrap() {
                events.push(e);
            }
        }
        assert_eq!(
            events,
            vec![
                FlvEvent::Header {
                    has_audio: true,
                    has_video: false
                },
                FlvEvent::Tag(FlvTag {
                    tag_type: TAG_AUDIO,
                    timestamp: 0xff00_0001,
                    body: Bytes::from_static(&[1, 2, 3])
                }),
                FlvEvent::Tag(FlvTag {
                    tag_type: TAG_SCRIPT,
                    timestamp: 0,
                    body: Bytes::new()
                }),
            ]
        );
    }

    #[test]
    fn demux_refuses_bad_input() {
        let mut d = FlvDemuxer::new(1024);
        d.push(b"GIF89a\0\0\0\0\0\0\0");
        assert!(matches!(d.next_event(), Err(FlvError::BadSignature(_))));
        let mut d = FlvDemuxer::new(16);
        d.push(&header(true, true));
        d.next_event().unwrap();
        d.push(&tag_header(TAG_VIDEO, 0, 17));
        assert_eq!(
            d.next_event(),
            Err(FlvError::TagTooLarge { len: 17, max: 16 })
        );
    }
}

#[cfg(test)]
mod tag_frame_tests {
    use super::*;

    #[test]
    fn classifies_avc_keyframe_and_sequence_header() {
        let key = TagFrame::video(
            40,
            Bytes::from_static(&[0x17, 1, 0, 0, 0x21, 0, 0, 0, 1, 0x65]),
        )
        .unwrap();
        assert!(key.keyframe && !key.sequence_header);
        assert_eq!(key.codec, Codec::H264);
        assert_eq!(key.cts, 0x21);
        let seq =
            TagFrame::video(0, Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f])).unwrap();
        assert!(seq.sequence_header);
        let inter = TagFrame::video(0, Bytes::from_static(&[0x27, 1, 0, 0, 0])).unwrap();
        assert!(!inter.keyframe);
    }

    #[test]
    fn classifies_aac() {
        let seq = TagFrame::audio(0, Bytes::from_static(&[0xaf, 0, 0x12, 0x10])).unwrap();
        assert!(seq.sequence_header);
        assert_eq!(seq.codec, Codec::Aac);
        let raw = TagFrame::audio(0, Bytes::from_static(&[0xaf, 1, 0x21])).unwrap();
        assert!(!raw.sequence_header);
        assert!(TagFrame::audio(0, Bytes::new()).is_err());
    }
}
