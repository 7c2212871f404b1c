//! HLS timing and memory: a segment is listed within 100 ms of the keyframe that closes
//! it, and server memory stays flat over 10 minutes of stream time.

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::viewers::SyntheticPublisher;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_is_listed_within_100_ms_of_its_closing_keyframe() {
    let server = ServerProc::start("");
    let publisher = SyntheticPublisher::start(&server.rtmp_url("live/k"), 120).await;
    let (clock, log) = (publisher.clock, publisher.log.clone());

    // The synthetic stream has a keyframe every 60 frames (2 s), so segment k holds frames
    // 60k..60k+59 and is closed by the keyframe 60(k+1).
    let http = server.http;
    let seen = tokio::task::spawn_blocking(move || {
        let mut seen: Vec<(u64, u64)> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(16);
        while Instant::now() < deadline && seen.len() < 6 {
            let (status, body) = http_get(http, "/live/k.m3u8?variant=ts");
            let now = clock.now_ns();
            if status == 200 {
                for line in String::from_utf8_lossy(&body).lines() {
                    if let Some(k) = line.strip_prefix("k-").and_then(|r| r.strip_suffix(".ts")) {
                        let k: u64 = k.parse().unwrap();
                        if !seen.iter().any(|s| s.0 == k) {
                            seen.push((k, now));
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        seen
    })
    .await
    .unwrap();
    publisher.stop().await;

    // The first listing may predate polling; measure the ones we saw appear.
    let delays: Vec<f64> = seen
        .iter()
        .skip(1)
        .map(|&(k, listed)| {
            let closing = log.get(60 * (k + 1)).expect("closing keyframe was sent");
            (listed as f64 - closing as f64) / 1e6
        })
        .collect();
    eprintln!("segment listed after its closing keyframe was sent, ms: {delays:?}");
    assert!(delays.len() >= 4, "saw {} new segments", delays.len());
    for d in &delays {
        assert!(
            *d >= 0.0,
            "listed before its closing keyframe: wrong segment mapping ({d} ms)"
        );
        assert!(
            *d < 100.0,
            "segment listed {d:.1} ms after its closing keyframe"
        );
    }
}

#[test]
fn memory_stays_flat_over_ten_minutes_of_stream() {
    require("ffmpeg");
    let server = ServerProc::start("[hls]\nkeep_after_ms = 1000\n");
    // Ten minutes of stream time at ten times real time.
    let push = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-readrate", "10"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30:duration=600",
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=1000:duration=600"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "60",
            "-c:a",
            "aac",
            "-f",
            "flv",
        ])
        .arg(server.rtmp_url("live/soak"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn ffmpeg");
    let mut push = Proc(push);
    server.wait_live("live", "soak");
    let started = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut last_seq = 0u64;
    let deadline = started + Duration::from_secs(180);
    while matches!(push.0.try_wait(), Ok(None)) {
        assert!(
            Instant::now() < deadline,
            "push of 600 s at 10x did not finish in 180 s"
        );
        samples.push((started.elapsed().as_secs_f64(), server.rss_kib()));
        let (status, body) = http_get(server.http, "/live/soak.m3u8?variant=ts");
        if status == 200 {
            let text = String::from_utf8_lossy(&body).to_string();
            last_seq = media_sequence(&text).unwrap_or(last_seq);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(push.0.wait().unwrap().success(), "ffmpeg push failed");
    // 300 segments of 2 s were cut; the window holds the last 6.
    assert!(last_seq >= 280, "media sequence reached only {last_seq}");
    let n = samples.len();
    assert!(n >= 40, "only {n} samples");
    // After warm-up (the first quarter) the second half must not climb above the second quarter.
    let early = samples[n / 4..n / 2].iter().map(|s| s.1).max().unwrap();
    let late = samples[n / 2..].iter().map(|s| s.1).max().unwrap();
    eprintln!(
        "RSS by eighths: {:?}",
        (1..=8)
            .map(|i| samples[(n * i / 8).min(n - 1)].1)
            .collect::<Vec<_>>()
    );
    eprintln!("server RSS KiB: max over the second quarter {early}, max over the second half {late}; {n} samples; last media sequence {last_seq}");
    assert!(
        late <= early + 4096,
        "RSS grew from {early} KiB to {late} KiB"
    );
}
