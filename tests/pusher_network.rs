//! Done-when 5, network faults: the server stops and comes back, or the link drops without
//! the server noticing, and the pusher reconnects and carries on by itself; through a local proxy that passes fewer bytes per second than
//! the stream needs, the pusher drops frames (status line `dropped=`), lowers its video
//! bitrate (`target=`) and its memory stays flat. All traffic is on 127.0.0.1; every loop is bounded in count and time.

use crate::common;
use crate::pusher_util;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use pusher_util::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

#[test]
fn reconnects_by_itself_when_the_server_comes_back() {
    let first = ServerProc::start("");
    let rtmp = first.rtmp;
    let url = format!("rtmp://{rtmp}/live/r");
    let mut child = push_cmd(&[
        &url,
        "--size",
        "320x240",
        "--bitrate",
        "400k",
        "--duration",
        "60",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn onair push");
    let status = StatusLines::collect(&mut child);
    let push = PushProc(child);
    first.wait_live("live", "r");
    assert!(first.stop().success(), "server did not stop cleanly");

    // The same address again, a new server process.
    let second = ServerAt::start(rtmp);
    wait_until(
        "the pusher to publish again by itself",
        Duration::from_secs(20),
        || {
            second
                .live("live", "r")
                .is_some_and(|s| s["video"]["width"] == 320)
        },
    );
    // And media flows: a viewer of the new server gets the stream.
    let st = streams(&format!("http://{}/live/r.flv", second.http));
    assert!(st.iter().any(|s| s["codec_name"] == "h264"), "{st:?}");
    wait_until(
        "a status line counting the reconnect",
        Duration::from_secs(5),
        || status.last("reconnects").is_some_and(|n| n >= 1),
    );
    drop(push);
}

/// A TCP proxy to `upstream` that passes client-to-server bytes at `rate` bytes/s (the other
/// way is free). Runs until `stop`; every wait in it is bounded.
fn throttling_proxy(
    upstream: SocketAddr,
    rate: u64,
    stop: Arc<AtomicBool>,
) -> (SocketAddr, Arc<AtomicU64>) {
    let passed = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("proxy runtime");
    let socket = TcpSocket::new_v4().expect("socket");
    // A small receive window, so the throttle is felt by the sender at once.
    socket.set_recv_buffer_size(64 * 1024).expect("SO_RCVBUF");
    socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    let listener: TcpListener = rt.block_on(async { socket.listen(16) }).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let counter = passed.clone();
    std::thread::spawn(move || {
        rt.block_on(async move {
            while !stop.load(Ordering::Relaxed) {
                let accepted =
                    tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
                let Ok(Ok((client, _))) = accepted else {
                    continue;
                };
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let (stop1, stop2, counter) = (stop.clone(), stop.clone(), counter.clone());
                tokio::spawn(async move {
                    // Token bucket: 4 KiB reads, each paid for by waiting size/rate.
                    let mut buf = vec![0u8; 4096];
                    let start = Instant::now();
                    let mut sent = 0u64;
                    while !stop1.load(Ordering::Relaxed) {
                        let n = match tokio::time::timeout(
                            Duration::from_millis(200),
                            cr.read(&mut buf),
                        )
                        .await
                        {
                            Ok(Ok(0)) | Ok(Err(_)) => break,
                            Ok(Ok(n)) => n,
                            Err(_) => continue,
                        };
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        sent += n as u64;
                        counter.fetch_add(n as u64, Ordering::Relaxed);
                        let due = Duration::from_secs_f64(sent as f64 / rate as f64);
                        if let Some(wait) = due.checked_sub(start.elapsed()) {
                            tokio::time::sleep(wait.min(Duration::from_secs(2))).await;
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16384];
                    while !stop2.load(Ordering::Relaxed) {
                        match tokio::time::timeout(Duration::from_millis(200), sr.read(&mut buf))
                            .await
                        {
                            Ok(Ok(0)) | Ok(Err(_)) => break,
                            Ok(Ok(n)) => {
                                if cw.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                            Err(_) => continue,
                        }
                    }
                });
            }
        });
    });
    (addr, passed)
}

#[test]
fn a_slow_link_makes_the_pusher_drop_frames_with_flat_memory() {
    let server = ServerProc::start("");
    let stop = Arc::new(AtomicBool::new(false));
    // 1.2 Mbit/s of video through 30 KB/s (0.24 Mbit/s): below even the lowest bitrate the
    // pusher adapts down to (a quarter of the asked one, plus audio).
    let (proxy, passed) = throttling_proxy(server.rtmp, 30_000, stop.clone());
    let url = format!("rtmp://{proxy}/live/slow");
    let mut child = push_cmd(&[
        &url,
        "--size",
        "640x360",
        "--bitrate",
        "1200k",
        "--keyint",
        "1",
        "--queue-ms",
        "1000",
        "--duration",
        "60",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn onair push");
    let status = StatusLines::collect(&mut child);
    let push = PushProc(child);
    let pid = push.0.id();
    server.wait_live("live", "slow");

    // Memory after the queue has filled, then twice more over 20 s: flat.
    wait_until("the first dropped frames", Duration::from_secs(20), || {
        status.last("dropped").is_some_and(|n| n > 0)
    });
    let mut samples = Vec::new();
    let t0 = Instant::now();
    let bytes0 = passed.load(Ordering::Relaxed);
    for i in 1..=4u64 {
        wait_until("the next memory sample", Duration::from_secs(10), || {
            t0.elapsed() >= Duration::from_secs(5 * i)
        });
        samples.push(rss_kib(pid));
    }
    let dropped = status.last("dropped").unwrap_or(0);
    let rate = (passed.load(Ordering::Relaxed) - bytes0) as f64 / t0.elapsed().as_secs_f64();
    eprintln!("pusher RSS (KiB) every 5 s: {samples:?}; dropped {dropped}; link {rate:.0} B/s");
    assert!(rate < 40_000.0, "the proxy did not throttle: {rate:.0} B/s");
    let target = status.last("target").unwrap_or(u64::MAX);
    assert!(
        target <= 400,
        "the video bitrate target stayed at {target} kbit/s"
    );
    assert!(
        dropped > 100,
        "only {dropped} frames dropped on a link a third of the bitrate"
    );
    let (min, max) = (
        samples.iter().min().copied().unwrap_or(0),
        samples.iter().max().copied().unwrap_or(0),
    );
    assert!(min > 0, "no RSS read");
    assert!(
        max - min < 8 * 1024,
        "pusher memory grew from {min} to {max} KiB"
    );
    // The stream still reaches the server: throttled, not dead.
    assert!(server
        .stream("live", "slow")
        .is_some_and(|s| s["live"] == true));
    stop.store(true, Ordering::Relaxed);
    drop(push);
}

/// A TCP proxy to `upstream` whose link can be cut: `cut` (a generation counter) going up
/// closes the client side of every older connection while the server side stays open and
/// silent, as when a network drops without the server noticing.
fn cuttable_proxy(upstream: SocketAddr, cut: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> SocketAddr {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("proxy runtime");
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind proxy");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        rt.block_on(async move {
            // Server sides of cut connections, kept open (and silent) until the end.
            let graveyard = Arc::new(tokio::sync::Mutex::new(Vec::new()));
            while !stop.load(Ordering::Relaxed) {
                let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
                let Ok(Ok((client, _))) = accepted else { continue };
                let Ok(server) = TcpStream::connect(upstream).await else { continue };
                let generation = cut.load(Ordering::Relaxed);
                let (cut, stop, graveyard) = (cut.clone(), stop.clone(), graveyard.clone());
                tokio::spawn(async move {
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let (mut up, mut down) = (vec![0u8; 16384], vec![0u8; 16384]);
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        if cut.load(Ordering::Relaxed) != generation {
                            // Drop the client side; keep the server side, saying nothing.
                            graveyard.lock().await.push((sr, sw));
                            return;
                        }
                        tokio::select! {
                            r = cr.read(&mut up) => match r {
                                Ok(n) if n > 0 => if sw.write_all(&up[..n]).await.is_err() { return },
                                _ => return,
                            },
                            r = sr.read(&mut down) => match r {
                                Ok(n) if n > 0 => if cw.write_all(&down[..n]).await.is_err() { return },
                                _ => return,
                            },
                            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        }
                    }
                });
            }
        });
    });
    addr
}

#[test]
fn a_dropped_link_the_server_did_not_notice_is_published_again() {
    let server = ServerProc::start("");
    let (cut, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let proxy = cuttable_proxy(server.rtmp, cut.clone(), stop.clone());
    let url = format!("rtmp://{proxy}/live/blip");
    let mut child = push_cmd(&[
        &url,
        "--size",
        "320x240",
        "--bitrate",
        "400k",
        "--duration",
        "60",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn onair push");
    let status = StatusLines::collect(&mut child);
    let push = PushProc(child);
    server.wait_live("live", "blip");
    let first = server.stream("live", "blip").expect("stream")["publishes"]
        .as_u64()
        .expect("publishes count");

    cut.fetch_add(1, Ordering::Relaxed);
    // The old connection is still open at the server; the pusher keeps trying until the
    // server gives the name to the newcomer (hub.publisher_stale_ms), then publishes again.
    wait_until(
        "a new publisher connection for the name",
        Duration::from_secs(30),
        || {
            server.stream("live", "blip").is_some_and(|s| {
                s["live"] == true && s["publishes"].as_u64().is_some_and(|n| n > first)
            })
        },
    );
    let st = streams(&server.http_url("live/blip.flv"));
    assert!(st.iter().any(|s| s["codec_name"] == "h264"), "{st:?}");
    wait_until(
        "the status line to count the reconnect",
        Duration::from_secs(5),
        || status.last("reconnects").is_some_and(|n| n >= 1),
    );
    stop.store(true, Ordering::Relaxed);
    drop(push);
}
