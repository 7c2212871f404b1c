//! Issue 10, done-when 5 (pusher): `onair push --audio-codec opus` writes Enhanced FLV that
//! FFmpeg 8 (PyAV, `.venv-av` from `scripts/install-deps.sh`) reads as 48 kHz Opus, decoding
//! without error for the pushed duration; HEVC and AV1 MP4 files (made here by Debian's
//! ffmpeg, small) pushed with `--video file:` come out as that codec with every packet
//! bit-identical to the source's (which also shows no clock SEI was put into them).
//! Output is an FLV file, RTMP to FFmpeg 8 itself listening as the server, and onair's own
//! server, read back by FFmpeg 8 (Opus) or by a raw HTTP-FLV viewer (HEVC payloads).

use crate::common;
use crate::pusher_util;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use bytes::Bytes;
use common::ffmpeg8::{self, peer};
use common::*;
use onair_shared::eflv::{parse_audio, parse_video, PacketKind, ParseLimits};
use onair_shared::flv::{FlvDemuxer, FlvEvent, TAG_AUDIO, TAG_VIDEO};
use onair_shared::Codec;
use pusher_util::*;
use serde_json::Value;

fn probe_cmd() -> Command {
    peer("probe_file.py")
}

/// The JSON report of probe_file.py, checked for read and decode errors.
fn report(out: &Output, what: &str) -> Value {
    let v = ffmpeg8::report(out, what);
    assert!(v["error"].is_null(), "FFmpeg 8 could not read {what}: {v}");
    assert_eq!(
        v["decode_errors"],
        serde_json::json!([]),
        "decode errors in {what}"
    );
    v
}

/// FFmpeg 8's view of a whole file (tests/peers/probe_file.py).
fn probe(path: &Path) -> Value {
    let out = probe_cmd().arg(path).output().expect("run probe_file.py");
    report(&out, &path.display().to_string())
}

/// A loopback port that was free a moment ago (FFmpeg's listen mode needs a number).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn make_hevc(path: &Path, tag: &str) {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=1000:sample_rate=48000:duration=2",
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        "bframes=3:keyint=30:log-level=error",
        "-pix_fmt",
        "yuv420p",
        "-tag:v",
        tag,
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        path.to_str().expect("utf-8 path"),
    ]);
}

fn stream<'a>(probe: &'a Value, kind: &str) -> &'a Value {
    probe["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["type"] == kind))
        .unwrap_or_else(|| panic!("no {kind} stream in {probe}"))
}

/// Every audio and video tag body of an FLV file, in order.
fn flv_tags(path: &Path) -> Vec<(u8, Bytes)> {
    let data = std::fs::read(path).expect("read FLV");
    let mut d = FlvDemuxer::new(1 << 24);
    d.push(&data);
    let mut tags = Vec::new();
    while let Some(ev) = d.next_event().expect("FLV demux") {
        if let FlvEvent::Tag(t) = ev {
            if t.tag_type == TAG_AUDIO || t.tag_type == TAG_VIDEO {
                tags.push((t.tag_type, t.body));
            }
        }
    }
    tags
}

