//! Capture sources. Without devices on this machine, camera and microphone are checked for a
//! clear error; the conversions from their pixel formats are unit tests in the pusher crate.
//! The microphone is checked for real against a virtual ALSA capture device (a userspace
//! PCM: no kernel sound support needed) when the `capture` feature is built; the camera
//! stays untested against a device (v4l2loopback needs a kernel module). The screen source
//! is checked for real against a virtual X server (Xvfb) when the `screen` feature is built
//! (CI builds all features).

use crate::common;
use crate::pusher_util;

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

/// Issue 16, done-when 7: `--audio mic` (cpal over ALSA) records a virtual ALSA device and
/// its 700 Hz tone arrives in the stream. The device is a userspace PCM the test configures
/// (`ALSA_CONFIG_PATH`): ALSA's `file` plugin over `null`, whose `infile` is a FIFO. `null`
/// alone has no clock (it hands out samples as fast as they are read, so a plain WAV file
/// as `infile` is used up in a fraction of a second and the push then records silence); a
/// writer that feeds the FIFO 10 ms of tone every 10 ms makes the device run in real time,
/// as a sound card would. A `plug` in front converts to whatever cpal asks for.
#[cfg(feature = "capture")]
#[test]
fn microphone_records_a_virtual_alsa_device_and_its_tone_arrives() {
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use onair_pusher::process::audio::tone_power;

    const SYSTEM_CONF: &str = "/usr/share/alsa/alsa.conf";
    const RATE: usize = 44_100;
    const TONE_HZ: f64 = 700.0;
    assert!(
        std::path::Path::new(SYSTEM_CONF).exists(),
        "{SYSTEM_CONF} is missing (Debian's libasound2-data; scripts/install-deps.sh)"
    );
    let dir = common::TempDir::new("onair-push-mic");
    let fifo = dir.path.join("mic.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", fifo.display());
    let conf = dir.path.join("asound.conf");
    std::fs::write(
        &conf,
        format!(
            "<{SYSTEM_CONF}>\n\
             pcm.onair_tone {{ type file slave.pcm \"null\" file \"/dev/null\" infile \"{}\" }}\n\
             pcm.!default {{ type plug slave {{ pcm \"onair_tone\" rate {RATE} format S16_LE channels 2 }} }}\n",
            fifo.display()
        ),
    )
    .expect("write the ALSA configuration");

    // One second of the tone (a whole number of cycles: it loops without a click), stereo
    // S16_LE, fed 10 ms every 10 ms: the device's clock.
    let second: Vec<u8> = (0..RATE)
        .flat_map(|i| {
            let v = (8000.0 * (2.0 * std::f64::consts::PI * TONE_HZ * i as f64 / RATE as f64).sin())
                as i16;
            let b = v.to_le_bytes();
            [b[0], b[1], b[0], b[1]]
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, fifo) = (stop.clone(), fifo.clone());
        std::thread::spawn(move || {
            const O_NONBLOCK: i32 = 0o4000; // Linux
            let chunk = RATE / 100 * 4;
            let start = Instant::now();
            let mut pipe = None;
            let mut written = 0usize;
            for k in 0u32.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let due = start + Duration::from_millis(10) * k;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                // ALSA opens the FIFO when the PCM is opened (cpal opens it more than once):
                // without a reader the open fails (ENXIO) and is tried again.
                if pipe.is_none() {
                    pipe = OpenOptions::new()
                        .write(true)
                        .custom_flags(O_NONBLOCK)
                        .open(&fifo)
                        .ok();
                }
                let off = (k as usize * chunk) % second.len();
                if let Some(p) = pipe.as_mut() {
                    match p.write(&second[off..off + chunk]) {
                        Ok(n) => written += n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        // The reader closed it: wait for the next open.
                        Err(_) => pipe = None,
                    }
                }
            }
            written
        })
    };
    let out = dir.path.join("mic.flv");
    let out = out.to_str().expect("utf-8 path");
    let run = push_cmd(&[
        out,
        "--video",
        "test",
        "--audio",
        "mic",
        "--size",
        "160x120",
        "--duration",
        "3",
        "--quiet",
    ])
    .env("ALSA_CONFIG_PATH", &conf)
    .output()
    .expect("run onair push");
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("the tone writer");
    assert!(
        run.status.success(),
        "onair push --audio mic failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(written > 0, "the device was never opened");

    let samples = common::decode_mono_48k(out);
    // The device ran in real time: audio for (nearly) the whole push, not a burst.
    assert!(
        samples.len() >= 48_000 * 5 / 2,
        "only {:.2} s of microphone audio in a 3 s push",
        samples.len() as f64 / 48_000.0
    );
    // The last 2 s peak at the device's tone.
    let steady = &samples[samples.len() - 96_000..];
    let (mut best, mut best_power) = (0.0, 0.0);
    let mut f = 200.0;
    while f <= 3000.0 {
        let p = tone_power(steady, 48_000, f);
        if p > best_power {
            (best, best_power) = (f, p);
        }
        f += 5.0;
    }
    assert!(
        (best - TONE_HZ).abs() <= 10.0,
        "the recorded audio peaks at {best} Hz, expected the device's {TONE_HZ} Hz"
    );
    assert!(
        best_power > 100.0 * tone_power(steady, 48_000, 1000.0),
        "the test source's 1 kHz tone is not what was recorded"
    );
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
