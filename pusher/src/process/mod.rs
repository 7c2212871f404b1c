//! Processing on raw frames, between capture and encoding: text and clock overlays, a PNG
//! watermark, pixel-format conversion, audio gain, mixing, noise suppression and voice
//! effects, the co-hosting composition. All pure.

pub mod aec;
pub mod audio;
pub mod beauty;
pub mod compose;
pub mod convert;
pub mod denoise;
pub mod filter;
pub mod font;
pub mod logo;
pub mod lut;
pub mod overlay;
pub mod vad;
pub mod voice;
