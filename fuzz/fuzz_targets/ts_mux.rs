//! The HLS muxer's inputs: any sequence of frames a publisher can get through ingest and
//! the hub (AVC and AAC configurations, key and inter frames with any NAL payloads,
//! including broken length prefixes, AAC and MP3 audio of any size, timestamps through
//! the hub's timeline),
//! plus discontinuities and ends, into the Segmenter and straight into a TsMuxer. Every
//! output must be whole 188-byte packets that start with 0x47, and the muxer's continuity
//! counters must count up by one per PID.
#![no_main]

use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use onair_server::hls::segmenter::{Segmenter, SegmenterConfig};
use onair_server::hls::ts::{audio_stream_type, TsMuxer};
use onair_shared::avc::AvcDecoderConfig;
use onair_shared::ingest::TagReader;
use onair_shared::timestamp::Timeline;
use onair_shared::{Codec, CodecConfig, MediaKind};

#[derive(Debug, Arbitrary)]
enum Op {
    /// An AVC sequence header built from parameter sets, or raw record bytes.
    VideoConfig {
        sps: Vec<u8>,
        pps: Vec<u8>,
        nalu_length_size: u8,
        raw: Option<Vec<u8>>,
    },
    Video {
        ts: u32,
        key: bool,
        cts: i32,
        nals: Vec<Vec<u8>>,
        /// Replaces the last NAL's length prefix with this (possibly wrong) value.
        bad_len: Option<u32>,
    },
    AudioConfig {
        asc: Vec<u8>,
    },
    Audio {
        ts: u32,
        raw: Vec<u8>,
        /// Repeats `raw` to make frames past the ADTS size limit.
        repeat: u8,
    },
    /// An MP3 tag: sound flags, then a frame starting with `header`.
    Mp3 {
        ts: u32,
        flags: u8,
        header: [u8; 4],
        rest: Vec<u8>,
    },
    /// Any video tag body: other codecs, enhanced RTMP, end of sequence.
    RawVideo {
        ts: u32,
        body: Vec<u8>,
    },
    Discontinuity,
    Finish,
}

#[derive(Debug, Arbitrary)]
struct Input {
    target_ms: u16,
    max_segment_kib: u16,
    first_seq: u8,
    /// Seconds added to every timestamp, to reach the 33-bit PTS wrap.
    base_s: u32,
    ops: Vec<Op>,
}

fn check_packets(ts: &[u8], what: &str) {
    assert_eq!(
        ts.len() % 188,
        0,
        "{what}: not whole packets ({} bytes)",
        ts.len()
    );
    for (i, p) in ts.chunks(188).enumerate() {
        assert_eq!(p[0], 0x47, "{what}: packet {i} has no sync byte");
    }
}

/// Continuity counters per PID across everything the direct muxer wrote.
#[derive(Default)]
struct Counters(std::collections::HashMap<u16, u8>);

impl Counters {
    fn check(&mut self, ts: &[u8]) {
        for p in ts.chunks(188) {
            let pid = ((p[1] as u16 & 0x1f) << 8) | p[2] as u16;
            let cc = p[3] & 0x0f;
            if let Some(prev) = self.0.insert(pid, cc) {
                assert_eq!(cc, (prev + 1) & 0x0f, "continuity counter on PID {pid:#x}");
            }
        }
    }
}

fn video_body(
    key: bool,
    cts: i32,
    nals: &[Vec<u8>],
    len_size: u8,
    bad_len: Option<u32>,
) -> Vec<u8> {
    let mut b = vec![if key { 0x17 } else { 0x27 }, 1];
    b.extend_from_slice(&cts.to_be_bytes()[1..]);
    let n = len_size.clamp(1, 4) as usize;
    for (i, nal) in nals.iter().enumerate() {
        let len = match bad_len {
            Some(l) if i + 1 == nals.len() => l as usize,
            _ => nal.len(),
        };
        b.extend_from_slice(&(len as u32).to_be_bytes()[4 - n..]);
        b.extend_from_slice(nal);
    }
    b
}

