//! RTMP chunk-stream codec (RTMP spec 5.3): received bytes in, whole RTMP messages out, and
//! messages back into chunks. Sans-IO: it never touches sockets, clocks or globals, and it must
//! never panic on, or allocate ahead of the configured limits for, anything a peer sends.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Chunk size every RTMP connection starts with, in both directions (spec 5.4.1).
const INITIAL_CHUNK_SIZE: u32 = 128;
/// A 24-bit timestamp field with this value means "the real value follows in 4 more bytes".
const EXTENDED_TIMESTAMP_MARKER: u32 = 0xFF_FFFF;
/// Chunk stream ids a basic header can express (values 0 and 1 select the longer forms).
const MIN_CSID: u32 = 2;
const MAX_CSID: u32 = 65_599;
/// The message length field is 24 bits wide.
const MAX_ENCODABLE_LENGTH: usize = 0xFF_FFFF;
const TYPE_SET_CHUNK_SIZE: u8 = 1;
const TYPE_ABORT: u8 = 2;
/// Messages up to this size get their whole buffer on the first chunk; bigger ones grow with the
/// data actually received, so a peer sending many tiny headers that announce large messages
/// cannot make us reserve `max_chunk_streams * max_message_size` bytes up front.
const EAGER_ALLOC_LIMIT: usize = 64 * 1024;

/// Limits, each a named config value in the server.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLimits {
    /// Largest Set Chunk Size a peer may announce; larger is an error. The caller must let the
    /// input buffer hold at least one chunk of this size plus its header (18 bytes), since a chunk
    /// is decoded only once all of it has arrived.
    pub max_chunk_size: u32,
    /// Largest message length a peer may announce; larger is an error before anything is buffered.
    pub max_message_size: u32,
    /// Most chunk streams with state at once; a header on one more chunk stream is an error.
    pub max_chunk_streams: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpMessage {
    pub csid: u32,
    pub type_id: u8,
    pub stream_id: u32,
    pub timestamp: u32,
    pub payload: Bytes,
}

/// Every error is fatal for the connection: once one is returned, the decoder keeps returning it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("peer set chunk size {requested}, above the configured maximum of {max}")]
    ChunkSizeTooLarge { requested: u32, max: u32 },
    #[error("peer set chunk size {0}, outside the allowed range 1..=2147483647")]
    InvalidChunkSize(u32),
    #[error("peer announced a message of {length} bytes, above the configured maximum of {max}")]
    MessageTooLarge { length: u32, max: u32 },
    #[error("peer opened more chunk streams than the configured maximum of {max}")]
    TooManyChunkStreams { max: usize },
    #[error("chunk of fmt {fmt} on chunk stream {csid}, which has no previous header to reuse")]
    NoPreviousHeader { csid: u32, fmt: u8 },
    #[error("protocol control message type {type_id} has a {length}-byte payload, 4 bytes needed")]
    ControlMessageTooShort { type_id: u8, length: usize },
}

/// What a chunk stream remembers from its last header, so that fmt 1/2/3 headers can omit it.
#[derive(Debug, Default)]
struct ChunkStream {
    /// Timestamp of the current (or last) message.
    timestamp: u32,
    /// Delta that a fmt-3 chunk starting a new message adds. A fmt-0 header sets it to 0, as
    /// nginx-rtmp does, rather than to the absolute timestamp as a literal reading of spec
    /// 5.3.1.2.4 would: librtmp-based encoders send fmt 3 for a new message only when the
    /// timestamp is unchanged, and doubling an absolute timestamp would make the stream jump
    /// hours ahead, whereas a missed delta at worst repeats one timestamp.
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Value of the extended timestamp field of the last fmt 0/1/2 header, if it had one; fmt-3
    /// chunks may or may not repeat it, depending on the encoder.
    extended: Option<u32>,
    /// Payload received so far of a message spanning several chunks; `None` between messages.
    partial: Option<BytesMut>,
}

/// Why a chunk could not be decoded yet.
enum Stop {
    NeedMore,
    Fail(ChunkError),
}

impl From<ChunkError> for Stop {
    fn from(err: ChunkError) -> Self {
        Stop::Fail(err)
    }
}

/// Bounds-checked big/little-endian reads over the unconsumed input.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], Stop> {
        let bytes = self.peek::<N>()?;
        self.pos += N;
        Ok(bytes)
    }

    fn peek<const N: usize>(&self) -> Result<[u8; N], Stop> {
        let end = self.pos.checked_add(N).ok_or(Stop::NeedMore)?;
        self.buf
            .get(self.pos..end)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or(Stop::NeedMore)
    }

    fn u8(&mut self) -> Result<u8, Stop> {
        Ok(self.take::<1>()?[0])
    }

    fn be24(&mut self) -> Result<u32, Stop> {
        let [a, b, c] = self.take::<3>()?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    fn be32(&mut self) -> Result<u32, Stop> {
        Ok(u32::from_be_bytes(self.take::<4>()?))
    }

    fn le32(&mut self) -> Result<u32, Stop> {
        Ok(u32::from_le_bytes(self.take::<4>()?))
    }
}

/// A fully parsed chunk header, checked against the limits and with the whole chunk available,
/// but not yet applied: nothing changes in the decoder until a whole chunk can be consumed.
struct ParsedChunk {
    csid: u32,
    /// Bytes of basic header, message header and extended timestamp.
    header_len: usize,
    data_len: usize,
    /// The chunk continues the message in progress on its chunk stream.
    continuation: bool,
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    extended: Option<u32>,
}

