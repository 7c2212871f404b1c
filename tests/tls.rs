//! Issue 13, TLS: ffmpeg publishes over RTMPS and reads back over RTMPS, HTTPS (FLV and
//! HLS) and the plain listeners; `onair push rtmps://` with and without `--insecure`; a
//! certificate reload on SIGHUP under a live RTMPS viewer; bad input on the TLS ports.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use onair_pusher::publish::tls::AnyCertificate;
use rustls::pki_types::ServerName;

const SELF_SIGNED: &str = "[tls]\nself_signed = true\n";

/// `codec[,width,height]` of each stream ffprobe finds.
fn probe(url: &str) -> Vec<String> {
    streams(url)
        .iter()
        .map(|s| {
            match (
                s["codec_name"].as_str(),
                s["width"].as_u64(),
                s["height"].as_u64(),
            ) {
                (Some(c), Some(w), Some(h)) => format!("{c},{w},{h}"),
                (c, _, _) => c.unwrap_or("?").to_string(),
            }
        })
        .collect()
}

/// Video frames ffmpeg decodes from `url` in 5 s of stream.
fn decode_frames(url: &str) -> u64 {
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-nostats",
            "-rw_timeout",
            "15000000",
        ])
        .args([
            "-i",
            url,
            "-t",
            "5",
            "-map",
            "0:v",
            "-f",
            "null",
            "-progress",
            "pipe:1",
            "-",
        ])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg decode of {url} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .filter_map(|v| v.trim().parse().ok())
        .next_back()
        .unwrap_or(0)
}

fn refusals(server: &ServerProc, reason: &str) -> u64 {
    // The limit tests fill a listener; a refused poll reads as "not counted yet".
    let Some((_, body)) = try_http_get(server.http, "/metrics") else {
        return 0;
    };
    let line = format!("onair_refusals_total{{reason=\"{reason}\"}}");
    String::from_utf8_lossy(&body)
        .lines()
        .find(|l| l.starts_with(&line))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn ffmpeg_publishes_over_rtmps_and_reads_back_over_tls_and_plain() {
    let server = ServerProc::start_tls(SELF_SIGNED);
    let (rtmps, https) = (server.rtmps.unwrap(), server.https.unwrap());
    // The issue's reference stream (1280x720 h264 + aac); ffmpeg does not verify
    // certificates unless told to (`-tls_verify 1`).
    let _push = ffmpeg_push(&format!("rtmps://{rtmps}/live/t"));
    server.wait_live("live", "t");
    let info = server.stream("live", "t").unwrap();
    assert_eq!(info["video"]["codec"], "h264");
    assert_eq!(info["audio"]["codec"], "aac");

    let hls = format!("https://{https}/live/t.m3u8");
    // HLS needs a few segments before a player is given any.
    wait_until("HLS playlist over HTTPS", Duration::from_secs(20), || {
        probe(&hls).len() == 2
    });
    for url in [
        format!("rtmps://{rtmps}/live/t"),
        format!("https://{https}/live/t.flv"),
        hls,
        server.rtmp_url("live/t"),
        server.http_url("live/t.flv"),
    ] {
        let streams = probe(&url);
        assert!(
            streams.contains(&"h264,1280,720".to_string()),
            "{url}: {streams:?}"
        );
        assert!(
            streams.iter().any(|s| s.starts_with("aac")),
            "{url}: {streams:?}"
        );
        assert_eq!(streams.len(), 2, "{url}: {streams:?}");
        let frames = decode_frames(&url);
        assert!(frames >= 140, "{url}: decoded {frames} video frames in 5 s");
    }
    // The player page and the API are served over HTTPS too (checked through the
    // rustls client below: status line of GET /api/streams).
    let head = tls_http_get(https, "/api/streams");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("\"live\""), "{head}");
}

fn push_cmd(url: &str, insecure: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_onair"));
    c.args([
        "push",
        url,
        "--size",
        "320x180",
        "--bitrate",
        "300k",
        "--duration",
        "30",
    ]);
    c.arg("--quiet");
    if insecure {
        c.arg("--insecure");
    }
    c
}

#[test]
fn onair_push_over_rtmps_needs_insecure_for_a_self_signed_certificate() {
    let server = ServerProc::start_tls(SELF_SIGNED);
    let url = format!("rtmps://{}/live/p", server.rtmps.unwrap());

    // Without --insecure: refused, at once (not after the 30 s it would push), with the
    // certificate named.
    let t0 = Instant::now();
    let out = push_cmd(&url, false)
        .stdout(Stdio::null())
        .output()
        .expect("run onair push");
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t0.elapsed()
    );
    assert!(
        !out.status.success(),
        "a self-signed certificate must be refused"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate"), "{err}");
    assert!(err.contains("--insecure"), "{err}");
    assert!(server.stream("live", "p").is_none());

    let _push = Proc(
        push_cmd(&url, true)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn onair push"),
    );
    server.wait_live("live", "p");
    let info = server.stream("live", "p").unwrap();
    assert_eq!(info["video"]["width"], 320);
    let streams = probe(&server.rtmp_url("live/p"));
    assert!(streams.contains(&"h264,320,180".to_string()), "{streams:?}");
}

