//! Issue 14, past one machine: edges that pull on demand from an origin (one upstream per
//! stream per edge, idle stop, edge of edge), origin failover, and the Redis stream
//! directory. Every server is a real `onair` process on loopback; the publisher is ffmpeg.

use crate::common;

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::viewers::{flv_play, rtmp_play, Media};
use common::{http_request, wait_until, Proc, ServerProc, TestPush};
use onair_shared::flv::TAG_VIDEO;

const ADMIN_TOML: &str = "[admin]\ntokens = [{ name = \"ops\", secret = \"adm-1\" }]\n";
const ADMIN: &str = "Authorization: Bearer adm-1";

/// A small live push (320x240 at 25 fps, 1 s GOP, AAC) for `secs` seconds.
fn push(url: &str, secs: u32) -> Proc {
    TestPush::small()
        .size("320x240")
        .fps(25)
        .gop(25)
        .seconds(secs)
        .start(url)
}

fn edge_toml(origins: &[SocketAddr], extra: &str) -> String {
    let list: Vec<String> = origins.iter().map(|o| format!("\"rtmp://{o}\"")).collect();
    format!(
        "{ADMIN_TOML}[cluster]\norigins = [{}]\nedge_idle_ms = 1000\nretry_max_ms = 500\n{extra}",
        list.join(", ")
    )
}

fn viewers_on(server: &ServerProc) -> u64 {
    server
        .stream("live", "x")
        .map(|s| {
            s["viewers"]["rtmp"].as_u64().unwrap_or(0) + s["viewers"]["flv"].as_u64().unwrap_or(0)
        })
        .unwrap_or(0)
}

/// `GET /api/admin/pulls` of a server started with `ADMIN_TOML`.
fn pulls(server: &ServerProc) -> serde_json::Value {
    let admin = server.admin.expect("admin listener");
    let (status, body) = http_request(admin, "GET", "/api/admin/pulls", &[ADMIN], b"");
    assert_eq!(status, 200);
    serde_json::from_slice(&body).expect("pulls json")
}

