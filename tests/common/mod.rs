//! Shared pieces of the end-to-end tests: the `onair` binary as a child process on
//! loopback ports chosen by the OS, ffmpeg pushers, deadline waits and tiny HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Waits for `cond` to hold, polling every 50 ms, failing with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fails loudly when a real peer is missing: these tests never pass by skipping.
pub fn require(program: &str) {
    let ok = Command::new(program)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{program} is required for this test (CI installs it: see .ci/run)"
    );
}

pub struct ServerProc {
    child: Child,
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    /// The admin listener, when the config has an admin token.
    pub admin: Option<SocketAddr>,
    /// The RTMPS and HTTPS listeners (`start_tls`).
    pub rtmps: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    /// The WebRTC UDP port, when the server could bind it.
    pub webrtc: Option<SocketAddr>,
    /// SHA-256 of the certificate served at start (`start_tls`).
    pub tls_sha256: Option<String>,
    _dir: TempDir,
}

impl ServerProc {
    /// Starts `onair serve` with extra TOML settings on 127.0.0.1 with OS-chosen ports.
    pub fn start(extra_toml: &str) -> ServerProc {
        Self::spawn(extra_toml, None, false)
    }

    /// Like `start`, with RTMPS and HTTPS listeners too; `extra_toml` must give the
    /// certificate (`[tls]` with `cert` and `key`, or `self_signed = true`).
    pub fn start_tls(extra_toml: &str) -> ServerProc {
        Self::spawn(extra_toml, None, true)
    }

    /// The temporary folder the server's config lives in (for certificate files).
    pub fn dir(&self) -> &std::path::Path {
        &self._dir.path
    }

    /// Like `start`, with the server's log at `level` kept in a file (see `log`).
    pub fn start_logged(extra_toml: &str, level: &str) -> ServerProc {
        Self::spawn(extra_toml, Some(level), false)
    }

