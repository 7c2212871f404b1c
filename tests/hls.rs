//! HLS end to end: ffmpeg pushes 720p30 with a 2 s GOP; ffmpeg and ffprobe read the
//! playlist and segments back; the window slides, expired segments go, a returning
//! publisher makes a discontinuity that players play through.

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn playlist(server: &ServerProc, name: &str) -> Option<String> {
    let (status, body) = http_get(server.http, &format!("/live/{name}.m3u8?variant=ts"));
    (status == 200).then(|| String::from_utf8_lossy(&body).to_string())
}

fn segment_uris(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Decodes `seconds` of the URL; returns (video pts list in stream time base, stderr).
fn decode_video(url: &str, seconds: u32) -> (Vec<i64>, String) {
    require("ffmpeg");
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostats",
            "-v",
            "error",
            "-i",
            url,
            "-t",
            &seconds.to_string(),
        ])
        .args([
            "-map",
            "0:v",
            "-fps_mode",
            "passthrough",
            "-f",
            "framemd5",
            "-",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(',').nth(2)?.trim().parse().ok())
        .collect();
    (pts, String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn ffmpeg_plays_hls_without_errors_or_gaps_and_segments_are_two_seconds() {
    let server = ServerProc::start("");
    let _push = ffmpeg_push(&server.rtmp_url("live/h"));
    server.wait_live("live", "h");
    wait_until("3 segments listed", Duration::from_secs(30), || {
        playlist(&server, "h").is_some_and(|p| segment_uris(&p).len() >= 3)
    });

    let (pts, errors) = decode_video(&server.http_url("live/h.m3u8?variant=ts"), 20);
    assert!(errors.trim().is_empty(), "decode errors:\n{errors}");
    assert!(pts.len() >= 570, "decoded {} frames in 20 s", pts.len());
    let mut deltas: Vec<i64> = pts.windows(2).map(|w| w[1] - w[0]).collect();
    deltas.sort();
    let median = deltas[deltas.len() / 2];
    assert!(median > 0);
    let worst = *deltas.last().unwrap();
    assert!(
        worst <= median * 3 / 2,
        "timestamp gap: {worst} against a frame step of {median}"
    );

    // Single segments: h264 + aac, each stream within one frame of 2 s.
    require("ffprobe");
    let text = playlist(&server, "h").unwrap();
    for uri in segment_uris(&text).iter().take(3) {
        let (status, data) = http_get(server.http, &format!("/live/{uri}"));
        assert_eq!(status, 200);
        let dir = TempDir::new("onair-seg");
        let file = dir.path.join("s.ts");
        std::fs::write(&file, &data).unwrap();
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name,duration",
                "-of",
                "csv=p=0",
            ])
            .arg(&file)
            .output()
            .unwrap();
        let streams = String::from_utf8_lossy(&out.stdout).to_string();
        let mut codecs = Vec::new();
        for line in streams.lines().filter(|l| !l.is_empty()) {
            let (codec, dur) = line.split_once(',').unwrap();
            let dur: f64 = dur.parse().unwrap();
            assert!(
                (dur - 2.0).abs() <= 1.0 / 30.0 + 1e-3,
                "{uri}: {codec} lasts {dur} s"
            );
            codecs.push(codec.to_string());
        }
        // ffprobe lists each stream once per program and once on its own.
        codecs.sort();
        codecs.dedup();
        assert_eq!(codecs, vec!["aac", "h264"], "{uri}: {streams}");
    }
}