pub struct ChunkDecoder {
    limits: ChunkLimits,
    chunk_size: u32,
    input: BytesMut,
    streams: HashMap<u32, ChunkStream>,
    /// Sum of the lengths of all partial payloads, kept so `buffered_bytes` is O(1).
    partial_bytes: usize,
    bytes_received: u64,
    failed: Option<ChunkError>,
}

impl ChunkDecoder {
    pub fn new(limits: ChunkLimits) -> Self {
        Self {
            limits,
            chunk_size: INITIAL_CHUNK_SIZE,
            input: BytesMut::new(),
            streams: HashMap::new(),
            partial_bytes: 0,
            bytes_received: 0,
            failed: None,
        }
    }

    /// Appends received bytes. The caller bounds how much it reads at once.
    pub fn push(&mut self, data: &[u8]) {
        self.input.extend_from_slice(data);
        self.bytes_received = self.bytes_received.wrapping_add(data.len() as u64);
    }

    /// Next complete message, Ok(None) when more bytes are needed. Protocol control
    /// messages Set Chunk Size (type 1) and Abort (type 2) are applied by the decoder
    /// itself AND returned so the caller can log them. They are applied whatever their chunk
    /// stream and message stream id: the peer will use the new chunk size either way, and
    /// ignoring it would desynchronise the whole connection.
    pub fn next_message(&mut self) -> Result<Option<RtmpMessage>, ChunkError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.decode();
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    /// Total bytes pushed so far (for acknowledgements).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Bytes buffered but not yet consumed into messages (input buffer + partial payloads), for
    /// memory bounds.
    pub fn buffered_bytes(&self) -> usize {
        self.input.len().saturating_add(self.partial_bytes)
    }

    fn decode(&mut self) -> Result<Option<RtmpMessage>, ChunkError> {
        loop {
            let parsed = match self.parse_chunk() {
                Ok(parsed) => parsed,
                Err(Stop::NeedMore) => return Ok(None),
                Err(Stop::Fail(err)) => return Err(err),
            };
            // Every chunk consumes at least its basic header, so this loop always ends.
            if let Some(msg) = self.consume_chunk(parsed) {
                self.apply_control(&msg)?;
                return Ok(Some(msg));
            }
        }
    }

    fn parse_chunk(&self) -> Result<ParsedChunk, Stop> {
        let mut r = Reader {
            buf: &self.input,
            pos: 0,
        };
        let first = r.u8()?;
        let fmt = first >> 6;
        let csid = match first & 0x3f {
            0 => 64 + u32::from(r.u8()?),
            1 => {
                let [lo, hi] = r.take::<2>()?;
                64 + u32::from(u16::from_le_bytes([lo, hi]))
            }
            n => u32::from(n),
        };

        let prev = self.streams.get(&csid);
        if prev.is_none() {
            if fmt >= 2 {
                return Err(ChunkError::NoPreviousHeader { csid, fmt }.into());
            }
            if self.streams.len() >= self.limits.max_chunk_streams {
                return Err(ChunkError::TooManyChunkStreams {
                    max: self.limits.max_chunk_streams,
                }
                .into());
            }
        }

        let in_progress = prev.and_then(|p| p.partial.as_ref()).map(BytesMut::len);
        // Without a previous header (only possible for fmt 0/1 here) the fields start at zero,
        // so a first fmt-1 chunk gets stream id 0 and its delta as absolute timestamp, the way
        // SRS tolerates OBS and other encoders that start chunk streams with fmt 1.
        let (mut timestamp, mut delta, mut length, mut type_id, mut stream_id, mut extended) =
            match prev {
                Some(p) => (
                    p.timestamp,
                    p.delta,
                    p.length,
                    p.type_id,
                    p.stream_id,
                    p.extended,
                ),
                None => (0, 0, 0, 0, 0, None),
            };

        let continuation = fmt == 3 && in_progress.is_some();
        if fmt <= 2 {
            let field = r.be24()?;
            if fmt <= 1 {
                length = r.be24()?;
                type_id = r.u8()?;
                if length > self.limits.max_message_size {
                    return Err(ChunkError::MessageTooLarge {
                        length,
                        max: self.limits.max_message_size,
                    }
                    .into());
                }
            }
            if fmt == 0 {
                stream_id = r.le32()?;
            }
            let value = if field == EXTENDED_TIMESTAMP_MARKER {
                let ext = r.be32()?;
                extended = Some(ext);
                ext
            } else {
                extended = None;
                field
            };
            if fmt == 0 {
                timestamp = value;
                delta = 0;
            } else {
                delta = value;
                timestamp = timestamp.wrapping_add(delta);
            }
        } else {
            // Flash/FMLE repeat the extended timestamp on fmt-3 chunks, librtmp and ffmpeg may
            // not: like SRS, take the next 4 bytes as the repetition only when they match it.
            // This waits for 4 bytes even when the chunk carries fewer, which only delays a
            // message until the peer sends more.
            if let Some(ext) = extended {
                if u32::from_be_bytes(r.peek::<4>()?) == ext {
                    r.pos += 4;
                }
            }
            if !continuation {
                timestamp = timestamp.wrapping_add(delta);
            }
        }

        let received = in_progress.filter(|_| continuation).unwrap_or(0);
        let remaining = (length as usize).saturating_sub(received);
        let data_len = remaining.min(self.chunk_size as usize);
        let header_len = r.pos;
        if self.input.len().saturating_sub(header_len) < data_len {
            return Err(Stop::NeedMore);
        }
        Ok(ParsedChunk {
            csid,
            header_len,
            data_len,
            continuation,
            timestamp,
            delta,
            length,
            type_id,
            stream_id,
            extended,
        })
    }

