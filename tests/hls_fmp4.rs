//! fMP4 (CMAF) HLS and Low-Latency HLS end to end (issue 11). ffmpeg and GStreamer play
//! both variants of an ffmpeg H.264 + AAC publish for 20 s each, all four at once; a raw RTMP publisher, whose frame send times the test knows,
//! measures how soon a blocking reload is answered after the frame that closes its part,
//! and drives the bad-input cases (far-future and garbage queries, more held requests
//! than `hls.max_blocking_requests`, clients leaving while held, a stale stream).

use crate::common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::raw_rtmp::RawRtmp;
use common::*;

const SERVER_TOML: &str = "[hls]\nsegment_duration_ms = 1000\npart_duration_ms = 200\n";

fn get_text(server: &ServerProc, path: &str) -> (u16, String) {
    let (status, body) = http_get(server.http, path);
    (status, String::from_utf8_lossy(&body).to_string())
}

/// One GET; the status and the named response header.
fn header_of(server: &ServerProc, path: &str, name: &str) -> (u16, Option<String>) {
    let mut s = std::net::TcpStream::connect(server.http).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let value = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    });
    (status, value)
}

/// Per stream of a framemd5 dump: (time base in seconds, pts list).
fn framemd5(url: &str, seconds: u32) -> (Vec<(f64, Vec<i64>)>, String) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-v", "error", "-i", url])
        .args(["-t", &seconds.to_string(), "-map", "0:v", "-map", "0:a"])
        .args(["-fps_mode", "passthrough", "-enc_time_base:v", "1/90000"])
        .args(["-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "ffmpeg failed on {url}: {stderr}");
    let mut streams: Vec<(f64, Vec<i64>)> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(tb) = line.strip_prefix("#tb ") {
            // "#tb 0: 1/30"
            let (_, frac) = tb.split_once(':').unwrap();
            let (n, d) = frac.trim().split_once('/').unwrap();
            streams.push((
                n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap(),
                Vec::new(),
            ));
        } else if !line.starts_with('#') {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            let (Some(i), Some(pts)) = (f.first(), f.get(2)) else {
                continue;
            };
            let i: usize = i.parse().unwrap();
            streams[i].1.push(pts.parse().unwrap());
        }
    }
    (streams, stderr)
}

/// Video frames decoded, each step within 1.5 frames; audio present and gap-free.
fn check_decode(url: &str, seconds: u32) {
    let (streams, errors) = framemd5(url, seconds);
    assert!(errors.trim().is_empty(), "{url}: decode errors:\n{errors}");
    assert_eq!(streams.len(), 2, "{url}: video and audio expected");
    let (vtb, vpts) = &streams[0];
    assert!(
        vpts.len() as u32 >= seconds * 30 * 8 / 10,
        "{url}: {} video frames in {seconds} s",
        vpts.len()
    );
    let mut steps: Vec<i64> = vpts.windows(2).map(|w| w[1] - w[0]).collect();
    steps.sort();
    let median = steps[steps.len() / 2];
    assert!(
        (median as f64 * vtb - 1.0 / 30.0).abs() < 0.002,
        "{url}: frame step {median}"
    );
    let worst = *steps.last().unwrap();
    assert!(
        worst * 2 <= median * 3 && steps[0] > 0,
        "{url}: video timestamp step {worst} (and {}) against a frame step of {median}",
        steps[0]
    );
    let (atb, apts) = &streams[1];
    assert!(
        apts.len() as u32 >= seconds * 40,
        "{url}: {} audio frames",
        apts.len()
    );
    let worst = apts.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        worst as f64 * atb <= 1.5 * 1024.0 / 48_000.0,
        "{url}: audio timestamp step {} s",
        worst as f64 * atb
    );
}