    /// Everything the server logged so far (only for `start_logged`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path.join("server.log")).unwrap_or_default()
    }

    fn spawn(extra_toml: &str, log_level: Option<&str>, tls: bool) -> ServerProc {
        let dir = TempDir::new("onair-test");
        Self::spawn_in(dir, extra_toml, log_level, tls)
    }

    /// `start_tls` with the config in `dir`, where the test has put certificate files.
    pub fn start_tls_in(dir: TempDir, extra_toml: &str) -> ServerProc {
        Self::spawn_in(dir, extra_toml, None, true)
    }

    fn spawn_in(dir: TempDir, extra_toml: &str, log_level: Option<&str>, tls: bool) -> ServerProc {
        let cfg = dir.path.join("onair.toml");
        std::fs::write(&cfg, extra_toml).expect("write config");
        let (level, stderr) = match log_level {
            Some(level) => (
                level.to_string(),
                Stdio::from(std::fs::File::create(dir.path.join("server.log")).expect("log file")),
            ),
            None => (
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
                Stdio::inherit(),
            ),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_onair"))
            .args([
                "serve",
                "--rtmp-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                "--admin-addr",
                "127.0.0.1:0",
                "--config",
            ])
            .arg(&cfg)
            .args(if tls {
                &["--rtmps-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0"][..]
            } else {
                &[][..]
            })
            .env("RUST_LOG", level)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn onair");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read listening line");
        // "onair listening rtmp=ADDR http=ADDR[ admin=ADDR][ rtmps=ADDR https=ADDR tls_sha256=FP]"
        let optional = |k: &str| -> Option<SocketAddr> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .map(|a| a.parse().expect("address"))
        };
        let field = |k: &str| optional(k).unwrap_or_else(|| panic!("no {k} in {line:?}"));
        ServerProc {
            rtmp: field("rtmp="),
            http: field("http="),
            admin: optional("admin="),
            rtmps: optional("rtmps="),
            https: optional("https="),
            webrtc: optional("webrtc="),
            tls_sha256: line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("tls_sha256="))
                .map(str::to_string),
            child,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The config file the server was started with (rewrite it, then `reload`).
    pub fn config_path(&self) -> PathBuf {
        self._dir.path.join("onair.toml")
    }

    /// Sends SIGHUP (reload the config).
    pub fn sighup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -HUP failed");
    }

    pub fn rtmp_url(&self, path: &str) -> String {
        format!("rtmp://{}/{}", self.rtmp, path)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}/{}", self.http, path)
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The value of the metrics line that starts with `line_start` (a name with its
    /// labels), 0 when there is none.
    pub fn metric(&self, line_start: &str) -> u64 {
        let (_, body) = http_get(self.http, "/metrics");
        String::from_utf8_lossy(&body)
            .lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    }

    /// `GET /api/streams` parsed.
    pub fn streams(&self) -> serde_json::Value {
        let (status, body) = http_get(self.http, "/api/streams");
        assert_eq!(status, 200, "api status");
        serde_json::from_slice(&body).expect("api json")
    }

    /// The API entry of `app/name`, if listed.
    pub fn stream(&self, app: &str, name: &str) -> Option<serde_json::Value> {
        self.streams()
            .as_array()?
            .iter()
            .find(|s| s["app"] == app && s["name"] == name)
            .cloned()
    }

    pub fn wait_live(&self, app: &str, name: &str) {
        wait_until(
            &format!("{app}/{name} live with video"),
            Duration::from_secs(30),
            || {
                self.stream(app, name)
                    .is_some_and(|s| s["live"] == true && s["video"]["width"].is_number())
            },
        );
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An ffmpeg publisher of the test pattern (testsrc2) and a 1 kHz tone in real time,
/// x264 + AAC in FLV: the one live push every test file builds on, sized per test.
pub struct TestPush {
    size: &'static str,
    fps: u32,
    gop: u32,
    preset: &'static str,
    seconds: Option<u32>,
    low_delay: bool,
    extra: Vec<String>,
    stderr: Option<Stdio>,
}

impl TestPush {
    /// 640x360 at 30 fps with a 1 s GOP, x264 ultrafast: cheap on a busy CI machine.
    pub fn small() -> Self {
        Self {
            size: "640x360",
            fps: 30,
            gop: 30,
            preset: "ultrafast",
            seconds: None,
            low_delay: false,
            extra: Vec::new(),
            stderr: None,
        }
    }

    /// `WxH` of the picture.
    pub fn size(mut self, size: &'static str) -> Self {
        self.size = size;
        self
    }

    /// Frames per second (the GOP stays as set, in frames).
    pub fn fps(mut self, fps: u32) -> Self {
        self.fps = fps;
        self
    }

    /// Frames between keyframes.
    pub fn gop(mut self, frames: u32) -> Self {
        self.gop = frames;
        self
    }

    pub fn preset(mut self, preset: &'static str) -> Self {
        self.preset = preset;
        self
    }

    /// Ends the push after this long (otherwise it runs until dropped).
    pub fn seconds(mut self, seconds: u32) -> Self {
        self.seconds = Some(seconds);
        self
    }

    /// zerolatency tuning, baseline profile, no B-frames: PTS equals DTS.
    pub fn low_delay(mut self) -> Self {
        self.low_delay = true;
        self
    }

    /// Output options placed before `-f flv URL` (`-tls_verify 0`, say).
    pub fn output_args(mut self, args: &[&str]) -> Self {
        self.extra.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Where ffmpeg's own messages go (inherited by default).
    pub fn stderr(mut self, to: Stdio) -> Self {
        self.stderr = Some(to);
        self
    }

    pub fn start(self, url: &str) -> Proc {
        require("ffmpeg");
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={}:rate={}", self.size, self.fps))
            .args(["-f", "lavfi", "-i", "sine=frequency=1000"]);
        if let Some(s) = self.seconds {
            cmd.args(["-t", &s.to_string()]);
        }
        cmd.args(["-c:v", "libx264", "-preset", self.preset]);
        if self.low_delay {
            cmd.args(["-tune", "zerolatency", "-profile:v", "baseline", "-bf", "0"]);
        }
        cmd.args(["-g", &self.gop.to_string(), "-c:a", "aac"])
            .args(&self.extra)
            .args(["-f", "flv", url]);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(self.stderr.unwrap_or_else(Stdio::inherit))
            .spawn()
            .expect("spawn ffmpeg");
        Proc(child)
    }
}

/// The reference push: 720p30 testsrc2 + 1 kHz sine, x264 with a 2 s GOP, AAC.
pub fn ffmpeg_push(url: &str) -> Proc {
    TestPush::small()
        .size("1280x720")
        .preset("veryfast")
        .gop(60)
        .start(url)
}

/// One blocking HTTP/1.1 GET with `Connection: close`; returns status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    http_request(addr, "GET", path, &[], b"")
}

/// The audio of `input` (a file or URL) decoded by ffmpeg to mono 16-bit samples at 48 kHz.
pub fn decode_mono_48k(input: &str) -> Vec<i16> {
    require("ffmpeg");
    let pcm = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i", input])
        .args(["-vn", "-ac", "1", "-ar", "48000", "-f", "s16le", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        pcm.status.success(),
        "ffmpeg could not decode {input}: {}",
        String::from_utf8_lossy(&pcm.stderr)
    );
    pcm.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// A media playlist's `EXT-X-MEDIA-SEQUENCE`, if it has one.
pub fn media_sequence(playlist: &str) -> Option<u64> {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
}

/// `http_get` that says `None` where the server refused or dropped the connection (a
/// poll against a listener whose per-address limit the test fills).
#[allow(dead_code)]
pub fn try_http_get(addr: SocketAddr, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).ok()?;
    http_exchange(&mut s, "GET", path, &[], b"").ok()
}

/// One blocking HTTP/1.1 request with `Connection: close` and extra header lines
/// (`"Authorization: Bearer x"`); returns status and body.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect http");
    http_exchange(&mut s, method, path, headers, body).expect("read http response")
}

/// Sends one request on `s` and reads the response to the close.
pub fn http_exchange(
    s: &mut TcpStream,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let addr = s.peer_addr()?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    if !body.is_empty() || method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    if raw.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "closed without a response",
        ));
    }
    let (head, body) = split_response(&raw)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no header end"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    Ok((status, body))
}

