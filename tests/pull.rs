//! Issue 14's pull sources: an IP camera simulated by GStreamer's RTSP server (Python GI,
//! tests/peers/rtsp_camera.py, run with the system Python) pulled on demand through
//! retina, read back by ffmpeg over HTTP-FLV and HLS; the camera's loss and return; wrong
//! camera credentials.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{require, wait_until, Proc, ServerProc, Watcher};

/// The simulated camera on `port` (0: any); returns it and the port it listens on.
fn camera(port: u16, digest: bool) -> (Proc, u16) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/rtsp_camera.py");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(script).args([
        "--port",
        &port.to_string(),
        "--user",
        "cam",
        "--password",
        "s3cret",
    ]);
    if digest {
        cmd.arg("--digest");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect(
        "spawn the RTSP camera (python3-gi, gir1.2-gst-rtsp-server-1.0: scripts/install-deps.sh)",
    );
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("camera port line");
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("camera did not start: {line:?}"));
    (Proc(child), port)
}

/// ffmpeg reads `url` for `secs` seconds; returns its error output (empty: no decode error).
fn ffmpeg_read(url: &str, secs: u32) -> String {
    require("ffmpeg");
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-rw_timeout",
            "15000000",
            "-i",
            url,
        ])
        .args(["-t", &secs.to_string(), "-f", "null", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn pull_toml(port: u16, password: &str) -> String {
    format!(
        "[cluster]\nedge_idle_ms = 1500\nretry_max_ms = 500\nedge_wait_ms = 8000\n\
         [hls]\nsegment_duration_ms = 1000\n\
         [[pull]]\nname = \"live/cam\"\nurl = \"rtsp://cam:{password}@127.0.0.1:{port}/cam\"\non_demand = true\n"
    )
}

#[test]
fn rtsp_camera_on_demand_over_flv_and_hls_survives_camera_loss() {
    let (cam, port) = camera(0, true);
    let server = ServerProc::start_logged(&pull_toml(port, "s3cret"), "info");
    // On demand: nothing is pulled before the first viewer.
    assert!(
        server.stream("live", "cam").is_none(),
        "pulled before any viewer"
    );
    let errors = ffmpeg_read(&server.http_url("live/cam.flv"), 3);
    assert!(errors.is_empty(), "HTTP-FLV decode errors: {errors}");
    let info = server.stream("live", "cam").expect("pulled stream listed");
    assert_eq!(info["source"], "rtsp");
    assert_eq!(info["video"]["codec"], "h264");
    assert_eq!(info["audio"]["codec"], "aac");
    assert!(
        !info.to_string().contains("s3cret"),
        "credential in the public API"
    );
    let errors = ffmpeg_read(&server.http_url("live/cam.m3u8"), 3);
    assert!(errors.is_empty(), "HLS decode errors: {errors}");
    // The camera goes away and comes back on the same port: the viewer resumes on its
    // first connection.
    let viewer = Watcher::start(&server, "/live/cam.flv");
    viewer.assert_flowing(0, "start");
    drop(cam);
    let (_cam, _) = camera(port, true);
    viewer.assert_flowing(
        viewer.bytes.load(std::sync::atomic::Ordering::Relaxed),
        "the camera's return",
    );
    assert!(
        server.log().contains("pull failed"),
        "the camera loss was not logged"
    );
    // No viewer: the pull stops.
    drop(viewer);
    let stopped = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        server.log().contains("pull stopped")
    });
    assert!(stopped, "the pull did not stop: {}", server.log());
}

#[test]
fn wrong_camera_credentials_are_logged_clearly() {
    let (_cam, port) = camera(0, false);
    let server = ServerProc::start_logged(
        &pull_toml(port, "wrong").replace("edge_wait_ms = 8000", "edge_wait_ms = 1500"),
        "info",
    );
    let (status, _) = common::http_get(server.http, "/live/cam.flv");
    assert_eq!(status, 404, "a camera that refuses us is not live");
    wait_until("the refusal in the log", Duration::from_secs(10), || {
        let log = server.log();
        log.contains("pull failed") && log.contains("401")
    });
    let log = server.log();
    assert!(!log.contains("wrong"), "the password went to the log");
}

#[test]
fn rtsp_over_udp_always_on() {
    let (_cam, port) = camera(0, false);
    let cfg = pull_toml(port, "s3cret").replace(
        "on_demand = true\n",
        "on_demand = false\ntransport = \"udp\"\n",
    );
    let server = ServerProc::start_logged(&cfg, "info");
    // Pulled from the start, with no viewer.
    server.wait_live("live", "cam");
    let errors = ffmpeg_read(&server.http_url("live/cam.flv"), 2);
    assert!(errors.is_empty(), "HTTP-FLV decode errors: {errors}");
    assert!(server
        .log()
        .lines()
        .any(|l| l.contains("RTSP playing") && l.contains("Udp")));
}