/// What an LL-HLS client reads: the init segment, then every part of the playlist's
/// last two complete segments, one by one. ffprobe finds every frame of those 2 s with
/// no gap, and the parts of each segment are its bytes exactly.
fn check_parts(server: &ServerProc, playlist: &str) {
    let mut segments: Vec<(Vec<String>, String, f64)> = Vec::new();
    let mut parts = Vec::new();
    let mut duration = 0.0;
    for line in playlist.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration = d.trim_end_matches(',').parse().unwrap();
        } else if let Some(uri) = line
            .strip_prefix("#EXT-X-PART:")
            .and_then(|l| l.split("URI=\"").nth(1))
            .and_then(|u| u.split('"').next())
        {
            parts.push(uri.to_string());
        } else if line.ends_with(".m4s") && !line.starts_with('#') {
            segments.push((std::mem::take(&mut parts), line.to_string(), duration));
        }
    }
    let last: Vec<_> = segments
        .into_iter()
        .filter(|(p, _, _)| !p.is_empty())
        .rev()
        .take(2)
        .collect();
    assert_eq!(last.len(), 2, "two segments with parts:\n{playlist}");
    let (_, mut bytes) = http_get(server.http, "/live/f-init0.mp4");
    for (parts, segment, _) in last.iter().rev() {
        let mut joined = Vec::new();
        for p in parts {
            let (status, body) = http_get(server.http, &format!("/live/{p}"));
            assert_eq!(status, 200, "{p}");
            joined.extend_from_slice(&body);
        }
        let (_, whole) = http_get(server.http, &format!("/live/{segment}"));
        assert!(joined == whole, "the parts of {segment} are not its bytes");
        bytes.extend_from_slice(&joined);
    }
    let dir = TempDir::new("onair-parts");
    let file = dir.path.join("parts.mp4");
    std::fs::write(&file, bytes).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v"])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    let mut pts: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    pts.sort_by(f64::total_cmp);
    let expected = (last.iter().map(|(_, _, d)| d).sum::<f64>() * 30.0).round() as usize;
    assert_eq!(
        pts.len(),
        expected,
        "frames in the parts of two segments: {pts:?}"
    );
    let worst = pts.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(
        worst < 1.5 / 30.0,
        "a gap of {worst:.3} s in the parts: {pts:?}"
    );
}

