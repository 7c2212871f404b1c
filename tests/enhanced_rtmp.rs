//! Issue 10, done-when 2 and 3: FFmpeg 8 (the libraries PyAV bundles, in `.venv-av` from
//! `scripts/install-deps.sh`) publishes fixtures by stream copy and reads them back over RTMP
//! (announcing the codecs in connect) and HTTP-FLV. The fixtures are encoded once into
//! `target/fixtures/` by `tests/peers/fixtures.py`; nothing is encoded live.
//!
//! Round trips: (a) HEVC + AAC, (b) AV1 + Opus, (c) VP9 + Opus, (d) H.264 + AAC plus a
//! second AAC track (Multitrack: players get track 0, `/api/streams` lists both), and plain
//! H.264 + AAC. ffprobe 5.1, which announces no FourCC, gets `NetStream.Play.Failed` naming
//! hevc. HLS: (a) plays over MPEG-TS HLS; (b) gets a 404 saying TS cannot carry AV1/Opus.
//!
//! `eflv_rewritten_flv_decodes_in_ffmpeg8` checks the `eflv` writer on its own: FFmpeg 8's
//! Enhanced FLV of each fixture, parsed and written back (track 0, no Metadata or
//! Multitrack), must decode in FFmpeg 8.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::ffmpeg8::{peer, readback};
use common::*;
use onair_shared::Codec;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Encodes the fixtures on first use (Debian's ffmpeg) and returns their directory.
fn fixtures() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        require("ffmpeg");
        let dir = Path::new(ROOT).join("target/fixtures");
        let status = Command::new("python3")
            .arg(Path::new(ROOT).join("tests/peers/fixtures.py"))
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .expect("run fixtures.py");
        assert!(status.success(), "fixtures.py failed");
        dir
    })
    .clone()
}

