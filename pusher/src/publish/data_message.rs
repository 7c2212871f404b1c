//! RTMP data messages (type 18) other than `onMetaData`, which rml_rtmp's `ClientSession`
//! has no call for: the VP9/AV1 frame clock (`onFrameTime`). Each is serialized on its own
//! with a full (type 0) chunk header, so it never depends on, nor disturbs, the header
//! compression of the session's own messages. Pure: values in, bytes out.

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::MessagePayload;
use rml_rtmp::time::RtmpTimestamp;

const TYPE_AMF0_DATA: u8 = 18;

/// Serializes data messages on the publishing stream.
pub struct DataMessages {
    serializer: ChunkSerializer,
    stream_id: u32,
}

impl DataMessages {
    /// `chunk_size`: the session's outbound chunk size (the peer already knows it);
    /// `metadata_packet`: the session's `@setDataFrame` packet, whose header names the
    /// publishing stream's id.
    pub fn new(chunk_size: u32, metadata_packet: &[u8]) -> Self {
        let mut serializer = ChunkSerializer::new();
        // The SetChunkSize packet this returns is not sent: the session sent its own, with
        // the same size, at connect.
        let _ = serializer.set_max_chunk_size(chunk_size, RtmpTimestamp::new(0));
        Self {
            serializer,
            stream_id: message_stream_id(metadata_packet).unwrap_or(1),
        }
    }

    /// One data message at `timestamp` (ms), as chunks ready to write.
    pub fn serialize(&mut self, body: Bytes, timestamp: u32) -> Option<Bytes> {
        let payload = MessagePayload {
            timestamp: RtmpTimestamp::new(timestamp),
            type_id: TYPE_AMF0_DATA,
            message_stream_id: self.stream_id,
            data: body,
        };
        self.serializer
            .serialize(&payload, true, false)
            .ok()
            .map(|p| Bytes::from(p.bytes))
    }
}

/// The message stream id in a chunk with a type 0 header and a one-byte basic header.
fn message_stream_id(chunk: &[u8]) -> Option<u32> {
    let first = *chunk.first()?;
    let csid = first & 0x3f;
    if first >> 6 != 0 || csid < 2 {
        return None;
    }
    let id = chunk.get(8..12)?;
    Some(u32::from_le_bytes([id[0], id[1], id[2], id[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_shared::frame_time::{self, FrameTime};

    #[test]
    fn one_full_header_chunk_on_the_publishing_stream() {
        // A type 0 chunk on chunk stream 3 of message stream 5 (what a session's
        // metadata packet starts with).
        let meta = [0x03, 0, 0, 0, 0, 0, 9, 18, 5, 0, 0, 0, 1, 2, 3];
        let mut d = DataMessages::new(4096, &meta);
        let body = frame_time::encode(FrameTime {
            wallclock_us: 7,
            frame: 8,
            pts_ms: 9,
        });
        for ts in [40u32, 73] {
            let b = d.serialize(body.clone(), ts).unwrap();
            let len = body.len() as u32;
            let mut want = vec![0x03];
            want.extend_from_slice(&ts.to_be_bytes()[1..]);
            want.extend_from_slice(&len.to_be_bytes()[1..]);
            want.push(18);
            want.extend_from_slice(&5u32.to_le_bytes());
            want.extend_from_slice(&body);
            assert_eq!(&b[..], &want[..], "timestamp {ts}: uncompressed every time");
        }
        // Past 24 bits the timestamp moves to the extended field.
        let b = d.serialize(body.clone(), 0x0100_0000).unwrap();
        assert_eq!(&b[1..4], &[0xff, 0xff, 0xff]);
        assert_eq!(&b[12..16], &0x0100_0000u32.to_be_bytes());
    }

    #[test]
    fn stream_id_from_the_metadata_header_or_one() {
        assert_eq!(
            message_stream_id(&[0x03, 0, 0, 0, 0, 0, 9, 18, 1, 0, 0, 0]),
            Some(1)
        );
        assert_eq!(message_stream_id(&[0x43, 0, 0, 0]), None, "type 1 header");
        assert_eq!(message_stream_id(&[0x03, 0, 0]), None, "too short");
        assert_eq!(DataMessages::new(128, &[]).stream_id, 1);
    }
}
