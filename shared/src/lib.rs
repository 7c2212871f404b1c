//! Media types shared by the onair server and pusher: the codec-neutral `Frame` and its
//! `CodecConfig`, FLV tags in and out, AVC/AAC/MP3 headers, AMF metadata and timestamps.
//! Everything here is pure: bytes in, values out; no sockets, no clocks.

pub mod aac;
pub mod av1;
pub mod avc;
pub mod bits;
pub mod codec;
pub mod codec_config;
pub mod eflv;
pub mod flac;
pub mod flv;
pub mod fmp4;
pub mod frame;
pub mod frame_time;
pub mod hevc;
pub mod ingest;
pub mod metadata;
pub mod mp3;
pub mod opus;
pub mod timestamp;
pub mod vp9;

pub use codec::Codec;
pub use codec_config::{CodecConfig, CodecParams, MediaSummary};
pub use frame::{Frame, MediaKind, TrackId};
