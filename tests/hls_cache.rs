//! HLS behind a real nginx cache: Debian's nginx runs `deploy/nginx-hls-cache.conf` (only
//! its addresses and paths rewritten) in front of onair, and HLS clients fetch every segment
//! through it. A tap between nginx and onair counts what reaches the origin.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// The shipped config with the listen address, the upstream and every path moved into `dir`.
/// Each rewritten line must be there as shipped, so the test fails when the file drifts.
fn nginx_conf(dir: &std::path::Path, listen: SocketAddr, origin: SocketAddr) -> String {
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx-hls-cache.conf"),
    )
    .expect("read deploy/nginx-hls-cache.conf");
    let d = dir.display();
    let mut conf = shipped;
    for (from, to, count) in [
        (
            "worker_processes auto;",
            "worker_processes 1;".to_string(),
            1,
        ),
        (
            "pid /run/nginx-onair-hls.pid;",
            format!("pid {d}/nginx.pid;"),
            1,
        ),
        (
            "/var/log/nginx/onair-hls-cache.log",
            format!("{d}/access.log"),
            1,
        ),
        ("/var/cache/nginx/", format!("{d}/cache/"), 3),
        ("server 127.0.0.1:8080;", format!("server {origin};"), 1),
        ("listen 8088;", format!("listen {listen};"), 1),
    ] {
        assert_eq!(
            conf.matches(from).count(),
            count,
            "deploy/nginx-hls-cache.conf should hold {from:?} {count} time(s)"
        );
        conf = conf.replace(from, &to);
    }
    conf
}

struct Nginx {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Nginx {
    /// SIGTERM to the master stops its workers too; SIGKILL to the whole process group if
    /// it has not exited in time, so no worker outlives the test.
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn start_nginx(dir: &std::path::Path, origin: SocketAddr) -> Nginx {
    let addr = free_port();
    let conf = dir.join("nginx.conf");
    // Where the shipped file has /var/cache/nginx, which the package makes.
    std::fs::create_dir_all(dir.join("cache")).expect("create cache dir");
    std::fs::write(&conf, nginx_conf(dir, addr, origin)).expect("write nginx.conf");
    // Its own process group (see Drop); its log in a file, so no worker holds our stderr.
    let log = std::fs::File::create(dir.join("error.log")).expect("nginx log file");
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .args(["-e", "stderr", "-g", "daemon off;", "-c"])
        .arg(&conf)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn nginx (scripts/install-deps.sh installs it)");
    let mut nginx = Nginx { child, addr };
    wait_until("nginx listening", Duration::from_secs(10), || {
        assert!(
            matches!(nginx.child.try_wait(), Ok(None)),
            "nginx exited at start: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        TcpStream::connect(addr).is_ok()
    });
    nginx
}

/// Every request head nginx sends to the origin, with when it was seen, relayed unchanged.
#[derive(Default)]
struct OriginTap {
    requests: Mutex<Vec<(Instant, String)>>,
}

impl OriginTap {
    /// Listens on a loopback port and relays each connection to `origin`.
    fn start(origin: SocketAddr, stop: Arc<AtomicBool>) -> (Arc<OriginTap>, SocketAddr) {
        let tap = Arc::new(OriginTap::default());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind tap");
        let addr = listener.local_addr().expect("tap addr");
        let t = tap.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (Ok(down), Ok(up)) = (conn, TcpStream::connect(origin)) else {
                    continue;
                };
                let (mut down_r, mut up_w) = (
                    down.try_clone().expect("clone"),
                    up.try_clone().expect("clone"),
                );
                let (mut up_r, mut down_w) = (up, down);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up_r, &mut down_w);
                    let _ = down_w.shutdown(std::net::Shutdown::Both);
                });
                let t = t.clone();
                std::thread::spawn(move || t.relay_requests(&mut down_r, &mut up_w));
            }
        });
        (tap, addr)
    }

    /// nginx only sends GETs without bodies here, so the request stream is heads alone.
    fn relay_requests(&self, from: &mut TcpStream, to: &mut TcpStream) {
        let mut pending = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&pending[..end]).to_string();
                let line = head.lines().next().unwrap_or_default().to_string();
                self.requests
                    .lock()
                    .expect("tap lock")
                    .push((Instant::now(), line));
                pending.drain(..end + 4);
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    }

    fn requests(&self) -> Vec<(Instant, String)> {
        self.requests.lock().expect("tap lock").clone()
    }
}

/// What one HLS client saw: the media sequence numbers of the segments it fetched.
#[derive(Default)]
struct ClientLog {
    fetched: BTreeSet<u64>,
    failures: Vec<String>,
}

