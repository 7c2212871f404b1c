//! FLV container framing: the file header, tag headers, and a push-style demuxer.
//! Writers build a whole tag once so it can be shared by every viewer; the demuxer
//! takes bytes as they arrive and never trusts a length it has not bounded.

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub const TAG_AUDIO: u8 = 8;
pub const TAG_VIDEO: u8 = 9;
pub const TAG_SCRIPT: u8 = 18;

/// FLV file header plus the first (zero) PreviousTagSize.
pub fn header(has_audio: bool, has_video: bool) -> [u8; 13] {
    let flags = (if has_audio { 4 } else { 0 }) | (if has_video { 1 } else { 0 });
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// The 11-byte tag header. FLV timestamps are 24 bits plus an 8-bit extension (the high byte).
pub fn tag_header(tag_type: u8, timestamp: u32, body_len: usize) -> [u8; 11] {
    let len = body_len as u32;
    [
        tag_type,
        (len >> 16) as u8,
        (len >> 8) as u8,
        len as u8,
        (timestamp >> 16) as u8,
        (timestamp >> 8) as u8,
        timestamp as u8,
        (timestamp >> 24) as u8,
        0,
        0,
        0,
    ]
}

/// A whole tag: header, body, and the PreviousTagSize that follows it.
pub fn encode_tag(tag_type: u8, timestamp: u32, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(11 + body.len() + 4);
    out.put_slice(&tag_header(tag_type, timestamp, body.len()));
    out.put_slice(body);
    out.put_u32(11 + body.len() as u32);
    out.freeze()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    #[error("not an FLV stream (signature {0:02x?})")]
    BadSignature([u8; 3]),
    #[error("FLV tag of {len} bytes exceeds the limit of {max}")]
    TagTooLarge { len: usize, max: usize },
    #[error("FLV header size {0} is smaller than 9")]
    BadHeaderSize(u32),
}

/// One parsed FLV tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    pub tag_type: u8,
    pub timestamp: u32,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlvEvent {
    Header { has_audio: bool, has_video: bool },
    Tag(FlvTag),
}

/// Push-style FLV demuxer: feed bytes with `push`, take events with `next_event`.
pub struct FlvDemuxer {
    buf: BytesMut,
    header_done: bool,
    max_tag_size: usize,
}

impl FlvDemuxer {
    pub fn new(max_tag_size: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            header_done: false,
            max_tag_size,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn next_event(&mut self) -> Result<Option<FlvEvent>, FlvError> {
        if !self.header_done {
            if self.buf.len() < 9 {
                return Ok(None);
            }
            if &self.buf[..3] != b"FLV" {
                return Err(FlvError::BadSignature([
                    self.buf[0],
                    self.buf[1],
                    self.buf[2],
                ]));
            }
            let size = u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]);
            if size < 9 {
                return Err(FlvError::BadHeaderSize(size));
            }
            // Header plus PreviousTagSize0.
            let need = size as usize + 4;
            if self.buf.len() < need {
                return Ok(None);
            }
            let flags = self.buf[4];
            self.buf.advance(need);
            self.header_done = true;
            return Ok(Some(FlvEvent::Header {
                has_audio: flags & 4 != 0,
                has_video: flags & 1 != 0,
            }));
        }
        if self.buf.len() < 11 {
            return Ok(None);
        }
        let len =
            ((self.buf[1] as usize) << 16) | ((self.buf[2] as usize) << 8) | self.buf[3] as usize;
        if len > self.max_tag_size {
            return Err(FlvError::TagTooLarge {
                len,
                max: self.max_tag_size,
            });
        }
        if self.buf.len() < 11 + len + 4 {
            return Ok(None);
        }
        let tag_type = self.buf[0] & 0x1f;
        let timestamp = ((self.buf[7] as u32) << 24)
            | ((self.buf[4] as u32) << 16)
            | ((self.buf[5] as u32) << 8)
            | self.buf[6] as u32;
        self.buf.advance(11);
        let body = self.buf.split_to(len).freeze();
        self.buf.advance(4);
        Ok(Some(FlvEvent::Tag(FlvTag {
            tag_type,
            timestamp,
            body,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_flags() {
        assert_eq!(header(true, true)[4], 5);
        assert_eq!(header(true, false)[4], 4);
        assert_eq!(header(false, true)[4], 1);
        assert_eq!(&header(true, true)[5..], &[0, 0, 0, 9, 0, 0, 0, 0]);
    }

    #[test]
    fn tag_bytes_with_extended_timestamp() {
        let tag = encode_tag(TAG_VIDEO, 0x1234_5678, &[0xaa, 0xbb]);
        assert_eq!(
            &tag[..],
            &[9, 0, 0, 2, 0x34, 0x56, 0x78, 0x12, 0, 0, 0, 0xaa, 0xbb, 0, 0, 0, 13]
        );
    }

    #[test]
    fn demux_roundtrip_byte_by_byte() {
        let mut stream = header(true, false).to_vec();
        stream.extend_from_slice(&encode_tag(TAG_AUDIO, 0xff00_0001, &[1, 2, 3]));
        stream.extend_from_slice(&encode_tag(TAG_SCRIPT, 0, &[]));
        let mut d = FlvDemuxer::new(1024);
        let mut events = Vec::new();
        for b in &stream {
            d.push(&[*b]);
            while let Some(e) = d.next_event().unwrap() {
                events.push(e);
            }
        }
        assert_eq!(
            events,
            vec![
                FlvEvent::Header {
                    has_audio: true,
                    has_video: false
                },
                FlvEvent::Tag(FlvTag {
                    tag_type: TAG_AUDIO,
                    timestamp: 0xff00_0001,
                    body: Bytes::from_static(&[1, 2, 3])
                }),
                FlvEvent::Tag(FlvTag {
                    tag_type: TAG_SCRIPT,
                    timestamp: 0,
                    body: Bytes::new()
                }),
            ]
        );
    }

    #[test]
    fn demux_refuses_bad_input() {
        let mut d = FlvDemuxer::new(1024);
        d.push(b"GIF89a\0\0\0\0\0\0\0");
        assert!(matches!(d.next_event(), Err(FlvError::BadSignature(_))));
        let mut d = FlvDemuxer::new(16);
        d.push(&header(true, true));
        d.next_event().unwrap();
        d.push(&tag_header(TAG_VIDEO, 0, 17));
        assert_eq!(
            d.next_event(),
            Err(FlvError::TagTooLarge { len: 17, max: 16 })
        );
    }
}
