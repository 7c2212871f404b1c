//! The one media frame type that flows from ingest to every output.
//! A `Frame` is built once when a message arrives; outputs derive their bytes from it
//! and never re-parse the payload.

use bytes::Bytes;

use crate::aac::AudioTagHeader;
use crate::avc::VideoTagHeader;
use crate::codec::Codec;
use crate::flv::{TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
    /// Script data (onMetaData and friends).
    Data,
}

/// One audio, video or data message, as the FLV tag body it arrived as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
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
pub enum FrameError {
    #[error("empty {0:?} message")]
    Empty(MediaKind),
    #[error(transparent)]
    Video(#[from] crate::avc::AvcError),
    #[error(transparent)]
    Audio(#[from] crate::aac::AacError),
}

impl Frame {
    /// Classifies an FLV video tag body.
    pub fn video(dts: u64, payload: Bytes) -> Result<Frame, FrameError> {
        let h = VideoTagHeader::parse(&payload)?;
        Ok(Frame {
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
    pub fn audio(dts: u64, payload: Bytes) -> Result<Frame, FrameError> {
        let h = AudioTagHeader::parse(&payload)?;
        Ok(Frame {
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
    pub fn data(dts: u64, payload: Bytes) -> Frame {
        Frame {
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
    fn classifies_avc_keyframe_and_sequence_header() {
        let key = Frame::video(
            40,
            Bytes::from_static(&[0x17, 1, 0, 0, 0x21, 0, 0, 0, 1, 0x65]),
        )
        .unwrap();
        assert!(key.keyframe && !key.sequence_header);
        assert_eq!(key.codec, Codec::H264);
        assert_eq!(key.cts, 0x21);
        let seq =
            Frame::video(0, Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f])).unwrap();
        assert!(seq.sequence_header);
        let inter = Frame::video(0, Bytes::from_static(&[0x27, 1, 0, 0, 0])).unwrap();
        assert!(!inter.keyframe);
    }

    #[test]
    fn classifies_aac() {
        let seq = Frame::audio(0, Bytes::from_static(&[0xaf, 0, 0x12, 0x10])).unwrap();
        assert!(seq.sequence_header);
        assert_eq!(seq.codec, Codec::Aac);
        let raw = Frame::audio(0, Bytes::from_static(&[0xaf, 1, 0x21])).unwrap();
        assert!(!raw.sequence_header);
        assert!(Frame::audio(0, Bytes::new()).is_err());
    }
}
