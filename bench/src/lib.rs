//! onair-bench as a library: the real-time synthetic publisher, RTMP, HTTP-FLV, HLS and WHEP viewer
//! clients and the measurement pieces, shared by the `onair-bench` binary and the
//! end-to-end tests (which use the same clients to check what viewers receive).

pub mod floor;
pub mod flv_scan;
pub mod hls_stats;
pub mod http;
pub mod http_conn;
pub mod media;
pub mod playlist;
pub mod procfs;
pub mod publisher;
pub mod readers;
pub mod report;
pub mod rtmp;
pub mod rtmp_scan;
pub mod stats;
pub mod step;
pub mod target;
pub mod tls;
pub mod ts;
pub mod viewer_flv;
pub mod viewer_hls;
pub mod viewer_llhls;
pub mod viewer_rtmp;
pub mod viewer_whep;
