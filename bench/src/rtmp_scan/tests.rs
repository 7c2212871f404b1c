//! The scanner against rml_rtmp's chunk serializer (an independent writer of the format):
//! every split of its output gives the same prefixes, replies and errors.

use super::*;
use bytes::Bytes;
use rml_amf0::Amf0Value;
use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
use rml_rtmp::messages::{RtmpMessage, UserControlEventType};
use rml_rtmp::time::RtmpTimestamp;

const WANT: usize = 20;

struct Writer(ChunkSerializer, Vec<u8>);

impl Writer {
    fn new() -> Self {
        Self(ChunkSerializer::new(), Vec::new())
    }

    fn chunk_size(&mut self, size: u32) {
        let p = self
            .0
            .set_max_chunk_size(size, RtmpTimestamp::new(0))
            .unwrap();
        self.1.extend_from_slice(&p.bytes);
    }

    fn message(&mut self, m: RtmpMessage, ts: u32, stream: u32) {
        let payload = m
            .into_message_payload(RtmpTimestamp::new(ts), stream)
            .unwrap();
        let p = self.0.serialize(&payload, false, false).unwrap();
        self.1.extend_from_slice(&p.bytes);
    }
}

fn body(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn status(code: &str) -> RtmpMessage {
    let mut info = std::collections::HashMap::new();
    info.insert("level".to_string(), Amf0Value::Utf8String("status".into()));
    info.insert("code".to_string(), Amf0Value::Utf8String(code.into()));
    RtmpMessage::Amf0Command {
        command_name: "onStatus".into(),
        transaction_id: 0.0,
        command_object: Amf0Value::Null,
        additional_arguments: vec![Amf0Value::Object(info)],
    }
}

/// A play's stream: chunk size changes, commands, audio, and video messages of sizes
/// around the chunk sizes, with timestamps past the 24-bit field (extended timestamps).
fn play_stream() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut w = Writer::new();
    let mut want = Vec::new();
    w.message(RtmpMessage::WindowAcknowledgement { size: 2_500_000 }, 0, 0);
    w.message(status("NetStream.Play.Start"), 0, 1);
    let mut video = |w: &mut Writer, len: usize, ts: u32, seed: u8| {
        let data = body(len, seed);
        want.push(data[..len.min(WANT)].to_vec());
        w.message(RtmpMessage::VideoData { data }, ts, 1);
    };
    video(&mut w, 300, 0, 1); // over the initial 128-byte chunk
    w.chunk_size(4096);
    for i in 0..6u32 {
        w.message(
            RtmpMessage::AudioData {
                data: body(200, i as u8),
            },
            10 + i * 23,
            1,
        );
        video(
            &mut w,
            [5, 4096, 4097, 9000, 17, 1][i as usize],
            10 + i * 33,
            i as u8,
        );
    }
    // Timestamps at and past 0xFFFFFF: extended timestamps on types 0 to 3.
    for i in 0..4u32 {
        video(&mut w, 5000, 0x00ff_fff0 + i * 40, 50 + i as u8);
    }
    w.chunk_size(1000);
    video(&mut w, 2500, 0x0100_1000, 99);
    (w.1, want)
}

fn scan_in_pieces(stream: &[u8], cuts: &[usize]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut scan = RtmpScan::new(WANT);
    let mut got = Vec::new();
    let mut reply = Vec::new();
    let mut at = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        scan.push(&stream[at..cut], |p| got.push(p.to_vec()), &mut reply)
            .unwrap();
        at = cut;
    }
    (got, reply)
}

#[test]
fn every_video_prefix_in_order_whole_or_cut_anywhere() {
    let (stream, want) = play_stream();
    let (got, reply) = scan_in_pieces(&stream, &[]);
    assert_eq!(got, want);
    assert!(reply.is_empty(), "no window passed, no ping");
    for cut in 1..stream.len() {
        assert_eq!(scan_in_pieces(&stream, &[cut]).0, want, "cut at {cut}");
    }
    let bytewise: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(scan_in_pieces(&stream, &bytewise).0, want);
}

