//! The player's files over real HTTP: `/live` and `/player/…` from `http.player_dir`, with
//! content types and cache headers, nothing outside the folder whatever the raw path says,
//! and a clear 503 (and startup log line) telling how to build the player when it is missing.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{http_get, ServerProc, TempDir};

const BUILD_COMMAND: &str = "cd player-web && npm ci && npm run build";

/// Status line and headers (lower-cased names) of a raw GET.
fn head_of(addr: std::net::SocketAddr, path: &str) -> (u16, Vec<(String, String)>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
    h.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

#[test]
fn serves_the_built_player_and_nothing_outside_it() {
    let dir = TempDir::new("onair-player-http");
    let dist = dir.path.join("dist");
    std::fs::create_dir_all(dist.join("assets")).unwrap();
    std::fs::write(dist.join("index.html"), "<!doctype html><p>player</p>").unwrap();
    std::fs::write(dist.join("assets/index-AbC_1.js"), "console.log(1)").unwrap();
    std::fs::write(dist.join("assets/index-AbC_1.css"), "p{}").unwrap();
    std::fs::write(dir.path.join("secret.txt"), "outside").unwrap();
    let server = ServerProc::start(&format!(
        "[http]\nplayer_dir = {:?}\n",
        dist.display().to_string()
    ));

    for page in [
        "/live",
        "/live/",
        "/live?stream=live/t",
        "/live?stream=live/t&proto=hls",
    ] {
        let (status, body) = http_get(server.http, page);
        assert_eq!(status, 200, "{page}");
        assert!(String::from_utf8_lossy(&body).contains("player"), "{page}");
    }
    let (status, h) = head_of(server.http, "/live");
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&h, "cache-control"), "no-cache");

    let (status, h) = head_of(server.http, "/player/assets/index-AbC_1.js");
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), "text/javascript; charset=utf-8");
    assert_eq!(
        header(&h, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    let (_, h) = head_of(server.http, "/player/assets/index-AbC_1.css");
    assert_eq!(header(&h, "content-type"), "text/css; charset=utf-8");

    // Raw paths as an attacker would send them: none reaches the file beside the folder.
    for bad in [
        "/player/../secret.txt",
        "/player/assets/../../secret.txt",
        "/player/%2e%2e/secret.txt",
        "/player/..%2fsecret.txt",
        "/player/assets/..%5c..%5csecret.txt",
        "/player//etc/passwd",
        "/player/assets",
        "/player/nope.js",
    ] {
        let (status, body) = http_get(server.http, bad);
        assert_eq!(status, 404, "{bad}");
        assert!(!String::from_utf8_lossy(&body).contains("outside"), "{bad}");
    }
    // The stream routes of the app `live` are still streams, not player files.
    let (status, body) = http_get(server.http, "/live/t.flv");
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("not live"));
    server.stop();
}

#[test]
fn missing_player_is_a_503_that_says_how_to_build_it() {
    let dir = TempDir::new("onair-player-missing");
    let cfg = dir.path.join("onair.toml");
    let missing = dir.path.join("no-such-dist");
    std::fs::write(
        &cfg,
        format!("[http]\nplayer_dir = {:?}\n", missing.display().to_string()),
    )
    .unwrap();
    let mut child = common::Proc(
        Command::new(env!("CARGO_BIN_EXE_onair"))
            .args([
                "serve",
                "--rtmp-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                "--config",
            ])
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn onair"),
    );
    // The startup log names the command.
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(BUILD_COMMAND) {
                let _ = tx.send(line);
            }
        }
    });
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let http: std::net::SocketAddr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .expect("http address")
        .parse()
        .unwrap();
    let log = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a startup log line with the build command");
    assert!(log.contains("not built"), "{log}");

    let (status, body) = http_get(http, "/live");
    assert_eq!(status, 503);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains(BUILD_COMMAND), "{body}");
    let (status, _) = http_get(http, "/api/streams");
    assert_eq!(
        status, 200,
        "the rest of the server works without the player"
    );
}
