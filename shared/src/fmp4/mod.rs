//! Fragmented MP4 (CMAF) writer: an init segment (ftyp + moov) from track descriptions,
//! and media fragments (moof + mdat) from samples, for fMP4 HLS, LL-HLS parts and recording.
//! Sans-IO: values in, bytes out; it never reads a clock or a socket, and never panics on
//! what a publisher sent (bad configs, DTS going back, huge samples are typed errors).
//!
//! The boxes are written by hand (`boxes.rs`), not with a box crate. The set needed is
//! small and fixed, and the codec configuration records (avcC, hvcC, av1C, vpcC) must go
//! into the sample entries exactly as the publisher sent them; `mp4-atom`, the best-kept
//! crate for this, models each record as a struct, so writing through it means decoding
//! and re-encoding every record (and it refuses some that players accept). `mp4-atom` is
//! used instead in the tests, as an independent decoder of what this module writes.
//!
//! Layout: `init_segment(&[Track])` once per stream (again when a config changes);
//! `Fragmenter` per stream: `push` samples as they come, `take_fragment` when the
//! segmenter closes a part. A sample's duration is the DTS step to the next sample of its
//! track, so the newest sample of each track stays queued until its successor arrives
//! (or `flush` at the end of the stream gives it a nominal duration).

mod boxes;
mod fragment;
mod init;

pub use fragment::{
    write_fragment, Fragment, FragmentTrack, Fragmenter, RunSample, Sample, TrackRun,
};
pub use init::{codec_string, init_segment};

use crate::{Codec, CodecConfig, MediaKind};
use bytes::Bytes;

/// Track ids of onair's fMP4 output (HLS and recordings): one video, one audio track.
pub const VIDEO_TRACK: u32 = 1;
pub const AUDIO_TRACK: u32 = 2;
/// Ticks per second of video tracks.
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// What kind of media a track holds, with what a sample entry must state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackMedia {
    Video { width: u16, height: u16 },
    Audio { sample_rate: u32, channels: u16 },
}

/// One track of the init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// Track id, 1 or more, unique in the stream; moof/traf refer to it.
    pub id: u32,
    pub codec: Codec,
    /// Ticks per second of every DTS, duration and composition offset of this track
    /// (90 000 for video, the sample rate for audio, 48 000 for Opus, is usual).
    pub timescale: u32,
    /// The codec configuration, as the publisher sent it: the AVCDecoderConfigurationRecord
    /// (H.264), HEVCDecoderConfigurationRecord (HEVC), AV1CodecConfigurationRecord (AV1),
    /// VPCodecConfigurationRecord with or without its FullBox prefix (VP9),
    /// AudioSpecificConfig (AAC), OpusHead (Opus), FLAC STREAMINFO in any of the forms
    /// `FlacStreamInfo::parse` accepts (FLAC); ignored for MP3.
    pub config: Bytes,
    pub media: TrackMedia,
}

impl Track {
    /// The track for a served codec configuration: video on track 1 at 90 kHz, audio on
    /// track 2 at its sample rate (48 kHz for Opus); `None` for what fMP4 here cannot carry.
    pub fn from_config(c: &CodecConfig) -> Option<Track> {
        let (id, timescale, media) = match (c.kind, c.codec) {
            (MediaKind::Video, Codec::H264 | Codec::Hevc | Codec::Av1 | Codec::Vp9) => (
                VIDEO_TRACK,
                VIDEO_TIMESCALE,
                TrackMedia::Video {
                    width: c.summary.width.unwrap_or(0).min(u16::MAX as u32) as u16,
                    height: c.summary.height.unwrap_or(0).min(u16::MAX as u32) as u16,
                },
            ),
            (MediaKind::Audio, Codec::Aac | Codec::Mp3 | Codec::Opus | Codec::Flac) => {
                let rate = c.summary.sample_rate.filter(|r| *r > 0).unwrap_or(48_000);
                let timescale = if c.codec == Codec::Opus { 48_000 } else { rate };
                (
                    AUDIO_TRACK,
                    timescale,
                    TrackMedia::Audio {
                        sample_rate: rate,
                        channels: c.summary.channels.unwrap_or(2).max(1) as u16,
                    },
                )
            }
            _ => return None,
        };
        Some(Track {
            id,
            codec: c.codec,
            timescale,
            config: c.record.clone(),
            media,
        })
    }

    /// The duration, in this track's ticks, given to a last sample whose successor never
    /// came and whose track has no earlier duration to copy (a stream ending after one frame).
    pub fn nominal_sample_duration(&self) -> u32 {
        let per_second = |samples: u64, rate: u64| {
            (samples * self.timescale as u64 / rate.max(1)).clamp(1, u32::MAX as u64) as u32
        };
        match (self.codec, self.media) {
            (Codec::Aac, TrackMedia::Audio { sample_rate, .. }) => {
                per_second(1024, sample_rate as u64)
            }
            (Codec::Mp3, TrackMedia::Audio { sample_rate, .. }) => {
                per_second(1152, sample_rate as u64)
            }
            (Codec::Flac, TrackMedia::Audio { sample_rate, .. }) => {
                let block = crate::flac::FlacStreamInfo::parse(&self.config)
                    .map(|s| s.max_block_size as u64)
                    .unwrap_or(4096);
                per_second(block, sample_rate as u64)
            }
            // 20 ms, libopus's default frame.
            (Codec::Opus, _) => per_second(20, 1000),
            // 30 frames a second.
            _ => per_second(1, 30),
        }
    }
}

/// Why a codec configuration could not go into a sample entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Avc(#[from] crate::avc::AvcError),
    #[error(transparent)]
    Hevc(#[from] crate::hevc::HevcError),
    #[error(transparent)]
    Av1(#[from] crate::av1::Av1Error),
    #[error(transparent)]
    Vp9(#[from] crate::vp9::Vp9Error),
    #[error(transparent)]
    Aac(#[from] crate::aac::AacError),
    #[error(transparent)]
    Opus(#[from] crate::opus::OpusError),
    #[error(transparent)]
    Flac(#[from] crate::flac::FlacError),
    #[error("a {0} track needs {1} media, not the other kind")]
    WrongMedia(&'static str, &'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fmp4Error {
    #[error("an init segment needs at least one track")]
    NoTracks,
    #[error("track id {0} is 0 or used twice")]
    BadTrackId(u32),
    #[error("track {0} has timescale 0")]
    ZeroTimescale(u32),
    #[error("track {track_id}: {codec} has no fMP4 sample entry in onair")]
    Unsupported { track_id: u32, codec: &'static str },
    #[error("track {track_id}: {codec} configuration: {source}")]
    Config {
        track_id: u32,
        codec: &'static str,
        source: ConfigError,
    },
    #[error("no track {0} in this fragmenter")]
    UnknownTrack(u32),
    #[error("track {0}: a sample of 0 bytes")]
    EmptySample(u32),
    #[error("track {track_id}: DTS {dts} is before the previous sample's {previous}")]
    DtsWentBack {
        track_id: u32,
        dts: u64,
        previous: u64,
    },
    #[error("track {track_id}: sample duration of {ticks} ticks does not fit 32 bits")]
    DurationTooLong { track_id: u32, ticks: u64 },
    #[error("track {track_id}: {pending} bytes pending would pass the limit of {limit}")]
    PendingFull {
        track_id: u32,
        pending: usize,
        limit: usize,
    },
    #[error("a box of {0} bytes does not fit a 32-bit size")]
    TooLarge(u64),
    #[error("a fragment needs at least one sample")]
    EmptyFragment,
}

#[cfg(test)]
mod tests;
