//! Helpers for the `onair push` end-to-end tests: running the pusher, and reading what it
//! produced with the real peers (ffprobe for streams and packets, ffmpeg for decoding).
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};

use crate::common::require;

/// `onair push ARGS` as a command (quiet, logs at warn to the test's stderr).
pub fn push_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_onair"));
    c.arg("push").args(args);
    c.env(
        "RUST_LOG",
        std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
    );
    c.stdin(Stdio::null());
    c
}

/// Runs `onair push ARGS` to the end and fails the test if it fails.
pub fn push_to_end(args: &[&str]) {
    let out = push_cmd(args)
        .arg("--quiet")
        .output()
        .expect("run onair push");
    assert!(
        out.status.success(),
        "onair push {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A background `onair push`, killed when dropped.
pub struct PushProc(pub Child);

impl Drop for PushProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ffprobe's streams of a file or URL (shared with the server's interop tests).
pub use crate::common::streams;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Packet {
    pub video: bool,
    /// Seconds.
    pub pts: f64,
    pub key: bool,
}

/// Every packet of a file, in file order, from ffprobe.
pub fn packets(input: &str) -> Vec<Packet> {
    require("ffprobe");
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=codec_type,pts_time,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(input)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe packets of {input}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',');
            let kind = f.next()?;
            let pts = f.next()?.parse().ok()?;
            let flags = f.next().unwrap_or("");
            Some(Packet {
                video: kind == "video",
                pts,
                key: flags.starts_with('K'),
            })
        })
        .collect()
}

/// Decodes the whole input with ffmpeg and returns its error output (empty when clean).
pub fn decode_errors(input: &str) -> String {
    require("ffmpeg");
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-nostats",
            "-i",
            input,
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("run ffmpeg");
    let mut err = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() {
        err.push_str(&format!("\nffmpeg exited with {}", out.status));
    }
    err
}

/// What a produced stream must be.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    pub width: u64,
    pub height: u64,
    pub fps: f64,
    pub keyint_s: f64,
    pub sample_rate: u64,
    pub channels: u64,
    /// The video must cover at least this many seconds.
    pub min_seconds: f64,
}

fn rate(s: &serde_json::Value) -> f64 {
    let s = s.as_str().unwrap_or("0/1");
    let (n, d) = s.split_once('/').unwrap_or((s, "1"));
    n.parse::<f64>().unwrap_or(0.0) / d.parse::<f64>().unwrap_or(1.0).max(1e-9)
}