/// One video message a viewer received, and when.
#[derive(Clone)]
struct Seen {
    at: Instant,
    timestamp: u32,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn record(log: &Log, m: Media) {
    if m.tag_type == TAG_VIDEO {
        log.lock().unwrap().push(Seen {
            at: Instant::now(),
            timestamp: m.timestamp,
            body: m.body,
        });
    }
}

/// Plays `url` over RTMP (or `http://addr/live/x.flv` when `flv`) until `frames` video
/// messages arrived.
async fn watch(
    url: String,
    flv: Option<SocketAddr>,
    frames: usize,
    log: Log,
) -> anyhow::Result<()> {
    let limit = Duration::from_secs(60);
    let l = log.clone();
    let on = move |m: Media| {
        record(&l, m);
        l.lock().unwrap().len() < frames
    };
    match flv {
        Some(addr) => flv_play(addr, "/live/x.flv", limit, on).await,
        None => rtmp_play(&url, limit, on).await,
    }
}

/// Every frame of `got` (after its sequence header) is the next frame of `reference`, from
/// the position of its first keyframe on: nothing missing, nothing altered, same spacing.
fn assert_every_frame(what: &str, reference: &[Seen], got: &[Seen]) -> Vec<Duration> {
    let media: Vec<&Seen> = got.iter().filter(|s| s.body.get(1) == Some(&1)).collect();
    assert!(media.len() > 10, "{what}: only {} frames", media.len());
    let first = media[0];
    let start = reference
        .iter()
        .position(|r| r.body == first.body)
        .unwrap_or_else(|| panic!("{what}: its first frame is not in the origin viewer's"));
    let mut delays = Vec::new();
    for (i, s) in media.iter().enumerate() {
        let r = reference
            .get(start + i)
            .unwrap_or_else(|| panic!("{what}: frame {i} past the origin viewer's end"));
        assert!(
            r.body == s.body,
            "{what}: frame {i} differs from the origin's"
        );
        assert_eq!(
            s.timestamp.wrapping_sub(first.timestamp),
            r.timestamp.wrapping_sub(reference[start].timestamp),
            "{what}: frame {i} timing"
        );
        // Frames the viewer got from the GOP cache on joining were live before it came;
        // only frames that reached the origin viewer after this one joined say what the
        // edge adds.
        if r.at >= first.at {
            delays.push(s.at.saturating_duration_since(r.at));
        }
    }
    delays
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Origin, two edges and `per_edge` viewers per edge (half RTMP, half HTTP-FLV): every
/// viewer gets every frame, the origin sees the two edges only, and the edge-added
/// latency is measured against a viewer on the origin.
fn edge_fan_out(per_edge: usize, frames: usize) -> (Duration, Duration) {
    let origin = ServerProc::start("");
    let edges = [
        ServerProc::start(&edge_toml(&[origin.rtmp], "")),
        ServerProc::start(&edge_toml(&[origin.rtmp], "")),
    ];
    let _pub = push(&origin.rtmp_url("live/x"), 40);
    origin.wait_live("live", "x");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reference: Log = Log::default();
    let reference_task = rt.spawn(watch(
        origin.rtmp_url("live/x"),
        None,
        frames + 200,
        reference.clone(),
    ));
    wait_until("the origin viewer started", Duration::from_secs(10), || {
        !reference.lock().unwrap().is_empty()
    });
    let mut tasks = Vec::new();
    let mut logs = Vec::new();
    for (e, edge) in edges.iter().enumerate() {
        for v in 0..per_edge {
            let log = Log::default();
            let flv = (v % 2 == 1).then_some(edge.http);
            logs.push((
                format!(
                    "edge {e} viewer {v} ({})",
                    if flv.is_some() { "flv" } else { "rtmp" }
                ),
                log.clone(),
            ));
            tasks.push(rt.spawn(watch(edge.rtmp_url("live/x"), flv, frames, log)));
        }
    }
    wait_until(
        "every edge viewer connected",
        Duration::from_secs(30),
        || edges.iter().map(viewers_on).sum::<u64>() == 2 * per_edge as u64,
    );
    // The origin serves its own viewer and one pull per edge, never the edges' viewers.
    assert_eq!(
        viewers_on(&origin),
        3,
        "origin viewers: the reference and the two edges"
    );
    for t in tasks {
        rt.block_on(t).unwrap().expect("edge viewer");
    }
    let reference_frames = reference.lock().unwrap().clone();
    let mut delays = Vec::new();
    for (what, log) in &logs {
        delays.extend(assert_every_frame(
            what,
            &reference_frames,
            &log.lock().unwrap(),
        ));
    }
    delays.sort();
    let (p50, p99) = (percentile(&delays, 0.5), percentile(&delays, 0.99));
    println!(
        "edge-added latency over {} frames, {} viewers per edge: p50 {:?} p99 {:?}",
        delays.len(),
        per_edge,
        p50,
        p99
    );
    // The pull stops once the edges' viewers left...
    wait_until(
        "the edges let their pulls go",
        Duration::from_secs(10),
        || viewers_on(&origin) == 1,
    );
    wait_until("edge 0 lists no pull", Duration::from_secs(5), || {
        pulls(&edges[0]).as_array().is_some_and(|a| a.is_empty())
    });
    // ...and starts again for the next viewer; an edge of that edge works too.
    let edge_of_edge = ServerProc::start(&edge_toml(&[edges[0].rtmp], ""));
    let again = Log::default();
    rt.block_on(watch(
        edge_of_edge.rtmp_url("live/x"),
        None,
        30,
        again.clone(),
    ))
    .expect("viewer of the edge of an edge");
    assert_every_frame(
        "edge-of-edge viewer",
        &reference.lock().unwrap(),
        &again.lock().unwrap(),
    );
    assert_eq!(pulls(&edge_of_edge)[0]["kind"], "edge");
    assert_eq!(edge_of_edge.stream("live", "x").unwrap()["source"], "edge");
    reference_task.abort();
    (p50, p99)
}

#[test]
fn edges_pull_on_demand_one_upstream_each() {
    // CI scale: 20 viewers per edge on 2 cores; 100 per edge in the ignored run below.
    let (_p50, p99) = edge_fan_out(20, 75);
    // The target is p99 < 5 ms on loopback (README, from the 100-viewer run); this bound
    // only catches a broken edge (a frame held for a GOP, a timer in the path).
    assert!(p99 < Duration::from_millis(100), "edge-added p99 {p99:?}");
}

#[test]
#[ignore = "the README's figures: 100 viewers per edge, run with --ignored --nocapture on a quiet machine"]
fn edges_100_viewers_each() {
    let (p50, p99) = edge_fan_out(100, 125);
    println!("100 viewers per edge: p50 {p50:?} p99 {p99:?}");
}

/// Plays until `stop` says so, counting video frames and reconnects (there must be none).
async fn keep_watching(
    url: String,
    flv: Option<SocketAddr>,
    log: Log,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    let limit = Duration::from_secs(90);
    let l = log.clone();
    let on = move |m: Media| {
        record(&l, m);
        !stop.load(std::sync::atomic::Ordering::Relaxed)
    };
    match flv {
        Some(addr) => flv_play(addr, "/live/x.flv", limit, on).await,
        None => rtmp_play(&url, limit, on).await,
    }
}

#[test]
fn edge_viewers_survive_origin_failover() {
    let mut a = ServerProc::start(ADMIN_TOML);
    let b = ServerProc::start(ADMIN_TOML);
    let edge = ServerProc::start(&edge_toml(&[a.rtmp, b.rtmp], "edge_wait_ms = 8000\n"));
    let _pub_a = push(&a.rtmp_url("live/x"), 60);
    a.wait_live("live", "x");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (rtmp_log, flv_log) = (Log::default(), Log::default());
    let rtmp_viewer = rt.spawn(keep_watching(
        edge.rtmp_url("live/x"),
        None,
        rtmp_log.clone(),
        stop.clone(),
    ));
    let flv_viewer = rt.spawn(keep_watching(
        String::new(),
        Some(edge.http),
        flv_log.clone(),
        stop.clone(),
    ));
    wait_until("edge viewers playing", Duration::from_secs(20), || {
        rtmp_log.lock().unwrap().len() > 25 && flv_log.lock().unwrap().len() > 25
    });
    assert_eq!(pulls(&edge)[0]["upstream"], format!("rtmp://{}", a.rtmp));
    // Origin A dies; the publisher moves to B.
    let _ = Command::new("kill")
        .args(["-KILL", &a.pid().to_string()])
        .status();
    wait_until("origin A gone", Duration::from_secs(5), || !a.is_running());
    let moved = Instant::now();
    let (r0, f0) = (
        rtmp_log.lock().unwrap().len(),
        flv_log.lock().unwrap().len(),
    );
    let _pub_b = push(&b.rtmp_url("live/x"), 60);
    // Within the publisher grace period (5 s) plus the pull's reconnect, the same viewer
    // connections receive B's stream.
    wait_until(
        "edge viewers receive B's stream",
        Duration::from_secs(15),
        || rtmp_log.lock().unwrap().len() > r0 + 50 && flv_log.lock().unwrap().len() > f0 + 50,
    );
    println!("viewers resumed {:?} after the move", moved.elapsed());
    let status = pulls(&edge);
    assert_eq!(
        status[0]["upstream"],
        format!("rtmp://{}", b.rtmp),
        "{status}"
    );
    assert_eq!(status[0]["live"], true);
    // Neither viewer was cut or restarted: both tasks still run on their first connection.
    assert!(
        !rtmp_viewer.is_finished() && !flv_viewer.is_finished(),
        "a viewer ended"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // The public API says only "edge", never where from.
    let info = edge.stream("live", "x").unwrap();
    assert_eq!(info["source"], "edge");
    assert!(
        !info.to_string().contains(&b.rtmp.to_string()),
        "origin address in the public API"
    );
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(5), rtmp_viewer).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), flv_viewer).await;
    });
}

