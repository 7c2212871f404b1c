//! The players people already use, against onair, over RTMP and HTTP-FLV: rtmpdump
//! (librtmp), VLC (run as a non-root user, as it insists) and GStreamer (its own RTMP
//! client, rtmp2src, and souphttpsrc). Each reads the reference ffmpeg publish for a few
//! seconds; what it wrote (or decoded itself, for GStreamer) must be H.264 1280x720 + AAC
//! with enough frames and no decode error. They are also the independent checks of our
//! connect `_result`, which carries the Enhanced RTMP fields legacy clients must ignore.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// At least this many video frames in about 4 s of a 30 fps stream.
const MIN_FRAMES: u64 = 90;

/// (codec names, width of the video, video frames decoded, ffmpeg's error lines) of a file
/// a player wrote. The last tag or packet may be cut where the player was stopped; ffmpeg
/// reports that as a truncated packet, which is not a decode error of the stream.
fn decode_file(path: &Path) -> (Vec<String>, u64, u64, String) {
    let info = streams(path.to_str().unwrap_or_default());
    let codecs = info
        .iter()
        .filter_map(|s| s["codec_name"].as_str().map(str::to_string))
        .collect();
    let width = info.iter().find_map(|s| s["width"].as_u64()).unwrap_or(0);
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-nostats", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-f", "null", "-progress", "pipe:1", "-"])
        .output()
        .expect("run ffmpeg");
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .filter_map(|v| v.trim().parse().ok())
        .next_back()
        .unwrap_or(0);
    let errors = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("Packet corrupt") && !l.contains("truncat"))
        .collect::<Vec<_>>()
        .join("\n");
    (codecs, width, frames, errors)
}

fn assert_good(what: &str, path: &Path) {
    let (codecs, width, frames, errors) = decode_file(path);
    assert!(
        codecs.iter().any(|c| c == "h264") && codecs.iter().any(|c| c == "aac"),
        "{what}: codecs {codecs:?}"
    );
    assert_eq!(width, 1280, "{what}: video width");
    assert!(frames >= MIN_FRAMES, "{what}: {frames} video frames");
    assert!(errors.is_empty(), "{what}: decode errors:\n{errors}");
}

/// Runs `cmd` until it exits or `secs` seconds pass, then stops it with SIGINT (players
/// close their output file cleanly on it), killing it if it does not stop within 5 s more.
fn run_for(mut cmd: Command, secs: u64) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn player");
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// VLC refuses to run as root: as root, it runs as `nobody`.
fn vlc(args: &[&str]) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--", "cvlc"]);
        c
    } else {
        Command::new("cvlc")
    };
    // No interface, no config directory: VLC only remuxes here, for 4 s.
    cmd.args(["-q", "-I", "dummy", "--play-and-exit", "--run-time", "4"])
        .args(args)
        .env("HOME", std::env::temp_dir());
    cmd
}

/// GStreamer decodes `src`'s FLV itself (flvdemux, avdec_h264, avdec_aac) and counts the
/// decoded video frames at its fakesink; a decode error fails the pipeline.
fn gst_decoded_frames(src: &str, location: &str) -> (u64, bool, String) {
    let pipeline = format!(
        "{src} location={location} ! flvdemux name=d \
         d.video ! queue ! h264parse ! avdec_h264 ! fakesink name=v silent=false sync=false \
         d.audio ! queue ! aacparse ! avdec_aac ! fakesink sync=false"
    );
    let out = Command::new("timeout")
        .args(["-s", "INT", "6", "gst-launch-1.0", "-e", "-m", "-v"])
        .args(pipeline.split_whitespace())
        .output()
        .expect("run gst-launch-1.0");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let frames = stdout
        .lines()
        .filter(|l| l.contains("(v:sink)") && l.contains("chain"))
        .count() as u64;
    let caps_ok = stdout.contains("width=(int)1280");
    let errors = stdout
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .filter(|l| l.contains("ERROR"))
        .collect::<Vec<_>>()
        .join("\n");
    (frames, caps_ok, errors)
}

#[test]
fn rtmpdump_vlc_and_gstreamer_play_rtmp_and_http_flv() {
    for program in ["rtmpdump", "cvlc", "gst-launch-1.0"] {
        let found = Command::new("which")
            .arg(program)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(found, "{program} is required (scripts/install-deps.sh)");
    }
    let server = ServerProc::start("");
    let _push = ffmpeg_push(&server.rtmp_url("live/t"));
    server.wait_live("live", "t");
    let dir = TempDir::new("onair-interop-players");
    // VLC runs as another user and writes here.
    let _ = Command::new("chmod").arg("777").arg(&dir.path).status();
    let rtmp = server.rtmp_url("live/t");
    let flv = server.http_url("live/t.flv");

    let out = dir.path.join("rtmpdump.flv");
    let mut cmd = Command::new("rtmpdump");
    cmd.args(["-q", "--live", "-r", &rtmp, "-o"]).arg(&out);
    run_for(cmd, 4);
    assert_good("rtmpdump over RTMP", &out);

    for (what, url) in [("VLC over RTMP", &rtmp), ("VLC over HTTP-FLV", &flv)] {
        let out = dir.path.join(format!("vlc-{}.ts", what.len()));
        let sout = format!("#std{{access=file,mux=ts,dst={}}}", out.display());
        run_for(vlc(&["--sout", &sout, url]), 10);
        assert_good(what, &out);
    }

    for (what, src, location) in [
        ("GStreamer rtmp2src", "rtmp2src", &rtmp),
        ("GStreamer souphttpsrc", "souphttpsrc", &flv),
    ] {
        let (frames, caps_ok, errors) = gst_decoded_frames(src, location);
        assert!(errors.is_empty(), "{what}: {errors}");
        assert!(caps_ok, "{what}: no 1280-wide video caps");
        assert!(
            frames >= MIN_FRAMES,
            "{what}: {frames} decoded video frames"
        );
    }
}