/// Publishes `fixture` in real time, `loops` times over, until it ends or is killed.
fn publish(server: &ServerProc, name: &str, fixture: &str, loops: u32) -> Proc {
    let child = peer("publish.py")
        .arg(server.rtmp_url(&format!("live/{name}")))
        .arg(fixtures().join(fixture))
        .args(["--loops", &loops.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn publish.py");
    Proc(child)
}

/// One stream to publish and what every reader must see.
struct RoundTrip {
    fixture: &'static str,
    /// The fourCcList an RTMP reader announces.
    announce: &'static str,
    video: (&'static str, u64, u64),
    audio: &'static [&'static str],
}

const H264_AAC: RoundTrip = RoundTrip {
    fixture: "h264_aac.mp4",
    announce: "avc1,mp4a",
    video: ("h264", 320, 240),
    audio: &["aac"],
};

/// At least 140 video frames decoded in 5 s (30 fps; the GOP cache gives a head start).
const MIN_FRAMES_IN_5S: u64 = 140;

fn check_readback(r: &serde_json::Value, case: &RoundTrip) {
    assert!(r["error"].is_null(), "read failed: {r}");
    assert_eq!(
        r["decode_errors"],
        serde_json::json!([]),
        "decode errors: {r}"
    );
    assert_eq!(
        r["log_errors"],
        serde_json::json!([]),
        "FFmpeg logged errors: {r}"
    );
    let streams = r["streams"].as_array().expect("streams");
    let video: Vec<_> = streams.iter().filter(|s| s["type"] == "video").collect();
    assert_eq!(video.len(), 1, "one video stream: {r}");
    let (codec, w, h) = case.video;
    assert_eq!(video[0]["codec"], codec, "{r}");
    assert_eq!(
        (video[0]["width"].as_u64(), video[0]["height"].as_u64()),
        (Some(w), Some(h)),
        "{r}"
    );
    let audio: Vec<_> = streams
        .iter()
        .filter(|s| s["type"] == "audio")
        .map(|s| s["codec"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(audio, case.audio, "{r}");
    let video_index = video[0]["index"].to_string();
    let decoded = r["frames"][&video_index].as_u64().unwrap_or(0);
    assert!(
        decoded >= MIN_FRAMES_IN_5S,
        "{decoded} video frames decoded in 5 s: {r}"
    );
    for s in streams {
        let n = r["frames"][&s["index"].to_string()].as_u64().unwrap_or(0);
        assert!(n > 0, "stream {} decoded nothing: {r}", s["index"]);
    }
}

/// Publishes the case, then reads it back over RTMP and HTTP-FLV at the same time.
fn round_trip(name: &str, case: &RoundTrip, also: impl FnOnce(&ServerProc)) {
    let server = ServerProc::start("");
    // Two loops (16 s) so the stream outlives both 5 s reads with room for a slow start.
    let _publisher = publish(&server, name, case.fixture, 2);
    server.wait_live("live", name);
    read_back_both(&server, name, case);
    also(&server);
}

/// Reads `live/{name}` of `server` back over RTMP and HTTP-FLV at the same time, and checks
/// both against the case.
fn read_back_both(server: &ServerProc, name: &str, case: &RoundTrip) {
    let rtmp_url = server.rtmp_url(&format!("live/{name}"));
    let announce = case.announce;
    let rtmp = std::thread::spawn(move || readback(&rtmp_url, 5, Some(announce)));
    let flv = readback(&server.http_url(&format!("live/{name}.flv")), 5, None);
    let rtmp = rtmp.join().expect("rtmp readback thread");
    eprintln!("{name} over RTMP: {rtmp}\n{name} over HTTP-FLV: {flv}");
    check_readback(&rtmp, case);
    check_readback(&flv, case);
}

#[test]
fn ffmpeg8_h264_aac_round_trip_over_rtmp_and_http_flv() {
    round_trip("d", &H264_AAC, |_| {});
}

/// FFmpeg 8's FLV of `fixture`, every message through `eflv` parse and write, track 0 only.
fn rewrite_through_eflv(fixture: &str, dir: &Path) -> (PathBuf, usize) {
    use onair_shared::eflv::{parse_audio, parse_video, write, ParseLimits};
    use onair_shared::flv::{encode_tag, header, FlvDemuxer, FlvEvent, TAG_AUDIO, TAG_VIDEO};

    let ffmpeg_flv = dir.join(format!("{fixture}.flv"));
    let out = peer("remux_flv.py")
        .arg(fixtures().join(fixture))
        .arg(&ffmpeg_flv)
        .output()
        .expect("run remux_flv.py");
    assert!(
        out.status.success(),
        "remux_flv.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut demux = FlvDemuxer::new(1 << 24);
    demux.push(&std::fs::read(&ffmpeg_flv).expect("read FFmpeg's FLV"));
    let mut flv = header(true, true).to_vec();
    let limits = ParseLimits::default();
    let mut packets = 0;
    while let Some(ev) = demux.next_event().expect("FFmpeg's FLV demuxes") {
        let FlvEvent::Tag(tag) = ev else { continue };
        let bodies = match tag.tag_type {
            TAG_VIDEO => {
                let m = parse_video(&tag.body, &limits).expect("FFmpeg's video tag parses");
                m.packets
                    .iter()
                    .filter(|p| p.track == 0)
                    .map(|p| {
                        write::video_body(
                            p.codec,
                            p.kind,
                            p.keyframe,
                            p.composition_offset_ms,
                            &p.payload,
                        )
                        .expect("video body")
                    })
                    .collect()
            }
            TAG_AUDIO => {
                let m = parse_audio(&tag.body, &limits).expect("FFmpeg's audio tag parses");
                m.packets
                    .iter()
                    .filter(|p| p.track == 0)
                    .map(|p| {
                        write::audio_body(p.codec, p.kind, m.legacy, &p.payload)
                            .expect("audio body")
                    })
                    .collect()
            }
            _ => vec![tag.body.clone()],
        };
        for body in bodies {
            flv.extend_from_slice(&encode_tag(tag.tag_type, tag.timestamp, &body));
            packets += 1;
        }
    }
    let path = dir.join(format!("{fixture}.eflv.flv"));
    std::fs::write(&path, flv).expect("write rewritten FLV");
    (path, packets)
}

#[test]
fn eflv_rewritten_flv_decodes_in_ffmpeg8() {
    let dir = TempDir::new("onair-eflv");
    let cases = [
        ("hevc_aac.mp4", ("hevc", 320, 240), &["aac"][..]),
        ("av1_opus_aom.mkv", ("av1", 320, 240), &["opus"][..]),
        ("vp9_opus.mkv", ("vp9", 320, 240), &["opus"][..]),
        // The second AAC track is Multitrack on the wire: only track 0 is written back.
        ("h264_aac_aac.mp4", ("h264", 320, 240), &["aac"][..]),
    ];
    for (fixture, video, audio) in cases {
        let (path, packets) = rewrite_through_eflv(fixture, &dir.path);
        assert!(packets > 500, "{fixture}: {packets} packets written");
        // A file reads to its end; 8 s at 30 fps is 240 frames, less the reorder delay.
        let r = readback(path.to_str().expect("utf-8 path"), 60, None);
        eprintln!("{fixture} rewritten: {r}");
        let case = RoundTrip {
            fixture,
            announce: "",
            video,
            audio,
        };
        check_readback(&r, &case);
        let decoded = r["frames"]["0"].as_u64().unwrap_or(0);
        assert!(
            decoded >= 230,
            "{fixture}: {decoded} of 240 video frames decoded: {r}"
        );
    }
}

/// What FFmpeg 8 announces when it plays with `rtmp_enhanced_codecs`: a listener on loopback
/// answers the plain handshake, takes the connect command and reads it with `ClientCaps`,
/// the parser the server's play side uses to decide which codecs a player gets.
#[test]
fn ffmpeg8_player_announces_fourccs_that_client_caps_reads() {
    use onair_shared::eflv::connect::ClientCaps;
    use rml_amf0::Amf0Value;
    use std::io::{Read, Write};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("rtmp://{}/live/x", listener.local_addr().expect("addr"));
    let player = std::thread::spawn(move || readback(&url, 1, Some("hvc1,av01,Opus")));
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let mut accepted = None;
    wait_until("FFmpeg to connect", Duration::from_secs(15), || {
        accepted = listener.accept().ok();
        accepted.is_some()
    });
    let (mut s, _) = accepted.expect("accepted");
    s.set_nonblocking(false).expect("blocking stream");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut c0c1 = [0u8; 1537];
    s.read_exact(&mut c0c1).expect("C0+C1");
    // S0, then S1 with a zero version (so FFmpeg skips digest checks), then S2 = C1.
    let mut reply = vec![3u8];
    reply.extend_from_slice(&[0u8; 8]);
    reply.extend((0..1528).map(|i| (i * 7) as u8));
    reply.extend_from_slice(&c0c1[1..]);
    s.write_all(&reply).expect("S0+S1+S2");
    let mut c2 = [0u8; 1536];
    s.read_exact(&mut c2).expect("C2");
    // The connect command on chunk stream 3: a type-0 header, then 128-byte chunks joined
    // by one-byte type-3 headers.
    let mut header = [0u8; 12];
    s.read_exact(&mut header).expect("connect chunk header");
    assert_eq!(header[0] & 0x3f, 3, "connect on chunk stream 3");
    assert_eq!(header[7], 20, "an AMF0 command message");
    let len = u32::from_be_bytes([0, header[4], header[5], header[6]]) as usize;
    let mut payload = Vec::with_capacity(len);
    while payload.len() < len {
        if !payload.is_empty() {
            let mut h = [0u8; 1];
            s.read_exact(&mut h).expect("continuation header");
            assert_eq!(h[0], 0xc3, "type-3 continuation on chunk stream 3");
        }
        let mut chunk = vec![0u8; (len - payload.len()).min(128)];
        s.read_exact(&mut chunk).expect("connect chunk");
        payload.extend_from_slice(&chunk);
    }
    drop(s);
    let _ = player.join();
    let values = rml_amf0::deserialize(&mut std::io::Cursor::new(&payload)).expect("AMF0");
    assert_eq!(values[0], Amf0Value::Utf8String("connect".into()));
    let Some(Amf0Value::Object(obj)) = values.get(2) else {
        panic!("no command object: {values:?}")
    };
    let caps = ClientCaps::from_connect_object(obj);
    assert!(caps.is_enhanced());
    assert_eq!(caps.fourcc_list, vec![*b"hvc1", *b"av01", *b"Opus"]);
    assert!(caps.accepts(Codec::Hevc) && caps.accepts(Codec::Av1) && caps.accepts(Codec::Opus));
    assert!(!caps.accepts(Codec::Vp9) && !caps.accepts(Codec::Flac));
}

const HEVC_AAC: RoundTrip = RoundTrip {
    fixture: "hevc_aac.mp4",
    announce: "hvc1,mp4a",
    video: ("hevc", 320, 240),
    audio: &["aac"],
};

const AV1_OPUS: RoundTrip = RoundTrip {
    fixture: "av1_opus_aom.mkv",
    announce: "av01,Opus",
    video: ("av1", 320, 240),
    audio: &["opus"],
};

const VP9_OPUS: RoundTrip = RoundTrip {
    fixture: "vp9_opus.mkv",
    announce: "vp09,Opus",
    video: ("vp9", 320, 240),
    audio: &["opus"],
};

/// Players get track 0 only: one audio stream.
const H264_AAC_AAC: RoundTrip = RoundTrip {
    fixture: "h264_aac_aac.mp4",
    announce: "avc1,mp4a",
    video: ("h264", 320, 240),
    audio: &["aac"],
};

#[test]
fn ffmpeg8_hevc_aac_round_trip_over_rtmp_and_http_flv() {
    round_trip("a", &HEVC_AAC, |server| {
        let s = server.stream("live", "a").expect("listed");
        assert_eq!(s["video"]["codec"], "hevc", "{s}");
        assert_eq!(s["video"]["profile"], "Main", "{s}");
        assert_eq!(s["video"]["width"], 320, "{s}");
        assert!(
            s["video"]["codec_string"]
                .as_str()
                .is_some_and(|c| c.starts_with("hvc1.1.")),
            "{s}"
        );
        assert_eq!(s["audio"]["codec"], "aac", "{s}");
    });
}

#[test]
fn ffmpeg8_av1_opus_round_trip_over_rtmp_and_http_flv() {
    round_trip("b", &AV1_OPUS, |_| {});
}

/// An edge relays Enhanced RTMP codecs too: its pull (whose RTMP client cannot announce a
/// fourCcList) is sent AV1 and Opus by the origin, and the edge's own players get them.
#[test]
fn an_edge_relays_av1_opus_from_its_origin() {
    let origin = ServerProc::start("");
    let _publisher = publish(&origin, "e", AV1_OPUS.fixture, 2);
    origin.wait_live("live", "e");
    let edge = ServerProc::start(&format!(
        "[cluster]\norigins = [\"rtmp://{}\"]\n",
        origin.rtmp
    ));
    read_back_both(&edge, "e", &AV1_OPUS);
    let s = edge.stream("live", "e").expect("listed on the edge");
    assert_eq!(s["video"]["codec"], "av1", "{s}");
    assert_eq!(s["audio"]["codec"], "opus", "{s}");
}

#[test]
fn ffmpeg8_vp9_opus_round_trip_over_rtmp_and_http_flv() {
    round_trip("c", &VP9_OPUS, |server| {
        // vpcC has no picture size: the API's comes from the first keyframe's header.
        let s = server.stream("live", "c").expect("listed");
        assert_eq!(s["video"]["codec"], "vp9", "{s}");
        assert_eq!(
            (s["video"]["width"].as_u64(), s["video"]["height"].as_u64()),
            (Some(320), Some(240)),
            "{s}"
        );
        assert_eq!(s["video"]["profile"], "Profile 0", "{s}");
        assert!(s["video"]["fps"].as_f64().is_some_and(|f| f > 10.0), "{s}");
    });
}

#[test]
fn ffmpeg8_multitrack_round_trip_serves_track_0_and_lists_both_audio_tracks() {
    round_trip("d2", &H264_AAC_AAC, |server| {
        let s = server.stream("live", "d2").expect("stream in /api/streams");
        let tracks = s["tracks"].as_array().expect("tracks list");
        let audio: Vec<_> = tracks
            .iter()
            .filter(|t| t["kind"] == "audio")
            .map(|t| (t["track"].as_u64(), t["codec"].as_str()))
            .collect();
        assert_eq!(
            audio,
            vec![(Some(0), Some("aac")), (Some(1), Some("aac"))],
            "{s}"
        );
        assert!(tracks
            .iter()
            .any(|t| t["kind"] == "video" && t["codec"] == "h264" && t["width"] == 320));
    });
}

/// ffprobe 5.1 announces no FourCC: playing HEVC over RTMP fails cleanly, naming hevc,
/// and the server says why in its log.
#[test]
fn legacy_player_gets_a_clean_failure_naming_hevc() {
    require("ffprobe");
    let server = ServerProc::start_logged("", "info");
    let _publisher = publish(&server, "a", HEVC_AAC.fixture, 2);
    server.wait_live("live", "a");
    let started = Instant::now();
    let out = Command::new("ffprobe")
        .args(["-hide_banner", "-v", "info", "-rw_timeout", "10000000"])
        .arg(server.rtmp_url("live/a"))
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "ffprobe 5.1 must not play HEVC: {stderr}"
    );
    assert!(
        stderr.contains("codec hevc was not announced"),
        "the server's status names hevc: {stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a clean failure, not a timeout: {stderr}"
    );
    wait_until("the refusal in the log", Duration::from_secs(5), || {
        server.log().contains("codec hevc was not announced")
    });
}

/// Done-when 3: (a) HEVC + AAC plays over HLS (MPEG-TS, HEVC as stream type 0x24) in FFmpeg
/// with both tracks and no decode error; `/api/streams` says HLS is available.
#[test]
fn ffmpeg8_hevc_aac_plays_over_hls_with_both_tracks() {
    let server = ServerProc::start("");
    let _publisher = publish(&server, "ha", HEVC_AAC.fixture, 2);
    server.wait_live("live", "ha");
    wait_until("2 HLS segments listed", Duration::from_secs(30), || {
        let (status, body) = http_get(server.http, "/live/ha.m3u8?variant=ts");
        status == 200
            && String::from_utf8_lossy(&body)
                .lines()
                .filter(|l| l.ends_with(".ts") || l.contains(".ts?"))
                .count()
                >= 2
    });
    let r = readback(&server.http_url("live/ha.m3u8?variant=ts"), 4, None);
    eprintln!("hevc over HLS: {r}");
    assert!(r["error"].is_null(), "{r}");
    assert_eq!(r["decode_errors"], serde_json::json!([]), "{r}");
    assert_eq!(r["log_errors"], serde_json::json!([]), "{r}");
    let streams = r["streams"].as_array().expect("streams");
    let codecs: Vec<_> = streams.iter().map(|s| s["codec"].as_str()).collect();
    assert_eq!(codecs, vec![Some("hevc"), Some("aac")], "{r}");
    assert_eq!(
        (streams[0]["width"].as_u64(), streams[0]["height"].as_u64()),
        (Some(320), Some(240))
    );
    // A live HLS read gets the segments listed (several seconds) at once; loose bounds.
    for s in streams {
        let n = r["frames"][&s["index"].to_string()].as_u64().unwrap_or(0);
        assert!(n >= 30, "stream {} decoded {n} frames: {r}", s["index"]);
    }
    let s = server.stream("live", "ha").expect("listed");
    assert_eq!(s["hls"]["available"], true, "{s}");
    assert_eq!(s["video"]["codec"], "hevc", "{s}");
    assert_eq!(s["video"]["profile"], "Main", "{s}");
}

/// (b) AV1 + Opus: TS cannot carry them, so the `.m3u8` answers 404 saying so, and the API
/// lists HLS as unavailable with the reason, with the real codecs and size.
#[test]
fn av1_opus_stream_says_hls_cannot_carry_it() {
    let server = ServerProc::start("");
    let _publisher = publish(&server, "hb", AV1_OPUS.fixture, 1);
    server.wait_live("live", "hb");
    wait_until("the AV1 configuration", Duration::from_secs(10), || {
        server
            .stream("live", "hb")
            .is_some_and(|s| s["video"]["codec"] == "av1" && s["audio"]["codec"] == "opus")
    });
    let (status, body) = http_get(server.http, "/live/hb.m3u8?variant=ts");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("MPEG-TS") && body.contains("av1"), "{body}");
    let s = server.stream("live", "hb").expect("listed");
    assert_eq!(s["hls"]["ts_available"], false, "{s}");
    assert!(
        s["hls"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("av1 or opus"),
        "{s}"
    );
    assert_eq!(
        (s["video"]["width"].as_u64(), s["video"]["height"].as_u64()),
        (Some(320), Some(240)),
        "{s}"
    );
    assert!(
        s["video"]["codec_string"]
            .as_str()
            .unwrap_or_default()
            .starts_with("av01."),
        "{s}"
    );
    assert_eq!(s["audio"]["codec_string"], "opus", "{s}");
    assert_eq!(s["audio"]["sample_rate"], 48000, "{s}");
}

/// Issue 11, done-when 3: AV1 + Opus plays over fMP4 HLS (the default `.m3u8`, LL-HLS, and
/// `?variant=fmp4`) in FFmpeg 8, both tracks decoded without an error.
#[test]
fn av1_opus_plays_over_fmp4_hls() {
    let server = ServerProc::start("[hls]\nsegment_duration_ms = 1000\n");
    let _publisher = publish(&server, "hf", AV1_OPUS.fixture, 2);
    server.wait_live("live", "hf");
    wait_until("2 fMP4 segments listed", Duration::from_secs(30), || {
        let (status, body) = http_get(server.http, "/live/hf.m3u8");
        status == 200
            && String::from_utf8_lossy(&body)
                .lines()
                .filter(|l| l.ends_with(".m4s") && !l.starts_with('#'))
                .count()
                >= 2
    });
    for path in ["live/hf.m3u8", "live/hf.m3u8?variant=fmp4"] {
        let r = readback(&server.http_url(path), 3, None);
        eprintln!("av1 + opus over {path}: {r}");
        assert!(r["error"].is_null(), "{r}");
        assert_eq!(r["decode_errors"], serde_json::json!([]), "{r}");
        assert_eq!(r["log_errors"], serde_json::json!([]), "{r}");
        let streams = r["streams"].as_array().expect("streams");
        let codecs: Vec<_> = streams.iter().map(|s| s["codec"].as_str()).collect();
        assert_eq!(codecs, vec![Some("av1"), Some("opus")], "{r}");
        for s in streams {
            let n = r["frames"][&s["index"].to_string()].as_u64().unwrap_or(0);
            assert!(n >= 30, "stream {} decoded {n} frames: {r}", s["index"]);
        }
    }
}