fn tls_client(addr: SocketAddr) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    rustls::StreamOwned::new(conn, sock)
}

/// SHA-256 of the certificate a new TLS connection to `addr` is shown, as `AB:CD:…`.
fn peer_fingerprint(addr: SocketAddr) -> String {
    let mut s = tls_client(addr);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).expect("TLS handshake");
    }
    let der = s.conn.peer_certificates().expect("a certificate")[0].clone();
    sha256(&der)
}

fn sha256(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One GET over TLS with `Connection: close`; the whole response as text.
fn tls_http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = tls_client(addr);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

fn write_cert(dir: &std::path::Path) -> String {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.key_pair.serialize_pem()).unwrap();
    sha256(ck.cert.der())
}

/// An ffmpeg viewer decoding `url`; the count of frames it decoded so far.
fn ffmpeg_viewer(url: &str) -> (Proc, Arc<AtomicU64>) {
    let mut child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-nostats",
            "-rw_timeout",
            "15000000",
        ])
        .args([
            "-i",
            url,
            "-map",
            "0:v",
            "-f",
            "null",
            "-progress",
            "pipe:1",
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn ffmpeg viewer");
    let frames = Arc::new(AtomicU64::new(0));
    let f = frames.clone();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(n) = line
                .strip_prefix("frame=")
                .and_then(|v| v.trim().parse().ok())
            {
                f.store(n, Ordering::Relaxed);
            }
        }
    });
    (Proc(child), frames)
}

#[test]
fn sighup_serves_a_new_certificate_while_an_rtmps_viewer_keeps_playing() {
    let dir = TempDir::new("onair-tls-reload");
    let first = write_cert(&dir.path);
    let toml = format!(
        "[admin]\ntokens = [\"tok\"]\n[tls]\ncert = {:?}\nkey = {:?}\n",
        dir.path.join("cert.pem"),
        dir.path.join("key.pem")
    );
    let cert_dir = dir.path.clone();
    let mut server = ServerProc::start_tls_in(dir, &toml);
    let rtmps = server.rtmps.unwrap();
    assert_eq!(server.tls_sha256.as_deref(), Some(first.as_str()));
    assert_eq!(peer_fingerprint(rtmps), first);
    assert_eq!(peer_fingerprint(server.https.unwrap()), first);

    let _push = TestPush::small().start(&server.rtmp_url("live/r"));
    server.wait_live("live", "r");
    let (mut viewer, frames) = ffmpeg_viewer(&format!("rtmps://{rtmps}/live/r"));
    wait_until("the RTMPS viewer decodes", Duration::from_secs(20), || {
        frames.load(Ordering::Relaxed) >= 30
    });

    let second = write_cert(&cert_dir);
    assert_ne!(first, second);
    server.sighup();
    wait_until(
        "new connections see the new certificate",
        Duration::from_secs(10),
        || peer_fingerprint(rtmps) == second,
    );
    assert_eq!(peer_fingerprint(server.https.unwrap()), second);
    let at_reload = frames.load(Ordering::Relaxed);
    wait_until(
        "the RTMPS viewer keeps decoding",
        Duration::from_secs(20),
        || frames.load(Ordering::Relaxed) >= at_reload + 60,
    );
    assert!(
        viewer.0.try_wait().unwrap().is_none(),
        "the RTMPS viewer was cut off"
    );

    // The admin API's reload (the same path) says the certificate changed, and a pair that
    // does not match is refused with the old certificate kept.
    let third = write_cert(&cert_dir);
    let auth = ["Authorization: Bearer tok"];
    let admin = server.admin.expect("admin listener");
    let (status, body) = http_request(admin, "POST", "/api/admin/reload", &auth, b"");
    let body = String::from_utf8_lossy(&body).to_string();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("tls.certificate"), "{body}");
    assert_eq!(peer_fingerprint(rtmps), third);
    std::fs::write(cert_dir.join("key.pem"), "not a key\n").unwrap();
    let (status, _) = http_request(admin, "POST", "/api/admin/reload", &auth, b"");
    assert_eq!(status, 422);
    assert_eq!(peer_fingerprint(rtmps), third);
    assert!(server.is_running());
}

