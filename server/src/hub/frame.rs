//! A frame as it travels through the hub: the ingest `Frame` plus each output's
//! serialization, built by the first viewer that needs it and shared by all others.

use std::sync::OnceLock;

use bytes::Bytes;
use onair_shared::{flv, Frame, MediaKind};

#[derive(Debug)]
pub struct SharedFrame {
    pub frame: Frame,
    flv_tag: OnceLock<Bytes>,
    rtmp_chunks: OnceLock<Bytes>,
}

impl SharedFrame {
    pub fn new(frame: Frame) -> Self {
        Self {
            frame,
            flv_tag: OnceLock::new(),
            rtmp_chunks: OnceLock::new(),
        }
    }

    /// The whole FLV tag (header, body, PreviousTagSize), built once.
    pub fn flv_tag(&self) -> &Bytes {
        self.flv_tag.get_or_init(|| {
            flv::encode_tag(
                self.frame.tag_type(),
                self.frame.wire_timestamp(),
                &self.frame.payload,
            )
        })
    }

    /// RTMP chunks in the server's standard form (one chunk size, one message stream
    /// id), built once by `build` and shared by every player using that form.
    pub fn rtmp_chunks(&self, build: impl FnOnce(&Frame) -> Bytes) -> &Bytes {
        self.rtmp_chunks.get_or_init(|| build(&self.frame))
    }

    pub fn is_video(&self) -> bool {
        self.frame.kind == MediaKind::Video
    }

    pub fn is_audio(&self) -> bool {
        self.frame.kind == MediaKind::Audio
    }

    pub fn len(&self) -> usize {
        self.frame.payload.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frame.payload.is_empty()
    }
}
