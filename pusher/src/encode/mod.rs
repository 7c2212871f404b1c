//! Encoders: H.264 with openh264 and AAC-LC with fdk-aac. Each runs on its own thread in
//! the pipeline; these types are the synchronous cores.

pub mod aac;
pub mod h264;