/// A real redis-server on a free loopback port, killed on drop.
struct Redis {
    _proc: Proc,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        require_redis();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Redis::on_port(port)
    }

    /// A redis-server on `port`, once it answers.
    fn on_port(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn redis-server");
        let r = Redis {
            _proc: Proc(child),
            port,
        };
        wait_until("redis-server answering", Duration::from_secs(10), || {
            r.cli(&["PING"]) == "PONG"
        });
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn cli(&self, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }
}

fn require_redis() {
    let ok = Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "redis-server is required (scripts/install-deps.sh installs it)"
    );
}

fn directory_toml(redis: &Redis, extra: &str) -> String {
    format!(
        "{ADMIN_TOML}[cluster]\ndirectory = \"{}\"\ndirectory_lease_ms = 2000\nedge_idle_ms = 1000\n{extra}",
        redis.url()
    )
}

#[test]
fn directory_finds_streams_frees_crashed_names_and_refuses_duplicates() {
    let redis = Redis::start();
    let a = ServerProc::start_logged(&directory_toml(&redis, ""), "info");
    let mut b = ServerProc::start(&directory_toml(&redis, ""));
    // An edge that knows no origin, only the directory.
    let edge = ServerProc::start(&directory_toml(&redis, ""));
    let _pub_b = push(&b.rtmp_url("live/x"), 40);
    b.wait_live("live", "x");
    let entry = |r: &Redis| r.cli(&["GET", "onair:stream:live/x"]);
    wait_until("B registered live/x", Duration::from_secs(10), || {
        entry(&redis).ends_with(&format!("rtmp://{}", b.rtmp))
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let log = Log::default();
    rt.block_on(watch(edge.rtmp_url("live/x"), None, 30, log.clone()))
        .expect("edge viewer via the directory");
    assert_eq!(pulls(&edge).as_array().map(|a| a.len()), Some(1));
    // A second publish of the live name on A is refused, as on one origin.
    let mut dup = common::raw_rtmp::RawRtmp::connect(a.rtmp);
    dup.handshake();
    dup.connect_app("live");
    dup.publish("x");
    assert!(
        dup.wait_for("NetStream.Publish.BadName", Duration::from_secs(10)),
        "duplicate publish not refused"
    );
    assert!(
        a.log().contains("live on another origin"),
        "no log line for the refusal"
    );
    // With takeover configured, the second publish takes the name in the directory.
    let c = ServerProc::start(
        &directory_toml(&redis, "")
            .replace("[cluster]", "[hub]\npublisher_takeover = true\n[cluster]"),
    );
    let mut taker = common::raw_rtmp::RawRtmp::connect(c.rtmp);
    taker.handshake();
    taker.connect_app("live");
    taker.publish("x");
    assert!(
        taker.wait_for("NetStream.Publish.Start", Duration::from_secs(10)),
        "takeover publish not accepted"
    );
    wait_until("C holds the name", Duration::from_secs(10), || {
        entry(&redis).ends_with(&format!("rtmp://{}", c.rtmp))
    });
    drop(taker);
    drop(c);
    // B renews nothing of C's; put B back as the holder to see the crash free it.
    wait_until("B holds the name again", Duration::from_secs(10), || {
        let e = entry(&redis);
        e.is_empty() || e.ends_with(&format!("rtmp://{}", b.rtmp))
    });
    // B crashes: its name is free within the lease (2 s; 3x for a loaded machine).
    let _ = Command::new("kill")
        .args(["-KILL", &b.pid().to_string()])
        .status();
    wait_until("B gone", Duration::from_secs(5), || !b.is_running());
    let killed = Instant::now();
    wait_until(
        "the name freed within the lease",
        Duration::from_secs(6),
        || entry(&redis).is_empty(),
    );
    println!(
        "name freed {:?} after SIGKILL (lease 2 s)",
        killed.elapsed()
    );
}

// Bad input: an origin that answers garbage, one that stalls mid-stream, a directory
// that is down, and a pull loop.

/// A listener that answers every connection with bytes that are not RTMP.
fn garbage_origin() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let _ = s.write_all(&[0xAB; 4096]);
                let mut buf = [0u8; 4096];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

/// A proxy to `target` whose first connection stops forwarding the server's bytes after
/// `cut_after` (socket kept open: a stall, not a close); later connections pass all.
fn stalling_proxy(target: SocketAddr, cut_after: usize) -> SocketAddr {
    use std::io::{Read, Write};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for (n, client) in l.incoming().flatten().enumerate() {
            let Ok(server) = std::net::TcpStream::connect(target) else {
                continue;
            };
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(k) = c_in.read(&mut buf) {
                    if k == 0 || s_out.write_all(&buf[..k]).is_err() {
                        break;
                    }
                }
            });
            let (mut s_in, mut c_out) = (server, client);
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                let mut sent = 0;
                while let Ok(k) = s_in.read(&mut buf) {
                    if k == 0 {
                        break;
                    }
                    if n == 0 && sent + k > cut_after {
                        // Stall: keep both sockets, forward nothing more.
                        std::thread::sleep(Duration::from_secs(120));
                        break;
                    }
                    sent += k;
                    if c_out.write_all(&buf[..k]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn edge_skips_a_garbage_origin_and_leaves_a_stalled_one() {
    let origin = ServerProc::start("");
    let _pub = push(&origin.rtmp_url("live/x"), 40);
    origin.wait_live("live", "x");
    let garbage = garbage_origin();
    let timeouts = "connect_timeout_ms = 1000\nread_timeout_ms = 1000\nedge_wait_ms = 8000\n";
    let edge = ServerProc::start_logged(&edge_toml(&[garbage, origin.rtmp], timeouts), "info");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(watch(edge.rtmp_url("live/x"), None, 30, Log::default()))
        .expect("viewer through the edge past the garbage origin");
    let log = edge.log();
    assert!(
        log.lines()
            .any(|l| l.contains("pull failed") && l.contains(&garbage.to_string())),
        "garbage origin not logged"
    );
    // A stream that no origin has: a 404 within the wait, not a hang.
    let started = Instant::now();
    let (status, _) = common::http_get(edge.http, "/live/none.flv");
    assert_eq!(status, 404);
    assert!(started.elapsed() < Duration::from_secs(20));

    // An origin that stalls mid-stream: dropped after read_timeout_ms, pulled again; the
    // viewer stays on its connection.
    let proxy = stalling_proxy(origin.rtmp, 150_000);
    let edge2 = ServerProc::start_logged(&edge_toml(&[proxy], timeouts), "info");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let log = Log::default();
    let viewer = rt.spawn(keep_watching(
        edge2.rtmp_url("live/x"),
        None,
        log.clone(),
        stop.clone(),
    ));
    let noticed = (0..400).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        edge2.log().contains("stalled")
    });
    assert!(
        noticed,
        "stall not noticed: {} frames; {}",
        log.lock().unwrap().len(),
        edge2.log()
    );
    let before = log.lock().unwrap().len();
    wait_until(
        "the viewer resumed after the stall",
        Duration::from_secs(15),
        || log.lock().unwrap().len() > before + 25,
    );
    assert!(!viewer.is_finished(), "the viewer was cut");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}

#[test]
fn directory_down_edges_use_the_list_origins_keep_serving_and_register_later() {
    require_redis();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = format!("directory = \"redis://127.0.0.1:{port}\"\ndirectory_lease_ms = 1500\ndirectory_timeout_ms = 300\n");
    // An origin whose directory is down: the publish is served locally.
    let origin = ServerProc::start_logged(&format!("[cluster]\n{dir}"), "info");
    let _pub = push(&origin.rtmp_url("live/x"), 40);
    origin.wait_live("live", "x");
    assert!(origin.log().contains("directory unreachable"));
    // An edge with the same dead directory and a list: it falls back to the list.
    let edge = ServerProc::start_logged(&edge_toml(&[origin.rtmp], &dir), "info");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(watch(edge.rtmp_url("live/x"), None, 30, Log::default()))
        .expect("edge viewer with the directory down");
    assert!(edge.log().contains("directory lookup failed"));
    // The directory comes up on that port: the origin registers its live stream.
    let redis = Redis::on_port(port);
    wait_until(
        "the origin registered once the directory is back",
        Duration::from_secs(15),
        || {
            redis
                .cli(&["GET", "onair:stream:live/x"])
                .ends_with(&format!("rtmp://{}", origin.rtmp))
        },
    );
}

/// A forwarder whose target is set later (the servers of a loop must name each other
/// before either has its OS-chosen port).
fn late_proxy() -> (SocketAddr, Arc<Mutex<Option<SocketAddr>>>) {
    use std::io::copy;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let target: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let t = target.clone();
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            let Some(to) = *t.lock().unwrap() else {
                continue;
            };
            let Ok(server) = std::net::TcpStream::connect(to) else {
                continue;
            };
            let (mut c1, mut s1) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = copy(&mut c1, &mut s1);
                let _ = s1.shutdown(std::net::Shutdown::Write);
            });
            let (mut s2, mut c2) = (server, client);
            std::thread::spawn(move || {
                let _ = copy(&mut s2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, target)
}

#[test]
fn a_pull_loop_is_stopped_by_the_hop_list() {
    let (to_a, set_a) = late_proxy();
    let (to_b, set_b) = late_proxy();
    let cfg = |id: &str, other: SocketAddr| {
        format!(
            "[cluster]\nnode_id = \"{id}\"\nedge_wait_ms = 1500\nedge_idle_ms = 1000\n\
             [[pull]]\nname = \"live/loop\"\nurl = \"rtmp://{other}/live/loop\"\n"
        )
    };
    let a = ServerProc::start_logged(&cfg("a", to_b), "info");
    let b = ServerProc::start_logged(&cfg("b", to_a), "info");
    *set_a.lock().unwrap() = Some(a.rtmp);
    *set_b.lock().unwrap() = Some(b.rtmp);
    let started = Instant::now();
    let (status, _) = common::http_get(a.http, "/live/loop.flv");
    assert_eq!(status, 404);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the loop held the viewer {:?}",
        started.elapsed()
    );
    wait_until(
        "the loop refused by the hop list",
        Duration::from_secs(10),
        || a.log().contains("pull loop") || b.log().contains("pull loop"),
    );
    // Both let go once nobody asks: no pull left spinning.
    wait_until("both pulls stopped", Duration::from_secs(15), || {
        a.log().contains("pull stopped") && b.log().contains("pull stopped")
    });
}

#[test]
fn edges_forward_or_refuse_publishes() {
    let origin = ServerProc::start("");
    let forwarding = ServerProc::start(&edge_toml(&[origin.rtmp], "edge_publish = \"forward\"\n"));
    let _pub = push(&forwarding.rtmp_url("live/x"), 30);
    forwarding.wait_live("live", "x");
    // The edge serves it and the origin has it too, as an ordinary publish.
    origin.wait_live("live", "x");
    assert_eq!(origin.stream("live", "x").unwrap()["source"], "publish");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(watch(origin.rtmp_url("live/x"), None, 30, Log::default()))
        .expect("origin viewer of the forwarded publish");
    // An edge set to refuse says so.
    let refusing = ServerProc::start(&edge_toml(&[origin.rtmp], ""));
    let mut p = common::raw_rtmp::RawRtmp::connect(refusing.rtmp);
    p.handshake();
    p.connect_app("live");
    p.publish("y");
    assert!(
        p.wait_for("publish to an origin", Duration::from_secs(10)),
        "edge publish not refused"
    );
    // An HLS player as an edge's first viewer: the playlist request starts the pull and
    // waits for the first segment.
    let (status, body) = common::http_get(refusing.http, "/live/x.m3u8");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(body.starts_with(b"#EXTM3U"));
    assert!(refusing.stream("live", "x").is_some());
}

#[test]
fn edges_present_their_own_credential_upstream() {
    let origin = ServerProc::start("[auth]\nplay_tokens = [\"edge-s3cret\"]\n");
    let _pub = push(&origin.rtmp_url("live/x"), 30);
    origin.wait_live("live", "x");
    let with = ServerProc::start(&edge_toml(
        &[origin.rtmp],
        "origin_credential = \"edge-s3cret\"\n",
    ));
    let without = ServerProc::start(&edge_toml(&[origin.rtmp], "edge_wait_ms = 1500\n"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The edge's viewers need no token (the edge has none configured); the origin does.
    rt.block_on(watch(with.rtmp_url("live/x"), None, 30, Log::default()))
        .expect("viewer of the edge with the credential");
    let (status, _) = common::http_get(without.http, "/live/x.flv");
    assert_eq!(
        status, 404,
        "an edge without the origin's token got the stream"
    );
}

#[test]
fn an_rtmp_pull_source_is_an_ordinary_stream() {
    let upstream = ServerProc::start("");
    let _pub = push(&upstream.rtmp_url("live/x"), 30);
    upstream.wait_live("live", "x");
    let cfg = format!(
        "{ADMIN_TOML}[cluster]\nedge_idle_ms = 1000\n[[pull]]\nname = \"live/relay\"\nurl = \"rtmp://{}/live/x\"\n",
        upstream.rtmp
    );
    let server = ServerProc::start(&cfg);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let log = Log::default();
        let l = log.clone();
        flv_play(
            server.http,
            "/live/relay.flv",
            Duration::from_secs(30),
            move |m| {
                record(&l, m);
                l.lock().unwrap().len() < 30
            },
        )
        .await
        .expect("HTTP-FLV viewer of the RTMP pull");
    });
    let info = server.stream("live", "relay").expect("listed");
    assert_eq!(info["source"], "rtmp");
    assert!(!info.to_string().contains(&upstream.rtmp.to_string()));
    assert_eq!(pulls(&server)[0]["kind"], "rtmp");
}
