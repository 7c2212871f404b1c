//! WebRTC playback over WHEP against real peers on loopback: aiortc (an independent
//! WebRTC stack, `.venv-aiortc` from scripts/install-deps.sh) plays an ffmpeg H.264 + AAC
//! publish with the tone intact while garbage floods the UDP port (and hears the tone of an
//! MP3 publish, transcoded, and of an Opus one, passed through); a viewer that vanishes
//! is dropped by ICE consent; bad offers and the viewer limit get clear statuses.

use crate::common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{http_request, require, wait_until, Proc, ServerProc, TestPush};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// tests/peers/whep_aiortc.py run by `.venv-aiortc`; its JSON report.
fn aiortc(url: &str, extra: &[&str]) -> serde_json::Value {
    let py = Path::new(ROOT).join(".venv-aiortc/bin/python");
    assert!(
        py.exists(),
        "{} is required: run scripts/install-deps.sh",
        py.display()
    );
    let mut child = Command::new(py)
        .arg(Path::new(ROOT).join("tests/peers/whep_aiortc.py"))
        .arg(url)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn aiortc");
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().expect("wait aiortc").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("aiortc viewer did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("aiortc output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("aiortc report ({e}): {stdout:?}"))
}

fn webrtc_viewers(server: &ServerProc, app: &str, name: &str) -> u64 {
    server
        .stream(app, name)
        .and_then(|s| s["viewers"]["webrtc"].as_u64())
        .unwrap_or(0)
}

/// Garbage on the muxed port from another address until `stop`: STUN binding requests
/// naming unknown ufrags, DTLS records, RTP-looking and random bytes.
fn flood(
    port: SocketAddr,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let s = UdpSocket::bind("127.0.0.2:0").expect("bind flood socket");
        let mut i: u32 = 0;
        while !stop.load(Ordering::Relaxed) {
            i = i.wrapping_add(1);
            let mut stun = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
            stun.extend_from_slice(&[i as u8; 12]);
            stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x08]);
            stun.extend_from_slice(format!("{:05x}:zz", i & 0xfffff).as_bytes());
            let dtls = [22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 200, 1, 2, 3];
            let rtp = [0x80u8, 96, 0, 1, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, 9, 9];
            let random: Vec<u8> = (0..64u32).map(|k| (k.wrapping_mul(i) >> 3) as u8).collect();
            for p in [&stun[..], &dtls[..], &rtp[..], &random[..]] {
                if s.send_to(p, port).is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            if i.is_multiple_of(64) {
                // About 25k datagrams a second: a flood, without starving the test of CPU.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    })
}

#[test]
fn aiortc_plays_h264_and_aac_over_whep_through_a_flood_and_a_vanished_viewer_times_out() {
    let server =
        ServerProc::start("[webrtc]\nudp_addr = \"127.0.0.1:0\"\nconsent_timeout_ms = 8000\n");
    let udp = server.webrtc.expect("webrtc port on the listening line");
    let _publisher = TestPush::small()
        .seconds(40)
        .low_delay()
        .start(&server.rtmp_url("live/rtc"));
    server.wait_live("live", "rtc");
    let whep = server.http_url("live/rtc/whep");

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flooder = flood(udp, stop.clone(), sent.clone());
    let r = aiortc(&whep, &["--seconds", "5"]);
    stop.store(true, Ordering::Relaxed);
    flooder.join().expect("flood thread");
    eprintln!(
        "aiortc report: {r}; garbage datagrams sent: {}",
        sent.load(Ordering::Relaxed)
    );
    assert_eq!(r["status"], 201, "WHEP answer: {r}");
    assert!(sent.load(Ordering::Relaxed) > 1000, "the flood ran");
    let frames = r["video_frames"].as_u64().unwrap_or(0);
    assert!(
        frames >= 140,
        "decoded {frames} video frames in 5 s, want >= 140: {r}"
    );
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(r["audio_rate"], 48000);
    let freq = r["audio_freq"].as_f64().unwrap_or(0.0);
    assert!(
        (995.0..=1005.0).contains(&freq),
        "decoded audio at {freq} Hz, want the publisher's 1000 Hz +-5: {r}"
    );
    assert_eq!(r["delete_status"], 200, "DELETE of the WHEP resource");
    wait_until(
        "the deleted viewer is gone",
        Duration::from_secs(10),
        || webrtc_viewers(&server, "live", "rtc") == 0,
    );

    // A viewer that leaves without DELETE (no BYE, no DTLS alert) is dropped once its
    // consent checks stop: 8 s here (aiortc checks about every 5 s), so within 3x that.
    let r = aiortc(&whep, &["--seconds", "1", "--vanish"]);
    assert_eq!(r["status"], 201, "second viewer: {r}");
    assert!(
        r["video_frames"].as_u64().unwrap_or(0) > 0,
        "second viewer played: {r}"
    );
    let gone = Instant::now();
    wait_until(
        "the vanished viewer timed out",
        Duration::from_secs(10),
        || webrtc_viewers(&server, "live", "rtc") == 0,
    );
    eprintln!("vanished viewer dropped after {:?}", gone.elapsed());
    assert!(
        common::http_get(server.http, "/api/streams").0 == 200,
        "server still serves"
    );
}

/// An offer as aiortc 1.16 makes it (recvonly H.264/VP8 video, Opus audio), trimmed to
/// the lines a WHEP server reads; it never connects, so it holds a viewer slot until
/// the connect timeout.
const OFFER: &str = "v=0\r\n\
o=- 4005117346 4005117346 IN IP4 0.0.0.0\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=msid-semantic:WMS *\r\n\
m=video 44758 UDP/TLS/RTP/SAVPF 97 101\r\n\
c=IN IP4 127.0.0.1\r\n\
a=recvonly\r\n\
a=mid:0\r\n\
a=rtcp-mux\r\n\
a=rtpmap:97 VP8/90000\r\n\
a=rtpmap:101 H264/90000\r\n\
a=rtcp-fb:101 nack\r\n\
a=rtcp-fb:101 nack pli\r\n\
a=fmtp:101 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=ice-ufrag:Iv8N\r\n\
a=ice-pwd:yIR7E7SJITaMTMDqisqpfx\r\n\
a=fingerprint:sha-256 71:AF:B4:68:D5:2A:EA:41:C9:90:DE:75:1C:A4:D6:72:BB:49:FC:5F:55:D3:96:4E:57:97:99:E4:05:2B:5A:7D\r\n\
a=setup:actpass\r\n\
m=audio 35737 UDP/TLS/RTP/SAVPF 96 0\r\n\
c=IN IP4 127.0.0.1\r\n\
a=recvonly\r\n\
a=mid:1\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=ice-ufrag:Iv8N\r\n\
a=ice-pwd:yIR7E7SJITaMTMDqisqpfx\r\n\
a=fingerprint:sha-256 71:AF:B4:68:D5:2A:EA:41:C9:90:DE:75:1C:A4:D6:72:BB:49:FC:5F:55:D3:96:4E:57:97:99:E4:05:2B:5A:7D\r\n\
a=setup:actpass\r\n";

/// A POST whose response head is kept: (status, head, body).
fn post_raw(addr: SocketAddr, path: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect http");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write head");
    s.write_all(body).expect("write body");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head");
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head, out[split + 4..].to_vec())
}

