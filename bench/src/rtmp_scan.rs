//! A player's RTMP chunk stream read in passing: each chunk's header is parsed, no more of
//! a video message than the caller asks for is kept (what `classify_video` reads), and
//! only the small messages a player must act on are gathered whole: chunk size, window
//! acknowledgement size, ping, and `onStatus` (an ending status is an error). Audio and
//! the rest of each video message are skipped, never reassembled, so a bench viewer
//! costs about a read per write of the server, not a copy of the stream. The
//! acknowledgements and ping answers a client owes go out as bytes to send. Sans-IO:
//! bytes in, prefixes and replies out.
//!
//! A scanner takes over from the rml_rtmp client session that set the play up by
//! replaying every byte that session was given (`resume`): the chunk size and each chunk
//! stream's last header are then the same, and so is a message cut by the handover.

use std::collections::HashMap;
use std::io::Cursor;

use rml_amf0::Amf0Value;

const MSG_SET_CHUNK_SIZE: u8 = 1;
const MSG_ACK: u8 = 3;
const MSG_USER_CONTROL: u8 = 4;
const MSG_WINDOW_ACK_SIZE: u8 = 5;
const MSG_VIDEO: u8 = 9;
const MSG_AMF0_COMMAND: u8 = 20;
const USER_PING_REQUEST: u16 = 6;
const USER_PING_RESPONSE: u16 = 7;
/// RTMP's chunk size until the peer sets one.
const INITIAL_CHUNK_SIZE: usize = 128;
/// Basic header (3) + message header (11) + extended timestamp (4).
const MAX_HEADER: usize = 18;
/// The longest prefix of a video message a scanner keeps.
pub const MAX_PREFIX: usize = 64;
/// Control and command messages are gathered whole up to this; a longer one is skipped.
const MAX_GATHERED: usize = 64 * 1024;
/// Chunk streams a server may use at once (onair and nginx use fewer than ten).
const MAX_CHUNK_STREAMS: usize = 64;
/// The status codes that end a play (as the rml_rtmp path reads them).
const ENDINGS: [&str; 5] = ["Failed", "NotFound", "BadName", "Rejected", "Forbidden"];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RtmpScanError {
    #[error("chunk stream {csid}: a type-{fmt} header in the middle of a message")]
    HeaderMidMessage { csid: u32, fmt: u8 },
    #[error("chunk stream {csid}: a type-{fmt} header with no message before it")]
    NoPreviousHeader { csid: u32, fmt: u8 },
    #[error("more than {MAX_CHUNK_STREAMS} chunk streams")]
    TooManyChunkStreams,
    #[error("bad chunk size {0}")]
    BadChunkSize(u32),
    #[error("server answered {0}")]
    EndingStatus(String),
}

/// Whether an `onStatus` code ends the attempt it answers.
pub fn is_ending_status(code: &str) -> bool {
    ENDINGS.iter().any(|s| code.ends_with(s))
}

#[derive(Debug, Default)]
struct ChunkStream {
    len: usize,
    type_id: u8,
    /// The last header of this stream carried an extended timestamp: so does a type-3
    /// chunk after it.
    extended: bool,
    /// Bytes of the current message still to come; 0 between messages.
    left: usize,
    /// The current message's start (a video prefix, or a whole small message).
    kept: Vec<u8>,
}

#[derive(Debug)]
pub struct RtmpScan {
    chunk_size: usize,
    head: [u8; MAX_HEADER],
    head_len: usize,
    streams: HashMap<u32, ChunkStream>,
    /// The chunk stream whose payload is being read, and that chunk's bytes still to come.
    in_chunk: Option<(u32, usize)>,
    want: usize,
    window: Option<u32>,
    received: u64,
    acked: u64,
}

impl RtmpScan {
    /// A scanner handing out the first `want` bytes (at most `MAX_PREFIX`) of each video
    /// message, once the whole message is in (when a player could decode it).
    pub fn new(want: usize) -> Self {
        Self {
            chunk_size: INITIAL_CHUNK_SIZE,
            head: [0; MAX_HEADER],
            head_len: 0,
            streams: HashMap::new(),
            in_chunk: None,
            want: want.min(MAX_PREFIX),
            window: None,
            received: 0,
            acked: 0,
        }
    }

