//! Capture sources. Without devices on this machine, camera and microphone are checked for a
//! clear error; the conversions from their pixel formats are unit tests in the pusher crate.
//! The screen source is checked for real against a virtual X server (Xvfb) when the
//! `screen` feature is built (CI builds all features).

mod common;
mod pusher_util;

use pusher_util::*;

#[test]
fn a_missing_camera_or_microphone_is_a_clear_error() {
    let dir = common::TempDir::new("onair-push-cap");
    let out = dir.path.join("x.flv");
    let out = out.to_str().expect("utf-8 path");
    for (args, word) in [
        (["--video", "camera:7", "--audio", "none"], "camera"),
        (
            ["--video", "test", "--audio", "mic:no-such-device"],
            "microphone",
        ),
    ] {
        let o = push_cmd(&[out, "--duration", "1", "--quiet"])
            .args(args)
            .output()
            .expect("run onair push");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded without a device");
        assert!(
            err.contains(word),
            "{args:?}: error does not name the {word}: {err}"
        );
    }
}

/// Xvfb, stopped with SIGTERM; its lock file and socket are removed after it.
#[cfg(feature = "screen")]
struct Xvfb(std::process::Child, u32);

#[cfg(feature = "screen")]
impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.0.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        // It may leave its lock file and socket behind: they are ours, remove them.
        let _ = std::fs::remove_file(format!("/tmp/.X{}-lock", self.1));
        let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{}", self.1));
    }
}

#[cfg(feature = "screen")]
#[test]
fn screen_capture_of_a_virtual_display() {
    use std::process::{Command, Stdio};
    use std::time::Duration;
    let ok = Command::new("Xvfb")
        .arg("-help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "Xvfb is required for this test (scripts/install-deps.sh installs it)"
    );
    for (flag, bright) in [("-wr", true), ("-br", false)] {
        // A free display number: no lock file (an X server holds one while it runs).
        let n = (100..400u32)
            .map(|k| (std::process::id() + k + u32::from(bright)) % 300 + 100)
            .find(|n| !std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists())
            .expect("a free X display number");
        let display = format!(":{n}");
        let _x = Xvfb(
            Command::new("Xvfb")
                .args([
                    &display,
                    "-screen",
                    "0",
                    "320x240x24",
                    "-nolisten",
                    "tcp",
                    flag,
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn Xvfb"),
            n,
        );
        let socket = format!("/tmp/.X11-unix/X{n}");
        common::wait_until(
            "Xvfb to accept connections",
            Duration::from_secs(10),
            || std::os::unix::net::UnixStream::connect(&socket).is_ok(),
        );
        let dir = common::TempDir::new("onair-push-cap");
        let out = dir.path.join("screen.flv");
        let out = out.to_str().expect("utf-8 path");
        let video = format!("screen:{display}");
        push_to_end(&[
            out,
            "--video",
            &video,
            "--audio",
            "none",
            "--size",
            "320x240",
            "--duration",
            "1",
            "--fast",
        ]);
        // The mean luma of a decoded frame: white root (-wr) or black root (-br).
        let o = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-i",
                out,
                "-frames:v",
                "1",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "gray",
                "-",
            ])
            .output()
            .expect("run ffmpeg");
        assert!(
            o.status.success() && o.stdout.len() == 320 * 240,
            "decode of the screen capture"
        );
        let mean = o.stdout.iter().map(|&b| b as u64).sum::<u64>() / o.stdout.len() as u64;
        if bright {
            assert!(mean > 200, "white screen captured as luma {mean}");
        } else {
            assert!(mean < 40, "black screen captured as luma {mean}");
        }
    }
}
