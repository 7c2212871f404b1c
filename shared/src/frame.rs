//! The one media frame type that flows from ingest to every output, codec-neutral: a
//! track, a codec, times, a keyframe flag and the codec's own access unit. It is built
//! once at ingest (`crate::ingest`); outputs derive their bytes from it and never parse
//! a container format out of it. Codec configuration travels beside it (`CodecConfig`).

use bytes::Bytes;

use crate::codec::Codec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
    /// Script data (onMetaData and friends).
    Data,
}

/// A track within a stream. Legacy FLV has one audio and one video track, both 0;
/// Enhanced RTMP multitrack numbers further tracks per media kind.
pub type TrackId = u8;

/// One access unit (or one data message) of one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: MediaKind,
    pub track: TrackId,
    pub codec: Codec,
    /// Decode time in ms. Ingest sets the wire timestamp; the hub rewrites it onto the
    /// stream's normalized timeline (monotonic per track, rebased on republish) before
    /// any output sees the frame.
    pub dts: u64,
    /// Composition offset (PTS - DTS) in ms; signed (negative offsets exist), 0 for audio.
    pub cts: i32,
    /// Nanoseconds to add to both DTS and PTS (Enhanced RTMP ModEx TimestampOffsetNano,
    /// 0..=999_999); 0 for legacy input.
    pub nanos: u32,
    /// A video frame a decoder can start from (IDR for H.264); false for audio and data.
    pub keyframe: bool,
    /// The access unit itself, no container framing: length-prefixed NAL units for
    /// H.264/HEVC (the length size is in the track's `CodecConfig`), the OBUs of one
    /// temporal unit for AV1, one VP9 frame, or one raw audio frame (AAC raw data block,
    /// MP3 frame, Opus packet, FLAC frame). For `Data`, the AMF0 script body.
    /// Cloning is a reference count.
    pub data: Bytes,
}

impl Frame {
    /// A script data frame (e.g. an `onMetaData` body).
    pub fn data(dts: u64, body: Bytes) -> Frame {
        Frame {
            kind: MediaKind::Data,
            track: 0,
            codec: Codec::Script,
            dts,
            cts: 0,
            nanos: 0,
            keyframe: false,
            data: body,
        }
    }

    /// Timestamp as carried by FLV and RTMP: 32 bits, wrapping after 49.7 days.
    pub fn wire_timestamp(&self) -> u32 {
        self.dts as u32
    }

    /// Presentation time in ms on the same timeline as `dts`.
    pub fn pts(&self) -> i64 {
        self.dts as i64 + self.cts as i64
    }

    pub fn is_video(&self) -> bool {
        self.kind == MediaKind::Video
    }

    pub fn is_audio(&self) -> bool {
        self.kind == MediaKind::Audio
    }
}
