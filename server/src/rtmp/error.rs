//! Why an RTMP connection closed. Raised by the session (peer input) and the driver
//! (sockets, timeouts, hub verdicts); each close is logged once with the peer and, when
//! it refuses the peer, counted in the metrics under a stable label.

use std::time::Duration;

use onair_shared::metadata::AmfError;

use super::chunk::ChunkError;
use crate::auth::{Action, Denied};
use crate::hub::PushError;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("handshake not completed within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("no data for {0:?}")]
    Idle(Duration),
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("RTMP session: {0}")]
    Session(String),
    /// A library panicked on peer input; caught, so only this connection ends.
    #[error("{0} panicked on this input")]
    Panicked(&'static str),
    #[error("malformed AMF0 command or data: {0}")]
    Amf(#[from] AmfError),
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    #[error("{kind} message of {len} bytes exceeds max_command_size {max}")]
    CommandTooLarge {
        kind: &'static str,
        len: usize,
        max: u32,
    },
    #[error("publish refused: {0}")]
    PublishRefused(String),
    #[error("{action:?} refused: {denied}")]
    Unauthorized { action: Action, denied: Denied },
    #[error("play refused: {0}")]
    PlayRefused(String),
    #[error("publisher sent bad media: {0}")]
    Media(#[from] PushError),
    #[error("viewer accepted no data for {0:?}")]
    WriteTimeout(Duration),
    #[error("kicked by an operator")]
    Kicked,
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

impl ConnError {
    /// The metrics label when this close is a refusal of the peer; `None` for plain closes.
    pub fn refusal_reason(&self) -> Option<&'static str> {
        Some(match self {
            ConnError::HandshakeTimeout(_) => "handshake_timeout",
            ConnError::Handshake(_) => "bad_handshake",
            ConnError::Idle(_) => "idle_timeout",
            ConnError::Chunk(_) | ConnError::CommandTooLarge { .. } => "rtmp_limit",
            ConnError::Amf(_) | ConnError::UnknownCommand(_) | ConnError::Session(_) => {
                "bad_command"
            }
            ConnError::Panicked(_) => "peer_input_panic",
            ConnError::PublishRefused(_) => "publish_refused",
            ConnError::PlayRefused(_) => "play_refused",
            ConnError::Unauthorized { denied, .. } => denied.reason(),
            ConnError::Media(_) => "bad_media",
            ConnError::WriteTimeout(_) => "viewer_write_timeout",
            ConnError::Kicked => "kicked",
            ConnError::Io(_) => return None,
        })
    }
}
