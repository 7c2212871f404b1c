//! LL-HLS and fMP4 as a publisher and a client can drive them: the `_HLS_*` query and
//! media path parsers, the blocking-reload decision, and the fMP4 init segment and the
//! LL-HLS segmenter fed a publisher's codec config bytes and frame timings. Beyond not
//! panicking: every box written is well formed, a hold is only for what does not exist,
//! names round-trip, and memory stays within its bound.
#![no_main]

use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use onair_server::llhls::{
    decide, render, Decision, LlQuery, LlSegmenter, LlSegmenterConfig, MediaName, ReloadState,
};
use onair_shared::fmp4::{init_segment, Sample, Track, TrackMedia};
use onair_shared::Codec;

#[derive(Arbitrary, Debug)]
struct FrameIn {
    audio: bool,
    dts_step: u16,
    keyframe: bool,
    cts: i16,
    len: u8,
    finish: bool,
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    query: &'a str,
    name: &'a str,
    state: (bool, u8, u8, u8, u8, u16),
    codec: u8,
    config: &'a [u8],
    audio_config: &'a [u8],
    frames: Vec<FrameIn>,
}

/// avcC of x264 high profile 1280x720 (one SPS, one PPS).
const AVCC: [u8; 43] = [
    0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50,
    0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83,
    0x19, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0,
];

/// Top-level boxes tile the bytes exactly.
fn well_formed(data: &[u8]) {
    let mut at = 0usize;
    while at < data.len() {
        assert!(data.len() - at >= 8, "a box header cut short");
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        assert!(
            size >= 8 && size <= data.len() - at,
            "box size {size} at {at}"
        );
        at += size;
    }
}

fuzz_target!(|input: Input| {
    let query = LlQuery::parse(Some(input.query));
    let (live, next_msn, next_parts, last_parts, pps, part_ms) = input.state;
    let state = ReloadState {
        live,
        next_msn: next_msn as u64,
        next_parts: next_parts as u64,
        last_segment_parts: last_parts as u64,
        parts_per_segment: pps as u64,
        part_target: Duration::from_millis(part_ms as u64),
    };
    match decide(&query, &state) {
        Decision::Hold { msn, part } => assert!(live && !state.has(msn, part)),
        Decision::NotFound => assert!(!live),
        Decision::Now | Decision::BadRequest(_) => {}
    }
    if let Some(n) = MediaName::parse(input.name) {
        assert_eq!(MediaName::parse(&n.file_name()), Some(n));
    }

    let video_codec = [Codec::H264, Codec::Hevc, Codec::Av1, Codec::Vp9][input.codec as usize % 4];
    let audio_codec =
        [Codec::Aac, Codec::Opus, Codec::Flac, Codec::Mp3][(input.codec as usize / 4) % 4];
    let tracks = vec![
        Track {
            id: 1,
            codec: video_codec,
            timescale: 90_000,
            config: Bytes::copy_from_slice(input.config),
            media: TrackMedia::Video {
                width: 320,
                height: 240,
            },
        },
        Track {
            id: 2,
            codec: audio_codec,
            timescale: 48_000,
            config: Bytes::copy_from_slice(input.audio_config),
            media: TrackMedia::Audio {
                sample_rate: 48_000,
                channels: 2,
            },
        },
    ];
    // Most fuzzed configs are refused; then the segmenter runs on H.264 + AAC configs
    // that parse, so the frame path is always reached.
    let tracks = match init_segment(&tracks) {
        Ok(init) => {
            well_formed(&init);
            tracks
        }
        Err(_) => {
            let mut known = tracks;
            known[0].codec = Codec::H264;
            known[0].config = Bytes::from_static(&AVCC);
            known[1].codec = Codec::Aac;
            known[1].config = Bytes::from_static(&[0x11, 0x90]);
            known
        }
    };
    let cfg = LlSegmenterConfig {
        window: 4,
        max_memory_bytes: 4096,
        max_segment_bytes: 4096,
        max_part_bytes: 2048,
        ..Default::default()
    };
    let Ok(mut seg) = LlSegmenter::new(tracks, cfg) else {
        return;
    };
    let (mut vdts, mut adts) = (0u64, 0u64);
    let now = SystemTime::UNIX_EPOCH;
    for f in input.frames.iter().take(2000) {
        if f.finish {
            let _ = seg.finish();
            continue;
        }
        let (track, dts) = if f.audio {
            adts += f.dts_step as u64;
            (2, adts)
        } else {
            vdts += f.dts_step as u64;
            (1, vdts)
        };
        let sample = Sample {
            dts,
            cts_offset: f.cts as i32,
            keyframe: f.keyframe,
            data: Bytes::from(vec![0u8; f.len as usize]),
        };
        if let Ok(Some(ready)) = seg.push(track, sample, now) {
            let part = seg
                .part(ready.msn, ready.index)
                .or_else(|| seg.segment(ready.msn).and_then(|s| s.last().cloned()));
            if let Some(p) = part {
                well_formed(&p);
            }
        }
        // Old segments within max_memory_bytes, the one being built within
        // max_segment_bytes plus the part that passed it.
        assert!(seg.memory_bytes() <= 4096 + 4096 + 2048 + 1024);
    }
    let _ = seg.finish();
    let playlist = seg.playlist("");
    for s in &playlist.segments {
        for p in seg.segment(s.msn).expect("listed segments exist") {
            well_formed(&p);
        }
    }
    let _ = render(&playlist, true);
    let _ = decide(&query, &seg.reload_state());
});
