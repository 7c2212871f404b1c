//! FLV demuxing as the pusher's file sources and the tests use it: bytes pushed in
//! fuzzer-chosen pieces must give exactly the events that the same bytes give in one piece,
//! and each tag is then classified as ingest classifies it.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use onair_shared::flv::TagFrame;
use onair_shared::flv::{FlvDemuxer, FlvEvent, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use onair_shared::ingest::TagReader;
use onair_shared::metadata::parse_script;

/// Events until the first error or until more bytes are needed.
fn drain(d: &mut FlvDemuxer, out: &mut Vec<FlvEvent>) -> bool {
    loop {
        match d.next_event() {
            Ok(Some(e)) => out.push(e),
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // Four bytes of piece-size seed and a tag size limit selector, then the FLV bytes.
    if data.len() < 5 {
        return;
    }
    let (head, flv) = data.split_at(5);
    let mut seed = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) | 1;
    let max_tag = if head[4] & 1 == 0 { 1 << 20 } else { 64 };

    let mut whole = FlvDemuxer::new(max_tag);
    whole.push(flv);
    let mut expected = Vec::new();
    let whole_ok = drain(&mut whole, &mut expected);

    let mut pieces = FlvDemuxer::new(max_tag);
    let mut got = Vec::new();
    let mut ok = true;
    let mut rest = flv;
    while ok && !rest.is_empty() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (seed as usize % 300 + 1).min(rest.len());
        pieces.push(&rest[..n]);
        rest = &rest[n..];
        ok = drain(&mut pieces, &mut got);
        assert!(pieces.buffered() <= flv.len());
    }
    assert_eq!(
        ok, whole_ok,
        "an error in one piece and not in many, or the reverse"
    );
    assert_eq!(got, expected, "pieces and one piece give the same events");

    for e in got {
        let FlvEvent::Tag(tag) = e else { continue };
        match tag.tag_type {
            TAG_VIDEO => {
                let _ = TagReader::new().video_tag(tag.timestamp, &tag.body);
                let _ = TagFrame::video(tag.timestamp as u64, tag.body);
            }
            TAG_AUDIO => {
                let _ = TagReader::new().audio_tag(tag.timestamp, &tag.body);
                let _ = TagFrame::audio(tag.timestamp as u64, tag.body);
            }
            TAG_SCRIPT => {
                let _ = parse_script(&Bytes::clone(&tag.body), 16);
            }
            _ => {}
        }
    }
});
