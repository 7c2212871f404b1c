//! Low-Latency HLS building blocks, all pure: where parts and segments close (`cutter`),
//! the media playlist text with parts, preload hints, server control and delta updates
//! (`playlist`), what to do with a blocking playlist request (`reload`), and one stream's
//! state composed of them and the fMP4 writer (`segmenter`). None of them holds a lock,
//! reads a clock or touches a socket; the HLS output drives them.

pub mod cutter;
pub mod playlist;
pub mod reload;
pub mod segmenter;

pub use cutter::{ClosedPart, Cut, Cutter, FrameInfo};
pub use playlist::{render, render_plain, LlPart, LlPlaylist, LlSegment, ServerControl};
pub use reload::{decide, Decision, LlQuery, QueryError, Refusal, ReloadState, Skip};
pub use segmenter::{LlSegmenter, LlSegmenterConfig, MediaName, PartReady, PastSegment};