fn post(server: &ServerProc, path: &str, body: &[u8]) -> (u16, String) {
    let (status, body) = http_request(
        server.http,
        "POST",
        path,
        &["Content-Type: application/sdp"],
        body,
    );
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn bad_offers_and_offers_past_the_limit_get_clear_statuses() {
    let server = ServerProc::start(
        "[webrtc]\nudp_addr = \"127.0.0.1:0\"\nmax_viewers = 2\nconnect_timeout_ms = 1500\nmax_sdp_bytes = 16384\n",
    );
    let path = "/live/bad/whep";
    let (status, body) = post(&server, path, OFFER.as_bytes());
    assert_eq!(status, 404, "not live yet: {body}");
    let _publisher = TestPush::small()
        .seconds(30)
        .low_delay()
        .start(&server.rtmp_url("live/bad"));
    server.wait_live("live", "bad");

    let (status, body) = post(&server, path, b"v=0\r\nm=video garbage\r\n\x01\x02");
    assert_eq!(status, 400, "malformed SDP: {body}");
    let (status, body) = post(&server, path, &[0xffu8; 300]);
    assert_eq!(status, 400, "binary body: {body}");
    let huge = format!("{OFFER}{}", "a=x-padding:0123456789abcdef\r\n".repeat(2000));
    let (status, body) = post(&server, path, huge.as_bytes());
    assert_eq!(status, 413, "huge SDP: {body}");
    let vp8_only: String = OFFER
        .replace("SAVPF 97 101", "SAVPF 97")
        .lines()
        .filter(|l| !l.contains(":101 "))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let (status, body) = post(&server, path, vp8_only.as_bytes());
    assert_eq!(status, 406, "offer without H.264: {body}");
    assert!(
        body.contains("H.264"),
        "the answer says what is missing: {body}"
    );
    let no_opus = OFFER.replace("opus/48000/2", "G722/8000/1");
    let (status, body) = post(&server, path, no_opus.as_bytes());
    assert_eq!(status, 406, "offer without Opus: {body}");
    assert!(
        body.contains("Opus"),
        "the answer says what is missing: {body}"
    );

    // Two offers fill the limit; the third is refused; once the two time out (they never
    // connect) there is room again.
    for i in 0..2 {
        let (status, body) = post(&server, path, OFFER.as_bytes());
        assert_eq!(status, 201, "offer {i}: {body}");
        assert!(body.contains("a=ice-lite"), "ICE-lite answer: {body}");
        assert!(body.contains("127.0.0.1"), "advertises loopback: {body}");
    }
    let (status, body) = post(&server, path, OFFER.as_bytes());
    assert_eq!(status, 503, "past max_viewers: {body}");
    wait_until(
        "unconnected viewers timed out",
        Duration::from_secs(10),
        || webrtc_viewers(&server, "live", "bad") == 0,
    );
    let (status, body) = post(&server, path, OFFER.as_bytes());
    assert_eq!(status, 201, "room again after the timeouts: {body}");

    // Trickle (PATCH) on a live resource, then DELETE it.
    let (status, head, _) = post_raw(server.http, path, OFFER.as_bytes());
    assert_eq!(status, 201, "second offer: {head}");
    let location = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_string())
        })
        .expect("Location header");
    assert!(
        location.starts_with("/live/bad/whep/"),
        "Location {location}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("access-control-expose-headers: location"),
        "Location is readable cross-origin: {head}"
    );
    let frag = b"a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n";
    let trickle = ["Content-Type: application/trickle-ice-sdpfrag"];
    let (status, _) = http_request(server.http, "PATCH", &location, &trickle, frag);
    assert_eq!(status, 204, "PATCH with a trickled candidate");
    let (status, _) = http_request(server.http, "DELETE", &location, &[], b"");
    assert_eq!(status, 200, "DELETE of the resource");
    let (status, _) = http_request(server.http, "PATCH", &location, &trickle, frag);
    assert_eq!(status, 404, "PATCH after DELETE");

    let (status, _) = http_request(
        server.http,
        "DELETE",
        "/live/bad/whep/nosuchsession",
        &[],
        b"",
    );
    assert_eq!(status, 404, "DELETE of an unknown session");
    let (status, _) = http_request(server.http, "OPTIONS", path, &[], b"");
    assert_eq!(status, 204, "CORS preflight");
    let (status, _) = http_request(server.http, "GET", path, &[], b"");
    assert_eq!(status, 405, "GET on the WHEP endpoint");
}