/// Checks streams, frame rate, keyframe interval, audio format, A/V timestamp agreement
/// (within 50 ms all along) and a clean decode. Returns the packets.
pub fn check_media(input: &str, e: Expect) -> Vec<Packet> {
    let st = streams(input);
    let v = st
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap_or_else(|| panic!("no video stream in {input}: {st:?}"));
    let a = st
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .unwrap_or_else(|| panic!("no audio stream in {input}: {st:?}"));
    assert_eq!(v["codec_name"], "h264", "{input}");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(e.width), Some(e.height)),
        "{input}"
    );
    let fr = rate(&v["r_frame_rate"]);
    assert!(
        (fr - e.fps).abs() < 0.01,
        "{input}: r_frame_rate {fr}, want {}",
        e.fps
    );
    assert_eq!(a["codec_name"], "aac", "{input}");
    assert_eq!(
        a["sample_rate"].as_str(),
        Some(e.sample_rate.to_string().as_str()),
        "{input}"
    );
    assert_eq!(a["channels"].as_u64(), Some(e.channels), "{input}");

    let pk = packets(input);
    let vid: Vec<&Packet> = pk.iter().filter(|p| p.video).collect();
    let aud: Vec<&Packet> = pk.iter().filter(|p| !p.video).collect();
    assert!(
        vid.len() > 10 && aud.len() > 10,
        "{input}: {} video, {} audio packets",
        vid.len(),
        aud.len()
    );
    let span = vid[vid.len() - 1].pts - vid[0].pts;
    assert!(
        span >= e.min_seconds,
        "{input}: video covers {span:.2} s, want {}",
        e.min_seconds
    );
    // Frame rate from timestamps: every step one frame (ms rounding allowed).
    let step = 1.0 / e.fps;
    for w in vid.windows(2) {
        let d = w[1].pts - w[0].pts;
        assert!(
            (d - step).abs() <= 0.0015,
            "{input}: video step {d:.4} s at {:.3}",
            w[0].pts
        );
    }
    // Keyframes at the asked interval.
    let keys: Vec<f64> = vid.iter().filter(|p| p.key).map(|p| p.pts).collect();
    assert!(
        keys.len() >= 2 || span < 2.0 * e.keyint_s,
        "{input}: keyframes {keys:?}"
    );
    for w in keys.windows(2) {
        assert!(
            (w[1] - w[0] - e.keyint_s).abs() <= step + 0.0015,
            "{input}: keyframes {:.3} s apart, want {}",
            w[1] - w[0],
            e.keyint_s
        );
    }
    // AAC frames of 1024 samples.
    let astep = 1024.0 / e.sample_rate as f64;
    for w in aud.windows(2) {
        let d = w[1].pts - w[0].pts;
        assert!(
            (d - astep).abs() <= 0.0015,
            "{input}: audio step {d:.4} s at {:.3}",
            w[0].pts
        );
    }
    // Audio and video timestamps agree all along: at every packet, the newest audio and the
    // newest video timestamps are within 50 ms; and the tracks end together.
    let (mut last_a, mut last_v) = (None::<f64>, None::<f64>);
    let mut worst = 0.0f64;
    for p in &pk {
        if p.video {
            last_v = Some(p.pts);
        } else {
            last_a = Some(p.pts);
        }
        if let (Some(la), Some(lv)) = (last_a, last_v) {
            worst = worst.max((la - lv).abs());
        }
    }
    assert!(
        worst <= 0.050,
        "{input}: audio and video timestamps {:.0} ms apart",
        worst * 1000.0
    );
    let end_v = vid[vid.len() - 1].pts + step;
    let end_a = aud[aud.len() - 1].pts + astep;
    assert!(
        (end_v - end_a).abs() <= 0.050,
        "{input}: video ends at {end_v:.3}, audio at {end_a:.3}"
    );
    let errors = decode_errors(input);
    assert!(
        errors.trim().is_empty(),
        "{input}: ffmpeg decode errors:\n{errors}"
    );
    pk
}

/// `onair serve` on a given RTMP address (to come back where a stopped server was).
pub struct ServerAt {
    pub proc: crate::common::Proc,
    pub rtmp: std::net::SocketAddr,
    pub http: std::net::SocketAddr,
    _dir: crate::common::TempDir,
}

impl ServerAt {
    pub fn start(rtmp: std::net::SocketAddr) -> ServerAt {
        use std::io::BufRead;
        let dir = crate::common::TempDir::new("onair-push-srv");
        let mut child = Command::new(env!("CARGO_BIN_EXE_onair"))
            .args(["serve", "--http-addr", "127.0.0.1:0", "--rtmp-addr"])
            .arg(rtmp.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn onair serve");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read listening line");
        let http = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http="))
            .unwrap_or_else(|| panic!("no http= in {line:?}"))
            .parse()
            .expect("http address");
        ServerAt {
            proc: crate::common::Proc(child),
            rtmp,
            http,
            _dir: dir,
        }
    }

    /// The API entry of `app/name`, if listed and live.
    pub fn live(&self, app: &str, name: &str) -> Option<serde_json::Value> {
        let (status, body) = crate::common::http_get(self.http, "/api/streams");
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        v.as_array()?
            .iter()
            .find(|s| s["app"] == app && s["name"] == name && s["live"] == true)
            .cloned()
    }
}

/// Status lines of a pusher's stderr, collected on a thread.
pub struct StatusLines(pub std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl StatusLines {
    pub fn collect(child: &mut Child) -> StatusLines {
        use std::io::BufRead;
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let err = child.stderr.take().expect("piped stderr");
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("push: {line}");
                l.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        StatusLines(lines)
    }

    /// The last value of `key=N` (units after N ignored) in the status lines.
    pub fn last(&self, key: &str) -> Option<u64> {
        let lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().rev().find_map(|l| {
            l.split_whitespace().find_map(|w| {
                let v = w.strip_prefix(key)?.strip_prefix('=')?;
                let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
        })
    }
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
