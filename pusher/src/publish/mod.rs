//! Where the stream goes: an RTMP or RTMPS server (with reconnects and the drop-policy
//! queue) or an FLV file.

pub mod data_message;
pub mod file;
pub mod queue;
pub mod rate;
pub mod rtmp;
pub mod tls;
