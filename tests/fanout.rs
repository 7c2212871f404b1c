//! Done-when 3: 50 HTTP-FLV and 50 RTMP viewers of one stream at once each receive the
//! sequence headers, then a keyframe, and timestamps that never go backwards.

mod common;

use std::time::Duration;

use common::viewers::{check_start_and_order, flv_media, rtmp_media};
use common::*;

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
