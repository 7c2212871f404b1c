//! onair-bench as a library: the real-time synthetic publisher, RTMP and HTTP-FLV viewer
//! clients and the measurement pieces, shared by the `onair-bench` binary and the
//! end-to-end tests (which use the same clients to check what viewers receive).

pub mod http;
pub mod media;
pub mod procfs;
pub mod publisher;
pub mod report;
pub mod rtmp;
pub mod stats;
pub mod target;
pub mod viewer_flv;
pub mod viewer_rtmp;