/// One HLS client through the cache, polling as hls.js does (every half target duration,
/// here 1 s, with jitter) and fetching each new segment once, starting at the live edge.
fn hls_client(cache: SocketAddr, id: u64, stop: Arc<AtomicBool>) -> ClientLog {
    let mut log = ClientLog::default();
    let mut next: Option<u64> = None;
    while !stop.load(Ordering::Relaxed) {
        let (status, body) = http_get(cache, "/live/cached.m3u8?variant=ts");
        if status != 200 {
            log.failures.push(format!("playlist {status}"));
        } else {
            let text = String::from_utf8_lossy(&body).to_string();
            let first = media_sequence(&text).unwrap_or(0);
            let uris: Vec<&str> = text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .collect();
            let start = next.unwrap_or(first + uris.len().saturating_sub(3) as u64);
            for (i, uri) in uris.iter().enumerate() {
                let seq = first + i as u64;
                if seq < start {
                    continue;
                }
                let (status, ts) = http_get(cache, &format!("/live/{uri}"));
                if status == 200 && ts.len() >= 188 && ts[0] == 0x47 {
                    log.fetched.insert(seq);
                } else {
                    log.failures
                        .push(format!("segment {uri}: {status}, {} bytes", ts.len()));
                }
                next = Some(seq + 1);
            }
        }
        // hls.js reloads a live playlist every half target duration; spread the clients.
        std::thread::sleep(Duration::from_millis(900 + (id * 37) % 200));
    }
    log
}

#[test]
fn hls_through_nginx_cache_reaches_the_origin_once_per_segment() {
    require("ffmpeg");
    let server = ServerProc::start("");
    let dir = TempDir::new("onair-nginx");
    let stop = Arc::new(AtomicBool::new(false));
    let (tap, tap_addr) = OriginTap::start(server.http, stop.clone());
    let nginx = start_nginx(&dir.path, tap_addr);

    let _push = ffmpeg_push(&server.rtmp_url("live/cached"));
    server.wait_live("live", "cached");
    wait_until(
        "the first playlist through nginx",
        Duration::from_secs(20),
        || http_get(nginx.addr, "/live/cached.m3u8?variant=ts").0 == 200,
    );

    // 2 s segments: 12 s of 20 clients is about 6 segments each and 20 playlist fetches a
    // second through the cache, of which the origin should see about one.
    const CLIENTS: u64 = 20;
    let window_start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let stop = stop.clone();
            let cache = nginx.addr;
            std::thread::spawn(move || hls_client(cache, id, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(12));
    stop.store(true, Ordering::Relaxed);
    let logs: Vec<ClientLog> = clients
        .into_iter()
        .map(|c| c.join().expect("client thread"))
        .collect();
    let window = window_start.elapsed();

    // Every client fetched every segment from its first one on, with no gap or failure.
    for (id, log) in logs.iter().enumerate() {
        assert!(log.failures.is_empty(), "client {id}: {:?}", log.failures);
        let (lo, hi) = (
            *log.fetched.first().expect("a segment"),
            *log.fetched.last().expect("a segment"),
        );
        assert_eq!(
            log.fetched.len() as u64,
            hi - lo + 1,
            "client {id} skipped segments: {:?}",
            log.fetched
        );
        assert!(
            log.fetched.len() >= 5,
            "client {id} fetched only {:?}",
            log.fetched
        );
    }

    // What reached the origin while the clients ran.
    let requests: Vec<(Instant, String)> = tap
        .requests()
        .into_iter()
        .filter(|(t, _)| *t >= window_start)
        .collect();
    let mut per_segment: BTreeMap<String, usize> = BTreeMap::new();
    let mut playlist_times = Vec::new();
    for (t, line) in &requests {
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        // The TS playlist is asked for with `?variant=ts` (the default `.m3u8` is LL-HLS).
        let path = path.split('?').next().unwrap_or_default().to_string();
        if path.ends_with(".ts") {
            *per_segment.entry(path).or_default() += 1;
        } else if path.ends_with(".m3u8") {
            playlist_times.push(t.duration_since(window_start));
        } else {
            panic!("unexpected origin request {line:?}");
        }
    }
    let client_segments: usize = logs.iter().map(|l| l.fetched.len()).sum();
    let busiest_second = (0..=window.as_secs())
        .map(|s| playlist_times.iter().filter(|t| t.as_secs() == s).count())
        .max()
        .unwrap_or(0);
    eprintln!(
        "{CLIENTS} clients over {window:?}: {client_segments} segment fetches, origin saw {} \
         segment requests for {} segments (most for one: {}) and {} playlist requests \
         (busiest second: {busiest_second})",
        per_segment.values().sum::<usize>(),
        per_segment.len(),
        per_segment.values().max().unwrap_or(&0),
        playlist_times.len(),
    );
    assert!(per_segment.len() >= 5, "origin segments: {per_segment:?}");
    for (path, n) in &per_segment {
        assert!(*n <= 2, "the origin saw {n} requests for {path}");
    }
    assert!(
        busiest_second <= 2,
        "the origin saw {busiest_second} playlist requests in one second: {playlist_times:?}"
    );
    assert!(
        playlist_times.len() as f64 <= 2.0 * window.as_secs_f64(),
        "{} playlist requests at the origin in {window:?}",
        playlist_times.len()
    );
}
