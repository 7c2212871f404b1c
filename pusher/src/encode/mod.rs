//! Encoders: H.264 with openh264, VP9 with libvpx, AV1 with rav1e, AAC-LC with fdk-aac and
//! Opus with libopus. Each runs on
//! its own thread in the pipeline; these types are the synchronous cores.

pub mod aac;
pub mod av1;
pub mod h264;
pub mod opus;
pub mod video;
pub mod vp9;

use onair_shared::flv::TagFrame;
use onair_shared::Codec;

use crate::media::AudioBlock;
use crate::mux::flv;
use crate::PushError;

/// The audio encoder a push uses, with its frames already as FLV tags: AAC in legacy FLV,
/// Opus in Enhanced RTMP v2 ex-header tags.
pub enum AudioEncoder {
    Aac(aac::AacEncoder),
    Opus(opus::OpusEncoder),
}

impl AudioEncoder {
    pub fn codec(&self) -> Codec {
        match self {
            AudioEncoder::Aac(_) => Codec::Aac,
            AudioEncoder::Opus(_) => Codec::Opus,
        }
    }

    /// The sequence header tag (AudioSpecificConfig, or the Opus ID header).
    pub fn sequence_header(&self) -> Result<TagFrame, PushError> {
        match self {
            AudioEncoder::Aac(e) => {
                flv::audio(0, flv::aac_sequence_header(e.audio_specific_config()))
                    .ok_or_else(|| PushError::Aac("bad sequence header".into()))
            }
            AudioEncoder::Opus(e) => flv::ex_audio_sequence_start(Codec::Opus, &e.id_header())
                .map(|b| flv::ex_audio(0, Codec::Opus, true, b))
                .ok_or_else(|| PushError::Opus("bad sequence header".into())),
        }
    }

    pub fn encode(&mut self, block: &AudioBlock) -> Result<Vec<TagFrame>, PushError> {
        let units = match self {
            AudioEncoder::Aac(e) => e.encode(block)?,
            AudioEncoder::Opus(e) => e.encode(block)?,
        };
        self.tags(units)
    }

    pub fn flush(&mut self) -> Result<Vec<TagFrame>, PushError> {
        let units = match self {
            AudioEncoder::Aac(e) => e.flush()?,
            AudioEncoder::Opus(e) => e.flush()?,
        };
        self.tags(units)
    }

    fn tags(&self, units: Vec<aac::AccessUnit>) -> Result<Vec<TagFrame>, PushError> {
        units
            .into_iter()
            .map(|au| match self {
                AudioEncoder::Aac(_) => flv::audio(au.dts_ms, flv::aac_frame(&au.data))
                    .ok_or_else(|| PushError::Aac("bad frame".into())),
                AudioEncoder::Opus(_) => flv::ex_audio_frame(Codec::Opus, &au.data)
                    .map(|b| flv::ex_audio(au.dts_ms, Codec::Opus, false, b))
                    .ok_or_else(|| PushError::Opus("bad frame".into())),
            })
            .collect()
    }
}
