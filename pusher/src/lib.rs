//! onair pusher: the first mile of the chain. Captures (or synthesizes, or reads) audio and
//! video, processes raw frames (overlays, watermark, gain, mix, denoise), encodes H.264 with
//! openh264 and AAC-LC with fdk-aac, muxes FLV tag bodies as `onair_shared::flv::TagFrame`s and
//! publishes them over RTMP (reconnecting, dropping instead of queueing without bound) or
//! writes an FLV file.
//!
//! Pure pieces (pixel conversion, overlays, SEI, FLV muxing, the drop-policy queue, the
//! interleaver) take values and return values; threads and sockets live in `pipeline` and
//! `publish` only.

pub mod clock;
pub mod config;
pub mod encode;
pub mod error;
pub mod guest;
pub mod media;
pub mod mux;
pub mod pipeline;
pub mod process;
pub mod publish;
pub mod source;
pub mod status;

#[cfg(test)]
mod fuzz_tests;

pub use config::{PushArgs, PushConfig};
pub use error::PushError;
pub use pipeline::{run, run_with_filters};
