//! Done-when 2: ffmpeg pushes the reference 720p30 stream; ffprobe and ffmpeg read it
//! back over RTMP and HTTP-FLV.

use crate::common;

use std::process::Command;

use common::*;

/// `codec,width,height` (or `codec`) of each stream ffprobe finds.
fn probe(url: &str) -> Vec<String> {
    streams(url)
        .iter()
        .map(|s| {
            match (
                s["codec_name"].as_str(),
                s["width"].as_u64(),
                s["height"].as_u64(),
            ) {
                (Some(c), Some(w), Some(h)) => format!("{c},{w},{h}"),
                (c, _, _) => c.unwrap_or("?").to_string(),
            }
        })
        .collect()
}

/// Decodes 5 s and returns (video frames decoded, error output).
fn decode(url: &str) -> (u64, String) {
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-nostats",
            "-rw_timeout",
            "15000000",
            "-i",
            url,
        ])
        .args([
            "-t",
            "5",
            "-map",
            "0:v",
            "-f",
            "null",
            "-progress",
            "pipe:1",
            "-",
        ])
        .output()
        .expect("run ffmpeg");
    let progress = String::from_utf8_lossy(&out.stdout);
    let frames = progress
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .filter_map(|v| v.trim().parse().ok())
        .next_back()
        .unwrap_or(0);
    assert!(out.status.success(), "ffmpeg decode of {url} failed");
    (frames, String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn ffmpeg_reads_back_over_rtmp_and_http_flv() {
    let server = ServerProc::start("");
    let _push = ffmpeg_push(&server.rtmp_url("live/t"));
    server.wait_live("live", "t");

    let info = server.stream("live", "t").unwrap();
    assert_eq!(info["video"]["codec"], "h264");
    assert_eq!(info["video"]["width"], 1280);
    assert_eq!(info["video"]["height"], 720);
    assert_eq!(info["audio"]["codec"], "aac");
    assert_eq!(info["audio"]["sample_rate"], 44100);

    for url in [server.rtmp_url("live/t"), server.http_url("live/t.flv")] {
        let streams = probe(&url);
        assert!(
            streams.contains(&"h264,1280,720".to_string()),
            "{url}: {streams:?}"
        );
        assert!(
            streams.iter().any(|s| s.starts_with("aac")),
            "{url}: {streams:?}"
        );
        assert_eq!(
            streams.len(),
            2,
            "{url}: exactly one video and one audio stream: {streams:?}"
        );

        let (frames, errors) = decode(&url);
        assert!(frames >= 140, "{url}: decoded {frames} video frames in 5 s");
        assert!(errors.trim().is_empty(), "{url}: decode errors:\n{errors}");
    }
}

#[test]
fn unknown_stream_is_404_over_http_and_refused_over_rtmp() {
    let server = ServerProc::start("");
    let (status, body) = http_get(server.http, "/live/nothing.flv");
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("not live"));
    require("ffprobe");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-rw_timeout", "5000000"])
        .arg(server.rtmp_url("live/nothing"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "playing an unknown stream must fail");
}