    /// A scanner that has seen `before` (every byte after the handshake that the set-up
    /// session was given), with nothing handed out or answered for them.
    pub fn resume(want: usize, before: &[u8]) -> Result<Self, RtmpScanError> {
        let mut scan = Self::new(want);
        scan.scan(before, &mut |_| {}, None)?;
        // What the session acknowledged of them is not known: count from here.
        scan.acked = scan.received;
        Ok(scan)
    }

    /// Takes the next bytes of the stream: `on_video` gets each complete video message's
    /// prefix, and what the client owes the server (acknowledgements, ping answers) is
    /// appended to `reply`.
    pub fn push(
        &mut self,
        data: &[u8],
        mut on_video: impl FnMut(&[u8]),
        reply: &mut Vec<u8>,
    ) -> Result<(), RtmpScanError> {
        self.scan(data, &mut on_video, Some(&mut *reply))?;
        if let Some(window) = self.window.filter(|&w| w > 0) {
            if self.received - self.acked >= u64::from(window) {
                self.acked = self.received;
                // The sequence number is the byte count, modulo 2^32.
                let seq = (self.received & 0xffff_ffff) as u32;
                put_message(reply, MSG_ACK, &seq.to_be_bytes());
            }
        }
        Ok(())
    }

    fn scan(
        &mut self,
        mut data: &[u8],
        on_video: &mut dyn FnMut(&[u8]),
        mut reply: Option<&mut Vec<u8>>,
    ) -> Result<(), RtmpScanError> {
        self.received += data.len() as u64;
        while !data.is_empty() {
            if let Some((csid, chunk_left)) = self.in_chunk {
                let n = chunk_left.min(data.len());
                let (body, rest) = data.split_at(n);
                data = rest;
                let stream = self.streams.get_mut(&csid).expect("chunk stream in use");
                let keep = match stream.type_id {
                    MSG_VIDEO => self.want,
                    MSG_SET_CHUNK_SIZE | MSG_USER_CONTROL | MSG_WINDOW_ACK_SIZE
                    | MSG_AMF0_COMMAND => MAX_GATHERED,
                    _ => 0,
                }
                .min(stream.len);
                let room = keep.saturating_sub(stream.kept.len()).min(n);
                stream.kept.extend_from_slice(&body[..room]);
                stream.left -= n;
                self.in_chunk = (n < chunk_left).then_some((csid, chunk_left - n));
                if stream.left == 0 {
                    self.in_chunk = None;
                    self.complete(csid, on_video, reply.as_deref_mut())?;
                }
                continue;
            }
            let before = self.head_len;
            let add = (MAX_HEADER - before).min(data.len());
            self.head[before..before + add].copy_from_slice(&data[..add]);
            match self.header(before + add)? {
                None => {
                    self.head_len = before + add;
                    data = &data[add..];
                }
                Some(len) => {
                    self.head_len = 0;
                    data = &data[len - before..];
                }
            }
        }
        Ok(())
    }