/// An HTTP response as read, split into its head and its body, the body taken out of
/// chunked coding when the head says so; `None` without a complete head.
pub fn split_response(raw: &[u8]) -> Option<(String, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = &raw[split + 4..];
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Some((
        head,
        if chunked {
            dechunk(body)
        } else {
            body.to_vec()
        },
    ))
}

/// The body of a chunked HTTP response, as far as it was read.
pub fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap_or("0").trim(), 16)
                .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

/// A TCP connection to `addr` from the loopback address `local` (127.0.0.2, …), so one
/// test can act as several client addresses.
pub fn connect_from(local: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let local: SocketAddr = format!("{local}:0").parse().expect("local address");
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&local.into())?;
    socket.connect_timeout(&addr.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

/// A temporary directory removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// ffprobe's streams of an input, as JSON.
pub fn streams(input: &str) -> Vec<serde_json::Value> {
    require("ffprobe");
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-rw_timeout",
            "15000000",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(input)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {input}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    v["streams"].as_array().cloned().unwrap_or_default()
}

pub mod ffmpeg8;
pub mod raw_rtmp;

/// An HTTP-FLV viewer on its own thread that counts bytes and notes if it is cut off.
pub struct Watcher {
    pub bytes: Arc<AtomicU64>,
    pub cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Watcher {
    pub fn start(server: &ServerProc, path: &str) -> Watcher {
        let mut s = TcpStream::connect(server.http).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let (bytes, cut, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (b, c, st) = (bytes.clone(), cut.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while !st.load(Ordering::Relaxed) {
                match s.read(&mut buf) {
                    Ok(0) => {
                        c.store(true, Ordering::Relaxed);
                        return;
                    }
                    Ok(n) => {
                        b.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => {
                        c.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            }
        });
        Watcher { bytes, cut, stop }
    }

    /// Runs `f` (something that must not disturb this viewer), then checks the viewer
    /// is still connected and still receiving.
    pub fn across(&self, what: &str, f: &mut dyn FnMut()) {
        let before = self.bytes.load(Ordering::Relaxed);
        f();
        self.assert_flowing(before, what);
    }

    /// The viewer is still connected and received more bytes since `since`.
    pub fn assert_flowing(&self, since: u64, what: &str) {
        wait_until(
            &format!("stream still flowing after {what}"),
            Duration::from_secs(10),
            || self.bytes.load(Ordering::Relaxed) > since + 10_000,
        );
        assert!(
            !self.cut.load(Ordering::Relaxed),
            "viewer was cut off after {what}"
        );
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub mod viewers;
