//! Issue 10, done-when 2: FFmpeg 8 (the libraries PyAV bundles, in `.venv-av` from
//! `scripts/install-deps.sh`) publishes fixtures by stream copy and reads them back over RTMP
//! (announcing the codecs in connect) and HTTP-FLV. The fixtures are encoded once into
//! `target/fixtures/` by `tests/peers/fixtures.py`; nothing is encoded live.
//!
//! Today's server carries H.264 + AAC, so that round trip runs here, and HEVC is refused.
//! Each enhanced case becomes one more `RoundTrip` passed to `round_trip` once the server
//! carries it:
//!   (a) `hevc_aac.mp4`, announce `hvc1,mp4a`, video ("hevc", 320, 240), audio ["aac"];
//!   (b) `av1_opus.mkv`, announce `av01,Opus`, video ("av1", 320, 240), audio ["opus"];
//!   (c) `vp9_opus.mkv`, announce `vp09,Opus`, video ("vp9", 320, 240), audio ["opus"];
//!   (d) `h264_aac_aac.mp4`, announce `avc1,mp4a`, audio ["aac"] (players get track 0 only),
//!       plus a check that `/api/streams` lists both audio tracks.
//! The HEVC refusal test then becomes: ffprobe 5.1 plays (a) over RTMP without announcing
//! hvc1 and gets a status naming hevc.
//!
//! Until then, `eflv_rewritten_flv_decodes_in_ffmpeg8` checks the bytes those outputs will
//! send: FFmpeg 8's own Enhanced FLV of each fixture, parsed by `eflv` and written back by
//! `eflv::write` (track 0, no Metadata or Multitrack), must decode in FFmpeg 8.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use onair_shared::Codec;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The venv's Python, checked to carry FFmpeg 8. Fails loudly rather than skipping.
fn python() -> PathBuf {
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let py = Path::new(ROOT).join(".venv-av/bin/python");
            let out = Command::new(&py)
                .args(["-c", "import av; print(av.ffmpeg_version_info)"])
                .output();
            let version = match out {
                Ok(o) if o.status.success() => {
                    String::from_utf8_lossy(&o.stdout).trim().to_string()
                }
                _ => panic!(
                    "{} with PyAV is required: run scripts/install-deps.sh",
                    py.display()
                ),
            };
            assert!(
                version.starts_with('8'),
                "PyAV's FFmpeg is {version}, these tests need FFmpeg 8 (Enhanced FLV v2)"
            );
            py
        })
        .clone()
}

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

fn peer(script: &str) -> Command {
    let mut c = Command::new(python());
    c.arg(Path::new(ROOT).join("tests/peers").join(script));
    c
}

/// The JSON line a peer script printed last.
fn report(out: &Output, what: &str) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "{what}: no JSON report ({e}); stdout {stdout:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
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

/// Reads `url` for `seconds` with FFmpeg 8, decoding; `codecs` is the fourCcList to announce.
fn readback(url: &str, seconds: u32, codecs: Option<&str>) -> serde_json::Value {
    let mut c = peer("readback.py");
    c.arg(url).args(["--seconds", &seconds.to_string()]);
    if let Some(codecs) = codecs {
        c.args(["--codecs", codecs]);
    }
    let out = c.stdin(Stdio::null()).output().expect("run readback.py");
    report(&out, url)
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
fn round_trip(name: &str, case: &RoundTrip) {
    let server = ServerProc::start("");
    // Two loops (16 s) so the stream outlives both 5 s reads with room for a slow start.
    let _publisher = publish(&server, name, case.fixture, 2);
    server.wait_live("live", name);
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
    round_trip("d", &H264_AAC);
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
        ("av1_opus.mkv", ("av1", 320, 240), &["opus"][..]),
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

#[test]
fn ffmpeg8_hevc_publish_is_refused_naming_hevc() {
    let server = ServerProc::start_logged("", "info");
    let started = Instant::now();
    let out = peer("publish.py")
        .arg(server.rtmp_url("live/a"))
        .arg(fixtures().join("hevc_aac.mp4"))
        .stdin(Stdio::null())
        .output()
        .expect("run publish.py");
    let took = started.elapsed();
    let r = report(&out, "hevc publish");
    assert!(
        !out.status.success(),
        "an HEVC publish is not accepted today: {r}"
    );
    assert!(!r["error"].is_null(), "{r}");
    // Refused at the sequence start, not after the 8 s file: a loose bound (3x a second).
    assert!(took < Duration::from_secs(5), "refusal took {took:?}: {r}");
    wait_until(
        "the refusal in the server log",
        Duration::from_secs(5),
        || server.log().contains("unsupported video codec hevc"),
    );
    assert!(
        server.stream("live", "a").is_none_or(|s| s["live"] != true),
        "the refused stream is not live"
    );
}
