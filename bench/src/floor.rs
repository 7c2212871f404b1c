//! The sans-IO part of the fan-out floor probe (`onair-floor`): each media message of the
//! publisher is serialized once, as RTMP chunks and as FLV tags, into the bytes of one write
//! per viewer per video frame, with the join bytes (sequence headers and the GOP so far) a
//! new viewer gets first. It never touches a socket or a clock.

use onair_shared::flv::{self, TAG_AUDIO, TAG_VIDEO};

/// RTMP message type ids of audio and video data.
pub const RTMP_AUDIO: u8 = 8;
pub const RTMP_VIDEO: u8 = 9;
/// Chunk stream ids the probe sends audio and video on (rml_rtmp's, so a viewer sees what it
/// would from an rml_rtmp server).
const CSID_VIDEO: u8 = 4;
const CSID_AUDIO: u8 = 5;
/// Timestamps from here up go in the extended timestamp field.
const EXTENDED_TS: u32 = 0x00ff_ffff;
/// Largest message an RTMP chunk header can carry (24-bit length).
pub const MAX_MESSAGE: usize = 0x00ff_ffff;

/// Appends `payload` as one RTMP message in chunks of at most `chunk_size` bytes: a type-0
/// chunk (full header, so the bytes do not depend on what the viewer received before), then
/// type-3 continuations. `csid` must be 2..=63 (one-byte basic header).
pub fn rtmp_message(
    out: &mut Vec<u8>,
    csid: u8,
    type_id: u8,
    stream_id: u32,
    timestamp: u32,
    payload: &[u8],
    chunk_size: usize,
) {
    debug_assert!((2..=63).contains(&csid) && chunk_size > 0 && payload.len() <= MAX_MESSAGE);
    let extended = timestamp >= EXTENDED_TS;
    out.push(csid); // fmt 0
    out.extend_from_slice(&timestamp.min(EXTENDED_TS).to_be_bytes()[1..]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream_id.to_le_bytes());
    if extended {
        out.extend_from_slice(&timestamp.to_be_bytes());
    }
    for (i, chunk) in payload.chunks(chunk_size).enumerate() {
        if i > 0 {
            out.push(0xc0 | csid); // fmt 3
            if extended {
                out.extend_from_slice(&timestamp.to_be_bytes());
            }
        }
        out.extend_from_slice(chunk);
    }
}

/// One write's worth of bytes for each kind of viewer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Wire {
    pub rtmp: Vec<u8>,
    pub flv: Vec<u8>,
}

impl Wire {
    fn clear(&mut self) {
        self.rtmp.clear();
        self.flv.clear();
    }

    fn extend(&mut self, other: &Wire) {
        self.rtmp.extend_from_slice(&other.rtmp);
        self.flv.extend_from_slice(&other.flv);
    }
}

/// What the publisher sent, as the bytes the probe writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media<'a> {
    Video { timestamp: u32, data: &'a [u8] },
    Audio { timestamp: u32, data: &'a [u8] },
}

/// What to do after a media message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing to write yet (audio waits for the next video frame; headers are kept).
    Hold,
    /// Write `Fanout::frame()` to every viewer, once each.
    Write,
}

/// The probe's stream state: sequence headers, the GOP since the last keyframe, and the
/// frame being assembled. Audio is merged into the next video frame's write, so every
/// viewer gets exactly one write per video frame.
pub struct Fanout {
    chunk_size: usize,
    stream_id: u32,
    video_header: Wire,
    audio_header: Wire,
    gop: Wire,
    frame: Wire,
    /// Bytes the GOP cache may hold; past it the cache is dropped until the next keyframe.
    max_gop: usize,
    gop_valid: bool,
}

impl Fanout {
    /// `stream_id` is the RTMP message stream the viewers play on (rml_rtmp gives 1).
    pub fn new(chunk_size: usize, stream_id: u32, max_gop: usize) -> Self {
        Self {
            chunk_size: chunk_size.max(1),
            stream_id,
            video_header: Wire::default(),
            audio_header: Wire::default(),
            gop: Wire::default(),
            frame: Wire::default(),
            max_gop,
            gop_valid: false,
        }
    }

    fn encode(&self, out: &mut Wire, media: Media<'_>) {
        let (csid, rtmp_type, tag, ts, data) = match media {
            Media::Video { timestamp, data } => {
                (CSID_VIDEO, RTMP_VIDEO, TAG_VIDEO, timestamp, data)
            }
            Media::Audio { timestamp, data } => {
                (CSID_AUDIO, RTMP_AUDIO, TAG_AUDIO, timestamp, data)
            }
        };
        let data = &data[..data.len().min(MAX_MESSAGE)];
        rtmp_message(
            &mut out.rtmp,
            csid,
            rtmp_type,
            self.stream_id,
            ts,
            data,
            self.chunk_size,
        );
        out.flv.extend_from_slice(&flv::encode_tag(tag, ts, data));
    }

