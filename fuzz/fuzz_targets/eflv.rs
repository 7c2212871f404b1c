//! The Enhanced RTMP parsers: audio and video message bodies (legacy and ex-header, ModEx,
//! Multitrack, Metadata), each config packet through its codec's parser (hvcC and its SPS,
//! av1C and its sequence header, vpcC, OpusHead, FLAC STREAMINFO), the VP9 frame header and
//! the connect command's capability fields. The first byte picks what the rest is fed to.
//! Beyond not panicking: every payload must be a slice of the message, tracks must be unique,
//! and a packet written back by `eflv::write` must parse to the same packet.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use onair_shared::av1::{obus, Av1Config, Av1SequenceHeader};
use onair_shared::eflv::connect::ClientCaps;
use onair_shared::eflv::write::{audio_body, video_body};
use onair_shared::eflv::{parse_audio, parse_video, Packet, PacketKind, ParseLimits};
use onair_shared::flac::FlacStreamInfo;
use onair_shared::hevc::{HevcDecoderConfig, HevcSpsInfo};
use onair_shared::metadata::{decode_amf0, Amf0Value};
use onair_shared::opus::OpusHead;
use onair_shared::vp9::{Vp9FrameHeader, VpcConfig};
use onair_shared::Codec;

fn check_packets(packets: &[Packet], body: &Bytes, limits: &ParseLimits) {
    assert!(packets.len() <= limits.max_tracks.max(1), "track limit");
    let start = body.as_ptr() as usize;
    let mut seen = [false; 256];
    let mut total = 0;
    for p in packets {
        assert!(
            !std::mem::replace(&mut seen[p.track as usize], true),
            "track twice"
        );
        assert!(p.timestamp_offset_ns < 1_000_000);
        if !p.payload.is_empty() {
            let at = p.payload.as_ptr() as usize;
            assert!(
                at >= start && at + p.payload.len() <= start + body.len(),
                "payload is a slice"
            );
        }
        total += p.payload.len();
        if p.kind == PacketKind::Config {
            config(p.codec, &p.payload);
        }
    }
    assert!(total <= body.len());
}

/// The fields a single-track body keeps through `write` and `parse`.
fn same_packet(a: &Packet, b: &Packet) {
    assert_eq!(
        (a.codec, a.kind, a.keyframe),
        (b.codec, b.kind, b.keyframe),
        "round trip"
    );
    assert_eq!(
        a.composition_offset_ms, b.composition_offset_ms,
        "round trip cts"
    );
    assert_eq!(a.payload, b.payload, "round trip payload");
}

fn config(codec: Codec, data: &[u8]) {
    match codec {
        Codec::Hevc => {
            if let Ok(c) = HevcDecoderConfig::parse(data) {
                let _ = c.sps_info();
            }
        }
        Codec::Av1 => {
            if let Ok(c) = Av1Config::parse(data) {
                let _ = c.sequence_header();
            }
        }
        Codec::Vp9 => {
            let _ = VpcConfig::parse(data);
        }
        Codec::Opus => {
            if let Ok(h) = OpusHead::parse(data) {
                if let Some(m) = h.mapping {
                    assert_eq!(m.channel_mapping.len(), h.channels as usize);
                }
            }
        }
        Codec::Flac => {
            if let Ok(s) = FlacStreamInfo::parse(data) {
                assert!(s.sample_rate > 0 && s.channels >= 1 && s.channels <= 8);
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // Tight limits on odd selectors, so the limit paths are reached too.
    let limits = if mode & 0x80 != 0 {
        ParseLimits {
            max_tracks: 2,
            max_modex: 1,
            max_modex_len: 3,
            max_amf_depth: 2,
        }
    } else {
        ParseLimits::default()
    };
    let body = Bytes::copy_from_slice(rest);
    match mode & 0x0f {
        0 => {
            if let Ok(m) = parse_video(&body, &limits) {
                check_packets(&m.packets, &body, &limits);
                if m.command.is_some() {
                    assert!(m.packets.is_empty() && m.metadata.is_empty());
                }
                for p in &m.packets {
                    let Ok(b) = video_body(
                        p.codec,
                        p.kind,
                        p.keyframe,
                        p.composition_offset_ms,
                        &p.payload,
                    ) else {
                        continue;
                    };
                    let again = parse_video(&b, &ParseLimits::default()).expect("our body parses");
                    same_packet(&again.packets[0], p);
                }
            }
        }
        1 => {
            if let Ok(m) = parse_audio(&body, &limits) {
                check_packets(&m.packets, &body, &limits);
                for p in &m.packets {
                    let Ok(b) = audio_body(p.codec, p.kind, m.legacy, &p.payload) else {
                        continue;
                    };
                    let again = parse_audio(&b, &ParseLimits::default()).expect("our body parses");
                    same_packet(&again.packets[0], p);
                }
            }
        }
        2 => {
            if let Ok(c) = HevcDecoderConfig::parse(rest) {
                let _ = c.sps_info();
            }
            let _ = HevcSpsInfo::parse(rest);
        }
        3 => {
            if let Ok(c) = Av1Config::parse(rest) {
                let _ = c.sequence_header();
            }
            let _ = Av1SequenceHeader::parse(rest);
            let mut end = 0;
            for o in obus(rest) {
                let Ok(o) = o else { break };
                let at = o.payload.as_ptr() as usize - rest.as_ptr() as usize;
                assert!(
                    at >= end && at + o.payload.len() <= rest.len(),
                    "OBUs in order, inside"
                );
                end = at + o.payload.len();
            }
        }
        4 => {
            let _ = VpcConfig::parse(rest);
            if let Ok(h) = Vp9FrameHeader::parse(rest) {
                assert_eq!(h.keyframe, h.width.is_some());
            }
        }
        5 => config(Codec::Opus, rest),
        6 => config(Codec::Flac, rest),
        _ => {
            // A connect command's AMF0 values: the command object is the third.
            if let Ok(values) = decode_amf0(rest, limits.max_amf_depth) {
                for v in values {
                    if let Amf0Value::Object(o) = v {
                        let caps = ClientCaps::from_connect_object(&o);
                        assert!(caps.accepts(Codec::H264));
                        assert!(caps.fourcc_list.len() <= 64);
                    }
                }
            }
        }
    }
});
