//! Issue 18, viewer experience: players' QoE beacons (`POST /api/qoe`) against a real
//! `onair serve`. 50 senders, each from its own loopback address, report a known latency
//! distribution and known stalls; `/api/streams` and `/metrics` show its percentiles and
//! stall ratio within 10%, and no per-client data. Floods from one address get 429 while
//! another still gets 204; oversized bodies 413, garbage 400, unfinished ones 408; memory
//! and tracked state stay bounded across 20k bad requests.

use crate::common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::Duration;

use common::viewers::SyntheticPublisher;
use common::*;

/// An HTTP/1.1 client connection bound to a chosen loopback source address, so the server
/// sees it as its own client.
struct Client {
    s: TcpStream,
    server: SocketAddr,
}

impl Client {
    fn connect(from: Ipv4Addr, server: SocketAddr) -> Client {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        sock.bind(&SocketAddr::V4(SocketAddrV4::new(from, 0)).into())
            .unwrap_or_else(|e| panic!("bind {from}: {e}"));
        sock.connect(&server.into()).expect("connect");
        let s: TcpStream = sock.into();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        Client { s, server }
    }

    /// Sends one request (keep-alive) and returns its status, headers and body.
    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.server,
            body.len()
        );
        self.raw(&[head.as_bytes(), body].concat())
    }

    /// Writes `bytes` as they are and reads one response.
    fn raw(&mut self, bytes: &[u8]) -> (u16, String, Vec<u8>) {
        self.s.write_all(bytes).expect("write request");
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            let n = self.s.read(&mut byte).expect("read response head");
            assert!(n == 1, "connection closed before a response head");
            buf.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status");
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0; len];
        self.s.read_exact(&mut body).expect("read response body");
        (status, head, body)
    }
}

fn beacon(stream: &str, session: u64, latency: f64, stall_ms: u32, dropped: u32) -> Vec<u8> {
    format!(
        r#"{{"stream":"{stream}","protocol":"flv","session":"{session:016x}","interval_ms":10000,"latency_ms":{latency},"stalls":{},"stall_ms":{stall_ms},"dropped_frames":{dropped},"av_offset_ms":{}}}"#,
        u32::from(stall_ms > 0),
        (session % 7) as i64 - 3
    )
    .into_bytes()
}

fn post_once(from: Ipv4Addr, server: SocketAddr, body: &[u8]) -> u16 {
    Client::connect(from, server)
        .request("POST", "/api/qoe", body)
        .0
}

fn within(what: &str, got: f64, want: f64, frac: f64) {
    assert!(
        (got - want).abs() <= want.abs() * frac,
        "{what}: {got} is not within {}% of {want}",
        frac * 100.0
    );
}