    /// Takes one media message; `Write` means `frame()` now holds the bytes of one write.
    pub fn push(&mut self, media: Media<'_>) -> Step {
        match media {
            Media::Video { data, .. } if is_video_header(data) => {
                let mut h = Wire::default();
                self.encode(&mut h, media);
                self.video_header = h;
                Step::Hold
            }
            Media::Audio { data, .. } if is_audio_header(data) => {
                let mut h = Wire::default();
                self.encode(&mut h, media);
                self.audio_header = h;
                Step::Hold
            }
            Media::Audio { .. } => {
                let mut f = std::mem::take(&mut self.frame);
                self.encode(&mut f, media);
                self.frame = f;
                Step::Hold
            }
            Media::Video { data, .. } => {
                let mut f = std::mem::take(&mut self.frame);
                self.encode(&mut f, media);
                self.frame = f;
                if data.first().is_some_and(|b| b >> 4 == 1) {
                    self.gop.clear();
                    self.gop_valid = true;
                }
                if self.gop_valid {
                    if self.gop.rtmp.len() + self.frame.rtmp.len() > self.max_gop {
                        self.gop.clear();
                        self.gop_valid = false;
                    } else {
                        let frame = std::mem::take(&mut self.frame);
                        self.gop.extend(&frame);
                        self.frame = frame;
                    }
                }
                Step::Write
            }
        }
    }

    /// The bytes of the write `push` asked for.
    pub fn frame(&self) -> &Wire {
        &self.frame
    }

    /// Forgets the written frame; call after every viewer got it.
    pub fn written(&mut self) {
        self.frame.clear();
    }

    /// What a new RTMP viewer gets first: the sequence headers and the GOP so far (which
    /// includes the current frame, so it must join after the current frame is written).
    pub fn join_rtmp(&self) -> Vec<u8> {
        let mut out = self.video_header.rtmp.clone();
        out.extend_from_slice(&self.audio_header.rtmp);
        if self.gop_valid {
            out.extend_from_slice(&self.gop.rtmp);
        }
        out
    }

    /// What a new HTTP-FLV viewer gets after the response head: the FLV header, the
    /// sequence headers and the GOP so far.
    pub fn join_flv(&self) -> Vec<u8> {
        let mut out = flv::header(true, true).to_vec();
        out.extend_from_slice(&self.video_header.flv);
        out.extend_from_slice(&self.audio_header.flv);
        if self.gop_valid {
            out.extend_from_slice(&self.gop.flv);
        }
        out
    }

    /// A new publisher: everything of the old one is forgotten.
    pub fn reset(&mut self) {
        *self = Self::new(self.chunk_size, self.stream_id, self.max_gop);
    }
}

/// An AVC sequence header (or any video config tag: packet type 0).
fn is_video_header(data: &[u8]) -> bool {
    data.get(1) == Some(&0) && data.first().is_some_and(|b| b & 0x0f == 7)
}

/// An AAC sequence header (AudioSpecificConfig: packet type 0).
fn is_audio_header(data: &[u8]) -> bool {
    data.first().is_some_and(|b| b >> 4 == 10) && data.get(1) == Some(&0)
}

