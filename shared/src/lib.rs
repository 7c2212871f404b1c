//! Media types shared by the onair server and pusher: FLV tags, AVC and AAC
//! configuration records, AMF metadata, timestamps and the one `Frame` type.
//! Everything here is pure: bytes in, values out; no sockets, no clocks.

pub mod aac;
pub mod av1;
pub mod avc;
pub mod bits;
pub mod codec;
pub mod eflv;
pub mod flac;
pub mod flv;
pub mod frame;
pub mod hevc;
pub mod metadata;
pub mod opus;
pub mod timestamp;
pub mod vp9;

pub use codec::Codec;
pub use frame::{Frame, MediaKind};
