//! The pusher's one error type. Every variant says which stage failed and on what, so a
//! message from the field tells what happened without a debugger.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("bad option {option}: {reason}")]
    BadOption {
        option: &'static str,
        reason: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {reason}")]
    Format { what: String, reason: String },
    #[error("H.264 encoder: {0}")]
    H264(String),
    #[error("video encoder: {0}")]
    Video(String),
    #[error("AAC encoder: {0}")]
    Aac(String),
    #[error("Opus encoder: {0}")]
    Opus(String),
    #[error("RTMP {url}: {reason}")]
    Rtmp { url: String, reason: String },
    #[error("{0} is not available in this build (rebuild with --features {1})")]
    FeatureMissing(&'static str, &'static str),
    #[error("capture device: {0}")]
    Device(String),
    #[error("cannot start the {0} thread: {1}")]
    Thread(&'static str, String),
    #[error("pipeline stage {0} stopped unexpectedly")]
    Stage(&'static str),
}

impl PushError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PushError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn format(what: impl Into<String>, reason: impl Into<String>) -> Self {
        PushError::Format {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub fn bad(option: &'static str, reason: impl Into<String>) -> Self {
        PushError::BadOption {
            option,
            reason: reason.into(),
        }
    }
}