/// Reads until the peer closes; true if it closed (EOF or reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn bad_input_on_tls_ports_is_closed_counted_and_harms_no_viewer() {
    let server = ServerProc::start_tls("[tls]\nself_signed = true\nhandshake_timeout_ms = 1000\n");
    let (rtmps, https) = (server.rtmps.unwrap(), server.https.unwrap());
    let _push = TestPush::small().start(&server.rtmp_url("live/b"));
    server.wait_live("live", "b");
    let watcher = Watcher::start(&server, "/live/b.flv");
    let since = watcher.bytes.load(Ordering::Relaxed);

    // Plain RTMP (C0 + C1) on the RTMPS port.
    let mut s = TcpStream::connect(rtmps).unwrap();
    let mut c0c1 = vec![3u8];
    c0c1.extend(std::iter::repeat_n(0u8, 1536));
    s.write_all(&c0c1).unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "plain RTMP not closed"
    );

    // Plain HTTP on the HTTPS port: told to use HTTPS.
    let (status, body) = http_get(https, "/live/b.flv");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("HTTPS"));

    // A TLS record header followed by garbage, and garbage that is no TLS at all.
    for (addr, bytes) in [
        (
            rtmps,
            &[0x16u8, 3, 1, 0, 8, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4][..],
        ),
        (
            https,
            &[0x16u8, 3, 3, 0x40, 0, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        ),
        (rtmps, &[0x00u8, 0xff, 0x13, 0x37][..]),
    ] {
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(bytes);
        if addr == https {
            // A record that announces 16 KiB and stops: only the handshake limit ends it.
            assert!(
                closed_within(&mut s, Duration::from_secs(5)),
                "stalled record not closed"
            );
        } else {
            assert!(
                closed_within(&mut s, Duration::from_secs(5)),
                "garbage not closed"
            );
        }
    }

    // A client that connects and sends nothing: closed at the handshake limit (1 s).
    let mut s = TcpStream::connect(rtmps).unwrap();
    let t0 = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "stalled handshake not closed"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(800),
        "closed before the limit"
    );

    wait_until("refusals counted", Duration::from_secs(5), || {
        refusals(&server, "tls_plain_rtmp") >= 1
            && refusals(&server, "tls_plain_http") >= 1
            && refusals(&server, "tls_bad_handshake") >= 2
            && refusals(&server, "tls_handshake_timeout") >= 2
    });
    watcher.assert_flowing(since, "bad input on the TLS ports");
    // A good TLS client is still served.
    assert!(tls_http_get(https, "/api/streams").starts_with("HTTP/1.1 200"));
}

/// `onair serve` with RTMPS at `rtmps` (a fixed address, to come back at) and a new
/// self-signed certificate; its HTTP address.
fn serve_rtmps_at(rtmps: SocketAddr) -> (Proc, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_onair"))
        .args([
            "serve",
            "--rtmp-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .args(["--rtmps-addr", &rtmps.to_string(), "--tls-self-signed"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn onair serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("listening line");
    let http = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no http= in {line:?}"));
    (Proc(child), http)
}

#[test]
fn onair_push_over_rtmps_reconnects_when_the_server_comes_back() {
    let first = ServerProc::start_tls(SELF_SIGNED);
    let rtmps = first.rtmps.unwrap();
    let url = format!("rtmps://{rtmps}/live/r");
    let _push = Proc(
        push_cmd(&url, true)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn onair push"),
    );
    first.wait_live("live", "r");
    assert!(first.stop().success(), "server did not stop cleanly");

    // A new server process on the same RTMPS address (and a new certificate).
    let (_second, http) = serve_rtmps_at(rtmps);
    wait_until(
        "the pusher to publish again by itself",
        Duration::from_secs(20),
        || {
            let (status, body) = http_get(http, "/api/streams/live/r");
            status == 200
                && serde_json::from_slice::<serde_json::Value>(&body)
                    .is_ok_and(|s| s["live"] == true && s["video"]["width"] == 320)
        },
    );
    let st = streams(&format!("http://{http}/live/r.flv"));
    assert!(st.iter().any(|s| s["codec_name"] == "h264"), "{st:?}");
}

#[test]
fn tls_listeners_share_the_connection_limits_of_the_plain_ones() {
    let server = ServerProc::start_tls(
        "[rtmp]\nmax_connections_per_ip = 1\n[http]\nmax_connections_per_ip = 1\n[tls]\nself_signed = true\n",
    );
    let (rtmps, https) = (server.rtmps.unwrap(), server.https.unwrap());
    // One plain connection from 127.0.0.2 takes that address's only place...
    let _rtmp = connect_from("127.0.0.2", server.rtmp).unwrap();
    let _http = connect_from("127.0.0.2", server.http).unwrap();
    wait_until(
        "both plain connections admitted",
        Duration::from_secs(5),
        || {
            try_http_get(server.http, "/metrics").is_some_and(|(_, body)| {
                String::from_utf8_lossy(&body).contains("onair_connections{protocol=\"rtmp\"} 1")
            })
        },
    );
    // ...so a TLS connection from it is refused at accept, and counted.
    let mut s = connect_from("127.0.0.2", rtmps).unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "RTMPS over the limit not closed"
    );
    let mut s = connect_from("127.0.0.2", https).unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "HTTPS over the limit not closed"
    );
    wait_until("the refusals counted", Duration::from_secs(5), || {
        refusals(&server, "rtmp_max_connections_per_ip") >= 1
            && refusals(&server, "http_max_connections_per_ip") >= 1
    });
    // Another address is still served over TLS.
    assert!(tls_http_get(https, "/api/streams").starts_with("HTTP/1.1 200"));
}
