//! Recording and playback end to end: ffmpeg publishes, onair records, ffprobe and
//! ffmpeg read what it wrote; the clip API, Range, retention, a SIGKILL and the repair
//! at the next start, a full disk, and bad requests. Streams are short (4-6 s, 320x240);
//! `ONAIR_RECORD_SECS=60` runs the full lengths (a 60 s recording, a 20 s clip,
//! the kill 45 s in).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use common::{media_sequence, require, wait_until, Proc, ServerProc, TempDir};

/// Seconds of the published file (4, or `ONAIR_RECORD_SECS`).
fn secs() -> u64 {
    std::env::var("ONAIR_RECORD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
        .max(4)
}

/// The published file, made once: `secs()` of 320x240 30 fps H.264 (1 s GOP) and 48 kHz AAC.
fn source() -> &'static Path {
    static SRC: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    &SRC.get_or_init(|| {
        require("ffmpeg");
        let dir = TempDir::new("onair-record-src");
        let path = dir.path.join("src.flv");
        let ok = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000"])
            .args([
                "-t",
                &secs().to_string(),
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
            ])
            .args(["-g", "30"])
            .args([
                "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv",
            ])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "making the source file");
        (dir, path)
    })
    .1
}

/// Publishes the source file in real time and waits for ffmpeg to finish.
fn publish_file(server: &ServerProc, path: &str) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(source())
        .args(["-c", "copy", "-f", "flv"])
        .arg(server.rtmp_url(path))
        .stdin(Stdio::null())
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg publish");
}

/// A live encode without end (for the kill and full-disk tests).
fn publish_live(server: &ServerProc, path: &str) -> Proc {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv"])
        .arg(server.rtmp_url(path))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ffmpeg");
    Proc(child)
}

fn record_toml(dir: &Path, extra: &str) -> String {
    format!(
        "[record]\nenabled = true\ndir = {:?}\n{extra}\n",
        dir.to_str().unwrap()
    )
}

/// One GET with `Connection: close`: status, lower-cased headers, body.
fn get(server: &ServerProc, path: &str, headers: &[&str]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(server.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect::<Vec<_>>();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
    {
        body = common::dechunk(&body);
    }
    (status, headers, body)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn listing(server: &ServerProc, stream: &str) -> Vec<serde_json::Value> {
    let (status, _, body) = get(server, &format!("/api/recordings?stream={stream}"), &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    v["recordings"].as_array().cloned().unwrap_or_default()
}

/// `ffmpeg -v error` decoding every stream of `file`: its error output (empty when clean).
fn decode_errors(file: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg decode of {file:?}");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// ffprobe's packets of one stream kind: (pts seconds, duration seconds, keyframe).
fn packets(file: &Path, kind: &str) -> Vec<(f64, f64, bool)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", kind, "-show_entries"])
        .args(["packet=pts_time,duration_time,flags", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe {file:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',');
            let pts = f.next()?.parse().ok()?;
            let dur = f.next()?.parse().unwrap_or(0.0);
            let key = f.next()?.contains('K');
            Some((pts, dur, key))
        })
        .collect()
}

/// Seconds from the first packet's start to the last one's end.
fn span(p: &[(f64, f64, bool)]) -> f64 {
    let start = p.iter().map(|x| x.0).fold(f64::MAX, f64::min);
    let end = p.iter().map(|x| x.0 + x.1).fold(f64::MIN, f64::max);
    end - start
}

/// The payload hashes of the video packets (`framemd5`, copy: no decode).
fn video_hashes(file: &Path) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(file)
        .args(["-map", "0:v", "-c", "copy", "-f", "framemd5", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|h| h.trim().to_string()))
        .collect()
}

fn metric(server: &ServerProc, name: &str) -> f64 {
    let (_, _, body) = get(server, "/metrics", &[]);
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn finished_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "mp4"));
    v.sort();
    v
}

