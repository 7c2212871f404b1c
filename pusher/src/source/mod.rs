//! Where media comes from. Raw sources (test pattern, tone, Y4M, WAV, camera, microphone,
//! screen) produce pictures and PCM that we process and encode; file sources (MP4, FLV)
//! produce already-encoded `TagFrame`s that are pushed without re-encoding. Pacing against
//! the capture clock is the pipeline's job, not the sources'.

pub mod file_flv;
pub mod file_mp4;
pub mod mp4_check;
pub mod raw;
pub mod test_pattern;
pub mod tone;
pub mod wav;
pub mod y4m;

#[cfg(feature = "capture")]
pub mod camera;
#[cfg(feature = "capture")]
pub mod mic;
#[cfg(feature = "screen")]
pub mod screen;

use onair_shared::avc::AvcDecoderConfig;
use onair_shared::flv::TagFrame;
use onair_shared::Codec;

use crate::PushError;

/// What an encoded (file) source carries, learned from its headers.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedInfo {
    /// H.264, HEVC or AV1 (pushed as they are; the last two as Enhanced RTMP).
    pub video_codec: Codec,
    /// The H.264 configuration, for H.264 video.
    pub video: Option<AvcDecoderConfig>,
    /// Picture size from the codec configuration, where the source knows it.
    pub video_size: Option<(u32, u32)>,
    /// AudioSpecificConfig bytes.
    pub audio: Option<Vec<u8>>,
    pub fps: Option<f64>,
}

impl Default for EncodedInfo {
    fn default() -> Self {
        Self {
            video_codec: Codec::H264,
            video: None,
            video_size: None,
            audio: None,
            fps: None,
        }
    }
}

/// A file of already-encoded video (H.264, or HEVC/AV1 from MP4) and AAC: sequence headers first, then frames in decode
/// order with timestamps in ms from the start of the file.
pub trait EncodedSource: Send {
    fn info(&self) -> &EncodedInfo;
    fn next_frame(&mut self) -> Result<Option<TagFrame>, PushError>;
}

/// Opens `file:PATH` by its extension (`.mp4`/`.m4v`/`.mov` or `.flv`).
pub fn open_file(path: &std::path::Path) -> Result<Box<dyn EncodedSource>, PushError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "flv" => Ok(Box::new(file_flv::FlvFileSource::open(path)?)),
        "mp4" | "m4v" | "mov" | "m4a" => Ok(Box::new(file_mp4::Mp4Source::open(path)?)),
        _ => Err(PushError::bad(
            "--video file:",
            format!("{}: unknown extension (mp4 or flv)", path.display()),
        )),
    }
}