    /// Applies a parsed chunk; returns the message it completes, if any.
    fn consume_chunk(&mut self, c: ParsedChunk) -> Option<RtmpMessage> {
        let stream = self.streams.entry(c.csid).or_default();
        if !c.continuation {
            if let Some(dropped) = stream.partial.take() {
                // A new header mid-message means the peer gave up on that message; keeping the
                // stale bytes would corrupt the next one.
                self.partial_bytes = self.partial_bytes.saturating_sub(dropped.len());
                tracing::debug!(
                    csid = c.csid,
                    dropped = dropped.len(),
                    expected = stream.length,
                    "new message header before the previous message was complete"
                );
            }
        }
        stream.timestamp = c.timestamp;
        stream.delta = c.delta;
        stream.length = c.length;
        stream.type_id = c.type_id;
        stream.stream_id = c.stream_id;
        stream.extended = c.extended;

        self.input.advance(c.header_len);
        let data = self.input.split_to(c.data_len);
        let length = c.length as usize;
        let payload = if !c.continuation && c.data_len == length {
            // Single-chunk message: hand out the input bytes themselves, no copy.
            data.freeze()
        } else {
            let partial = stream.partial.get_or_insert_with(|| {
                BytesMut::with_capacity(length.min(EAGER_ALLOC_LIMIT).max(c.data_len))
            });
            reserve_capped(partial, c.data_len, length);
            partial.extend_from_slice(&data);
            self.partial_bytes = self.partial_bytes.saturating_add(c.data_len);
            if partial.len() < length {
                return None;
            }
            let done = stream.partial.take().unwrap_or_default();
            self.partial_bytes = self.partial_bytes.saturating_sub(done.len());
            done.freeze()
        };
        Some(RtmpMessage {
            csid: c.csid,
            type_id: c.type_id,
            stream_id: c.stream_id,
            timestamp: c.timestamp,
            payload,
        })
    }