fuzz_target!(|input: Input| {
    let mut seg = Segmenter::new(
        SegmenterConfig {
            target_ms: input.target_ms as u64,
            max_segment_bytes: (input.max_segment_kib as usize + 1) * 1024,
        },
        input.first_seq as u64,
    );
    let mut mux = TsMuxer::default();
    let mut mux_out = Vec::new();
    let mut counters = Counters::default();
    let mut avc: Option<AvcDecoderConfig> = None;
    let mut audio: Option<CodecConfig> = None;
    let mut tables_written = false;
    let mut timeline = Timeline::default();
    let mut tags = TagReader::new();
    let base_ms = input.base_s as u64 * 1000;
    let epoch = SystemTime::UNIX_EPOCH;

    let emit = |seg_out: Option<onair_server::hls::segmenter::Segment>| {
        if let Some(s) = seg_out {
            check_packets(&s.data, "segment");
        }
    };

    for op in input.ops {
        // As ingest does: parse the tag body once; then, as the hub does, map its timestamp.
        let (body, video, ts) = match op {
            Op::VideoConfig {
                sps,
                pps,
                nalu_length_size,
                raw,
            } => {
                let record = match raw {
                    Some(r) => r,
                    None => {
                        let mut c = match AvcDecoderConfig::from_parameter_sets(&sps, &pps) {
                            Ok(c) => c,
                            Err(_) => continue,
                        };
                        c.nalu_length_size = nalu_length_size % 4 + 1;
                        c.to_bytes()
                    }
                };
                let mut body = vec![0x17, 0, 0, 0, 0];
                body.extend_from_slice(&record);
                (body, true, 0)
            }
            Op::Video {
                ts,
                key,
                cts,
                nals,
                bad_len,
            } => {
                let len_size = avc.as_ref().map_or(4, |c| c.nalu_length_size);
                (video_body(key, cts, &nals, len_size, bad_len), true, ts)
            }
            Op::AudioConfig { asc } => {
                let mut body = vec![0xaf, 0];
                body.extend_from_slice(&asc);
                (body, false, 0)
            }
            Op::Audio { ts, raw, repeat } => {
                let mut body = vec![0xaf, 1];
                for _ in 0..=repeat.min(40) {
                    body.extend_from_slice(&raw);
                }
                (body, false, ts)
            }
            Op::Mp3 {
                ts,
                flags,
                header,
                rest,
            } => {
                let mut body = vec![0x20 | (flags & 0x0f)];
                body.extend_from_slice(&header);
                body.extend_from_slice(&rest);
                (body, false, ts)
            }
            Op::RawVideo { ts, body } => (body, true, ts),
            Op::Discontinuity => {
                emit(seg.discontinuity());
                timeline.rebase();
                continue;
            }
            Op::Finish => {
                emit(seg.finish());
                continue;
            }
        };
        let body = Bytes::from(body);
        let parsed = if video {
            tags.video_tag(ts, &body)
        } else {
            tags.audio_tag(ts, &body)
        };
        let Ok(got) = parsed else { continue };
        if let Some(c) = got.config {
            emit(seg.push_config(&c));
            if c.kind == MediaKind::Video {
                avc = c.avc().cloned();
            } else {
                audio = audio_stream_type(&c).is_some().then_some(c);
            }
        }
        let Some(mut frame) = got.frame else { continue };
        frame.dts = base_ms + timeline.map(frame.kind, frame.dts as u32);
        let now = epoch + Duration::from_millis(frame.dts);
        emit(seg.push(&frame, now));

        // The same frame straight into a muxer, with the configuration it would use.
        let before = mux_out.len();
        match frame.kind {
            MediaKind::Video if frame.codec == Codec::H264 => {
                if let Some(c) = &avc {
                    if !tables_written {
                        let stream_type = audio.as_ref().and_then(audio_stream_type);
                        mux.write_tables(&mut mux_out, true, stream_type).unwrap();
                        tables_written = true;
                    }
                    let _ = mux.write_video(&mut mux_out, &frame, c);
                }
            }
            MediaKind::Audio => {
                if let Some(c) = audio.as_ref().filter(|c| c.codec == frame.codec) {
                    let _ = mux.write_audio(&mut mux_out, &frame, c, avc.is_none());
                }
            }
            _ => {}
        }
        check_packets(&mux_out[before..], "muxer");
        counters.check(&mux_out[before..]);
        if mux_out.len() > 1 << 20 {
            mux_out.clear();
        }
    }
    emit(seg.finish());
});
