//! Muxing: encoded pictures and audio frames to FLV tag bodies (`TagFrame`s), the SEI that
//! carries the capture clock, and interleaving of the two tracks by timestamp.

pub mod flv;
pub mod interleave;
pub mod sei;