/// The response head the probe answers every HTTP-FLV GET with; the body runs until close.
pub const FLV_RESPONSE_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{
        audio_frame, audio_sequence_header, filler, video_frame, video_sequence_header,
    };
    use onair_shared::flv::{FlvDemuxer, FlvEvent};
    use rml_rtmp::chunk_io::ChunkDeserializer;

    /// Reads RTMP chunks back with rml_rtmp's deserializer (the bench viewers' own).
    fn deserialize(bytes: &[u8], chunk_size: usize) -> Vec<(u8, u32, u32, Vec<u8>)> {
        let mut d = ChunkDeserializer::new();
        d.set_max_chunk_size(chunk_size).unwrap();
        let mut out = Vec::new();
        let mut input: &[u8] = bytes;
        while let Some(m) = d.get_next_message(input).unwrap() {
            input = &[];
            out.push((
                m.type_id,
                m.message_stream_id,
                m.timestamp.value,
                m.data.to_vec(),
            ));
        }
        out
    }

    #[test]
    fn rtmp_chunks_round_trip_through_rml_rtmp() {
        let payload: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut out = Vec::new();
        rtmp_message(&mut out, 4, RTMP_VIDEO, 1, 1234, &payload, 4096);
        // 10 000 bytes in 4096-byte chunks: one 12-byte header, two 1-byte ones.
        assert_eq!(out.len(), 10_000 + 12 + 2);
        rtmp_message(&mut out, 5, RTMP_AUDIO, 1, 1240, &payload[..300], 4096);
        let msgs = deserialize(&out, 4096);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0], (RTMP_VIDEO, 1, 1234, payload.clone()));
        assert_eq!(msgs[1], (RTMP_AUDIO, 1, 1240, payload[..300].to_vec()));
    }

    #[test]
    fn extended_timestamps_round_trip() {
        let payload = vec![7u8; 5000];
        let mut out = Vec::new();
        rtmp_message(&mut out, 4, RTMP_VIDEO, 1, 0x0100_0000, &payload, 4096);
        assert_eq!(out.len(), 5000 + 12 + 4 + 1 + 4);
        let msgs = deserialize(&out, 4096);
        assert_eq!(msgs, vec![(RTMP_VIDEO, 1, 0x0100_0000, payload)]);
    }

    /// FLV tags of a join (which starts with the FLV header) or a frame (which does not).
    fn flv_tags(bytes: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
        let mut d = FlvDemuxer::new(1 << 20);
        if !bytes.starts_with(b"FLV") {
            d.push(&flv::header(true, true));
        }
        d.push(bytes);
        let mut out = Vec::new();
        while let Some(e) = d.next_event().unwrap() {
            if let FlvEvent::Tag(t) = e {
                out.push((t.tag_type, t.timestamp, t.body.to_vec()));
            }
        }
        out
    }

    #[test]
    fn audio_joins_the_next_video_write_and_gop_restarts_at_keyframes() {
        let f = filler();
        let (vh, ah) = (
            video_sequence_header().unwrap(),
            audio_sequence_header().unwrap(),
        );
        let mut fan = Fanout::new(4096, 1, 1 << 20);
        let v = |seq| video_frame(seq, &f);
        let a = audio_frame(&f);
        assert_eq!(
            fan.push(Media::Video {
                timestamp: 0,
                data: &vh
            }),
            Step::Hold
        );
        assert_eq!(
            fan.push(Media::Audio {
                timestamp: 0,
                data: &ah
            }),
            Step::Hold
        );
        // A P-frame before any keyframe: written, but no GOP to join from.
        assert_eq!(
            fan.push(Media::Video {
                timestamp: 0,
                data: &v(59)
            }),
            Step::Write
        );
        fan.written();
        assert_eq!(flv_tags(&fan.join_flv()).len(), 2);
        assert_eq!(
            fan.push(Media::Audio {
                timestamp: 10,
                data: &a
            }),
            Step::Hold
        );
        assert_eq!(
            fan.push(Media::Video {
                timestamp: 33,
                data: &v(60)
            }),
            Step::Write
        );
        let tags = flv_tags(&fan.frame().flv);
        assert_eq!(
            tags.iter().map(|t| (t.0, t.1)).collect::<Vec<_>>(),
            vec![(TAG_AUDIO, 10), (TAG_VIDEO, 33)]
        );
        let msgs = deserialize(&fan.frame().rtmp, 4096);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1].3, v(60).to_vec());
        fan.written();
        assert_eq!(
            fan.push(Media::Video {
                timestamp: 66,
                data: &v(61)
            }),
            Step::Write
        );
        fan.written();
        // Join: both headers, then the GOP from the keyframe (audio, key, P).
        let join = deserialize(&fan.join_rtmp(), 4096);
        assert_eq!(
            join.iter().map(|m| (m.0, m.2)).collect::<Vec<_>>(),
            vec![
                (RTMP_VIDEO, 0),
                (RTMP_AUDIO, 0),
                (RTMP_AUDIO, 10),
                (RTMP_VIDEO, 33),
                (RTMP_VIDEO, 66)
            ]
        );
        assert_eq!(join[0].3, vh.to_vec());
        let flv = fan.join_flv();
        assert_eq!(&flv[..3], b"FLV");
        assert_eq!(flv_tags(&flv).len(), 5);
        // The next keyframe starts a new GOP.
        fan.push(Media::Video {
            timestamp: 2000,
            data: &v(120),
        });
        fan.written();
        assert_eq!(deserialize(&fan.join_rtmp(), 4096).len(), 3);
    }

    #[test]
    fn an_oversized_gop_is_dropped_until_the_next_keyframe() {
        let f = filler();
        let mut fan = Fanout::new(4096, 1, 55_000);
        fan.push(Media::Video {
            timestamp: 0,
            data: &video_frame(0, &f),
        });
        fan.written();
        assert_eq!(deserialize(&fan.join_rtmp(), 4096).len(), 1);
        for seq in 1..3 {
            fan.push(Media::Video {
                timestamp: 0,
                data: &video_frame(seq, &f),
            });
            fan.written();
        }
        assert!(
            fan.join_rtmp().is_empty(),
            "40 KB + 2 x 9.7 KB is over 55 000"
        );
        fan.push(Media::Video {
            timestamp: 0,
            data: &video_frame(3, &f),
        });
        assert!(fan.join_rtmp().is_empty());
        fan.reset();
        assert!(fan.join_rtmp().is_empty() && flv_tags(&fan.join_flv()).is_empty());
    }
}