    /// Applies the chunk header at the start of `head[..have]`; its length, or `None`
    /// when more bytes are needed.
    fn header(&mut self, have: usize) -> Result<Option<usize>, RtmpScanError> {
        let h = &self.head[..have];
        let fmt = h[0] >> 6;
        let (csid, basic) = match h[0] & 0x3f {
            0 if have >= 2 => (64 + u32::from(h[1]), 2),
            1 if have >= 3 => (64 + u32::from(h[1]) + 256 * u32::from(h[2]), 3),
            0 | 1 => return Ok(None),
            id => (u32::from(id), 1),
        };
        let message_header = [11, 7, 3, 0][fmt as usize];
        if have < basic + message_header {
            return Ok(None);
        }
        let m = &h[basic..basic + message_header];
        let known = self.streams.get(&csid);
        let is_new = known.is_none();
        let extended = if fmt == 3 {
            known.is_some_and(|s| s.extended)
        } else {
            m[..3] == [0xff, 0xff, 0xff]
        };
        let total = basic + message_header + if extended { 4 } else { 0 };
        if have < total {
            return Ok(None);
        }
        if is_new && self.streams.len() >= MAX_CHUNK_STREAMS {
            return Err(RtmpScanError::TooManyChunkStreams);
        }
        let stream = self.streams.entry(csid).or_default();
        if stream.left > 0 && fmt != 3 {
            return Err(RtmpScanError::HeaderMidMessage { csid, fmt });
        }
        if is_new && fmt >= 2 {
            return Err(RtmpScanError::NoPreviousHeader { csid, fmt });
        }
        if fmt <= 1 {
            stream.len = usize::from(m[3]) << 16 | usize::from(m[4]) << 8 | usize::from(m[5]);
            stream.type_id = m[6];
        }
        if fmt != 3 {
            stream.extended = extended;
        }
        if stream.left == 0 {
            stream.left = stream.len;
            stream.kept.clear();
        }
        let chunk = stream.left.min(self.chunk_size);
        self.in_chunk = (chunk > 0).then_some((csid, chunk));
        if stream.len == 0 {
            // An empty message is complete with its header; nothing a player acts on.
            self.in_chunk = None;
        }
        Ok(Some(total))
    }

    fn complete(
        &mut self,
        csid: u32,
        on_video: &mut dyn FnMut(&[u8]),
        reply: Option<&mut Vec<u8>>,
    ) -> Result<(), RtmpScanError> {
        let stream = &self.streams[&csid];
        let body = &stream.kept[..];
        let u32_at = |i: usize| {
            body.get(i..i + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match stream.type_id {
            MSG_VIDEO => on_video(body),
            MSG_SET_CHUNK_SIZE => {
                let size = u32_at(0).unwrap_or(0) & 0x7fff_ffff;
                if !(1..=0xff_ffff).contains(&size) {
                    return Err(RtmpScanError::BadChunkSize(size));
                }
                self.chunk_size = size as usize;
            }
            MSG_WINDOW_ACK_SIZE => self.window = u32_at(0),
            MSG_USER_CONTROL => {
                let event = body.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
                if let (Some(USER_PING_REQUEST), Some(time), Some(reply)) =
                    (event, body.get(2..6), reply)
                {
                    let mut pong = USER_PING_RESPONSE.to_be_bytes().to_vec();
                    pong.extend_from_slice(time);
                    put_message(reply, MSG_USER_CONTROL, &pong);
                }
            }
            MSG_AMF0_COMMAND if stream.len <= MAX_GATHERED => {
                if let Some(code) = status_code(body).filter(|c| is_ending_status(c)) {
                    return Err(RtmpScanError::EndingStatus(code));
                }
            }
            _ => {}
        }
        let stream = self.streams.get_mut(&csid).expect("chunk stream in use");
        if stream.kept.capacity() > MAX_PREFIX {
            // A command's room goes with it; the next video prefix needs little.
            stream.kept = Vec::new();
        }
        Ok(())
    }
}

/// The `code` of an `onStatus` command, if `body` is one.
fn status_code(body: &[u8]) -> Option<String> {
    let values = rml_amf0::deserialize(&mut Cursor::new(body)).ok()?;
    match values.first() {
        Some(Amf0Value::Utf8String(name)) if name == "onStatus" => {}
        _ => return None,
    }
    values.iter().find_map(|v| match v {
        Amf0Value::Object(props) => match props.get("code") {
            Some(Amf0Value::Utf8String(code)) => Some(code.clone()),
            _ => None,
        },
        _ => None,
    })
}

/// A protocol control message to the server: chunk stream 2, message stream 0, in the
/// client's chunk size (never changed by the bench, and larger than these payloads).
fn put_message(out: &mut Vec<u8>, type_id: u8, payload: &[u8]) {
    crate::floor::rtmp_message(out, 2, type_id, 0, 0, payload, INITIAL_CHUNK_SIZE);
}

#[cfg(test)]
mod tests;
