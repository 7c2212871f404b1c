//! Soak: one publisher and 200 mixed viewers (RTMP, HTTP-FLV, HLS) for a while, watching
//! the server's memory with and without viewers, and every viewer's distance to the live
//! edge. CI runs a short version; the full one is
//! `ONAIR_SOAK_SECS=600 cargo test --release --test e2e soak:: -- --nocapture`.

use crate::common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::viewers::{flv_play, rtmp_play, SyntheticPublisher};
use common::*;
use onair_bench::media::{classify_video, VideoTag};
use tokio::sync::watch;

const RTMP_VIEWERS: usize = 80;
const FLV_VIEWERS: usize = 80;
const HLS_VIEWERS: usize = 40;

/// Polls the playlist like a player and fetches each new segment once; counts segments.
async fn hls_client(
    http: std::net::SocketAddr,
    segments: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
) {
    let mut last = String::new();
    while !*stop.borrow() {
        let (status, body) =
            tokio::task::spawn_blocking(move || http_get(http, "/live/soak.m3u8?variant=ts"))
                .await
                .unwrap();
        if status == 200 {
            let text = String::from_utf8_lossy(&body).to_string();
            if let Some(newest) = text.lines().rfind(|l| l.ends_with(".ts")) {
                if newest != last {
                    let path = format!("/live/{newest}");
                    let (s, _) = tokio::task::spawn_blocking(move || http_get(http, &path))
                        .await
                        .unwrap();
                    if s == 200 {
                        segments.fetch_add(1, Ordering::Relaxed);
                    }
                    last = newest.to_string();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_one_publisher_200_mixed_viewers() {
    let secs: u64 = std::env::var("ONAIR_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let server = ServerProc::start("");
    let publisher =
        SyntheticPublisher::start(&server.rtmp_url("live/soak"), secs as usize + 400).await;
    let (clock, log) = (publisher.clock, publisher.log.clone());

    // Warm-up: the GOP cache and the broadcast ring fill within a GOP; the TS window
    // (6 segments of 2 s, then 10 s kept after leaving) reaches its steady size once
    // segments have been leaving it for longer than they are kept, and the fMP4 window (10
    // segments) once its first segment has left.
    let http = server.http;
    let steady = move || {
        let seq = |variant: &str| {
            let (status, body) = http_get(http, &format!("/live/soak.m3u8?variant={variant}"));
            (status == 200)
                .then(|| media_sequence(&String::from_utf8_lossy(&body)))
                .flatten()
                .unwrap_or(0)
        };
        seq("ts") >= 7 && seq("fmp4") >= 1
    };
    tokio::task::spawn_blocking(move || {
        wait_until(
            "the HLS windows at their steady size",
            Duration::from_secs(90),
            steady,
        )
    })
    .await
    .unwrap();
    // Memory with no viewers: an idle server must not keep growing.
    let idle_secs = (secs / 4).clamp(10, 120);
    let mut idle = Vec::new();
    for _ in 0..idle_secs {
        idle.push(server.rss_kib());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let half = idle.len() / 2;
    let (idle_start, idle_end) = (
        idle[..half].iter().max().copied().unwrap_or(0),
        idle[half..].iter().max().copied().unwrap_or(0),
    );

    // 200 viewers; each keeps the send time of the newest frame it received.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut newest: Vec<Arc<AtomicU64>> = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..RTMP_VIEWERS + FLV_VIEWERS {
        let slot = Arc::new(AtomicU64::new(0));
        newest.push(slot.clone());
        let (log, stop, url, http) = (
            log.clone(),
            stop_rx.clone(),
            server.rtmp_url("live/soak"),
            server.http,
        );
        let on = move |m: common::viewers::Media| {
            if let VideoTag::Frame { seq, .. } = classify_video(&m.body) {
                slot.store(log.get(seq).unwrap_or(0), Ordering::Relaxed);
            }
            !*stop.borrow()
        };
        let limit = Duration::from_secs(secs + 60);
        tasks.push(tokio::spawn(async move {
            if i < RTMP_VIEWERS {
                rtmp_play(&url, limit, on).await
            } else {
                flv_play(http, "/live/soak.flv", limit, on).await
            }
        }));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let hls_segments: Vec<Arc<AtomicU64>> = (0..HLS_VIEWERS)
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let hls_tasks: Vec<_> = hls_segments
        .iter()
        .map(|c| tokio::spawn(hls_client(server.http, c.clone(), stop_rx.clone())))
        .collect();

    let started = Instant::now();
    let mut rss = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        rss.push(server.rss_kib());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Every RTMP and FLV viewer is at the live edge: its newest frame was sent within the last second.
    let now = clock.now_ns();
    let behind: Vec<f64> = newest
        .iter()
        .map(|s| (now.saturating_sub(s.load(Ordering::Relaxed))) as f64 / 1e9)
        .collect();
    let worst = behind.iter().cloned().fold(0.0, f64::max);
    let api = server.stream("live", "soak").expect("stream listed");
    // Viewers stop first (each on its next frame), then the publisher.
    let _ = stop_tx.send(true);
    for t in tasks {
        let r = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("viewer stopped")
            .unwrap();
        if let Err(e) = r {
            panic!("a viewer failed during the soak: {e:#}");
        }
    }
    for t in hls_tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("hls client stopped")
            .unwrap();
    }
    publisher.stop().await;
    let n = rss.len();
    let early = rss[..(n / 4).max(1)].iter().max().copied().unwrap_or(0);
    let late = rss[n / 2..].iter().max().copied().unwrap_or(0);
    let min_hls = hls_segments
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .min()
        .unwrap_or(0);
    eprintln!(
        "soak {secs} s: idle RSS max {idle_start} KiB in the first half of {idle_secs} s, {idle_end} KiB in the second; with 200 viewers RSS max {early} KiB in the first quarter, \
         {late} KiB in the second half; worst viewer {worst:.2} s behind the newest frame; viewers in API {}; fewest HLS segments fetched {min_hls}",
        api["viewers"]
    );
    assert!(
        idle_end <= idle_start + 2048,
        "idle RSS grew from {idle_start} to {idle_end} KiB"
    );
    assert!(
        late <= early + 16 * 1024,
        "RSS grew from {early} to {late} KiB under load"
    );
    assert!(
        worst < 1.0,
        "a viewer fell {worst:.2} s behind the live edge"
    );
    assert_eq!(api["viewers"]["rtmp"], RTMP_VIEWERS);
    assert_eq!(api["viewers"]["flv"], FLV_VIEWERS);
    // HLS viewers are counted per client address, and all of these share 127.0.0.1.
    assert_eq!(api["viewers"]["hls"], 1);
    assert!(
        min_hls as f64 >= (secs as f64 / 2.0 / 2.0).floor() - 1.0,
        "an HLS client fetched only {min_hls} segments"
    );
}
