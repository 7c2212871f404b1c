//! Issue 6, Done-when 1: each refusal (wrong key, hook says no, over a limit, slowloris)
//! with its status and its metric, while a live stream keeps flowing to its viewer.

use crate::common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::raw_rtmp::RawRtmp;
use common::*;

/// A hook that allows everything except streams named "denied"; counts its calls.
fn start_hook() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().take(1000) {
            let Ok(mut s) = s else { continue };
            c.fetch_add(1, Ordering::Relaxed);
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&got).contains('}') {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&got);
            let status = if text.contains("\"stream\":\"denied\"") {
                "403 Forbidden"
            } else {
                "200 OK"
            };
            let _ = s.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (url, calls)
}

fn refusals(server: &ServerProc, reason: &str) -> u64 {
    server.metric(&format!("onair_refusals_total{{reason=\"{reason}\"}}"))
}

fn ffmpeg_probe_fails(url: &str) -> bool {
    !Command::new("ffprobe")
        .args(["-v", "error", "-rw_timeout", "5000000"])
        .arg(url)
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn refusals_have_their_status_and_metric_and_leave_the_stream_alone() {
    let (hook, hook_calls) = start_hook();
    let server = ServerProc::start_logged(
        &format!(
        "[auth]\nhook_url = \"{hook}\"\nhook_timeout_ms = 2000\n[auth.publish_keys]\nlive = [\"s3cret\"]\n\
         [rtmp]\nhandshake_timeout_ms = 1500\nmax_connections_per_ip = 40\n\
         [http]\nheader_read_timeout_ms = 1500\nmax_connections_per_ip = 40\n\
         [hub]\nmax_viewers_per_stream = 3\n"
    ),
        "debug",
    );
    let _push = ffmpeg_push(&server.rtmp_url("live/t?key=s3cret"));
    server.wait_live("live", "t");
    let viewer = Watcher::start(&server, "/live/t.flv");
    viewer.assert_flowing(0, "start");
    let check = |what: &str, f: &mut dyn FnMut()| viewer.across(what, f);

    check("wrong publish key", &mut || {
        let mut c = RawRtmp::connect(server.rtmp);
        c.handshake();
        c.connect_app("live");
        c.publish("other?key=nope");
        c.read_until_closed(Duration::from_secs(5)).expect("closed");
        assert!(
            c.saw("NetStream.Publish.Unauthorized"),
            "wrong key gets Unauthorized"
        );
        assert!(!c.saw("NetStream.Publish.Start"));
        assert_eq!(refusals(&server, "wrong_key"), 1);
    });

    check("missing publish key", &mut || {
        let mut c = RawRtmp::connect(server.rtmp);
        c.handshake();
        c.connect_app("live");
        c.publish("other");
        c.read_until_closed(Duration::from_secs(5)).expect("closed");
        assert!(c.saw("NetStream.Publish.Unauthorized"));
        assert_eq!(refusals(&server, "missing_key"), 1);
    });

    check("hook refuses a publish", &mut || {
        let mut c = RawRtmp::connect(server.rtmp);
        c.handshake();
        c.connect_app("live");
        c.publish("denied?key=s3cret");
        c.read_until_closed(Duration::from_secs(5)).expect("closed");
        assert!(c.saw("NetStream.Publish.Unauthorized"));
        assert!(
            !c.saw("NetStream.Publish.Start"),
            "Publish.Start only after the hook said yes"
        );
        assert_eq!(refusals(&server, "hook_refused"), 1);
    });

    check("hook refuses a play", &mut || {
        let (status, _) = http_get(server.http, "/live/denied.flv");
        assert_eq!(status, 403);
        assert!(ffmpeg_probe_fails(&server.rtmp_url("live/denied")));
        assert!(refusals(&server, "hook_refused") >= 3);
    });

    check("viewers per stream", &mut || {
        // The watcher is one; two more fit; the fourth is refused.
        let _a = Watcher::start(&server, "/live/t.flv");
        let _b = Watcher::start(&server, "/live/t.flv");
        wait_until("3 viewers", Duration::from_secs(10), || {
            server
                .stream("live", "t")
                .is_some_and(|s| s["viewers"]["flv"] == 3)
        });
        assert_eq!(http_get(server.http, "/live/t.flv").0, 503);
        let mut c = RawRtmp::connect(server.rtmp);
        c.handshake();
        c.connect_app("live");
        c.play("t");
        c.read_until_closed(Duration::from_secs(5)).expect("closed");
        assert!(
            c.saw("already has its limit"),
            "RTMP play over the limit is refused"
        );
        assert!(refusals(&server, "max_viewers_per_stream") >= 2);
    });

    check("connections per IP", &mut || {
        let held: Vec<TcpStream> = (0..45)
            .filter_map(|_| TcpStream::connect(server.rtmp).ok())
            .collect();
        wait_until("per-IP refusals counted", Duration::from_secs(5), || {
            refusals(&server, "rtmp_max_connections_per_ip") >= 5
        });
        drop(held);
    });

    check("slowloris over HTTP", &mut || {
        let mut s = TcpStream::connect(server.http).unwrap();
        let started = Instant::now();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 256];
        let mut closed = false;
        for b in b"GET /live/t.flv HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .chain(std::iter::repeat_n(&b'a', 100))
        {
            if s.write_all(&[*b]).is_err() {
                closed = true;
                break;
            }
            match s.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        assert!(closed, "dribbling headers must be cut off");
        assert!(started.elapsed() < Duration::from_secs(10));
    });

    check("slowloris over RTMP", &mut || {
        let mut c = RawRtmp::connect(server.rtmp);
        let started = Instant::now();
        for _ in 0..20 {
            if c.write(&[3]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        c.read_until_closed(Duration::from_secs(5)).expect("closed");
        assert!(started.elapsed() < Duration::from_secs(8));
        assert!(refusals(&server, "handshake_timeout") >= 1);
    });

    // Keys never reach the logs, even at debug level (they go to the hook, whose job they are).
    assert!(hook_calls.load(Ordering::Relaxed) >= 3);
    let log = server.log();
    assert!(log.contains("wrong publish key"), "the refusals are logged");
    for secret in ["s3cret", "nope"] {
        assert!(!log.contains(secret), "a key reached the log");
    }
    let live = server.stream("live", "t").unwrap();
    assert_eq!(live["live"], true);
}

#[test]
fn play_tokens_guard_flv_hls_and_rtmp() {
    let server = ServerProc::start("[auth]\nplay_tokens = [\"tok\"]\n");
    let _push = ffmpeg_push(&server.rtmp_url("live/p"));
    server.wait_live("live", "p");
    assert_eq!(http_get(server.http, "/live/p.flv").0, 401);
    assert_eq!(http_get(server.http, "/live/p.flv?token=bad").0, 403);
    let ok = Watcher::start(&server, "/live/p.flv?token=tok");
    ok.assert_flowing(0, "token accepted");
    assert_eq!(http_get(server.http, "/live/p.m3u8").0, 401);
    let (status, body) = http_get(server.http, "/live/p.m3u8?token=tok&variant=ts");
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body).to_string();
    let seg = text
        .lines()
        .find(|l| l.ends_with(".ts?token=tok"))
        .expect("segments carry the token");
    assert_eq!(http_get(server.http, &format!("/live/{seg}")).0, 200);
    assert_eq!(
        http_get(
            server.http,
            &format!("/live/{}", seg.split('?').next().unwrap())
        )
        .0,
        401
    );
    assert!(ffmpeg_probe_fails(&server.rtmp_url("live/p")));
    assert!(
        !ffmpeg_probe_fails(&server.rtmp_url("live/p?token=tok")),
        "RTMP play with the token works"
    );
    assert!(refusals(&server, "missing_token") >= 3);
}
