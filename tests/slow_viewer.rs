//! Done-when 4: viewers that stop reading do not stall the others (delivery continues,
//! latency unchanged), the server's memory stays bounded while they hang, and they are
//! dropped after the write timeout. Every viewer here is on plain TCP with the FLV GET or
//! the RTMP play as its connection's first request, so the stalled ones and the healthy
//! ones are all written by the stream's fan-out loops.

use crate::common;

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::raw_rtmp::RawRtmp;
use common::viewers::{flv_play, rtmp_play, SyntheticPublisher};
use common::*;
use onair_bench::media::{classify_video, VideoTag};
use socket2::{Domain, Socket, Type};

const STALLED_PER_PROTOCOL: usize = 10;

/// A TCP connection whose receive buffer is tiny, so the server's side fills quickly.
fn small_window_socket(addr: SocketAddr) -> TcpStream {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&addr.into()).unwrap();
    s.into()
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_viewers_do_not_slow_others_and_are_dropped() {
    let server = ServerProc::start("[hub]\nviewer_write_timeout_ms = 4000\n");
    let publisher = SyntheticPublisher::start(&server.rtmp_url("live/slow"), 600).await;
    let (clock, log) = (publisher.clock, publisher.log.clone());

    // The healthy viewer: every video frame's sequence number and latency, with arrival time.
    let samples: Arc<Mutex<Vec<(Instant, u64, f64)>>> = Arc::default();
    let healthy = tokio::spawn({
        let (samples, log, http) = (samples.clone(), log.clone(), server.http);
        async move {
            flv_play(http, "/live/slow.flv", Duration::from_secs(120), |m| {
                if let VideoTag::Frame { seq, .. } = classify_video(&m.body) {
                    let now = clock.now_ns();
                    let sent = log.get(seq).unwrap_or(now);
                    let mut s = samples.lock().unwrap();
                    s.push((Instant::now(), seq, (now.saturating_sub(sent)) as f64 / 1e6));
                    s.len() < 30 * 110
                } else {
                    true
                }
            })
            .await
        }
    });
    // A healthy RTMP viewer, written by the same fan-out loops as the stalled ones.
    let rtmp_seqs: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
    let healthy_rtmp = tokio::spawn({
        let (seqs, url) = (rtmp_seqs.clone(), server.rtmp_url("live/slow"));
        async move {
            rtmp_play(&url, Duration::from_secs(120), |m| {
                if m.tag_type == onair_shared::flv::TAG_VIDEO {
                    if let VideoTag::Frame { seq, .. } = classify_video(&m.body) {
                        seqs.lock().unwrap().push((Instant::now(), seq));
                    }
                }
                true
            })
            .await
        }
    });
    let count = || samples.lock().unwrap().len();
    wait_until("healthy viewers receiving", Duration::from_secs(10), || {
        count() > 30 && rtmp_seqs.lock().unwrap().len() > 30
    });
    // Baseline: 5 s of frames with no stalled viewer.
    let base_start = count();
    wait_until("baseline frames", Duration::from_secs(15), || {
        count() >= base_start + 150
    });
    let rss_before = server.rss_kib();
    let stall_from = Instant::now();

    // Viewers that connect, ask for the stream, and never read again.
    let mut stalled = Vec::new();
    for _ in 0..STALLED_PER_PROTOCOL {
        let mut s = small_window_socket(server.http);
        use std::io::Write;
        s.write_all(b"GET /live/slow.flv HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        stalled.push(s);
        let mut r = RawRtmp {
            s: small_window_socket(server.rtmp),
            received: Vec::new(),
        };
        r.handshake();
        r.connect_app("live");
        r.play("slow");
        stalled.push(r.s);
    }
    let stalled_total = 2 * STALLED_PER_PROTOCOL;
    wait_until("stalled viewers counted", Duration::from_secs(10), || {
        server
            .stream("live", "slow")
            .is_some_and(|s| s["viewers"]["total"].as_u64() == Some(2 + stalled_total as u64))
    });

    // While they hang: sample memory until the server has dropped all of them.
    let mut rss_peak = rss_before;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        rss_peak = rss_peak.max(server.rss_kib());
        let viewers = server.stream("live", "slow").unwrap()["viewers"]["total"].as_u64();
        if viewers == Some(2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stalled viewers not dropped within 90 s (viewers {viewers:?})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let dropped_after = stall_from.elapsed();
    // Keep watching the healthy viewer a little longer after the drops.
    let after = count();
    wait_until("frames after the drops", Duration::from_secs(10), || {
        count() >= after + 60
    });
    publisher.stop().await;
    healthy.abort();
    healthy_rtmp.abort();
    drop(stalled);

    // The fan-out path's healthy viewer, too, got every frame in order while the loop's
    // other viewers hung and were dropped.
    let rtmp: Vec<(Instant, u64)> = rtmp_seqs
        .lock()
        .unwrap()
        .iter()
        .filter(|x| x.0 >= stall_from)
        .cloned()
        .collect();
    assert_every_frame(
        "healthy RTMP viewer",
        rtmp.iter().map(|x| x.1),
        dropped_after,
    );

    let s = samples.lock().unwrap();
    let base: Vec<f64> = s[base_start..base_start + 150]
        .iter()
        .map(|x| x.2)
        .collect();
    let during: Vec<(Instant, u64, f64)> =
        s.iter().filter(|x| x.0 >= stall_from).cloned().collect();
    // Delivery continued: every frame in order, none skipped.
    assert_every_frame("healthy viewer", during.iter().map(|x| x.1), dropped_after);
    let lat: Vec<f64> = during.iter().map(|x| x.2).collect();
    let (b50, b99, d50, d99) = (
        percentile(&base, 0.5),
        percentile(&base, 0.99),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
    );
    eprintln!(
        "healthy viewer latency ms: baseline p50 {b50:.1} p99 {b99:.1}; while {stalled_total} viewers hung p50 {d50:.1} p99 {d99:.1}; \
         dropped after {dropped_after:?}; server RSS {rss_before} KiB -> peak {rss_peak} KiB"
    );
    // Latency unchanged, within scheduling noise of a shared two-core machine.
    assert!(
        d50 <= b50 + 20.0,
        "median latency rose from {b50:.1} ms to {d50:.1} ms"
    );
    assert!(
        d99 <= b99 + 100.0,
        "p99 latency rose from {b99:.1} ms to {d99:.1} ms"
    );
    // Memory bounded: the stalled viewers hold no queue of their own. Unbounded per-viewer
    // queues would grow by about 0.33 MB/s each, over 100 MB here.
    let growth_mib = (rss_peak.saturating_sub(rss_before)) as f64 / 1024.0;
    assert!(
        growth_mib < 24.0,
        "server RSS grew {growth_mib:.1} MiB while viewers hung"
    );
}

/// `who` got frame after frame with none skipped, at least 25 a second over `window`.
fn assert_every_frame(who: &str, frames: impl Iterator<Item = u64>, window: Duration) {
    let frames: Vec<u64> = frames.collect();
    for w in frames.windows(2) {
        assert_eq!(
            w[1],
            w[0] + 1,
            "{who} skipped from frame {} to {}",
            w[0],
            w[1]
        );
    }
    assert!(
        frames.len() as f64 >= window.as_secs_f64() * 25.0,
        "{who} got {} frames in {window:?}",
        frames.len()
    );
}