/// A loopback address per index, away from 127.0.0.1.
fn addr(block: u8, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, block, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn field_names(v: &serde_json::Value, out: &mut Vec<String>) {
    if let Some(m) = v.as_object() {
        for (k, v) in m {
            out.push(k.to_ascii_lowercase());
            field_names(v, out);
        }
    }
}

fn metric(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_viewers_known_latency_and_stalls() {
    let server = ServerProc::start("");
    let publisher = SyntheticPublisher::start(&server.rtmp_url("live/qoe"), 10).await;
    let http = server.http;
    tokio::task::spawn_blocking(move || {
        server.wait_live("live", "qoe");
        // 50 senders: latency uniform over 100..=600 ms (sender i at 100 + 500 i / 49),
        // stalled (i % 5) * 250 ms of every 10 s (mean 500 ms: stall ratio 0.05), two
        // beacons each, from 127.1.0.(i+1).
        let sessions: Vec<u64> = (0..50u64)
            .map(|i| 0x5eed_0000_0000_0000 | (i * 0x1_0001))
            .collect();
        for round in 0..2 {
            for (i, &session) in sessions.iter().enumerate() {
                let latency = 100.0 + 500.0 * i as f64 / 49.0;
                let stall = (i as u32 % 5) * 250;
                let body = beacon("live/qoe", session, latency, stall, i as u32 % 3);
                let status = post_once(addr(1, i), http, &body);
                assert_eq!(status, 204, "beacon {round}/{i}");
            }
        }
        for json in [
            server.stream("live", "qoe").expect("listed"),
            serde_json::from_slice(&http_get(http, "/api/streams/live/qoe").1).expect("json"),
        ] {
            let q = &json["qoe"];
            assert_eq!(q["viewer_sessions"], 50, "{q}");
            assert_eq!(q["beacons"], 100, "{q}");
            within("p50", q["latency_ms"]["p50"].as_f64().unwrap(), 350.0, 0.10);
            within("p95", q["latency_ms"]["p95"].as_f64().unwrap(), 575.0, 0.10);
            within("stall ratio", q["stall_ratio"].as_f64().unwrap(), 0.05, 0.10);
            // Field names say nothing about a client (the rule tests/public_api.rs holds
            // every field of the public API to).
            let mut names = Vec::new();
            field_names(q, &mut names);
            for name in &names {
                for word in ["addr", "ip", "port", "peer", "key", "token", "secret", "session_id"] {
                    assert!(!name.contains(word), "qoe field {name} names a client detail");
                }
            }
            // No session id, in any spelling, is in the public answer.
            let text = json.to_string();
            for s in &sessions {
                assert!(!text.contains(&format!("{s:016x}")), "a session id leaked: {text}");
                assert!(!text.contains(&s.to_string()), "a session id leaked: {text}");
            }
            assert!(!text.contains("127.1."), "a client address leaked: {text}");
        }
        let (status, body) = http_get(http, "/metrics");
        assert_eq!(status, 200);
        let text = String::from_utf8_lossy(&body);
        let labels = "{app=\"live\",stream=\"qoe\"}";
        let p50 = metric(&text, &format!("onair_viewer_latency_p50_seconds{labels}"));
        let p95 = metric(&text, &format!("onair_viewer_latency_p95_seconds{labels}"));
        let stall = metric(&text, &format!("onair_viewer_stall_ratio{labels}"));
        within("metrics p50", p50.expect("p50 in /metrics"), 0.350, 0.10);
        within("metrics p95", p95.expect("p95 in /metrics"), 0.575, 0.10);
        within("metrics stall", stall.expect("stall in /metrics"), 0.05, 0.10);
        assert!(!text.contains("127.1."), "a client address in /metrics");

        // The path takes POST (and a CORS preflight), nothing else; it needs a live stream.
        let mut c = Client::connect(addr(2, 0), http);
        let (status, head, _) = c.raw(
            format!("OPTIONS /api/qoe HTTP/1.1\r\nHost: {http}\r\nOrigin: http://elsewhere\r\nAccess-Control-Request-Method: POST\r\n\r\n").as_bytes(),
        );
        assert_eq!(status, 204);
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains("access-control-allow-methods: post"),
            "preflight: {head}"
        );
        assert_eq!(c.request("GET", "/api/qoe", b"").0, 405);
        assert_eq!(c.request("POST", "/api/streams", b"{}").0, 405);
        let unknown = beacon("live/nobody", 1, 200.0, 0, 0);
        assert_eq!(c.request("POST", "/api/qoe", &unknown).0, 404);
        server
    })
    .await
    .unwrap();
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_oversized_and_garbage_are_refused_and_memory_stays_bounded() {
    // Small limits, so that the bounds are reached; a long grace keeps the stream (waiting
    // for its publisher) without media moving the server's memory during the count.
    let server = ServerProc::start(
        "[qoe]\nclient_beacons_per_s = 1.0\nclient_burst = 5\nmax_tracked_clients = 200\n\
         max_samples_per_stream = 64\nbody_read_timeout_ms = 500\n[hub]\npublisher_grace_ms = 600000\n",
    );
    let publisher = SyntheticPublisher::start(&server.rtmp_url("live/flood"), 10).await;
    let http = server.http;
    let server = tokio::task::spawn_blocking(move || {
        server.wait_live("live", "flood");
        server
    })
    .await
    .unwrap();
    publisher.stop().await;
    tokio::task::spawn_blocking(move || {
        wait_until(
            "the stream waits for its publisher",
            Duration::from_secs(10),
            || {
                server
                    .stream("live", "flood")
                    .is_some_and(|s| s["live"] == false)
            },
        );
        let good = beacon("live/flood", 0xabc, 250.0, 0, 0);

        // Oversized: by Content-Length (refused before the body is sent, as a client
        // waiting for 100-continue would), and chunked past the bound.
        let mut c = Client::connect(addr(3, 0), http);
        let head =
            format!("POST /api/qoe HTTP/1.1\r\nHost: {http}\r\nContent-Length: 3000\r\n\r\n");
        assert_eq!(c.raw(head.as_bytes()).0, 413);
        let mut c = Client::connect(addr(3, 1), http);
        let mut chunked =
            format!("POST /api/qoe HTTP/1.1\r\nHost: {http}\r\nTransfer-Encoding: chunked\r\n\r\n")
                .into_bytes();
        for _ in 0..3 {
            chunked.extend_from_slice(b"400\r\n");
            chunked.extend_from_slice(&[b'x'; 0x400]);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(c.raw(&chunked).0, 413);

        // Garbage and out-of-range values.
        let mut c = Client::connect(addr(3, 2), http);
        assert_eq!(c.request("POST", "/api/qoe", b"not json").0, 400);
        assert_eq!(c.request("POST", "/api/qoe", &[0xff, 0xfe, 0x00]).0, 400);
        let zero_interval = String::from_utf8(good.clone())
            .unwrap()
            .replace("\"interval_ms\":10000", "\"interval_ms\":0");
        assert_eq!(
            c.request("POST", "/api/qoe", zero_interval.as_bytes()).0,
            400
        );
        let extra = String::from_utf8(good.clone())
            .unwrap()
            .replace("{\"stream\"", "{\"admin\":true,\"stream\"");
        assert_eq!(c.request("POST", "/api/qoe", extra.as_bytes()).0, 400);

        // A body that never finishes arriving is cut off at the read deadline.
        let mut c = Client::connect(addr(3, 5), http);
        let started = std::time::Instant::now();
        let slow = format!(
            "POST /api/qoe HTTP/1.1\r\nHost: {http}\r\nContent-Length: 100\r\n\r\n{{\"stream\""
        );
        assert_eq!(c.raw(slow.as_bytes()).0, 408);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );

        // A flood from one address: the burst passes, the rest is 429; another address
        // still gets through meanwhile.
        let mut flooder = Client::connect(addr(3, 3), http);
        let statuses: Vec<u16> = (0..200)
            .map(|_| flooder.request("POST", "/api/qoe", &good).0)
            .collect();
        let passed = statuses.iter().filter(|&&s| s == 204).count();
        let limited = statuses.iter().filter(|&&s| s == 429).count();
        assert!((5..=15).contains(&passed), "{passed} passed of 200");
        assert_eq!(passed + limited, 200, "{statuses:?}");
        assert_eq!(post_once(addr(3, 4), http, &good), 204);
        assert_eq!(flooder.request("POST", "/api/qoe", &good).0, 429);

        // 22k bad or flooding requests from 1100 addresses, 20 each on one connection:
        // the first 100 addresses warm the server up, RSS is read, then the other 20k
        // requests must not move it by more than a few MiB, and the tracked state stays
        // within its bounds.
        let sweep = |from: usize, to: usize| {
            for i in from..to {
                let mut c = Client::connect(addr(4, i), http);
                for j in 0..20u64 {
                    let body = match j % 3 {
                        0 => b"{\"stream\":".to_vec(),
                        1 => beacon("live/flood", (i as u64) << 8 | j, 100.0 + j as f64, 0, 0),
                        _ => vec![b'{'; 1500],
                    };
                    let status = c.request("POST", "/api/qoe", &body).0;
                    assert!(
                        matches!(status, 204 | 400 | 429),
                        "request {i}/{j} answered {status}"
                    );
                }
            }
        };
        sweep(0, 100);
        let before = server.rss_kib();
        sweep(100, 1100);
        let after = server.rss_kib();
        assert!(
            after <= before + 4 * 1024,
            "RSS grew from {before} KiB to {after} KiB over 20k requests"
        );
        let q = server.stream("live", "flood").expect("listed")["qoe"].clone();
        assert!(q["beacons"].as_u64().unwrap() <= 64, "{q}");
        let (_, body) = http_get(http, "/metrics");
        let text = String::from_utf8_lossy(&body);
        let tracked = metric(&text, "onair_qoe_clients_tracked").expect("tracked gauge");
        assert!(tracked <= 200.0, "{tracked} addresses tracked");
        assert!(
            metric(&text, "onair_qoe_beacons_total{result=\"rate_limited\"}")
                .is_some_and(|n| n >= 190.0)
        );
        eprintln!("RSS {before} KiB -> {after} KiB; {tracked} addresses tracked");
        drop(server);
    })
    .await
    .unwrap();
}