#[test]
fn resume_carries_a_message_cut_by_the_handover() {
    let (stream, want) = play_stream();
    for cut in (0..stream.len()).step_by(7) {
        let mut scan = RtmpScan::resume(WANT, &stream[..cut]).unwrap();
        let mut got = Vec::new();
        scan.push(&stream[cut..], |p| got.push(p.to_vec()), &mut Vec::new())
            .unwrap();
        // Only the messages completed after the handover are handed out.
        let mut whole = RtmpScan::new(WANT);
        let mut before = 0;
        whole
            .push(&stream[..cut], |_| before += 1, &mut Vec::new())
            .unwrap();
        assert_eq!(got, want[before..], "handover at {cut}");
    }
}

#[test]
fn acknowledges_each_window_and_answers_pings() {
    let mut w = Writer::new();
    w.message(RtmpMessage::WindowAcknowledgement { size: 1000 }, 0, 0);
    w.message(
        RtmpMessage::UserControl {
            event_type: UserControlEventType::PingRequest,
            stream_id: None,
            buffer_length: None,
            timestamp: Some(RtmpTimestamp::new(0x01020304)),
        },
        0,
        0,
    );
    w.chunk_size(4096);
    w.message(
        RtmpMessage::VideoData {
            data: body(1500, 3),
        },
        0,
        1,
    );
    let mut scan = RtmpScan::new(WANT);
    let mut reply = Vec::new();
    scan.push(&w.1, |_| {}, &mut reply).unwrap();
    // rml's own reader reads back what the scanner wrote.
    let mut de = ChunkDeserializer::new();
    let mut messages = Vec::new();
    let mut input = &reply[..];
    while let Some(p) = de.get_next_message(input).unwrap() {
        messages.push(p.to_rtmp_message().unwrap());
        input = &[];
    }
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(matches!(
        &messages[0],
        RtmpMessage::UserControl { event_type: UserControlEventType::PingResponse, timestamp: Some(t), .. }
            if t.value == 0x01020304
    ));
    assert!(matches!(
        messages[1],
        RtmpMessage::Acknowledgement { sequence_number } if sequence_number as usize == w.1.len()
    ));
}

#[test]
fn an_ending_status_is_an_error_other_statuses_are_not() {
    let mut w = Writer::new();
    w.message(status("NetStream.Play.Reset"), 0, 1);
    w.message(status("NetStream.Play.StreamNotFound"), 0, 1);
    let mut scan = RtmpScan::new(WANT);
    let err = scan.push(&w.1, |_| {}, &mut Vec::new()).unwrap_err();
    assert_eq!(
        err,
        RtmpScanError::EndingStatus("NetStream.Play.StreamNotFound".into())
    );
}

#[test]
fn malformed_chunk_streams_are_errors_not_panics() {
    let mut scan = RtmpScan::new(WANT);
    // A type-3 chunk on a stream never seen.
    assert_eq!(
        scan.push(&[0xc5, 0, 0], |_| {}, &mut Vec::new()),
        Err(RtmpScanError::NoPreviousHeader { csid: 5, fmt: 3 })
    );
    // A type-0 header while a 300-byte message is under way (chunk size 128).
    let mut scan = RtmpScan::new(WANT);
    let mut head = vec![0x05, 0, 0, 0, 0, 0x01, 0x2c, 9, 1, 0, 0, 0];
    head.extend_from_slice(&[0; 128]);
    head.extend_from_slice(&[0x05, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0]);
    assert_eq!(
        scan.push(&head, |_| {}, &mut Vec::new()),
        Err(RtmpScanError::HeaderMidMessage { csid: 5, fmt: 0 })
    );
    // A chunk size of 0.
    let mut w = Writer::new();
    w.message(RtmpMessage::SetChunkSize { size: 0 }, 0, 0);
    let mut scan = RtmpScan::new(WANT);
    assert_eq!(
        scan.push(&w.1, |_| {}, &mut Vec::new()),
        Err(RtmpScanError::BadChunkSize(0))
    );
    // Chunk streams past the bound.
    let mut many = Vec::new();
    for i in 0..=MAX_CHUNK_STREAMS as u8 {
        // Two-byte basic headers: chunk streams 64 and up.
        many.extend_from_slice(&[0, i, 0, 0, 0, 0, 0, 1, 8, 1, 0, 0, 0, 0xaf]);
    }
    let mut scan = RtmpScan::new(WANT);
    assert_eq!(
        scan.push(&many, |_| {}, &mut Vec::new()),
        Err(RtmpScanError::TooManyChunkStreams)
    );
}