/// GStreamer (uridecodebin3: hlsdemux2, qtdemux, avdec) plays `url` for `seconds` less its
/// buffering (tests/peers/gst_play.py, which counts every buffer the sinks get): no error,
/// every video frame, one after the other (no step over 1.5 frames), and audio.
fn check_gstreamer(url: &str, seconds: u32) {
    let out = Command::new("/usr/bin/python3")
        .arg(format!(
            "{}/tests/peers/gst_play.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args([url, &seconds.to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("run tests/peers/gst_play.py (scripts/install-deps.sh installs python3-gi)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "gst_play.py on {url} printed no report ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        report["errors"],
        serde_json::json!([]),
        "GStreamer reported an error on {url}"
    );
    let mut pts: Vec<f64> = report["video_pts"]
        .as_array()
        .expect("video_pts")
        .iter()
        .filter_map(|v| v.as_f64())
        .collect();
    // The prerolled buffer can be counted twice.
    pts.dedup();
    assert!(
        pts.len() >= 45,
        "GStreamer rendered {} video frames of {url}",
        pts.len()
    );
    let frame = 1.0 / 30.0;
    let steps: Vec<(f64, f64)> = pts
        .windows(2)
        .filter(|w| w[1] - w[0] > 1.5 * frame + 0.001 || w[1] <= w[0])
        .map(|w| (w[0], w[1]))
        .collect();
    eprintln!(
        "GStreamer on {url}: {} video frames from {:.3} s, {} audio buffers, steps over 1.5 frames: {steps:?}",
        pts.len(),
        pts[0],
        report["audio_buffers"]
    );
    assert!(
        steps.is_empty(),
        "GStreamer on {url}: steps back or over 1.5 frames: {steps:?}"
    );
    let audio = report["audio_buffers"].as_u64().unwrap_or(0);
    assert!(
        audio >= 30,
        "GStreamer rendered {audio} audio buffers of {url}"
    );
}

/// Issue 11, done-when 2 (20 s each): ffmpeg and GStreamer play the LL-HLS and the plain
/// fMP4 variant of one publish; every segment has a PROGRAM-DATE-TIME; playlists are
/// no-cache and media long-cacheable; the API names the variant and durations.
#[test]
fn ffmpeg_and_gstreamer_play_ll_hls_and_fmp4_of_an_h264_aac_publish() {
    let server = ServerProc::start(SERVER_TOML);
    let _push = TestPush::small()
        .size("320x240")
        .preset("veryfast")
        .start(&server.rtmp_url("live/f"));
    server.wait_live("live", "f");
    wait_until("3 fMP4 segments listed", Duration::from_secs(30), || {
        let (s, t) = get_text(&server, "/live/f.m3u8");
        s == 200 && t.lines().filter(|l| l.ends_with(".m4s")).count() >= 3
    });
    let (_, ll) = get_text(&server, "/live/f.m3u8");
    for tag in [
        "#EXT-X-VERSION:9",
        "#EXT-X-MAP:URI=\"f-init0.mp4\"",
        "#EXT-X-PART-INF:PART-TARGET=0.20000",
        "CAN-BLOCK-RELOAD=YES",
        "#EXT-X-PRELOAD-HINT:TYPE=PART",
        ",INDEPENDENT=YES",
    ] {
        assert!(ll.contains(tag), "{tag} missing:\n{ll}");
    }
    let segments = ll.lines().filter(|l| l.starts_with("#EXTINF")).count();
    let dates = ll
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PROGRAM-DATE-TIME:"))
        .count();
    assert_eq!(segments, dates, "a PROGRAM-DATE-TIME per segment:\n{ll}");
    let (_, plain) = get_text(&server, "/live/f.m3u8?variant=fmp4");
    assert!(
        plain.contains("#EXT-X-VERSION:7") && !plain.contains("#EXT-X-PART"),
        "{plain}"
    );
    assert_eq!(
        header_of(&server, "/live/f.m3u8", "cache-control"),
        (200, Some("no-cache".into()))
    );
    let seg = ll.lines().rfind(|l| l.ends_with(".m4s")).unwrap();
    let (status, cache) = header_of(&server, &format!("/live/{seg}"), "cache-control");
    assert_eq!(status, 200);
    assert!(cache.unwrap_or_default().contains("immutable"));

    // One segment (init + media): the tracks start within a video frame of each other.
    require("ffprobe");
    let dir = TempDir::new("onair-fmp4");
    let file = dir.path.join("seg.mp4");
    let (_, init) = http_get(server.http, "/live/f-init0.mp4");
    let (_, media) = http_get(server.http, &format!("/live/{seg}"));
    std::fs::write(&file, [init, media].concat()).unwrap();
    // Video's first decode time against audio's first: presentation starts later by
    // the B-frame delay, decoding starts together.
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "packet=codec_type,dts_time"])
        .args(["-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    let probed = String::from_utf8_lossy(&out.stdout).to_string();
    let first = |kind: &str| -> f64 {
        probed
            .lines()
            .find_map(|l| l.strip_prefix(kind)?.strip_prefix(',')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {kind} packet: {probed}"))
    };
    let (v0, a0) = (first("video"), first("audio"));
    assert!(
        (v0 - a0).abs() <= 1.0 / 30.0,
        "video decodes from {v0} s, audio from {a0} s"
    );

    check_parts(&server, &ll);
    // The 20 s for each player and variant, the four at once (they are cheap at
    // 320x240) so the test takes about 25 s, not 90.
    let (ll_url, fmp4_url) = (
        server.http_url("live/f.m3u8"),
        server.http_url("live/f.m3u8?variant=fmp4"),
    );
    std::thread::scope(|s| {
        let players = [
            s.spawn(|| check_decode(&ll_url, 20)),
            s.spawn(|| check_decode(&fmp4_url, 20)),
            // About 2 s of buffering before it plays.
            s.spawn(|| check_gstreamer(&ll_url, 23)),
            // Without parts it starts further back and buffers longer.
            s.spawn(|| check_gstreamer(&fmp4_url, 26)),
        ];
        for p in players {
            if let Err(e) = p.join() {
                std::panic::resume_unwind(e);
            }
        }
    });

    // Delta update: by now (well past six 1 s target durations) old segments are skipped.
    let (_, delta) = get_text(&server, "/live/f.m3u8?_HLS_skip=YES");
    assert!(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS="), "{delta}");
    let (_, full) = get_text(&server, "/live/f.m3u8");
    assert!(
        delta
            .lines()
            .filter(|l| l.ends_with(".m4s") && !l.starts_with('#'))
            .count()
            < full
                .lines()
                .filter(|l| l.ends_with(".m4s") && !l.starts_with('#'))
                .count(),
        "the delta update lists fewer segments"
    );

    let s = server.stream("live", "f").expect("listed");
    assert_eq!(s["hls"]["variant"], "auto", "{s}");
    assert_eq!(s["hls"]["default_variant"], "ll-hls", "{s}");
    assert_eq!(s["hls"]["part_duration_ms"], 200, "{s}");
    assert_eq!(s["hls"]["segment_duration_ms"], 1000, "{s}");
    assert_eq!(s["hls"]["ts_available"], true, "{s}");
}

const SPS: [u8; 26] = [
    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
    0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
];
const PPS: [u8; 6] = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

/// A raw RTMP publisher of synthetic 30 fps H.264 (keyframe every 30 frames) whose send
/// times the test reads: `sent[k]` is when frame k left.
struct Publisher {
    sent: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Frames are sent while this is false; true pauses (the connection stays up).
    pause: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Publisher {
    /// `pace` is the wall time between frames (frames are 33 ms apart in media time).
    fn start(server: &ServerProc, name: &str, frames: u32, pace: Duration) -> Publisher {
        let rtmp = server.rtmp;
        let name = name.to_string();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pause = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (sent2, stop2, pause2) = (sent.clone(), stop.clone(), pause.clone());
        let thread = std::thread::spawn(move || {
            let mut c = RawRtmp::connect(rtmp);
            c.handshake();
            c.connect_app("live");
            c.publish(&name);
            let mut seq = vec![0x17, 0, 0, 0, 0];
            seq.extend(
                onair_shared::avc::AvcDecoderConfig::from_parameter_sets(&SPS, &PPS)
                    .unwrap()
                    .to_bytes(),
            );
            c.message(6, 9, 1, 0, &seq);
            let mut next = Instant::now();
            let mut k = 0u32;
            while k < frames && !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                next += pace;
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    // Pacing the publisher, not synchronizing the test.
                    std::thread::sleep(d);
                }
                if pause2.load(std::sync::atomic::Ordering::Relaxed) {
                    continue;
                }
                let key = k.is_multiple_of(30);
                let mut b = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0, 0, 0, 40];
                b.push(if key { 0x65 } else { 0x41 });
                b.extend(std::iter::repeat_n(0x88, 39));
                // Logged just before the write, so an answer can never precede its entry.
                sent2.lock().unwrap().push(Instant::now());
                c.message(6, 9, 1, k * 100 / 3, &b);
                k += 1;
            }
            // Stay connected until told to stop.
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Publisher {
            sent,
            stop,
            pause,
            thread: Some(thread),
        }
    }

    fn sent_at(&self, frame: usize) -> Option<Instant> {
        self.sent.lock().unwrap().get(frame).copied()
    }

    fn sent(&self) -> usize {
        self.sent.lock().unwrap().len()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Issue 11, done-when 4: a blocking reload for the next part is answered soon after the
/// frame that closes that part arrives. Frames are sent at twice real time (parts of
/// 100 ms media time are 50 ms apart) so 100 parts take about 5 s. The target is 50 ms
/// at p99 on loopback; CI asserts 150 ms.
#[test]
fn blocking_reload_is_answered_soon_after_the_closing_frame() {
    let server = ServerProc::start("[hls]\nsegment_duration_ms = 1000\npart_duration_ms = 100\n");
    // 3 frames a part, 30 a segment (10 parts).
    let publisher = Publisher::start(&server, "b", 30 * 12, Duration::from_micros(16_667));
    wait_until("the first part", Duration::from_secs(10), || {
        get_text(&server, "/live/b.m3u8")
            .1
            .contains("b-part0.0.m4s")
    });
    let (mut msn, mut part) = (0u64, 1u64);
    let mut latencies = Vec::new();
    while latencies.len() < 100 {
        let (status, text) = get_text(
            &server,
            &format!("/live/b.m3u8?_HLS_msn={msn}&_HLS_part={part}"),
        );
        let answered = Instant::now();
        assert_eq!(status, 200, "{text}");
        assert!(
            text.contains(&format!("b-part{msn}.{part}.m4s")),
            "part {msn}.{part} missing:\n{text}"
        );
        // Part (msn, part) closes at the first frame of the next part.
        let closing = msn as usize * 30 + (part as usize + 1) * 3;
        let sent = publisher
            .sent_at(closing)
            .expect("answered before the frame closing the part was sent");
        latencies.push(answered.saturating_duration_since(sent));
        part += 1;
        if part == 10 {
            (msn, part) = (msn + 1, 0);
        }
    }
    latencies.sort();
    let p50 = latencies[50];
    let p99 = latencies[98];
    eprintln!(
        "blocking reload after the closing frame: p50 {p50:?}, p99 {p99:?}, max {:?}",
        latencies[99]
    );
    assert!(
        p99 <= Duration::from_millis(150),
        "p99 {p99:?} (p50 {p50:?})"
    );
    drop(publisher);
}

/// Sends a GET and leaves the connection open; returns the socket.
fn send_get(server: &ServerProc, path: &str) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(server.http).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    s
}

fn metric(server: &ServerProc, name: &str) -> Option<f64> {
    let (_, text) = get_text(server, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Issue 11, done-when 7: bad blocking requests get a clear status at once, the held ones
/// are bounded by `hls.max_blocking_requests`, clients that leave while held are let go,
/// and rounds of them leave no memory behind; a stale stream answers 404 at once.
#[test]
fn bad_blocking_requests_get_clear_statuses_and_leave_no_memory() {
    let server = ServerProc::start(
        "[hls]\nsegment_duration_ms = 1000\npart_duration_ms = 200\nmax_blocking_requests = 200\nblocking_timeout_ms = 20000\n",
    );
    let publisher = Publisher::start(&server, "x", 100_000, Duration::from_millis(33));
    wait_until("a complete segment", Duration::from_secs(10), || {
        get_text(&server, "/live/x.m3u8").1.contains("x-seg0.m4s")
    });
    for (query, want) in [
        ("_HLS_msn=99999999", "past the last segment"),
        ("_HLS_msn=-1", "non-negative"),
        ("_HLS_msn=abc", "non-negative"),
        ("_HLS_msn=18446744073709551616", "non-negative"),
        ("_HLS_msn=1&_HLS_part=1.5", "non-negative"),
        ("_HLS_part=1", "without _HLS_msn"),
        ("_HLS_msn=1&_HLS_msn=2", "more than once"),
        ("_HLS_skip=maybe", "neither YES nor v2"),
    ] {
        let t = Instant::now();
        let (status, text) = get_text(&server, &format!("/live/x.m3u8?{query}"));
        assert_eq!(status, 400, "{query}: {text}");
        assert!(text.contains(want), "{query}: {text}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{query} took {:?}",
            t.elapsed()
        );
    }
    let (_, text) = get_text(&server, "/live/x.m3u8");
    let hint_msn = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"x-part"))
        .and_then(|r| r.split('.').next())
        .expect("a preload hint")
        .to_string();
    let (status, text) = get_text(
        &server,
        &format!("/live/x.m3u8?_HLS_msn={hint_msn}&_HLS_part=99999"),
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("parts ahead"), "{text}");
    assert_eq!(get_text(&server, "/live/x-part99999.0.m4s").0, 400);
    assert_eq!(get_text(&server, "/live/x-seg99999.m4s").0, 404);
    assert_eq!(get_text(&server, "/live/x-init7.mp4").0, 404);

    // Hold requests for a part while the publisher pauses: 200 are held, the rest get
    // 503 at once; then every client leaves, and the server lets go of all of them.
    publisher
        .pause
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = 6;
    let mut rss = Vec::new();
    for round in 0..rounds {
        let (_, text) = get_text(&server, "/live/x.m3u8");
        let hint = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"x-part"))
            .and_then(|r| r.strip_suffix(".m4s\""))
            .expect("a preload hint")
            .to_string();
        let (m, p) = hint.split_once('.').unwrap();
        let path = format!("/live/x.m3u8?_HLS_msn={m}&_HLS_part={p}");
        let mut held: Vec<std::net::TcpStream> = Vec::new();
        for i in 0..200 {
            // Half the playlists, half the hinted part itself.
            let p = if i % 2 == 0 {
                path.clone()
            } else {
                format!("/live/x-part{hint}.m4s")
            };
            held.push(send_get(&server, &p));
        }
        wait_until("200 requests held", Duration::from_secs(20), || {
            metric(&server, "onair_hls_blocking_requests") == Some(200.0)
        });
        for _ in 0..50 {
            let t = Instant::now();
            let (status, text) = get_text(&server, &path);
            assert_eq!(status, 503, "past the limit: {text}");
            assert!(text.contains("max_blocking_requests"), "{text}");
            assert!(t.elapsed() < Duration::from_secs(1));
        }
        drop(held);
        wait_until("held clients let go", Duration::from_secs(10), || {
            metric(&server, "onair_hls_blocking_requests") == Some(0.0)
        });
        rss.push(server.rss_kib());
        eprintln!("round {round}: server RSS {} KiB", rss[round]);
    }
    // The first rounds warm the allocator up (measured: RSS levels off from round 3 on).
    assert!(
        rss[rounds - 1] <= rss[2] + 4 * 1024,
        "RSS grew across rounds of held clients: {rss:?} KiB"
    );

    // The publisher resumes: a held request is answered as soon as its part exists.
    let (_, text) = get_text(&server, "/live/x.m3u8");
    let next = text
        .lines()
        .rfind(|l| l.contains("PRELOAD-HINT"))
        .unwrap()
        .to_string();
    let mut waiting = send_get(
        &server,
        &format!("/live/{}", next.split('"').nth(1).unwrap()),
    );
    wait_until("the part request held", Duration::from_secs(10), || {
        metric(&server, "onair_hls_blocking_requests") == Some(1.0)
    });
    publisher
        .pause
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let mut head = [0u8; 12];
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    waiting.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    // The publisher leaves: what would come next is 404 at once, not a hang.
    let sent = publisher.sent();
    drop(publisher);
    wait_until("the publisher gone", Duration::from_secs(10), || {
        server
            .stream("live", "x")
            .is_none_or(|s| s["live"] == false)
    });
    let (_, text) = get_text(&server, "/live/x.m3u8");
    let last_msn = text
        .lines()
        .rev()
        .find_map(|l| {
            l.strip_prefix("x-seg")?
                .strip_suffix(".m4s")?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    let t = Instant::now();
    let (status, body) = get_text(
        &server,
        &format!("/live/x.m3u8?_HLS_msn={}&_HLS_part=0", last_msn + 1),
    );
    assert_eq!(status, 404, "after {sent} frames: {body}");
    assert!(t.elapsed() < Duration::from_secs(1));
}