    fn apply_control(&mut self, msg: &RtmpMessage) -> Result<(), ChunkError> {
        if msg.type_id != TYPE_SET_CHUNK_SIZE && msg.type_id != TYPE_ABORT {
            return Ok(());
        }
        let value = msg
            .payload
            .get(..4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map(u32::from_be_bytes)
            .ok_or(ChunkError::ControlMessageTooShort {
                type_id: msg.type_id,
                length: msg.payload.len(),
            })?;
        if msg.type_id == TYPE_SET_CHUNK_SIZE {
            if value == 0 || value & 0x8000_0000 != 0 {
                return Err(ChunkError::InvalidChunkSize(value));
            }
            if value > self.limits.max_chunk_size {
                return Err(ChunkError::ChunkSizeTooLarge {
                    requested: value,
                    max: self.limits.max_chunk_size,
                });
            }
            self.chunk_size = value;
        } else if let Some(dropped) = self
            .streams
            .get_mut(&value)
            .and_then(|stream| stream.partial.take())
        {
            self.partial_bytes = self.partial_bytes.saturating_sub(dropped.len());
        }
        Ok(())
    }
}

/// Makes room for `extra` more bytes, growing geometrically but never beyond `total`, so the
/// final buffer is at most the message length and no early header can reserve more than what
/// has actually arrived (times two).
fn reserve_capped(buf: &mut BytesMut, extra: usize, total: usize) {
    let needed = buf.len().saturating_add(extra);
    if needed <= buf.capacity() {
        return;
    }
    let new_cap = buf.len().saturating_mul(2).min(total).max(needed);
    let mut grown = BytesMut::with_capacity(new_cap);
    grown.extend_from_slice(buf);
    *buf = grown;
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    let fmt = fmt << 6;
    match csid {
        // The ranges make each narrowing cast lossless.
        0..=63 => out.put_u8(fmt | csid as u8),
        64..=319 => out.put_slice(&[fmt, (csid - 64) as u8]),
        _ => {
            let [lo, hi] = ((csid - 64) as u16).to_le_bytes();
            out.put_slice(&[fmt | 1, lo, hi]);
        }
    }
}

fn basic_header_len(csid: u32) -> usize {
    match csid {
        0..=63 => 1,
        64..=319 => 2,
        _ => 3,
    }
}

/// Appends `payload` as one RTMP message: a type-0 (full) chunk header for the first chunk, type-3
/// headers for the continuations, every `chunk_size` bytes. Timestamps >= 0xFFFFFF use the extended
/// timestamp field, repeated on every type-3 continuation chunk (as Flash/FMLE/nginx-rtmp do).
/// Supports 1-, 2- and 3-byte basic headers. Because it never compresses against earlier headers,
/// its output can be built once and shared by every viewer with the same chunk size and stream id.
///
/// Caller bugs that the format cannot express are not passed on to the wire in release builds
/// (debug builds assert): a `csid` outside 2..=65599 is clamped into it, a payload longer than
/// the 24-bit length field is truncated to 0xFFFFFF bytes, and a `chunk_size` of 0 is taken as 1.
pub fn encode_message(
    out: &mut BytesMut,
    csid: u32,
    type_id: u8,
    stream_id: u32,
    timestamp: u32,
    payload: &[u8],
    chunk_size: u32,
) {
    debug_assert!(
        (MIN_CSID..=MAX_CSID).contains(&csid),
        "chunk stream id {csid} cannot be encoded"
    );
    debug_assert!(
        payload.len() <= MAX_ENCODABLE_LENGTH,
        "payload of {} bytes exceeds the 24-bit length field",
        payload.len()
    );
    let csid = csid.clamp(MIN_CSID, MAX_CSID);
    let payload = payload.get(..MAX_ENCODABLE_LENGTH).unwrap_or(payload);
    let chunk_size = usize::try_from(chunk_size.max(1)).unwrap_or(usize::MAX);
    let extended = timestamp >= EXTENDED_TIMESTAMP_MARKER;
    let ext_len = if extended { 4 } else { 0 };
    let basic_len = basic_header_len(csid);
    let continuations = payload.len().div_ceil(chunk_size).saturating_sub(1);
    out.reserve(basic_len + 11 + ext_len + payload.len() + continuations * (basic_len + ext_len));

    put_basic_header(out, 0, csid);
    let field = timestamp.min(EXTENDED_TIMESTAMP_MARKER);
    out.put_slice(&field.to_be_bytes()[1..]);
    out.put_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.put_u8(type_id);
    out.put_u32_le(stream_id);
    if extended {
        out.put_u32(timestamp);
    }
    for (i, chunk) in payload.chunks(chunk_size).enumerate() {
        if i > 0 {
            put_basic_header(out, 3, csid);
            if extended {
                out.put_u32(timestamp);
            }
        }
        out.put_slice(chunk);
    }
}

/// `payload` as one message in the header form of `template`, the first chunk of a message
/// another encoder wrote (type 0 or type 1 header, one-byte chunk stream id, no extended
/// timestamp): same chunk stream, timestamp field, type and stream id, its own length.
/// Lets one message of rml_rtmp's be replaced without upsetting the client's view of that
/// chunk stream's previous header. `None` for any other form.
pub fn reencode_like(template: &[u8], payload: &[u8], chunk_size: u32) -> Option<Bytes> {
    let first = *template.first()?;
    let (fmt, csid) = (first >> 6, first & 0x3f);
    let header_len = match fmt {
        0 => 11,
        1 => 7,
        _ => return None,
    };
    if csid < 2 || payload.len() > MAX_ENCODABLE_LENGTH {
        return None;
    }
    let header = template.get(1..1 + header_len)?;
    if header[..3] == [0xff, 0xff, 0xff] {
        return None;
    }
    let chunk_size = usize::try_from(chunk_size.max(1)).unwrap_or(usize::MAX);
    let mut out =
        BytesMut::with_capacity(1 + header_len + payload.len() + payload.len() / chunk_size + 1);
    out.put_u8(first);
    out.put_slice(&header[..3]);
    out.put_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.put_slice(&header[6..]);
    for (i, chunk) in payload.chunks(chunk_size).enumerate() {
        if i > 0 {
            out.put_u8(0xc0 | csid);
        }
        out.put_slice(chunk);
    }
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ChunkLimits = ChunkLimits {
        max_chunk_size: 65_536,
        max_message_size: 4 * 1024 * 1024,
        max_chunk_streams: 64,
    };

    fn decoder() -> ChunkDecoder {
        ChunkDecoder::new(LIMITS)
    }

    /// Feeds `input` at once and collects every message until more bytes are needed.
    fn decode_all(dec: &mut ChunkDecoder, input: &[u8]) -> Vec<RtmpMessage> {
        dec.push(input);
        drain(dec)
    }

    fn drain(dec: &mut ChunkDecoder) -> Vec<RtmpMessage> {
        let mut out = Vec::new();
        while let Some(msg) = dec.next_message().expect("valid input") {
            out.push(msg);
        }
        out
    }

    fn msg(csid: u32, type_id: u8, stream_id: u32, timestamp: u32, payload: &[u8]) -> RtmpMessage {
        RtmpMessage {
            csid,
            type_id,
            stream_id,
            timestamp,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// Set Chunk Size on csid 2, as a peer sends it while the chunk size is still 128.
    fn set_chunk_size(size: u32) -> Vec<u8> {
        let mut v = vec![0x02, 0, 0, 0, 0, 0, 4, 0x01, 0, 0, 0, 0];
        v.extend_from_slice(&size.to_be_bytes());
        v
    }

    #[test]
    fn single_chunk_fmt0() {
        let input = [
            0x03, 0x00, 0x00, 0x64, 0x00, 0x00, 0x05, 0x14, 0x01, 0x00, 0x00, 0x00, b'h', b'e',
            b'l', b'l', b'o',
        ];
        let mut dec = decoder();
        let msgs = decode_all(&mut dec, &input);
        assert_eq!(msgs, vec![msg(3, 0x14, 1, 100, b"hello")]);
        assert_eq!(dec.bytes_received(), input.len() as u64);
        assert_eq!(dec.buffered_bytes(), 0);
    }

    #[test]
    fn zero_length_message() {
        let input = [0x03, 0, 0, 7, 0, 0, 0, 0x14, 0, 0, 0, 0, 0xC3];
        let msgs = decode_all(&mut decoder(), &input);
        assert_eq!(msgs, vec![msg(3, 0x14, 0, 7, b""), msg(3, 0x14, 0, 7, b"")]);
    }

    #[test]
    fn multi_chunk_at_default_size() {
        let body = pattern(200, 1);
        let mut input = vec![0x04, 0, 0, 0, 0, 0, 200, 0x09, 1, 0, 0, 0];
        input.extend_from_slice(&body[..128]);
        input.push(0xC4);
        input.extend_from_slice(&body[128..]);

        let mut dec = decoder();
        // Everything but the last byte: nothing complete yet, first chunk held as partial.
        dec.push(&input[..input.len() - 1]);
        assert_eq!(dec.next_message(), Ok(None));
        assert_eq!(dec.buffered_bytes(), 128 + 1 + 71);
        dec.push(&input[input.len() - 1..]);
        assert_eq!(drain(&mut dec), vec![msg(4, 9, 1, 0, &body)]);
        assert_eq!(dec.buffered_bytes(), 0);
    }

    #[test]
    fn multi_chunk_after_set_chunk_size() {
        let body = pattern(5000, 2);
        let single = pattern(4096, 3);
        let mut input = set_chunk_size(4096);
        // 5000 bytes: one 4096-byte chunk and a continuation.
        input.extend_from_slice(&[0x04, 0, 0, 10, 0, 0x13, 0x88, 0x09, 1, 0, 0, 0]);
        input.extend_from_slice(&body[..4096]);
        input.push(0xC4);
        input.extend_from_slice(&body[4096..]);
        // 4096 bytes now fit in one chunk.
        input.extend_from_slice(&[0x44, 0, 0, 40, 0, 0x10, 0x00, 0x09]);
        input.extend_from_slice(&single);
        let mut dec = decoder();
        assert_eq!(
            decode_all(&mut dec, &input),
            vec![
                msg(2, 1, 0, 0, &4096u32.to_be_bytes()),
                msg(4, 9, 1, 10, &body),
                msg(4, 9, 1, 50, &single),
            ]
        );
        assert_eq!(dec.buffered_bytes(), 0);
    }

    #[test]
    fn fmt1_fmt2_fmt3_deltas() {
        let input = [
            // fmt 0: ts 1000, len 3, audio, stream 1
            0x04, 0x00, 0x03, 0xE8, 0, 0, 3, 0x08, 1, 0, 0, 0, b'a', b'b', b'c',
            // fmt 1: delta 20, len 2, video
            0x44, 0, 0, 20, 0, 0, 2, 0x09, b'x', b'y', // fmt 2: delta 33
            0x84, 0, 0, 33, b'p', b'q', // fmt 3 twice: delta 33 again each time
            0xC4, b'r', b's', 0xC4, b't', b'u',
            // fmt 0 at 5000 then fmt 3: delta after fmt 0 is 0
            0x04, 0x00, 0x13, 0x88, 0, 0, 1, 0x08, 1, 0, 0, 0, b'z', 0xC4, b'w',
        ];
        let msgs = decode_all(&mut decoder(), &input);
        assert_eq!(
            msgs,
            vec![
                msg(4, 8, 1, 1000, b"abc"),
                msg(4, 9, 1, 1020, b"xy"),
                msg(4, 9, 1, 1053, b"pq"),
                msg(4, 9, 1, 1086, b"rs"),
                msg(4, 9, 1, 1119, b"tu"),
                msg(4, 8, 1, 5000, b"z"),
                msg(4, 8, 1, 5000, b"w"),
            ]
        );
    }

    #[test]
    fn two_and_three_byte_basic_headers() {
        let body = pattern(130, 4);
        let mut input = vec![
            // csid 64, 2-byte form
            0x00, 0x00, 0, 0, 1, 0, 0, 1, 0x08, 0, 0, 0, 0, b'a',
            // csid 319, 2-byte form
            0x00, 0xFF, 0, 0, 2, 0, 0, 1, 0x08, 0, 0, 0, 0, b'b',
            // csid 320, 3-byte form
            0x01, 0x00, 0x01, 0, 0, 3, 0, 0, 1, 0x08, 0, 0, 0, 0, b'c',
            // csid 65599, 3-byte form
            0x01, 0xFF, 0xFF, 0, 0, 4, 0, 0, 1, 0x08, 0, 0, 0, 0, b'd',
            // csid 100 in the 3-byte form is the same chunk stream as in the 2-byte form
            0x01, 36, 0x00, 0, 0, 5, 0, 0, 1, 0x08, 0, 0, 0, 0, b'e', 0xC0, 36, b'f',
            // multi-chunk on csid 64 with a 2-byte fmt-3 continuation
            0x00, 0x00, 0, 0, 6, 0, 0, 130, 0x09, 0, 0, 0, 0,
        ];
        input.extend_from_slice(&body[..128]);
        input.extend_from_slice(&[0xC0, 0x00]);
        input.extend_from_slice(&body[128..]);
        let msgs = decode_all(&mut decoder(), &input);
        assert_eq!(
            msgs,
            vec![
                msg(64, 8, 0, 1, b"a"),
                msg(319, 8, 0, 2, b"b"),
                msg(320, 8, 0, 3, b"c"),
                msg(65_599, 8, 0, 4, b"d"),
                msg(100, 8, 0, 5, b"e"),
                msg(100, 8, 0, 5, b"f"),
                msg(64, 9, 0, 6, &body),
            ]
        );
    }

    fn extended_stream(repeat: bool) -> Vec<u8> {
        let body = pattern(200, 5);
        let mut input = vec![
            0x04, 0xFF, 0xFF, 0xFF, 0, 0, 200, 0x09, 1, 0, 0, 0, 0x01, 0x00, 0x00, 0x00,
        ];
        input.extend_from_slice(&body[..128]);
        input.push(0xC4);
        if repeat {
            input.extend_from_slice(&[0x01, 0x00, 0x00, 0x00]);
        }
        input.extend_from_slice(&body[128..]);
        // fmt 1 with an extended delta, 2 chunks, then a fmt-3 new message reusing the delta.
        input.extend_from_slice(&[0x44, 0xFF, 0xFF, 0xFF, 0, 0, 200, 0x09, 0x01, 0, 0, 0]);
        input.extend_from_slice(&body[..128]);
        input.push(0xC4);
        if repeat {
            input.extend_from_slice(&[0x01, 0x00, 0x00, 0x00]);
        }
        input.extend_from_slice(&body[128..]);
        input.push(0xC4);
        if repeat {
            input.extend_from_slice(&[0x01, 0x00, 0x00, 0x00]);
        }
        input.extend_from_slice(&body[..128]);
        input.push(0xC4);
        if repeat {
            input.extend_from_slice(&[0x01, 0x00, 0x00, 0x00]);
        }
        input.extend_from_slice(&body[128..]);
        input
    }

    #[test]
    fn extended_timestamp_with_and_without_repetition() {
        let body = pattern(200, 5);
        let expected = vec![
            msg(4, 9, 1, 0x0100_0000, &body),
            msg(4, 9, 1, 0x0200_0000, &body),
            msg(4, 9, 1, 0x0300_0000, &body),
        ];
        for repeat in [true, false] {
            let msgs = decode_all(&mut decoder(), &extended_stream(repeat));
            assert_eq!(msgs, expected, "repeat = {repeat}");
        }
    }

    #[test]
    fn interleaved_audio_inside_video() {
        let video = pattern(300, 6);
        let mut input = vec![0x06, 0, 0, 40, 0, 0x01, 0x2C, 0x09, 1, 0, 0, 0];
        input.extend_from_slice(&video[..128]);
        // audio on csid 4 between the video chunks
        input.extend_from_slice(&[0x04, 0, 0, 41, 0, 0, 2, 0x08, 1, 0, 0, 0, b'A', b'1']);
        input.push(0xC6);
        input.extend_from_slice(&video[128..256]);
        input.extend_from_slice(&[0x84, 0, 0, 20, b'A', b'2']);
        input.push(0xC6);
        input.extend_from_slice(&video[256..]);
        let msgs = decode_all(&mut decoder(), &input);
        assert_eq!(
            msgs,
            vec![
                msg(4, 8, 1, 41, b"A1"),
                msg(4, 8, 1, 61, b"A2"),
                msg(6, 9, 1, 40, &video),
            ]
        );
    }

    #[test]
    fn first_chunk_fmt1() {
        let input = [0x45, 0, 0, 50, 0, 0, 1, 0x08, 0xAA, 0xC5, 0xBB];
        let msgs = decode_all(&mut decoder(), &input);
        assert_eq!(
            msgs,
            vec![msg(5, 8, 0, 50, &[0xAA]), msg(5, 8, 0, 100, &[0xBB])]
        );
    }

    #[test]
    fn fmt2_or_fmt3_without_previous_header() {
        let mut dec = decoder();
        dec.push(&[0x85, 0, 0, 1, 0xAA]);
        let err = ChunkError::NoPreviousHeader { csid: 5, fmt: 2 };
        assert_eq!(dec.next_message(), Err(err.clone()));
        // Errors are sticky.
        assert_eq!(dec.next_message(), Err(err));

        let mut dec = decoder();
        dec.push(&[0xC7]);
        assert_eq!(
            dec.next_message(),
            Err(ChunkError::NoPreviousHeader { csid: 7, fmt: 3 })
        );
    }

    #[test]
    fn message_too_large_before_buffering() {
        let mut dec = ChunkDecoder::new(ChunkLimits {
            max_message_size: 1000,
            ..LIMITS
        });
        // Header only, no payload: the error must not wait for the data.
        dec.push(&[0x04, 0, 0, 0, 0, 0x03, 0xE9, 0x09, 1, 0, 0, 0]);
        assert_eq!(
            dec.next_message(),
            Err(ChunkError::MessageTooLarge {
                length: 1001,
                max: 1000
            })
        );
        // Exactly the limit is fine.
        let mut dec = ChunkDecoder::new(ChunkLimits {
            max_message_size: 1000,
            ..LIMITS
        });
        dec.push(&[0x04, 0, 0, 0, 0, 0x03, 0xE8, 0x09, 1, 0, 0, 0]);
        assert_eq!(dec.next_message(), Ok(None));
        // And a fmt 1 header is checked too.
        dec.push(&[0x45, 0, 0, 0, 0x01, 0, 0, 0x09]);
        assert_eq!(dec.next_message(), Ok(None));
    }

    #[test]
    fn fmt1_too_large() {
        let mut dec = ChunkDecoder::new(ChunkLimits {
            max_message_size: 1000,
            ..LIMITS
        });
        dec.push(&[0x45, 0, 0, 0, 0x01, 0, 0, 0x09]);
        assert_eq!(
            dec.next_message(),
            Err(ChunkError::MessageTooLarge {
                length: 65_536,
                max: 1000
            })
        );
    }

    #[test]
    fn chunk_size_limits() {
        let cases = [
            (0, ChunkError::InvalidChunkSize(0)),
            (0x8000_0000, ChunkError::InvalidChunkSize(0x8000_0000)),
            (
                65_537,
                ChunkError::ChunkSizeTooLarge {
                    requested: 65_537,
                    max: 65_536,
                },
            ),
        ];
        for (size, err) in cases {
            let mut dec = decoder();
            dec.push(&set_chunk_size(size));
            assert_eq!(dec.next_message(), Err(err));
        }
        let mut dec = decoder();
        dec.push(&set_chunk_size(65_536));
        assert!(dec.next_message().expect("max allowed").is_some());
    }

    #[test]
    fn control_message_too_short() {
        let mut dec = decoder();
        dec.push(&[0x02, 0, 0, 0, 0, 0, 2, 0x01, 0, 0, 0, 0, 0x10, 0x00]);
        assert_eq!(
            dec.next_message(),
            Err(ChunkError::ControlMessageTooShort {
                type_id: 1,
                length: 2
            })
        );
    }

    #[test]
    fn too_many_chunk_streams() {
        let mut dec = ChunkDecoder::new(ChunkLimits {
            max_chunk_streams: 2,
            ..LIMITS
        });
        let one = |csid: u8| vec![csid, 0, 0, 0, 0, 0, 1, 0x08, 0, 0, 0, 0, 0xAB];
        let mut input = one(3);
        input.extend(one(4));
        input.extend(one(3)); // known csids stay usable
        dec.push(&input);
        assert_eq!(drain(&mut dec).len(), 3);
        dec.push(&one(5));
        assert_eq!(
            dec.next_message(),
            Err(ChunkError::TooManyChunkStreams { max: 2 })
        );
    }

    #[test]
    fn abort_discards_partial_message() {
        let body = pattern(200, 7);
        let mut input = vec![0x06, 0, 0, 0, 0, 0, 200, 0x09, 1, 0, 0, 0];
        input.extend_from_slice(&body[..128]);
        let mut dec = decoder();
        assert!(decode_all(&mut dec, &input).is_empty());
        assert_eq!(dec.buffered_bytes(), 128);
        // Abort csid 6.
        let abort = [0x02, 0, 0, 0, 0, 0, 4, 0x02, 0, 0, 0, 0, 0, 0, 0, 6];
        assert_eq!(
            decode_all(&mut dec, &abort),
            vec![msg(2, 2, 0, 0, &[0, 0, 0, 6])]
        );
        assert_eq!(dec.buffered_bytes(), 0);
        // A fmt-3 chunk now starts a new message with the old header.
        let mut next = vec![0xC6];
        next.extend_from_slice(&body[..128]);
        next.push(0xC6);
        next.extend_from_slice(&body[128..]);
        assert_eq!(decode_all(&mut dec, &next), vec![msg(6, 9, 1, 0, &body)]);
    }

    #[test]
    fn new_header_mid_message_drops_partial() {
        let body = pattern(200, 8);
        let mut input = vec![0x06, 0, 0, 0, 0, 0, 200, 0x09, 1, 0, 0, 0];
        input.extend_from_slice(&body[..128]);
        input.extend_from_slice(&[0x46, 0, 0, 5, 0, 0, 1, 0x08, 0x55]);
        let mut dec = decoder();
        assert_eq!(decode_all(&mut dec, &input), vec![msg(6, 8, 1, 5, &[0x55])]);
        assert_eq!(dec.buffered_bytes(), 0);
    }

    #[test]
    fn timestamp_wraps() {
        let input = [
            0x04, 0xFF, 0xFF, 0xFF, 0, 0, 1, 0x08, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xF0, b'x', 0x84,
            0, 0, 0x20, b'y', 0xC4, b'z',
        ];
        let msgs = decode_all(&mut decoder(), &input);
        assert_eq!(
            msgs,
            vec![
                msg(4, 8, 1, 0xFFFF_FFF0, b"x"),
                msg(4, 8, 1, 0x10, b"y"),
                msg(4, 8, 1, 0x30, b"z"),
            ]
        );
    }

    /// A stream touching most decoder paths, for byte-at-a-time comparison.
    fn mixed_stream() -> Vec<u8> {
        let video = pattern(300, 9);
        let mut input = set_chunk_size(100);
        input.extend_from_slice(&[0x06, 0, 0, 40, 0, 0x01, 0x2C, 0x09, 1, 0, 0, 0]);
        input.extend_from_slice(&video[..100]);
        input.extend_from_slice(&[0x04, 0, 0, 41, 0, 0, 2, 0x08, 1, 0, 0, 0, b'A', b'1']);
        input.push(0xC6);
        input.extend_from_slice(&video[100..200]);
        input.extend_from_slice(&[0x84, 0, 0, 20, b'A', b'2', 0xC4, b'A', b'3']);
        input.push(0xC6);
        input.extend_from_slice(&video[200..]);
        input.extend_from_slice(&[0x01, 0x00, 0x01, 0, 0, 9, 0, 0, 0, 0x12, 0, 0, 0, 0]);
        input.extend_from_slice(&[0x45, 0, 0, 7, 0, 0, 1, 0x08, 0x77]);
        // extended_stream() is laid out for 128-byte chunks.
        input.extend(set_chunk_size(128));
        input.extend(extended_stream(true));
        input.extend(extended_stream(false));
        input
    }

    #[test]
    fn byte_at_a_time_matches_all_at_once() {
        let input = mixed_stream();
        let all = decode_all(&mut decoder(), &input);
        assert_eq!(all.len(), 14);

        let mut dec = decoder();
        let mut one_by_one = Vec::new();
        for byte in &input {
            dec.push(std::slice::from_ref(byte));
            one_by_one.extend(drain(&mut dec));
        }
        assert_eq!(one_by_one, all);
        assert_eq!(dec.bytes_received(), input.len() as u64);
        assert_eq!(dec.buffered_bytes(), 0);
    }

    #[test]
    fn encoder_exact_bytes() {
        let mut out = BytesMut::new();
        encode_message(&mut out, 3, 0x14, 1, 100, b"hello", 128);
        assert_eq!(
            &out[..],
            &[
                0x03, 0x00, 0x00, 0x64, 0x00, 0x00, 0x05, 0x14, 0x01, 0x00, 0x00, 0x00, b'h', b'e',
                b'l', b'l', b'o'
            ]
        );

        let mut out = BytesMut::new();
        encode_message(&mut out, 320, 9, 1, 0x0100_0000, b"abcde", 2);
        assert_eq!(
            &out[..],
            &[
                0x01, 0x00, 0x01, 0xFF, 0xFF, 0xFF, 0, 0, 5, 9, 1, 0, 0, 0, 1, 0, 0, 0, b'a', b'b',
                0xC1, 0x00, 0x01, 1, 0, 0, 0, b'c', b'd', 0xC1, 0x00, 0x01, 1, 0, 0, 0, b'e'
            ]
        );
    }

    #[test]
    fn encode_decode_roundtrip() {
        for chunk_size in [128u32, 4096] {
            let cs = chunk_size as usize;
            for len in [0, 1, cs, cs + 1, 300_000] {
                let payload = pattern(len, len as u8);
                for timestamp in [0, 0xFF_FFFE, 0xFF_FFFF, 0xFFFF_FFFF] {
                    for csid in [3, 64, 320, 65_599] {
                        let mut wire = BytesMut::new();
                        if chunk_size != INITIAL_CHUNK_SIZE {
                            encode_message(&mut wire, 2, 1, 0, 0, &chunk_size.to_be_bytes(), 128);
                        }
                        encode_message(&mut wire, csid, 9, 1, timestamp, &payload, chunk_size);
                        // A second message on the same chunk stream must not be disturbed
                        // by the first one's extended timestamp.
                        encode_message(&mut wire, csid, 8, 1, 5, b"next", chunk_size);
                        let mut dec = decoder();
                        let mut msgs = decode_all(&mut dec, &wire);
                        if chunk_size != INITIAL_CHUNK_SIZE {
                            assert_eq!(msgs.remove(0).type_id, 1);
                        }
                        let what =
                            format!("chunk {chunk_size} len {len} ts {timestamp} csid {csid}");
                        assert_eq!(msgs.len(), 2, "{what}");
                        assert_eq!(msgs[0], msg(csid, 9, 1, timestamp, &payload), "{what}");
                        assert_eq!(msgs[1], msg(csid, 8, 1, 5, b"next"), "{what}");
                        assert_eq!(dec.buffered_bytes(), 0, "{what}");
                    }
                }
            }
        }
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let valid = mixed_stream();
        for _ in 0..2000 {
            let len = rng.below(513);
            let input: Vec<u8> = if rng.below(2) == 0 {
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                // A valid stream with a few corrupted bytes reaches deeper decoder states.
                let start = rng.below(valid.len() as u64);
                let mut v: Vec<u8> = valid.iter().copied().skip(start).take(len).collect();
                for _ in 0..rng.below(4) {
                    if !v.is_empty() {
                        let i = rng.below(v.len() as u64);
                        v[i] = rng.next() as u8;
                    }
                }
                v
            };
            let mut dec = ChunkDecoder::new(ChunkLimits {
                max_chunk_size: 1 + rng.below(70_000) as u32,
                max_message_size: rng.below(5000) as u32,
                max_chunk_streams: 1 + rng.below(8),
            });
            let mut rest = &input[..];
            while !rest.is_empty() {
                let (piece, tail) = rest.split_at(1 + rng.below(rest.len() as u64));
                rest = tail;
                dec.push(piece);
                for _ in 0..1000 {
                    match dec.next_message() {
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
                assert!(dec.buffered_bytes() as u64 <= dec.bytes_received());
            }
        }
    }

    #[test]
    fn reencode_like_keeps_the_template_header_and_sets_the_length() {
        // A type 1 header on chunk stream 6 (delta 5, length 3, type 20), then a type 0 one.
        let t1 = [0x46, 0, 0, 5, 0, 0, 3, 20, 1, 2, 3];
        let b = reencode_like(&t1, &[9; 10], 4).unwrap();
        assert_eq!(
            &b[..],
            &[0x46, 0, 0, 5, 0, 0, 10, 20, 9, 9, 9, 9, 0xc6, 9, 9, 9, 9, 0xc6, 9, 9]
        );
        let mut t0 = BytesMut::new();
        encode_message(&mut t0, 3, 20, 0, 7, b"abc", 128);
        let b = reencode_like(&t0, b"hello", 128).unwrap();
        let mut want = BytesMut::new();
        encode_message(&mut want, 3, 20, 0, 7, b"hello", 128);
        assert_eq!(b, want.freeze());
        // Forms it does not rewrite.
        assert!(
            reencode_like(&[0x86, 0, 0, 5], b"x", 128).is_none(),
            "type 2"
        );
        assert!(
            reencode_like(&[0x00, 1, 2], b"x", 128).is_none(),
            "two-byte csid"
        );
        assert!(reencode_like(&[0x46, 0xff, 0xff, 0xff, 0, 0, 1, 20], b"x", 128).is_none());
        assert!(
            reencode_like(&[0x46, 0, 0], b"x", 128).is_none(),
            "truncated"
        );
    }
}
