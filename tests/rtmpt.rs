//! Issue 13, RTMPT: ffmpeg publishes over rtmpt:// on the HTTP port and reads back over
//! rtmpt://, rtmpts:// (HTTPS port) and plain rtmp://; bad RTMPT requests (a replayed or
//! skipped request number, an unknown session, a huge body, an idle session) get a clear
//! 4xx or close, are counted, and leave other clients alone; reserved app names.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::raw_rtmp::RawRtmp;
use common::*;

const FCS: &str = "Content-Type: application/x-fcs";

/// Decodes 3 s of audio and video from `url`: the video frames decoded, and everything
/// ffmpeg reported at level `error` (a clean decode reports nothing).
fn decode(url: &str) -> (u64, String) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-nostats"])
        .args(["-rw_timeout", "15000000", "-i", url, "-t", "3"])
        .args(["-f", "null", "-progress", "pipe:1", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg decode of {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .filter_map(|v| v.trim().parse().ok())
        .next_back()
        .unwrap_or(0);
    (frames, String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn ffmpeg_publishes_and_plays_over_rtmpt() {
    // A publisher killed without its /close is closed at the (short) idle timeout; a player
    // that stops polling fills its small buffer and is dropped at the write timeout first.
    let server = ServerProc::start_tls(
        "[tls]\nself_signed = true\n[rtmpt]\nidle_timeout_ms = 5000\nbuffer_bytes = 65536\n\
         [hub]\nviewer_write_timeout_ms = 2000\n",
    );
    let https = server.https.unwrap();
    let mut push = TestPush::small().start(&format!("rtmpt://{}/live/u", server.http));
    server.wait_live("live", "u");
    let info = server.stream("live", "u").unwrap();
    assert_eq!(info["video"]["codec"], "h264");
    assert_eq!(info["video"]["width"], 640);
    assert_eq!(info["audio"]["codec"], "aac");

    // Read back through the tunnel (HTTP and, as RTMPTS, HTTPS) and over plain RTMP, which
    // shows what came in through the tunnel was whole.
    for url in [
        format!("rtmpt://{}/live/u", server.http),
        format!("rtmpts://{https}/live/u"),
        server.rtmp_url("live/u"),
    ] {
        let (frames, errors) = decode(&url);
        eprintln!("{url}: {frames} video frames decoded in 3 s");
        // 90 frames in 3 s at 30 fps; a third of that fails only when something is broken.
        assert!(frames >= 30, "{url}: decoded {frames} video frames in 3 s");
        assert!(errors.trim().is_empty(), "{url}: decode errors: {errors}");
    }
    // The session that came through the HTTPS listener counted as RTMPTS.
    let (_, metrics) = http_get(server.http, "/metrics");
    let metrics = String::from_utf8_lossy(&metrics).to_string();
    assert!(
        metrics.contains("onair_connections_accepted_total{protocol=\"rtmpts\"} 1"),
        "{metrics}"
    );

    // A player that stops polling (SIGSTOP) can make the server hold no more than
    // `buffer_bytes` for it: its RTMP writer stalls and drops it as a slow viewer.
    let stopped = Proc(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "quiet", "-i"])
            .arg(format!("rtmpt://{}/live/u", server.http))
            .args(["-f", "null", "-"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn ffmpeg"),
    );
    wait_until("the RTMPT player plays", Duration::from_secs(15), || {
        server
            .stream("live", "u")
            .is_some_and(|s| s["viewers"]["rtmp"] == 1)
    });
    let pid = stopped.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    wait_until(
        "the stopped player dropped",
        Duration::from_secs(15),
        || refusals(&server, "viewer_write_timeout") >= 1,
    );
    assert_eq!(refusals(&server, "rtmpt_idle_timeout"), 0);
    assert_eq!(server.stream("live", "u").unwrap()["viewers"]["rtmp"], 0);
    drop(stopped);

    // The publisher saw no error either, and the sessions are gone once their clients are.
    assert!(
        push.0.try_wait().unwrap().is_none(),
        "the RTMPT publisher stopped"
    );
    drop(push);
    wait_until(
        "the RTMPT sessions to close",
        Duration::from_secs(20),
        || {
            let (_, body) = http_get(server.http, "/metrics");
            String::from_utf8_lossy(&body).contains("onair_connections{protocol=\"rtmpt\"} 0")
        },
    );
}

fn refusals(server: &ServerProc, reason: &str) -> u64 {
    let (_, body) = http_get(server.http, "/metrics");
    let line = format!("onair_refusals_total{{reason=\"{reason}\"}}");
    String::from_utf8_lossy(&body)
        .lines()
        .find(|l| l.starts_with(&line))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// One RTMPT POST; status and body.
fn post(addr: SocketAddr, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    http_request(addr, "POST", path, &[FCS], body)
}

fn open(addr: SocketAddr) -> String {
    let (status, body) = post(addr, "/open/1", &[0]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let id = String::from_utf8(body).unwrap();
    assert!(id.ends_with('\n'), "{id:?}");
    id.trim().to_string()
}

/// C0 + C1 of an RTMP handshake.
fn c0c1() -> Vec<u8> {
    let mut v = vec![3u8];
    v.extend(std::iter::repeat_n(7u8, 1536));
    v
}

#[test]
fn bad_rtmpt_requests_get_a_4xx_are_counted_and_harm_no_other_client() {
    // The good session below stays half-way through its handshake: a long handshake limit
    // keeps it open across the bad requests.
    let server = ServerProc::start(
        "[rtmpt]\nidle_timeout_ms = 3000\nmax_send_bytes = 65536\n\
         [rtmp]\nhandshake_timeout_ms = 30000\n",
    );
    let http = server.http;
    let _push = TestPush::small().start(&server.rtmp_url("live/b"));
    server.wait_live("live", "b");
    let watcher = Watcher::start(&server, "/live/b.flv");
    let since = watcher.bytes.load(Ordering::Relaxed);

    // A good session: the handshake's first half, answered with S0 S1 S2 (1 + 2 x 1536
    // bytes) after the polling byte, over one or more polls.
    let good = open(http);
    let (status, body) = post(http, &format!("/send/{good}/0"), &c0c1());
    assert_eq!(status, 200);
    assert!(!body.is_empty(), "a reply starts with the polling byte");
    let mut from_server = body[1..].to_vec();
    let mut n = 1;
    wait_until("S0 S1 S2 through /idle", Duration::from_secs(5), || {
        let (status, body) = post(http, &format!("/idle/{good}/{n}"), &[0]);
        n += 1;
        assert_eq!(status, 200);
        from_server.extend_from_slice(&body[1..]);
        from_server.len() >= 3073
    });
    assert_eq!(from_server[0], 3, "S0 is the RTMP version");

    // A replayed request number: refused, and its session is closed.
    let replay = open(http);
    assert_eq!(post(http, &format!("/send/{replay}/0"), &c0c1()).0, 200);
    let (status, body) = post(http, &format!("/send/{replay}/0"), &c0c1());
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("already used"));
    assert_eq!(post(http, &format!("/idle/{replay}/1"), &[0]).0, 404);

    // A request number that skips ahead.
    let skip = open(http);
    assert_eq!(post(http, &format!("/idle/{skip}/0"), &[0]).0, 200);
    let (status, body) = post(http, &format!("/idle/{skip}/5"), &[0]);
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("skips ahead"));

    // A session id nobody was given.
    let (status, body) = post(http, "/idle/0123456789abcdef0123456789abcdef/0", &[0]);
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("no such RTMPT session"));

    // A /send announcing a gigabyte: 413 at once, without the server reading or waiting
    // for it, and the session (whose bytes were refused) is closed.
    let huge = open(http);
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /send/{huge}/0 HTTP/1.1\r\nHost: x\r\n{FCS}\r\nContent-Length: 1073741824\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 64];
    let got = s.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..got]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    drop(s);
    assert_eq!(post(http, &format!("/idle/{huge}/1"), &[0]).0, 404);
    // A streamed (chunked) body is counted as it comes: one byte over the limit is 413.
    let streamed = open(http);
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /send/{streamed}/0 HTTP/1.1\r\nHost: x\r\n{FCS}\r\nTransfer-Encoding: chunked\r\n\r\n10001\r\n"
    )
    .unwrap();
    s.write_all(&[0u8; 65537]).unwrap();
    let mut head = [0u8; 64];
    let got = s.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..got]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    drop(s);
    assert_eq!(post(http, &format!("/idle/{streamed}/1"), &[0]).0, 404);

    // Not RTMPT's content type, not a POST, a malformed path.
    assert_eq!(http_request(http, "POST", "/open/1", &[], &[0]).0, 415);
    assert_eq!(http_get(http, "/open/1").0, 405);
    // The fixed routes win over `/{app}/{stream}`: this is RTMPT's, not an HTTP-FLV play.
    let (status, body) = http_get(http, "/send/t.flv");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("RTMPT"));
    assert_eq!(post(http, "/send/x", &[0]).0, 400);
    // Flash's ident request is answered as Red5 answers it without an ident.
    assert_eq!(post(http, "/fcs/ident2", &[0]).0, 404);

    // The good session was not disturbed by any of it.
    let (status, _) = post(http, &format!("/idle/{good}/{n}"), &[0]);
    assert_eq!(status, 200);

    // A session left alone is closed at the idle timeout (3 s) and then unknown.
    let left = open(http);
    wait_until("the idle session closed", Duration::from_secs(10), || {
        refusals(&server, "rtmpt_idle_timeout") >= 1
    });
    wait_until("the idle session gone", Duration::from_secs(10), || {
        post(http, &format!("/idle/{left}/0"), &[0]).0 == 404
    });

    assert!(refusals(&server, "rtmpt_bad_sequence") >= 2);
    assert!(refusals(&server, "rtmpt_unknown_session") >= 3);
    assert!(refusals(&server, "rtmpt_body_too_large") >= 2);
    assert!(refusals(&server, "rtmpt_bad_request") >= 4);
    watcher.assert_flowing(since, "bad RTMPT requests");
}

#[test]
fn rtmpt_sessions_share_the_rtmp_connection_limits_and_reserved_apps_are_refused() {
    let server = ServerProc::start("[rtmp]\nmax_connections_per_ip = 1\n");
    let from = |ip: &str| {
        let mut s = connect_from(ip, server.http).unwrap();
        http_exchange(&mut s, "POST", "/open/1", &[FCS], &[0]).unwrap()
    };
    assert_eq!(from("127.0.0.2").0, 200);
    let (status, body) = from("127.0.0.2");
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("rtmp_max_connections_per_ip"));
    assert_eq!(from("127.0.0.3").0, 200);
    wait_until("the refusal counted", Duration::from_secs(5), || {
        refusals(&server, "rtmp_max_connections_per_ip") >= 1
    });

    // An app named like a fixed route cannot be published to, and the status says why.
    let mut rtmp = RawRtmp::connect(server.rtmp);
    rtmp.handshake();
    rtmp.connect_app("send");
    rtmp.publish("x");
    assert!(
        rtmp.wait_for("reserved", Duration::from_secs(5)),
        "no status naming the reserved app"
    );
    assert!(rtmp.saw("NetStream.Publish.BadName"));
    assert!(server.stream("send", "x").is_none());
}
