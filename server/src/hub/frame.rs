//! A unit as it travels through the hub: a codec-neutral frame (with the configuration
//! of its track) or a configuration change, plus each output's serialization of it,
//! built by the first viewer that needs it and shared by all others. Nothing here
//! parses media; serializations are built from the parsed values.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use onair_shared::{flv, CodecConfig, Frame, MediaKind};

/// What the hub carries, in publish order.
#[derive(Debug)]
pub enum Unit {
    /// A media or data frame. `config` is its track's configuration when it was
    /// published (`None` for data frames).
    Frame {
        frame: Frame,
        config: Option<Arc<CodecConfig>>,
    },
    /// A track's (new) configuration; the frames after it decode with it.
    Config(Arc<CodecConfig>),
}

#[derive(Debug)]
pub struct SharedFrame {
    pub unit: Unit,
    flv_tag: OnceLock<Bytes>,
    rtmp_chunks: OnceLock<Bytes>,
    rtp_payloads: OnceLock<Vec<Arc<[u8]>>>,
}

impl SharedFrame {
    pub fn frame(frame: Frame, config: Option<Arc<CodecConfig>>) -> Self {
        Self::new(Unit::Frame { frame, config })
    }

    pub fn config(config: Arc<CodecConfig>) -> Self {
        Self::new(Unit::Config(config))
    }

    fn new(unit: Unit) -> Self {
        Self {
            unit,
            flv_tag: OnceLock::new(),
            rtmp_chunks: OnceLock::new(),
            rtp_payloads: OnceLock::new(),
        }
    }

    /// The frame, unless this is a configuration.
    pub fn as_frame(&self) -> Option<&Frame> {
        match &self.unit {
            Unit::Frame { frame, .. } => Some(frame),
            Unit::Config(_) => None,
        }
    }

    /// The configuration this is, or the one its frame decodes with.
    pub fn codec_config(&self) -> Option<&Arc<CodecConfig>> {
        match &self.unit {
            Unit::Frame { config, .. } => config.as_ref(),
            Unit::Config(c) => Some(c),
        }
    }

    pub fn is_config(&self) -> bool {
        matches!(self.unit, Unit::Config(_))
    }

    pub fn kind(&self) -> MediaKind {
        match &self.unit {
            Unit::Frame { frame, .. } => frame.kind,
            Unit::Config(c) => c.kind,
        }
    }

    /// A video frame a decoder can start from.
    pub fn is_keyframe(&self) -> bool {
        self.as_frame().is_some_and(|f| f.keyframe)
    }

    /// Wire timestamp of the unit (configurations go out at 0, as they always did).
    pub fn wire_timestamp(&self) -> u32 {
        self.as_frame().map_or(0, Frame::wire_timestamp)
    }

    /// The whole FLV tag (header, body, PreviousTagSize), built once: legacy FLV for
    /// what it can carry (H.264, AAC, MP3: byte for byte as a legacy publisher sent it),
    /// Enhanced FLV for HEVC, AV1, VP9, Opus and FLAC. Empty for a unit FLV has no tag
    /// for (an MP3 configuration).
    pub fn flv_tag(&self) -> &Bytes {
        self.flv_tag.get_or_init(|| {
            match &self.unit {
                Unit::Frame { frame, config } => flv::encode_frame_tag(frame, config.as_deref())
                    .or_else(|| flv::encode_enhanced_frame_tag(frame)),
                Unit::Config(c) => {
                    flv::encode_config_tag(c, 0).or_else(|| flv::encode_enhanced_config_tag(c, 0))
                }
            }
            .unwrap_or_default()
        })
    }

    /// The FLV tag type and body (what an RTMP message carries), a view of `flv_tag`.
    pub fn flv_message(&self) -> Option<(u8, Bytes)> {
        let tag = self.flv_tag();
        (tag.len() >= 15).then(|| (tag[0], tag.slice(11..tag.len() - 4)))
    }

    /// RTMP chunks in the server's standard form (one chunk size, one message stream
    /// id), built once by `build` and shared by every player using that form.
    pub fn rtmp_chunks(&self, build: impl FnOnce(&SharedFrame) -> Bytes) -> &Bytes {
        self.rtmp_chunks.get_or_init(|| build(self))
    }

    /// RTP payloads for WebRTC, built once by `build` and shared by every WebRTC viewer.
    pub fn rtp_payloads(&self, build: impl FnOnce(&SharedFrame) -> Vec<Arc<[u8]>>) -> &[Arc<[u8]>] {
        self.rtp_payloads.get_or_init(|| build(self))
    }

    pub fn is_video(&self) -> bool {
        self.kind() == MediaKind::Video
    }

    pub fn is_audio(&self) -> bool {
        self.kind() == MediaKind::Audio
    }

    /// Media bytes (the access unit, or the configuration record).
    pub fn len(&self) -> usize {
        match &self.unit {
            Unit::Frame { frame, .. } => frame.data.len(),
            Unit::Config(c) => c.record.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