fn ffmpeg(args: &[&str]) {
    require("ffmpeg");
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-y"])
        .args(args)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn opus_push_reads_back_as_opus_in_ffmpeg8() {
    let dir = TempDir::new("onair-push-opus");
    // 48 kHz stereo as is, and 44.1 kHz mono resampled to 48 kHz.
    for (rate, channels) in [("48000", 2u64), ("44100", 1)] {
        let out = dir.path.join(format!("opus-{rate}.flv"));
        let out_s = out.to_str().expect("utf-8 path");
        push_to_end(&[
            out_s,
            "--audio-codec",
            "opus",
            "--audio-bitrate",
            "64k",
            "--sample-rate",
            rate,
            "--channels",
            &channels.to_string(),
            "--size",
            "320x240",
            "--duration",
            "3",
            "--fast",
        ]);

        // Our own parser: an Opus SequenceStart with the ID header, then coded frames.
        let limits = ParseLimits::default();
        let audio: Vec<_> = flv_tags(&out)
            .into_iter()
            .filter(|(t, _)| *t == TAG_AUDIO)
            .map(|(_, b)| parse_audio(&b, &limits).expect("enhanced audio tag"))
            .collect();
        let first = &audio[0].packets[0];
        assert!(audio[0].enhanced);
        assert_eq!((first.codec, first.kind), (Codec::Opus, PacketKind::Config));
        let head = onair_shared::opus::OpusHead::parse(&first.payload).expect("OpusHead");
        assert_eq!(head.channels as u64, channels);
        assert_eq!(head.input_sample_rate.to_string(), rate);
        assert!(audio[1..]
            .iter()
            .all(|m| m.packets[0].codec == Codec::Opus && m.packets[0].kind == PacketKind::Frame));

        let p = probe(&out);
        let a = stream(&p, "audio");
        assert!(
            matches!(a["codec"].as_str(), Some("opus" | "libopus")),
            "audio codec {}",
            a["codec"]
        );
        assert_eq!(
            (a["sample_rate"].as_u64(), a["channels"].as_u64()),
            (Some(48_000), Some(channels))
        );
        // 3 s of 20 ms packets; every one decoded, and the decoded audio lasts 3 s.
        let packets = a["packets"].as_u64().unwrap_or(0);
        assert!((150..=152).contains(&packets), "{packets} Opus packets");
        assert_eq!(a["frames"].as_u64(), Some(packets), "frames decoded");
        let secs = a["samples"].as_f64().unwrap_or(0.0) / 48_000.0;
        assert!((secs - 3.0).abs() < 0.05, "{secs} s of audio decoded");
        let last = a["last_s"].as_f64().unwrap_or(0.0);
        assert!((last - 3.0).abs() < 0.05, "audio ends at {last} s");
        let v = stream(&p, "video");
        assert_eq!(
            (v["codec"].as_str(), v["frames"].as_u64()),
            (Some("h264"), Some(90))
        );
    }
}

/// Pushes `src` with `--video file:` to an FLV and checks FFmpeg 8 reads back `codec` at
/// 320x240 with the source's packets, byte for byte and with the same keyframes and
/// presentation order. Returns the FLV's video tags for codec-specific checks.
fn passthrough(src: &Path, codec: &str, audio: bool) -> Vec<Bytes> {
    let out = src.with_extension("flv");
    push_to_end(&[
        out.to_str().expect("utf-8 path"),
        "--video",
        &format!("file:{}", src.display()),
        "--fast",
    ]);
    let (before, after) = (probe(src), probe(&out));
    let (vs, vo) = (stream(&before, "video"), stream(&after, "video"));
    assert_eq!(vo["codec"], vs["codec"], "decoder for {codec}");
    assert_eq!(
        (vo["width"].as_u64(), vo["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert_eq!(vs["packets"].as_u64(), Some(60), "source packets");
    assert!(vo["md5"] == vs["md5"], "{codec} payloads differ");
    assert_eq!(vo["keyframes"], vs["keyframes"]);
    assert_eq!(vo["frames"], vs["frames"], "frames decoded");
    // Same presentation order: PTS differ by one constant (the MP4's edit list is not
    // applied) within the ms rounding of FLV.
    let pts = |s: &Value| -> Vec<f64> {
        s["pts_ms"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
            .unwrap_or_default()
    };
    let d: Vec<f64> = pts(vs).iter().zip(pts(vo)).map(|(a, b)| b - a).collect();
    assert_eq!(d.len(), 60);
    let (lo, hi) = d
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), x| (l.min(*x), h.max(*x)));
    assert!(hi - lo <= 2.0, "PTS offsets from {lo} to {hi} ms");
    if audio {
        let (a_src, a_out) = (stream(&before, "audio"), stream(&after, "audio"));
        assert!(a_src["md5"] == a_out["md5"], "AAC payloads differ");
    }
    flv_tags(&out)
        .into_iter()
        .filter(|(t, _)| *t == TAG_VIDEO)
        .map(|(_, b)| b)
        .collect()
}

#[test]
fn hevc_mp4_goes_out_as_enhanced_hevc_with_its_payloads() {
    let dir = TempDir::new("onair-push-hevc");
    // hvc1 and hev1 sample entries (FFmpeg writes hev1 unless told), B-frames for CTS.
    for tag in ["hvc1", "hev1"] {
        let src = dir.path.join(format!("{tag}.mp4"));
        make_hevc(&src, tag);
        let tags = passthrough(&src, "hevc", true);
        let limits = ParseLimits::default();
        let msgs: Vec<_> = tags
            .iter()
            .map(|b| parse_video(b, &limits).expect("enhanced video tag"))
            .collect();
        assert!(msgs
            .iter()
            .all(|m| m.enhanced && m.packets[0].codec == Codec::Hevc));
        assert_eq!(msgs[0].packets[0].kind, PacketKind::Config);
        let hvcc = onair_shared::hevc::HevcDecoderConfig::parse(&msgs[0].packets[0].payload)
            .expect("hvcC");
        let sps = hvcc.sps_info().expect("SPS in hvcC");
        assert_eq!((sps.width, sps.height), (320, 240));
        // B-frames: some frames carry a composition offset (CodedFrames), others none.
        let offsets: Vec<i32> = msgs[1..]
            .iter()
            .map(|m| m.packets[0].composition_offset_ms)
            .collect();
        assert!(offsets.iter().any(|&c| c > 0), "no composition offsets");
    }
}

#[test]
fn av1_mp4_goes_out_as_enhanced_av1_with_its_payloads() {
    let dir = TempDir::new("onair-push-av1");
    let src = dir.path.join("av1.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30:duration=2",
        "-c:v",
        "libsvtav1",
        "-preset",
        "12",
        "-g",
        "30",
        "-svtav1-params",
        "lp=1",
        "-pix_fmt",
        "yuv420p",
        src.to_str().expect("utf-8 path"),
    ]);
    let tags = passthrough(&src, "av1", false);
    let limits = ParseLimits::default();
    let seq = parse_video(&tags[0], &limits).expect("enhanced video tag");
    assert_eq!(
        (seq.packets[0].codec, seq.packets[0].kind),
        (Codec::Av1, PacketKind::Config)
    );
    let av1c = onair_shared::av1::Av1Config::parse(&seq.packets[0].payload).expect("av1C");
    let sh = av1c.sequence_header().expect("sequence header in av1C");
    assert_eq!((sh.max_frame_width, sh.max_frame_height), (320, 240));
}

#[test]
fn enhanced_tags_go_out_over_rtmp_to_ffmpeg8() {
    let dir = TempDir::new("onair-push-ertmp");
    let src = dir.path.join("hvc1.mp4");
    make_hevc(&src, "hvc1");
    let source = probe(&src);
    let file_arg = format!("file:{}", src.display());
    // Opus from the test pattern and tone; then the HEVC file as it is. Real time, 2 s each.
    let cases: [(&[&str], &str, &str); 2] = [
        (
            &[
                "--audio-codec",
                "opus",
                "--size",
                "320x240",
                "--duration",
                "2",
            ],
            "h264",
            "opus",
        ),
        (&["--video", &file_arg], "hevc", "aac"),
    ];
    for (args, video, audio) in cases {
        let url = format!("rtmp://127.0.0.1:{}/live/codecs", free_port());
        let listener = probe_cmd()
            .args(["--listen", &url, "--timeout", "20"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the FFmpeg 8 listener");
        // The pusher retries its connect until the listener's port is open.
        let mut push_args = vec![url.as_str()];
        push_args.extend_from_slice(args);
        push_to_end(&push_args);
        let out = listener.wait_with_output().expect("listener output");
        let got = report(&out, &format!("RTMP {video}+{audio}"));
        let (v, a) = (stream(&got, "video"), stream(&got, "audio"));
        assert_eq!(v["codec"].as_str(), Some(video), "{got}");
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(320), Some(240))
        );
        let frames = v["frames"].as_u64().unwrap_or(0);
        assert!(frames >= 58, "{frames} {video} frames decoded");
        assert!(
            matches!(a["codec"].as_str(), Some(c) if c == audio || c == format!("lib{audio}")),
            "audio codec {}",
            a["codec"]
        );
        assert_eq!(a["frames"], a["packets"], "every {audio} packet decoded");
        if video == "hevc" {
            assert!(
                v["md5"] == stream(&source, "video")["md5"],
                "HEVC payloads over RTMP differ from the file's"
            );
        } else {
            assert_eq!(a["sample_rate"].as_u64(), Some(48_000));
        }
    }
}

/// Reads `url` for `seconds` with FFmpeg 8, checked for read and decode errors.
fn readback(url: &str, seconds: u32, codecs: Option<&str>) -> Value {
    let v = ffmpeg8::readback(url, seconds, codecs);
    assert!(v["error"].is_null(), "read of {url} failed: {v}");
    assert_eq!(v["decode_errors"], serde_json::json!([]), "{url}: {v}");
    v
}

/// The pusher's Opus reaches onair's viewers: FFmpeg 8 reads it back from onair over
/// HTTP-FLV and over RTMP (announcing Opus) as 48 kHz Opus, decoding without error.
#[test]
fn opus_push_to_onair_reads_back_as_opus() {
    let server = ServerProc::start("");
    let url = server.rtmp_url("live/opus");
    let _push = PushProc(
        push_cmd(&[
            &url,
            "--audio-codec",
            "opus",
            "--size",
            "320x240",
            "--duration",
            "30",
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn onair push"),
    );
    server.wait_live("live", "opus");
    let api = server.stream("live", "opus").expect("listed");
    assert_eq!(api["audio"]["codec"], "opus", "{api}");
    for (read_url, codecs) in [
        (server.http_url("live/opus.flv"), None),
        (url.clone(), Some("avc1,Opus")),
    ] {
        let r = readback(&read_url, 3, codecs);
        let audio = r["streams"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["type"] == "audio"))
            .unwrap_or_else(|| panic!("no audio in {r}"));
        assert!(
            matches!(audio["codec"].as_str(), Some("opus" | "libopus")),
            "{read_url}: {r}"
        );
        assert_eq!(audio["sample_rate"].as_u64(), Some(48_000), "{r}");
        let decoded = r["frames"][audio["index"].to_string()]
            .as_u64()
            .unwrap_or(0);
        // 3 s of 20 ms packets, less the read's start-up.
        assert!(
            decoded >= 100,
            "{read_url}: {decoded} Opus frames decoded: {r}"
        );
    }
}

/// An HEVC MP4 pushed with `--video file:` through onair: an HTTP-FLV viewer gets the
/// file's hvcC and a run of the file's own HEVC payloads, byte for byte.
#[test]
fn hevc_file_push_through_onair_keeps_its_payloads() {
    let dir = TempDir::new("onair-push-hevc-server");
    let src = dir.path.join("hvc1.mp4");
    make_hevc(&src, "hvc1");
    // The reference: the same push to a file, shown payload-identical to the MP4 above.
    let reference = passthrough(&src, "hevc", true);
    let limits = ParseLimits::default();
    let payloads = |tags: &[Bytes]| -> Vec<(PacketKind, Bytes)> {
        tags.iter()
            .map(|b| {
                let m = parse_video(b, &limits).expect("enhanced video tag");
                assert_eq!(m.packets[0].codec, Codec::Hevc);
                (m.packets[0].kind, m.packets[0].payload.clone())
            })
            .collect()
    };
    let want = payloads(&reference);

    // Viewers are closed as soon as the publisher leaves, so the read below ends.
    let server = ServerProc::start("[hub]\npublisher_grace_ms = 0\n");
    let file_arg = format!("file:{}", src.display());
    let _push = PushProc(
        push_cmd(&[
            &server.rtmp_url("live/hevc"),
            "--video",
            &file_arg,
            "--loop",
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn onair push"),
    );
    server.wait_live("live", "hevc");
    // Read about 3 s (the read timeout ends a stream that is still live).
    let got = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(server.http).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
            .unwrap();
        write!(
            s,
            "GET /live/hevc.flv HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let mut buf = [0u8; 65536];
        while std::time::Instant::now() < deadline {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        raw
    };
    let file = dir.path.join("from-onair.flv");
    let (_, body) = common::split_response(&got).expect("response head");
    std::fs::write(&file, body).unwrap();
    let video: Vec<Bytes> = flv_tags(&file)
        .into_iter()
        .filter(|(t, _)| *t == TAG_VIDEO)
        .map(|(_, b)| b)
        .collect();
    let seen = payloads(&video);
    assert!(seen.len() > 30, "only {} video tags read", seen.len());
    assert_eq!(
        seen[0].0,
        PacketKind::Config,
        "the viewer starts with the hvcC"
    );
    assert_eq!(seen[0].1, want[0].1, "hvcC differs from the file's");
    // Every coded frame the viewer got is one of the file's, in the file's order (it joins
    // at a keyframe, and the file loops).
    let frames: Vec<&Bytes> = want[1..].iter().map(|(_, p)| p).collect();
    let mut at = frames
        .iter()
        .position(|p| **p == seen[1].1)
        .expect("the first frame is one of the file's");
    for (kind, p) in &seen[1..] {
        if *kind == PacketKind::Config {
            assert_eq!(*p, want[0].1, "a repeated hvcC differs");
            continue;
        }
        assert!(*p == *frames[at], "payload {at} of the file differs");
        at = (at + 1) % frames.len();
    }
}