fn parse_time(s: &str) -> SystemTime {
    // 2026-12-01T14:03:05.123Z, as the listing writes it.
    let out = Command::new("date")
        .args(["-u", "-d", s, "+%s%3N"])
        .output()
        .expect("date");
    let ms: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("ms");
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

fn rfc3339(t: SystemTime) -> String {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{}.{:03}", ms / 1000, ms % 1000)])
        .arg("+%Y-%m-%dT%H:%M:%S.%3NZ")
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_published_stream_is_recorded_and_played_back() {
    require("ffprobe");
    let rec = TempDir::new("onair-rec");
    let server = ServerProc::start(&record_toml(&rec.path, ""));
    publish_file(&server, "live/cam");
    let stream_dir = rec.path.join("live/cam");
    // The file closes when the publisher leaves.
    wait_until("a finished recording", Duration::from_secs(20), || {
        !finished_files(&stream_dir).is_empty()
    });
    let files = finished_files(&stream_dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let file = &files[0];
    let name = file.file_name().unwrap().to_str().unwrap().to_string();
    assert!(name.len() == "2026-12-01_14-03-05.123.mp4".len(), "{name}");

    // Both tracks, decoded without one error, 4 s long (one video frame of slack), the
    // video payloads bit-identical to what was published, A/V in step.
    assert_eq!(decode_errors(file), "", "decode errors");
    let v = packets(file, "v");
    let a = packets(file, "a");
    let n = secs() as f64;
    assert_eq!(v.len() as u64, secs() * 30, "video frames");
    assert!(
        (span(&v) - n).abs() <= 1.0 / 30.0 + 1e-6,
        "video {}",
        span(&v)
    );
    assert!((span(&a) - n).abs() <= 0.05, "audio {}", span(&a));
    assert!(
        (v[0].0 - a[0].0).abs() <= 1.0 / 30.0,
        "A/V start {} {}",
        v[0].0,
        a[0].0
    );
    // ... and at the end.
    let end = |p: &[(f64, f64, bool)]| p.iter().map(|x| x.0 + x.1).fold(f64::MIN, f64::max);
    assert!(
        (end(&v) - end(&a)).abs() <= 1.0 / 30.0,
        "A/V end {} {}",
        end(&v),
        end(&a)
    );
    assert_eq!(video_hashes(file), video_hashes(source()), "video payloads");
    // What ffprobe states as the file's duration (fMP4: from its fragments).
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe");
    let stated: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a duration");
    assert!(
        (stated - n).abs() <= 1.0 / 30.0,
        "ffprobe duration {stated}"
    );

    // The listing: start, duration, size.
    let list = listing(&server, "live/cam");
    assert_eq!(list.len(), 1, "{list:?}");
    let entry = &list[0];
    assert_eq!(entry["file"], name.as_str());
    assert_eq!(entry["recording"], false);
    assert_eq!(
        entry["size"].as_u64(),
        Some(std::fs::metadata(file).unwrap().len())
    );
    let ms = entry["duration_ms"].as_u64().unwrap();
    assert!(ms.abs_diff(secs() * 1000) <= 100, "duration_ms {ms}");
    let start = parse_time(entry["start"].as_str().unwrap());

    // A clip from 1.5 s for 2 s (20 s of a 60 s run): it starts at the keyframe at 1 s
    // and ffprobe reads it.
    let want = start + Duration::from_millis(1500);
    let clip_secs = if secs() >= 40 { 20 } else { 2 };
    let query = format!("start={}&duration={clip_secs}", rfc3339(want));
    let (status, h, body) = get(&server, &format!("/recordings/live/cam?{query}"), &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        header(&h, "content-length"),
        Some(body.len().to_string().as_str())
    );
    let clip_start = parse_time(header(&h, "x-clip-start").unwrap());
    let before = want
        .duration_since(clip_start)
        .expect("the clip starts at or before start");
    assert!(
        before <= Duration::from_millis(1000),
        "within one GOP: {before:?}"
    );
    let clip = rec.path.join("clip.mp4");
    std::fs::write(&clip, &body).unwrap();
    assert_eq!(decode_errors(&clip), "", "clip decode errors");
    let cv = packets(&clip, "v");
    assert!(cv[0].2, "the clip starts with a keyframe");
    assert!(cv[0].0.abs() < 0.05, "the clip starts at 0: {}", cv[0].0);
    let cs = span(&cv);
    let cs_want = clip_secs as f64;
    assert!(cs >= cs_want && cs <= cs_want + 1.1, "clip {cs} s");
    assert!(!packets(&clip, "a").is_empty(), "the clip has audio");
    std::fs::remove_file(&clip).unwrap();

    // Range on the plain file.
    let url = entry["url"].as_str().unwrap();
    let whole = std::fs::read(file).unwrap();
    let (status, h, body) = get(&server, url, &["Range: bytes=100-199"]);
    assert_eq!(status, 206);
    assert_eq!(body, whole[100..200]);
    assert_eq!(
        header(&h, "content-range"),
        Some(format!("bytes 100-199/{}", whole.len()).as_str())
    );
    let (status, _, body) = get(&server, url, &["Range: bytes=10-99999999999999999"]);
    assert_eq!(
        (status, body.len()),
        (206, whole.len() - 10),
        "a huge end is clamped"
    );
    let (status, _, body) = get(&server, url, &[]);
    assert_eq!((status, body.len()), (200, whole.len()));
    assert_eq!(body, whole);

    // Bad requests: each a clear 4xx, the server unharmed.
    let t = rfc3339(want);
    for (path, range, code) in [
        (url.to_string(), "Range: bytes=99999999999999999999-", 416),
        (url.to_string(), "Range: bytes=0-1,5-9", 416),
        ("/recordings/live/..%2F..%2Fetc/passwd".to_string(), "", 404),
        ("/recordings/live/../../etc/passwd".to_string(), "", 404),
        (
            "/recordings/live/cam/..%2F..%2Fonair.toml".to_string(),
            "",
            404,
        ),
        ("/recordings/live/cam/../cam2/x.mp4".to_string(), "", 404),
        (
            "/recordings/live/cam/2020-01-01_00-00-00.000.mp4".to_string(),
            "",
            404,
        ),
        ("/api/recordings?stream=../etc".to_string(), "", 400),
        ("/api/recordings".to_string(), "", 400),
        (
            "/recordings/live/cam?start=yesterday&duration=2".to_string(),
            "",
            400,
        ),
        (format!("/recordings/live/cam?start={t}"), "", 400),
        (
            format!("/recordings/live/cam?start={t}&duration=-1"),
            "",
            400,
        ),
        (
            format!("/recordings/live/cam?start={t}&duration=31536000"),
            "",
            400,
        ),
        (
            "/recordings/live/cam?start=2000-01-01T00:00:00Z&duration=10".to_string(),
            "",
            404,
        ),
        (
            "/recordings/live/cam?start=2999-01-01T00:00:00Z&duration=10".to_string(),
            "",
            404,
        ),
        (
            format!("/recordings/live/nothing?start={t}&duration=2"),
            "",
            404,
        ),
    ] {
        let headers: Vec<&str> = if range.is_empty() {
            vec![]
        } else {
            vec![range]
        };
        let (status, _, body) = get(&server, &path, &headers);
        assert_eq!(
            status,
            code,
            "{path} {range}: {}",
            String::from_utf8_lossy(&body)
        );
        assert!(!body.is_empty(), "{path}: a reason in the body");
    }
    assert_eq!(listing(&server, "live/cam").len(), 1, "still serving");
    assert!(metric(&server, "onair_record_bytes_total") >= whole.len() as f64);
}

#[test]
fn play_tokens_apply_to_recordings() {
    let rec = TempDir::new("onair-rec-auth");
    let toml = format!(
        "{}[auth]\nplay_tokens = [\"s3cret\"]\n",
        record_toml(&rec.path, "")
    );
    let server = ServerProc::start(&toml);
    let (status, _, _) = get(&server, "/api/recordings?stream=live/cam", &[]);
    assert_eq!(status, 401);
    let (status, _, _) = get(&server, "/api/recordings?stream=live/cam&token=wrong", &[]);
    assert!(status == 401 || status == 403, "{status}");
    let (status, _, _) = get(&server, "/api/recordings?stream=live/cam&token=s3cret", &[]);
    assert_eq!(status, 200);
    let (status, _, _) = get(
        &server,
        "/recordings/live/cam?start=2026-01-01T00:00:00Z&duration=1",
        &[],
    );
    assert_eq!(status, 401);
}

#[test]
fn retention_deletes_oldest_first_by_age_and_size() {
    // Four finished files of 1000 bytes: the oldest was last written 2 h ago.
    let rec = TempDir::new("onair-rec-ret");
    let dir = rec.path.join("live/old");
    std::fs::create_dir_all(&dir).unwrap();
    let now = SystemTime::now();
    let names = [
        "2026-01-01_00-00-00.000.mp4",
        "2026-01-01_01-00-00.000.mp4",
        "2026-01-01_02-00-00.000.mp4",
        "2026-01-01_03-00-00.000.mp4",
    ];
    for (i, n) in names.iter().enumerate() {
        let f = std::fs::File::create(dir.join(n)).unwrap();
        f.set_len(1000).unwrap();
        let age = if i == 0 { 7200 } else { 60 - i as u64 };
        f.set_modified(now - Duration::from_secs(age)).unwrap();
    }
    // Not a recording name: never touched.
    std::fs::write(dir.join("notes.txt"), b"keep me").unwrap();
    let toml = record_toml(
        &rec.path,
        "max_age_ms = 3600000\nmax_bytes = 2500\nretention_interval_ms = 100",
    );
    let server = ServerProc::start(&toml);
    wait_until("retention", Duration::from_secs(10), || {
        finished_files(&dir).len() == 2
    });
    let left: Vec<String> = finished_files(&dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    // By age the first, then by size the next oldest: the two newest remain.
    assert_eq!(left, names[2..].to_vec());
    assert!(dir.join("notes.txt").exists());
    assert_eq!(metric(&server, "onair_record_deleted_total"), 2.0);
}

#[test]
fn a_sigkill_leaves_a_file_that_plays_to_its_last_fragment_and_start_repairs_it() {
    require("ffprobe");
    let rec = TempDir::new("onair-rec-kill");
    let toml = record_toml(&rec.path, "fsync_interval_ms = 0");
    let server = ServerProc::start(&toml);
    let _push = publish_live(&server, "live/kill");
    let stream_dir = rec.path.join("live/kill");
    // Wait for 4 s (45 s of a 60 s run) in the file being written, then kill -9.
    let kill_ms = if secs() >= 60 { 45_000 } else { 4_000 };
    let limit = Duration::from_millis(kill_ms * 3 + 20_000);
    wait_until("recording before the kill", limit, || {
        listing(&server, "live/kill")
            .first()
            .is_some_and(|e| e["recording"] == true && e["duration_ms"].as_u64() >= Some(kill_ms))
    });
    let recorded_ms = listing(&server, "live/kill")[0]["duration_ms"]
        .as_u64()
        .unwrap();
    let pid = server.pid();
    let ok = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    assert!(ok.is_ok_and(|s| s.success()));
    drop(server);
    drop(_push);
    let part: Vec<PathBuf> = std::fs::read_dir(&stream_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".mp4.part"))
        .collect();
    assert_eq!(part.len(), 1, "the unfinished file is left as it was");
    // ffmpeg reads it as it is, to its last complete fragment.
    let v = packets(&part[0], "v");
    assert!(
        span(&v) * 1000.0 >= recorded_ms as f64 - 40.0,
        "{} s",
        span(&v)
    );

    // A torn last write, as a power cut leaves it: the start of a moof that claims more.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&part[0])
            .unwrap();
        f.write_all(&[0, 0, 0x10, 0, b'm', b'o', b'o', b'f'])
            .unwrap();
        f.write_all(&[0u8; 100]).unwrap();
    }
    let torn_len = std::fs::metadata(&part[0]).unwrap().len();
    // The next start repairs it: cut to its last complete fragment, renamed, logged.
    let server = ServerProc::start_logged(&toml, "info");
    wait_until("the repair", Duration::from_secs(10), || {
        server.log().contains("unfinished recording repaired")
    });
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("unfinished recording repaired"));
    let kept = torn_len - 108;
    assert!(
        line.is_some_and(|l| l.contains(&format!("Truncated {{ kept: {kept}, had: {torn_len} }}"))),
        "{line:?}"
    );
    let files = finished_files(&stream_dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(!part[0].exists());
    assert_eq!(
        decode_errors(&files[0]),
        "",
        "decode errors after the repair"
    );
    let v = packets(&files[0], "v");
    assert!(
        span(&v) * 1000.0 >= recorded_ms as f64 - 40.0,
        "{} s",
        span(&v)
    );
    assert!(!packets(&files[0], "a").is_empty());
    assert_eq!(metric(&server, "onair_record_repaired_total"), 1.0);
}

/// Mounts a tmpfs of `kib` KiB at `dir` (tests run as root); unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, kib: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount a tmpfs (the tests run as root)");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_the_recording_not_the_stream_and_recording_resumes() {
    let rec = TempDir::new("onair-rec-full");
    let mount = rec.path.join("disk");
    let _fs = Tmpfs::mount(&mount, 512);
    // Fill most of it with a file we can delete to make room again.
    let filler = mount.join("filler");
    std::fs::write(&filler, vec![0u8; 400 << 10]).unwrap();
    let toml = record_toml(&mount, "retry_after_error_ms = 200");
    let server = ServerProc::start_logged(&toml, "info");
    let _push = publish_live(&server, "live/full");
    wait_until(
        "the recording stops on a full disk",
        Duration::from_secs(30),
        || server.log().contains("recording stopped: disk error"),
    );
    assert!(metric(&server, "onair_record_dropped_total") >= 1.0);
    // The live stream is untouched: it stays live and HTTP-FLV viewers get media.
    server.wait_live("live", "full");
    let (status, _, body) = get(&server, "/api/streams/live/full", &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let media = rt.block_on(common::viewers::flv_media(
        server.http,
        "/live/full.flv",
        30,
        Duration::from_secs(15),
    ));
    assert!(
        media.is_ok(),
        "an HTTP-FLV viewer gets 30 video frames: {media:?}"
    );
    // Room again: the recording resumes in a new file, which grows past what was free.
    let dir = mount.join("live/full");
    let names = |d: &Path| -> Vec<(String, u64)> {
        std::fs::read_dir(d)
            .map(|r| {
                r.flatten()
                    .map(|e| {
                        let n = e.file_name().to_string_lossy().to_string();
                        (n, e.metadata().map_or(0, |m| m.len()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = names(&dir);
    let free_before: u64 = (512 << 10) - (400 << 10);
    std::fs::remove_file(&filler).unwrap();
    wait_until("the recording resumes", Duration::from_secs(30), || {
        server.log().contains("recording resumed")
    });
    wait_until("a new file grows", Duration::from_secs(30), || {
        names(&dir).iter().any(|(n, len)| {
            !before
                .iter()
                .any(|(b, _)| b == n.trim_end_matches(".part") || b == n)
                && *len > free_before
        })
    });
}

/// The Enhanced RTMP fixtures (`tests/peers/fixtures.py`, 8 s each, shared with the
/// other Enhanced RTMP tests).
fn fixtures() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        require("ffmpeg");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("target/fixtures");
        let status = Command::new("python3")
            .arg(root.join("tests/peers/fixtures.py"))
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .expect("run fixtures.py");
        assert!(status.success(), "fixtures.py failed");
        dir
    })
    .clone()
}

fn codec_names(file: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn hevc_and_av1_publishes_record_and_play_back() {
    require("ffprobe");
    let rec = TempDir::new("onair-rec-enh");
    let server = ServerProc::start(&record_toml(&rec.path, ""));
    let cases = [
        ("hevc", "hevc_aac.mp4", ["hevc", "aac"]),
        ("av1", "av1_opus_aom.mkv", ["av1", "opus"]),
    ];
    // Both at once: FFmpeg 8 (PyAV) publishes Enhanced RTMP.
    let pushes: Vec<_> = cases
        .iter()
        .map(|(name, fixture, _)| {
            common::ffmpeg8::peer("publish.py")
                .arg(server.rtmp_url(&format!("live/{name}")))
                .arg(fixtures().join(fixture))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn publish.py")
        })
        .collect();
    for p in pushes {
        let out = p.wait_with_output().expect("publish.py");
        let r = common::ffmpeg8::report(&out, "publish");
        assert!(r["error"].is_null(), "publish: {r}");
    }
    for (name, fixture, codecs) in cases {
        let dir = rec.path.join("live").join(name);
        wait_until(&format!("{name} recorded"), Duration::from_secs(20), || {
            !finished_files(&dir).is_empty()
        });
        let file = &finished_files(&dir)[0];
        assert_eq!(codec_names(file), codecs, "{name}");
        assert_eq!(decode_errors(file), "", "{name}: decode errors");
        let v = packets(file, "v");
        assert_eq!(v.len(), 240, "{name}: video frames");
        assert!(
            (span(&v) - 8.0).abs() <= 1.0 / 30.0 + 1e-6,
            "{name}: {}",
            span(&v)
        );
        assert_eq!(
            video_hashes(file),
            video_hashes(&fixtures().join(fixture)),
            "{name}: video payloads"
        );
    }
}

#[test]
fn a_full_queue_drops_the_recording_not_the_stream() {
    // A queue bound smaller than any fragment: the writer can never keep up.
    let rec = TempDir::new("onair-rec-queue");
    let server = ServerProc::start_logged(&record_toml(&rec.path, "queue_max_bytes = 1"), "info");
    let _push = publish_live(&server, "live/q");
    wait_until("the drop", Duration::from_secs(30), || {
        server
            .log()
            .contains("recording dropped: the disk is slower than the stream")
    });
    assert!(metric(&server, "onair_record_dropped_total{reason=\"queue_full\"}") >= 1.0);
    server.wait_live("live", "q");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let media = rt.block_on(common::viewers::flv_media(
        server.http,
        "/live/q.flv",
        30,
        Duration::from_secs(15),
    ));
    assert!(
        media.is_ok(),
        "an HTTP-FLV viewer gets 30 video frames: {media:?}"
    );
    // Logged once per interruption, not once per keyframe retried.
    let warnings = server.log().matches("recording dropped").count();
    assert_eq!(warnings, 1, "{}", server.log());
    assert!(finished_files(&rec.path.join("live/q")).is_empty());
}

#[test]
fn an_app_named_dot_dot_is_not_recorded_outside_the_folder() {
    let root = TempDir::new("onair-rec-trick");
    let rec = root.path.join("rec");
    let server = ServerProc::start_logged(&record_toml(&rec, ""), "info");
    // RTMP takes ".." as an app name; as a folder it would lead out of the recordings.
    let _push = publish_live(&server, "../evil");
    wait_until("the refusal to record", Duration::from_secs(30), || {
        server.log().contains("stream not recorded")
    });
    server.wait_live("..", "evil");
    // A stream published beside it gets its file: by then "../evil" would have one too.
    let _ok = publish_live(&server, "live/ok");
    wait_until("the other stream recorded", Duration::from_secs(30), || {
        listing(&server, "live/ok")
            .first()
            .is_some_and(|e| e["duration_ms"].as_u64() >= Some(1000))
    });
    assert!(!root.path.join("evil").exists(), "nothing written outside");
    assert!(!rec.join("..").join("evil").exists());
}

#[test]
fn a_clip_goes_on_across_a_file_rotation() {
    require("ffprobe");
    let rec = TempDir::new("onair-rec-rot");
    let server = ServerProc::start(&record_toml(&rec.path, "segment_duration_ms = 2000"));
    publish_file(&server, "live/rot");
    let dir = rec.path.join("live/rot");
    let n = secs() as usize / 2;
    wait_until("the files", Duration::from_secs(20), || {
        finished_files(&dir).len() == n
    });
    let list = listing(&server, "live/rot");
    assert_eq!(list.len(), n, "{list:?}");
    // From 1.5 s for 2 s: the first file's keyframe at 1 s, then into the second file.
    let start = parse_time(list[0]["start"].as_str().unwrap());
    let want = rfc3339(start + Duration::from_millis(1500));
    let (status, h, body) = get(
        &server,
        &format!("/recordings/live/rot?start={want}&duration=2"),
        &[],
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        header(&h, "content-length"),
        Some(body.len().to_string().as_str())
    );
    let clip = rec.path.join("clip.mp4");
    std::fs::write(&clip, &body).unwrap();
    assert_eq!(decode_errors(&clip), "", "clip decode errors");
    let v = packets(&clip, "v");
    assert!(v[0].2, "starts with a keyframe");
    let s = span(&v);
    assert!(
        (2.5..=3.1).contains(&s),
        "clip {s} s: past the first file's end"
    );
    assert_eq!(v.len(), (s * 30.0).round() as usize, "each frame once");
    assert!(
        v.windows(2).all(|w| w[1].0 > w[0].0),
        "time only goes forward"
    );
    let a = packets(&clip, "a");
    assert!((span(&a) - s).abs() <= 0.1, "audio {} video {s}", span(&a));
}

#[test]
fn a_publisher_coming_back_gets_a_new_file() {
    let rec = TempDir::new("onair-rec-again");
    // A short grace: the stream ends between the two publishes.
    let toml = format!(
        "{}[hub]\npublisher_grace_ms = 100\n",
        record_toml(&rec.path, "")
    );
    let server = ServerProc::start(&toml);
    let dir = rec.path.join("live/again");
    publish_file(&server, "live/again");
    wait_until(
        "the first file and the stream's end",
        Duration::from_secs(20),
        || finished_files(&dir).len() == 1 && server.stream("live", "again").is_none(),
    );
    publish_file(&server, "live/again");
    wait_until("a second file", Duration::from_secs(20), || {
        finished_files(&dir).len() == 2
    });
    for f in finished_files(&dir) {
        assert_eq!(packets(&f, "v").len() as u64, secs() * 30, "{f:?}");
    }
}

/// A playlist's segments: (msn, uri, EXTINF seconds, PROGRAM-DATE-TIME).
fn playlist_segments(text: &str) -> Vec<(u64, String, f64, SystemTime)> {
    let mut msn = media_sequence(text).expect("EXT-X-MEDIA-SEQUENCE");
    let mut out = Vec::new();
    let (mut dur, mut pdt) = (None, None);
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("#EXTINF:") {
            dur = v.trim_end_matches(',').parse().ok();
        } else if let Some(v) = l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = Some(parse_time(v));
        } else if !l.starts_with('#') && !l.is_empty() {
            out.push((
                msn,
                l.to_string(),
                dur.take().expect("EXTINF"),
                pdt.take().expect("PROGRAM-DATE-TIME"),
            ));
            msn += 1;
        }
    }
    out
}

/// The DVR window (`hls.dvr_window_ms`): the fMP4 playlist lists recorded segments before
/// the live window, numbered and timed as the live ones were, on one timeline across a
/// file rotation; ffmpeg decodes it all from its first segment; play tokens apply to the
/// recorded segments as to live ones; segments whose file is gone answer 404 and leave the
/// playlist.
#[test]
fn the_dvr_window_serves_past_segments_from_the_recording() {
    require("ffprobe");
    let rec = TempDir::new("onair-rec-dvr");
    // 0.3 s segments and fragments (0.3 s GOPs), a new file every 2 s.
    let toml = format!(
        "[hls]\nsegment_duration_ms = 300\ndvr_window_ms = 600000\n\
         [auth]\nplay_tokens = [\"s3cret\"]\n{}",
        record_toml(
            &rec.path,
            "fragment_duration_ms = 300\nsegment_duration_ms = 2000"
        )
    );
    let server = ServerProc::start(&toml);
    let _push = common::TestPush::small()
        .size("320x240")
        .gop(9)
        .stderr(Stdio::null())
        .start(&server.rtmp_url("live/dvr"));
    server.wait_live("live", "dvr");
    // The fMP4 live window is ten segments; wait for eight more before it.
    const LIVE: usize = 10;
    let mut text = String::new();
    wait_until(
        "recorded segments before the live window",
        Duration::from_secs(40),
        || {
            let (status, _, body) = get(&server, "/live/dvr.m3u8?variant=fmp4&token=s3cret", &[]);
            text = String::from_utf8_lossy(&body).to_string();
            status == 200 && text.matches("#EXTINF:").count() >= LIVE + 8
        },
    );
    let segs = playlist_segments(&text);
    let n = segs.len();
    // The oldest segment is older than the whole live window.
    let live_window: f64 = segs[n - LIVE..].iter().map(|s| s.2).sum();
    let oldest_age = segs[n - 1]
        .3
        .duration_since(segs[0].3)
        .unwrap()
        .as_secs_f64();
    assert!(
        oldest_age > live_window + 2.0,
        "oldest segment {oldest_age:.2} s before the newest; live window {live_window:.2} s\n{text}"
    );
    // One timeline: each segment starts where the one before ended (wall clock).
    for w in segs.windows(2) {
        let gap = w[1].3.duration_since(w[0].3).unwrap().as_secs_f64() - w[0].2;
        assert!(
            gap.abs() < 0.05,
            "segment {} starts {gap:.3} s off\n{text}",
            w[1].0
        );
    }
    // A blocking LL-HLS reload held until the next segment starts (the live window moves
    // on meanwhile) still lists the whole DVR window.
    let ll = |q: &str| {
        let (status, _, body) = get(&server, &format!("/live/dvr.m3u8?token=s3cret{q}"), &[]);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        String::from_utf8_lossy(&body).to_string()
    };
    let now = ll("");
    // The first part of the segment after the one being built: it comes when that one
    // completes, and the live window slides by one.
    let built = playlist_segments(&now).last().expect("segments").0 + 1;
    let held = ll(&format!("&_HLS_msn={}&_HLS_part=0", built + 1));
    let held_segs = playlist_segments(&held);
    assert!(held_segs.last().unwrap().0 >= built, "{held}");
    assert_eq!(held_segs[0].0, segs[0].0, "{held}");
    // The oldest comes from the recording (immutable, moof + mdat), with the token only.
    assert!(segs[0].1.ends_with(".m4s?token=s3cret"), "{}", segs[0].1);
    let bare = segs[0].1.split('?').next().unwrap();
    let (status, _, _) = get(&server, &format!("/live/{bare}"), &[]);
    assert_eq!(status, 401, "a recorded segment without the play token");
    let (status, headers, body) = get(&server, &format!("/live/{}", segs[0].1), &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(header(&headers, "content-type"), Some("video/iso.segment"));
    assert!(header(&headers, "cache-control").is_some_and(|c| c.contains("immutable")));
    assert_eq!(&body[4..8], b"moof");

    // ffmpeg plays it from its first segment, as a finished playlist of these segments.
    let m3u8 = decodes_as_vod(&server, &text, &rec.path.join("dvr.m3u8"));
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-protocol_whitelist", "file,http,tcp"])
        .args(["-select_streams", "v", "-show_entries", "packet=pts_time"])
        .args(["-of", "csv=p=0"])
        .arg(&m3u8)
        .output()
        .expect("run ffprobe");
    let pts: Vec<f64> = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .filter_map(|l| l.trim_end_matches(',').parse().ok())
        .collect();
    // The recorded segments' times run on into the live ones: no step back, no hole.
    let listed: f64 = segs.iter().map(|s| s.2).sum();
    assert!(
        pts.len() as f64 >= listed * 30.0 * 0.9,
        "{} frames for {listed:.2} s",
        pts.len()
    );
    for w in pts.windows(2) {
        assert!(
            w[1] > w[0] && w[1] - w[0] < 0.1,
            "video time goes from {} to {}",
            w[0],
            w[1]
        );
    }

    // Retention deleting the oldest file: its segments answer 404 and leave the playlist.
    let files = finished_files(&rec.path.join("live/dvr"));
    assert!(!files.is_empty(), "a file rotated");
    std::fs::remove_file(&files[0]).unwrap();
    let (status, _, _) = get(&server, &format!("/live/{}", segs[0].1), &[]);
    assert_eq!(status, 404);
    wait_until(
        "the playlist to start after the deleted file",
        Duration::from_secs(10),
        || {
            let (_, _, body) = get(&server, "/live/dvr.m3u8?variant=fmp4&token=s3cret", &[]);
            let text = String::from_utf8_lossy(&body).to_string();
            playlist_segments(&text)
                .first()
                .is_some_and(|s| s.0 > segs[0].0)
        },
    );
    // Segments and inits never made are 404 too, whatever their number.
    for path in [
        "/live/dvr-seg999999.m4s",
        "/live/dvr-seg18446744073709551615.m4s",
        "/live/dvr-init4294967295.mp4",
        "/live/dvr-part0.0.m4s",
    ] {
        let (status, _, _) = get(&server, &format!("{path}?token=s3cret"), &[]);
        assert_eq!(status, 404, "{path}");
    }
}

/// The DVR window across a publisher's return (after the stream ended: a new init
/// segment): the first publish's segments stay listed before a discontinuity and an
/// EXT-X-MAP of the new init, the old init is served from the recording, and ffmpeg
/// decodes the whole playlist.
#[test]
fn the_dvr_window_spans_a_publisher_return() {
    require("ffprobe");
    let rec = TempDir::new("onair-rec-dvr-again");
    let toml = format!(
        "[hls]\nsegment_duration_ms = 300\ndvr_window_ms = 600000\n\
         [hub]\npublisher_grace_ms = 100\n{}",
        record_toml(&rec.path, "fragment_duration_ms = 300")
    );
    let server = ServerProc::start(&toml);
    let mut first = common::TestPush::small()
        .size("320x240")
        .gop(9)
        .seconds(3)
        .stderr(Stdio::null())
        .start(&server.rtmp_url("live/back"));
    assert!(first.0.wait().expect("ffmpeg").success());
    wait_until("the first publish's end", Duration::from_secs(10), || {
        server.stream("live", "back").is_none()
    });
    let _second = common::TestPush::small()
        .size("320x240")
        .gop(9)
        .stderr(Stdio::null())
        .start(&server.rtmp_url("live/back"));
    let mut text = String::new();
    wait_until(
        "the first publish listed before the second",
        Duration::from_secs(30),
        || {
            let (status, _, body) = get(&server, "/live/back.m3u8?variant=fmp4", &[]);
            text = String::from_utf8_lossy(&body).to_string();
            status == 200 && text.contains("back-init1.mp4") && text.contains("back-seg0.m4s")
        },
    );
    // Numbering goes on; the init changes once, after a discontinuity.
    let segs = playlist_segments(&text);
    assert_eq!(segs[0].0, 0);
    assert!(segs.len() >= 10, "{text}");
    assert!(
        text.contains("#EXT-X-MAP:URI=\"back-init0.mp4\"\n"),
        "{text}"
    );
    assert_eq!(text.matches("#EXT-X-MAP:").count(), 2, "{text}");
    assert!(
        text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"back-init1.mp4\"\n"),
        "{text}"
    );
    // The old init, gone from memory, comes from the first recording: its ftyp + moov.
    let (status, _, init0) = get(&server, "/live/back-init0.mp4", &[]);
    assert_eq!(status, 200);
    let files = finished_files(&rec.path.join("live/back"));
    let recorded = std::fs::read(&files[0]).unwrap();
    assert_eq!(&init0[4..8], b"ftyp");
    assert!(recorded.starts_with(&init0));
    assert_eq!(&recorded[init0.len() + 4..init0.len() + 8], b"moof");
    // ffmpeg plays it all from its first segment.
    decodes_as_vod(&server, &text, &rec.path.join("back.m3u8"));
}

/// The live playlist `text` written as a finished playlist of absolute URIs at `m3u8`, which
/// ffmpeg decodes from its first segment with no error; returns `m3u8`.
fn decodes_as_vod(server: &ServerProc, text: &str, m3u8: &std::path::Path) -> std::path::PathBuf {
    let base = server.http_url("live/");
    let vod: String = text
        .lines()
        .map(|l| {
            if let Some(uri) = l.strip_prefix("#EXT-X-MAP:URI=\"") {
                format!("#EXT-X-MAP:URI=\"{base}{uri}\n")
            } else if !l.starts_with('#') && !l.is_empty() {
                format!("{base}{l}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect::<String>()
        + "#EXT-X-ENDLIST\n";
    std::fs::write(m3u8, vod).unwrap();
    let decode = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-protocol_whitelist"])
        .args(["file,http,tcp", "-i"])
        .arg(m3u8)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let errors = String::from_utf8_lossy(&decode.stderr);
    assert!(
        decode.status.success() && errors.is_empty(),
        "decode errors: {errors}\n{text}"
    );
    m3u8.to_path_buf()
}
