//! Publisher leave and return, stream end after the grace period, and graceful shutdown,
//! with real ffmpeg publishers and an HTTP-FLV viewer.

use crate::common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;

#[test]
fn viewer_survives_publisher_return_and_is_closed_after_grace() {
    let server =
        ServerProc::start("[hub]\npublisher_grace_ms = 4000\n[rtmp]\nidle_timeout_ms = 3000\n");
    let push = ffmpeg_push(&server.rtmp_url("live/r"));
    server.wait_live("live", "r");
    let viewer = Watcher::start(&server, "/live/r.flv");
    viewer.assert_flowing(0, "start");

    drop(push);
    wait_until(
        "stream waits for its publisher",
        Duration::from_secs(10),
        || {
            server
                .stream("live", "r")
                .is_some_and(|s| s["live"] == false)
        },
    );
    assert!(
        !viewer.cut.load(Ordering::Relaxed),
        "viewer kept during grace"
    );

    let push = ffmpeg_push(&server.rtmp_url("live/r"));
    server.wait_live("live", "r");
    let before = viewer.bytes.load(Ordering::Relaxed);
    viewer.assert_flowing(before, "publisher returned");

    drop(push);
    wait_until(
        "viewer closed after the grace period",
        Duration::from_secs(20),
        || viewer.cut.load(Ordering::Relaxed),
    );
    assert!(
        server.stream("live", "r").is_none(),
        "ended stream is no longer listed"
    );
}

#[test]
fn sigterm_shuts_down_cleanly_with_viewers_connected() {
    let server = ServerProc::start("");
    let _push = ffmpeg_push(&server.rtmp_url("live/s"));
    server.wait_live("live", "s");
    let viewer = Watcher::start(&server, "/live/s.flv");
    viewer.assert_flowing(0, "start");
    let status = server.stop();
    assert!(status.success(), "exit status {status}");
    wait_until("viewer closed by shutdown", Duration::from_secs(5), || {
        viewer.cut.load(Ordering::Relaxed)
    });
}
