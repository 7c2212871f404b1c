//! Done-when 3: 50 HTTP-FLV and 50 RTMP viewers of one stream at once each receive the
//! sequence headers, then a keyframe, and timestamps that never go backwards. And which
//! HTTP-FLV viewers the fan-out loops write (issue 17).

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::viewers::{
    check_start_and_order, flv_media, flv_play_after, rtmp_media, SyntheticPublisher,
};
use common::*;
use onair_bench::http::ResponseHead;
use onair_shared::flv::TAG_VIDEO;

const FLV_ON_LOOPS: &str = "onair_fanout_viewers{protocol=\"flv\"}";

/// An HTTP-FLV viewer playing until told to stop, counting its video frames.
struct FlvViewer {
    videos: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<anyhow::Result<ResponseHead>>,
}

impl FlvViewer {
    fn start(server: &ServerProc, first: Option<&'static str>, path: &'static str) -> Self {
        let (videos, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (v, s, http) = (videos.clone(), stop.clone(), server.http);
        let task = tokio::spawn(async move {
            flv_play_after(http, first, path, Duration::from_secs(60), |m| {
                if m.tag_type == TAG_VIDEO {
                    v.fetch_add(1, Ordering::Relaxed);
                }
                !s.load(Ordering::Relaxed)
            })
            .await
        });
        Self { videos, stop, task }
    }

    fn wait_frames(&self, what: &str, n: usize) {
        wait_until(what, Duration::from_secs(15), || {
            self.videos.load(Ordering::Relaxed) >= n
        });
    }

    async fn stop(self) -> ResponseHead {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap().expect("flv viewer")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_flv_request_is_written_by_the_fanout_loop_a_kept_alive_one_by_hyper() {
    let server = ServerProc::start("");
    let publisher = SyntheticPublisher::start(&server.rtmp_url("live/direct"), 60).await;
    let direct = FlvViewer::start(&server, None, "/live/direct.flv");
    direct.wait_frames("frames on the direct path", 30);
    assert_eq!(server.metric(FLV_ON_LOOPS), 1);
    // Asked for after an API request on the same connection: hyper answers it.
    let kept = FlvViewer::start(&server, Some("/api/streams"), "/live/direct.flv");
    kept.wait_frames("frames on hyper's path", 30);
    assert_eq!(server.metric(FLV_ON_LOOPS), 1);
    let listed = server.stream("live", "direct").unwrap();
    assert_eq!(listed["viewers"]["flv"].as_u64(), Some(2), "{listed}");
    let (direct, kept) = (direct.stop().await, kept.stop().await);
    // onair's own head: close-delimited, no chunked coding.
    assert!(direct.close && !direct.chunked, "{direct:?}");
    assert!(kept.chunked, "{kept:?}");
    // A viewer that leaves is let go by its loop.
    wait_until(
        "the loop lets the viewer go",
        Duration::from_secs(10),
        || server.metric(FLV_ON_LOOPS) == 0,
    );
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_fanout_loops_a_first_flv_request_is_written_by_its_own_task() {
    let server = ServerProc::start("[hub]\nfanout = false\n");
    let publisher = SyntheticPublisher::start(&server.rtmp_url("live/own"), 60).await;
    let viewer = FlvViewer::start(&server, None, "/live/own.flv");
    viewer.wait_frames("frames without loops", 30);
    assert_eq!(server.metric(FLV_ON_LOOPS), 0);
    let head = viewer.stop().await;
    assert!(head.close && !head.chunked, "{head:?}");
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_flv_and_fifty_rtmp_viewers_start_clean() {
    let server = ServerProc::start("");
    let _push = ffmpeg_push(&server.rtmp_url("live/fan"));
    server.wait_live("live", "fan");

    let mut tasks = Vec::new();
    for i in 0..50 {
        let url = server.rtmp_url("live/fan");
        tasks.push(tokio::spawn(async move {
            (
                format!("rtmp viewer {i}"),
                rtmp_media(&url, 90, Duration::from_secs(60)).await,
            )
        }));
        let http = server.http;
        tasks.push(tokio::spawn(async move {
            (
                format!("flv viewer {i}"),
                flv_media(http, "/live/fan.flv", 90, Duration::from_secs(60)).await,
            )
        }));
    }
    let mut failures = Vec::new();
    let mut ok = 0;
    for t in tasks {
        let (who, result) = t.await.unwrap();
        match result.and_then(|m| check_start_and_order(&m).map(|_| m.len())) {
            Ok(_) => ok += 1,
            Err(e) => failures.push(format!("{who}: {e:#}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 100 viewers failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(ok, 100);
}

#[test]
fn check_start_and_order_catches_each_fault() {
    use bytes::Bytes;
    use common::viewers::Media;
    let v = |ts, b: &'static [u8]| Media {
        tag_type: 9,
        timestamp: ts,
        body: Bytes::from_static(b),
    };
    let a = |ts, b: &'static [u8]| Media {
        tag_type: 8,
        timestamp: ts,
        body: Bytes::from_static(b),
    };
    let good = vec![
        v(0, &[0x17, 0]),
        a(0, &[0xaf, 0]),
        v(0, &[0x17, 1]),
        a(10, &[0xaf, 1]),
        v(33, &[0x27, 1]),
    ];
    assert!(check_start_and_order(&good).is_ok());
    assert!(
        check_start_and_order(&[v(0, &[0x17, 1])]).is_err(),
        "frame before config"
    );
    assert!(
        check_start_and_order(&[v(0, &[0x17, 0]), v(0, &[0x27, 1])]).is_err(),
        "inter first"
    );
    assert!(
        check_start_and_order(&[v(0, &[0x17, 0]), v(40, &[0x17, 1]), v(33, &[0x27, 1])]).is_err(),
        "video back"
    );
    assert!(
        check_start_and_order(&[v(0, &[0x17, 0]), v(0, &[0x17, 1]), a(0, &[0xaf, 1])]).is_err(),
        "aac before config"
    );
}