#[test]
fn window_slides_and_segments_404_after_keep_after() {
    let dir = TempDir::new("onair-hls-dir");
    let server = ServerProc::start(&format!(
        "[hls]\nwindow = 3\nkeep_after_ms = 2000\ndir = {:?}\n",
        dir.path.display().to_string()
    ));
    let on_disk = dir.path.join("live").join("w");
    let _push = ffmpeg_push(&server.rtmp_url("live/w"));
    server.wait_live("live", "w");
    wait_until("window full", Duration::from_secs(30), || {
        playlist(&server, "w").is_some_and(|p| segment_uris(&p).len() == 3)
    });
    let first = playlist(&server, "w").unwrap();
    let seq0 = media_sequence(&first).unwrap_or(0);
    let oldest = segment_uris(&first)[0].clone();
    // Wait for the oldest to leave the playlist; it must still be served right after.
    wait_until("window slides", Duration::from_secs(10), || {
        playlist(&server, "w").is_some_and(|p| media_sequence(&p).unwrap_or(0) > seq0)
    });
    let left_at = Instant::now();
    assert_eq!(
        http_get(server.http, &format!("/live/{oldest}")).0,
        200,
        "kept after leaving"
    );
    // The optional folder mirrors the playlist and the segments.
    let oldest_file = on_disk.join(oldest.trim_start_matches("w-"));
    assert!(
        on_disk.join("index.m3u8").is_file(),
        "playlist written to the hls dir"
    );
    assert!(
        oldest_file.is_file(),
        "segment in the hls dir: {}",
        oldest_file.display()
    );
    wait_until("expired segment 404s", Duration::from_secs(10), || {
        http_get(server.http, &format!("/live/{oldest}")).0 == 404
    });
    assert!(
        left_at.elapsed() >= Duration::from_millis(1500),
        "not kept for keep_after"
    );
    wait_until(
        "expired segment file deleted",
        Duration::from_secs(5),
        || !oldest_file.exists(),
    );
    let later = playlist(&server, "w").unwrap();
    assert!(media_sequence(&later).unwrap_or(0) > seq0);
    assert_eq!(segment_uris(&later).len(), 3);
    assert_eq!(http_get(server.http, "/live/nothing.m3u8").0, 404);
    assert_eq!(http_get(server.http, "/live/w-999999.ts").0, 404);
}

#[test]
fn publisher_return_makes_a_discontinuity_that_ffmpeg_plays_through() {
    let server = ServerProc::start("[hub]\npublisher_grace_ms = 8000\n");
    let push = ffmpeg_push(&server.rtmp_url("live/d"));
    server.wait_live("live", "d");
    wait_until("2 segments", Duration::from_secs(30), || {
        playlist(&server, "d").is_some_and(|p| segment_uris(&p).len() >= 2)
    });
    let url = server.http_url("live/d.m3u8?variant=ts");
    let reader = std::thread::spawn(move || decode_video(&url, 24));
    std::thread::sleep(Duration::from_secs(6));
    drop(push);
    std::thread::sleep(Duration::from_secs(1));
    let _push = ffmpeg_push(&server.rtmp_url("live/d"));
    wait_until("discontinuity in playlist", Duration::from_secs(20), || {
        playlist(&server, "d").is_some_and(|p| p.contains("#EXT-X-DISCONTINUITY\n"))
    });
    let (pts, errors) = reader.join().unwrap();
    assert!(errors.trim().is_empty(), "decode errors:\n{errors}");
    // It played on after the return: well over the 6 s before the break.
    assert!(
        pts.len() >= 30 * 15,
        "only {} frames decoded across the return",
        pts.len()
    );
}

/// Counts packets per stream type that ffmpeg decodes from `url` in `seconds`, and its
/// error output.
fn decode_all_tracks(url: &str, seconds: u32) -> (usize, usize, String) {
    require("ffmpeg");
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-v", "error", "-i", url])
        .args(["-t", &seconds.to_string(), "-map", "0:v", "-map", "0:a"])
        .args(["-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let count = |index: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.split(',').next().map(str::trim) == Some(index))
            .count()
    };
    (
        count("0"),
        count("1"),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn h264_with_mp3_audio_plays_over_hls_with_both_tracks() {
    require("ffmpeg");
    let server = ServerProc::start("");
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100"])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-g", "30"])
        .args(["-c:a", "libmp3lame", "-b:a", "64k", "-f", "flv"])
        .arg(server.rtmp_url("live/mp3"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn ffmpeg");
    let _push = Proc(child);
    server.wait_live("live", "mp3");
    wait_until("2 segments listed", Duration::from_secs(30), || {
        playlist(&server, "mp3").is_some_and(|p| segment_uris(&p).len() >= 2)
    });

    let url = server.http_url("live/mp3.m3u8?variant=ts");
    let mut codecs: Vec<String> = streams(&url)
        .iter()
        .filter_map(|s| s["codec_name"].as_str().map(str::to_string))
        .collect();
    codecs.sort();
    codecs.dedup();
    assert_eq!(codecs, vec!["h264", "mp3"], "HLS carries both tracks");

    let (video, audio, errors) = decode_all_tracks(&url, 4);
    assert!(errors.trim().is_empty(), "decode errors:\n{errors}");
    // 4 s at 30 fps, and MP3 frames of 1152 samples at 44.1 kHz (38 a second); loose.
    assert!(video >= 90, "decoded {video} video frames in 4 s");
    assert!(audio >= 100, "decoded {audio} audio frames in 4 s");
}
