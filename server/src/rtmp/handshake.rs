//! The RTMP handshake, server side: rml_rtmp's sans-IO `Handshake` behind a call that
//! turns its panics and errors into `ConnError`s. Bytes in, bytes to send and the bytes
//! after the handshake out; no socket.

use std::panic::{catch_unwind, AssertUnwindSafe};

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};

use super::error::ConnError;

/// Most bytes read at once during the handshake.
pub const HANDSHAKE_READ: usize = 4096;

/// Where a handshake stands after some bytes.
#[derive(Debug)]
pub enum HandshakeStep {
    /// Send these and wait for more.
    InProgress { send: Vec<u8> },
    /// Send these; `rest` is what the client sent after its handshake (its first
    /// commands), for the session.
    Done { send: Vec<u8>, rest: Vec<u8> },
}

/// The server side of one handshake.
pub struct ServerHandshake(Handshake);

impl Default for ServerHandshake {
    fn default() -> Self {
        Self(Handshake::new(PeerType::Server))
    }
}

impl ServerHandshake {
    /// Feeds received bytes. A panic in rml_rtmp ends only this connection, as an error.
    pub fn step(&mut self, bytes: &[u8]) -> Result<HandshakeStep, ConnError> {
        let hs = &mut self.0;
        let r = catch_unwind(AssertUnwindSafe(|| hs.process_bytes(bytes)))
            .map_err(|_| ConnError::Panicked("rml_rtmp's handshake"))?
            .map_err(|e| ConnError::Handshake(format!("{e:?}")))?;
        Ok(match r {
            HandshakeProcessResult::InProgress { response_bytes } => HandshakeStep::InProgress {
                send: response_bytes,
            },
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => HandshakeStep::Done {
                send: response_bytes,
                rest: remaining_bytes,
            },
        })
    }
}