/// aiortc plays `name` over WHEP for 5 s: at least 140 decoded video frames and the 1 kHz
/// tone (±5 Hz) in the decoded audio.
fn aiortc_plays_with_the_tone(server: &ServerProc, name: &str, source: &str) {
    let r = aiortc(
        &server.http_url(&format!("live/{name}/whep")),
        &["--seconds", "5"],
    );
    eprintln!("aiortc report ({source} source): {r}");
    assert_eq!(r["status"], 201, "WHEP answer: {r}");
    let frames = r["video_frames"].as_u64().unwrap_or(0);
    assert!(frames >= 140, "decoded {frames} video frames in 5 s: {r}");
    let freq = r["audio_freq"].as_f64().unwrap_or(0.0);
    assert!(
        (995.0..=1005.0).contains(&freq),
        "decoded audio at {freq} Hz, want 1000 +-5: {r}"
    );
}

/// An MP3 source is transcoded to Opus like AAC: aiortc hears the tone.
#[test]
fn an_mp3_publish_is_transcoded_to_opus_for_aiortc() {
    // The test pattern with its 1 kHz tone as MP3 (libmp3lame, 44.1 kHz) instead of AAC.
    let server = ServerProc::start("[webrtc]\nudp_addr = \"127.0.0.1:0\"\n");
    let _publisher = TestPush::small()
        .seconds(30)
        .low_delay()
        .output_args(&["-c:a", "libmp3lame", "-b:a", "64k"])
        .start(&server.rtmp_url("live/mp3"));
    server.wait_live("live", "mp3");
    let audio = server
        .stream("live", "mp3")
        .map(|s| s["audio"]["codec"].clone());
    assert_eq!(audio, Some(serde_json::json!("mp3")), "the source is MP3");
    aiortc_plays_with_the_tone(&server, "mp3", "MP3");
}

/// An Opus source (Enhanced RTMP from FFmpeg 8) passes through: H.264 + Opus published by
/// PyAV, played by aiortc with the tone intact.
#[test]
fn an_opus_publish_passes_through_to_aiortc() {
    require("ffmpeg");
    let dir = common::TempDir::new("onair-webrtc-opus");
    let file = dir.path.join("h264_opus.mkv");
    let encoded = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30:duration=8",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=1000:sample_rate=48000:duration=8",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-profile:v",
            "baseline",
        ])
        .args(["-bf", "0", "-g", "30", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "libopus", "-b:a", "64k"])
        .arg(&file)
        .status()
        .expect("run ffmpeg");
    assert!(encoded.success(), "encoding the H.264 + Opus fixture");
    let server = ServerProc::start("[webrtc]\nudp_addr = \"127.0.0.1:0\"\n");
    let _publisher = Proc(
        common::ffmpeg8::peer("publish.py")
            .arg(server.rtmp_url("live/opus"))
            .arg(&file)
            .args(["--loops", "3"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn publish.py"),
    );
    server.wait_live("live", "opus");
    let audio = server
        .stream("live", "opus")
        .map(|s| s["audio"]["codec"].clone());
    assert_eq!(audio, Some(serde_json::json!("opus")), "the source is Opus");
    aiortc_plays_with_the_tone(&server, "opus", "Opus");
}
