//! onair-bench: one real-time 720p30 publisher and N RTMP, HTTP-FLV, HLS or WHEP (WebRTC)
//! viewers against any RTMP server on this machine, reporting latency, startup, delivery and
//! the server's CPU and memory (and for HLS: requests/s, request latency and when segments
//! become available; for WHEP: RTP packets and the CPU of named server threads).

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use onair_bench::readers::Readers;
use onair_bench::report::{ErrorCount, HlsErrorCount, HlsReport, Report, ThreadCpu, WhepReport};
use onair_bench::stats::{Clock, SendLog, ViewerLive, ViewerRecorder, ViewerResult};
use onair_bench::target::{HttpTarget, RtmpTarget};
use onair_bench::viewer_hls::{self, ClientOptions, HlsClientResult, HlsRecord, HlsShared};
use onair_bench::viewer_whep::{self, WhepTotals};
use onair_bench::{hls_stats, media, procfs, publisher, stats, viewer_flv, viewer_rtmp};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, timeout, Instant};

/// How long viewers keep reading after the window closes, so frames sent at its end count.
const GRACE: Duration = Duration::from_secs(1);
/// HLS frames reach a client a segment and a poll after they are sent: the grace after the
/// window is two target durations and a second, at most this.
const HLS_GRACE_MAX: Duration = Duration::from_secs(30);
const PUBLISHER_UP_TIMEOUT: Duration = Duration::from_secs(15);
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
const RSS_EVERY: Duration = Duration::from_millis(100);
const MIB: f64 = 1024.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    Rtmp,
    Flv,
    Hls,
    /// Low-Latency HLS: blocking playlist reloads and every part fetched.
    LlHls,
    /// WebRTC over WHEP (str0m viewers, receive-only H.264 + Opus, loopback UDP).
    Whep,
}

/// Fan-out benchmark for any RTMP / HTTP-FLV / HLS server on this machine.
///
/// Publishes a synthetic 720p30 H.264+AAC stream (about 2.6 Mbit/s) in real time and plays it
/// with N viewers; reports delivery latency, time to first frame, delivered fraction, and the
/// server's CPU seconds per delivered Gbit and peak RSS. HLS viewers poll the playlist and
/// fetch segments like a player; their report adds requests/s, request latency, segment
/// availability and glass-to-fetch latency. Exits 1 when the run cannot be made,
/// 2 when it was made but no viewer received a frame (the report is printed either way).
#[derive(Debug, Clone, Parser)]
#[command(version)]
struct Args {
    /// RTMP URL to publish to, e.g. rtmp://127.0.0.1:1935/live/bench
    #[arg(long)]
    publish: String,
    /// Number of viewers.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    viewers: u32,
    #[arg(long, value_enum, default_value_t = Protocol::Rtmp)]
    protocol: Protocol,
    /// URL the viewers play: rtmp://… or rtmps://… (default: the publish URL), http://….flv (required for
    /// flv), the live playlist http://….m3u8 (required for hls) or the WHEP endpoint
    /// http://…/APP/STREAM/whep (required for whep).
    #[arg(long)]
    play_url: Option<String>,
    /// HLS only: also run one probe client polling the playlist every this many ms (no
    /// segments), to time segment availability finer than the players' polls.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
    hls_probe_ms: Option<u64>,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds after the last viewer connects before measuring (extended once, by as much
    /// again at most, until every viewer receives).
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Server process to measure; repeatable. Its child processes are included.
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
    /// Name of the server in the report; without --server-pid, also the /proc/*/comm to measure.
    #[arg(long)]
    server_name: Option<String>,
    /// Also report the CPU time of the server's threads of this name (/proc/PID/task/*/comm),
    /// e.g. onair-opus, onair's AAC -> Opus transcode for WebRTC.
    #[arg(long)]
    server_thread: Option<String>,
    /// Milliseconds between viewer connects (at most 100).
    #[arg(long, default_value_t = 4)]
    connect_spacing_ms: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// The stream: 720p (about 2.6 Mbit/s) or 360p (about 500 kbit/s, for thousands of viewers).
    #[arg(long, default_value = "720p", value_parser = ["720p", "360p"])]
    sample: String,
    /// Connect viewers this many at a time, each batch waiting (10 s at most) until all its
    /// viewers have a frame or ended, in place of --connect-spacing-ms. 0: spacing.
    #[arg(long, default_value_t = 0)]
    connect_batch: u32,
    /// K-core mode: find the largest viewer count (doubling from --viewers, then bisecting
    /// to 5 %) whose run has p99 latency at most this many ms, every viewer receiving and
    /// at least --min-delivered of the frames; prints one JSON object of all steps.
    #[arg(long)]
    find_max_p99_ms: Option<f64>,
    /// The find-max search never tries more viewers than this.
    #[arg(long, default_value_t = 20_000)]
    find_max_limit: u32,
    /// Delivered fraction a find-max step needs to pass.
    #[arg(long, default_value_t = 0.999)]
    min_delivered: f64,
    /// Threads reading the RTMP and HTTP-FLV viewers' sockets once they play (0: one per
    /// CPU core the bench may use).
    #[arg(long, default_value_t = 0)]
    reader_threads: usize,
}

/// Raises this process's soft open-file limit to its hard limit (thousands of viewers).
fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            rustix::process::Rlimit {
                current: lim.maximum,
                maximum: lim.maximum,
            },
        );
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    raise_nofile();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("onair-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.protocol == Protocol::LlHls {
        let outcome = rt.block_on(run_ll(&args));
        rt.shutdown_background();
        return match outcome {
            Ok(r) => {
                if args.json {
                    println!("{r}");
                } else {
                    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                }
                if r["clients_with_parts"].as_u64() == Some(0) {
                    eprintln!("onair-bench: no client fetched a part");
                    return ExitCode::from(2);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("onair-bench: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(bound) = args.find_max_p99_ms {
        let outcome = rt.block_on(find_max(&args, bound));
        rt.shutdown_background();
        return match outcome {
            Ok(j) => {
                println!("{j}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("onair-bench: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let outcome = rt.block_on(run(&args, args.viewers));
    // Viewer and publisher tasks are done or abandoned; do not wait on them.
    rt.shutdown_background();
    let report = match outcome {
        Ok(r) => r,
        Err(e) => {
            eprintln!("onair-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        match serde_json::to_string(&report) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("onair-bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", report.table());
    }
    if report.connected_viewers == 0 {
        eprintln!("onair-bench: no viewer received a frame");
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

enum Play {
    Rtmp(Arc<RtmpTarget>),
    Flv(Arc<HttpTarget>),
    Hls(Arc<HttpTarget>),
    Whep(Arc<HttpTarget>),
}

/// Waits for every task until `deadline`.
async fn join_all<T>(handles: Vec<JoinHandle<T>>, deadline: Instant) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match timeout(deadline.saturating_duration_since(Instant::now()), h).await {
            Ok(Ok(r)) => out.push(r),
            Ok(Err(e)) => bail!("viewer task failed: {e}"),
            Err(_) => bail!("viewers did not stop within {JOIN_TIMEOUT:?}"),
        }
    }
    Ok(out)
}

/// Counters read at both ends of the measurement window.
struct Snapshot {
    ns: u64,
    server_ticks: Result<u64>,
    /// CPU ticks and count of the server threads named by --server-thread.
    thread_ticks: (u64, usize),
    self_ticks: u64,
    bytes: u64,
}

impl Snapshot {
    fn take(
        clock: &Clock,
        pids: &[u32],
        thread: Option<&str>,
        lives: &[Arc<ViewerLive>],
    ) -> Result<Self> {
        Ok(Self {
            ns: clock.now_ns(),
            server_ticks: procfs::cpu_ticks(pids),
            thread_ticks: thread.map_or((0, 0), |t| procfs::thread_ticks(pids, t)),
            self_ticks: procfs::self_ticks()?,
            bytes: lives.iter().map(|l| l.bytes.load(Ordering::Relaxed)).sum(),
        })
    }
}

fn server_pids(args: &Args) -> Result<Vec<u32>> {
    let roots = if !args.server_pids.is_empty() {
        args.server_pids.clone()
    } else if let Some(name) = &args.server_name {
        let pids = procfs::pids_by_name(name);
        if pids.is_empty() {
            bail!("no process named {name:?} (see /proc/*/comm); give --server-pid");
        }
        pids
    } else {
        return Ok(Vec::new());
    };
    for &p in &roots {
        procfs::stat(p)?;
    }
    Ok(procfs::with_children(&roots))
}

fn receiving(lives: &[Arc<ViewerLive>]) -> usize {
    lives
        .iter()
        .filter(|l| l.first_frame_ns.load(Ordering::Acquire) != 0)
        .count()
}

/// Waits (at most JOIN_TIMEOUT) until each of the last `batch` viewers has a frame or ended.
async fn wait_batch(lives: &[Arc<ViewerLive>], handles: &[JoinHandle<ViewerResult>], batch: usize) {
    let deadline = Instant::now() + JOIN_TIMEOUT;
    let from = lives.len().saturating_sub(batch);
    while Instant::now() < deadline {
        let pending = (from..lives.len()).any(|i| {
            lives[i].first_frame_ns.load(Ordering::Acquire) == 0
                && handles.get(i).is_some_and(|h| !h.is_finished())
        });
        if !pending {
            return;
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// Samples the summed VmRSS of `pids` until `stop` changes; returns (peak RSS, max VmHWM) in KiB.
async fn sample_memory(pids: Vec<u32>, mut stop: watch::Receiver<bool>) -> (u64, u64) {
    let mut peak = 0;
    let mut tick = tokio::time::interval(RSS_EVERY);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => peak = peak.max(procfs::memory_kib(&pids).0),
        }
    }
    let (rss, hwm) = procfs::memory_kib(&pids);
    (peak.max(rss), hwm)
}

fn secs(name: &str, v: f64, max: f64) -> Result<Duration> {
    if !(0.0..=max).contains(&v) {
        bail!("--{name} must be between 0 and {max} seconds");
    }
    Ok(Duration::from_secs_f64(v))
}

/// The LL-HLS run: publisher, N blocking-reload clients, a warmup, then the window.
async fn run_ll(args: &Args) -> Result<serde_json::Value> {
    use onair_bench::viewer_llhls;
    let duration = secs("duration", args.duration, 3600.0)?;
    let warmup = secs("warmup", args.warmup, 600.0)?;
    let url = args
        .play_url
        .clone()
        .context("--protocol ll-hls needs --play-url http://HOST:PORT/APP/STREAM.m3u8")?;
    let target = Arc::new(HttpTarget::parse(&url)?);
    let publish = RtmpTarget::parse(&args.publish)?;
    let pids = server_pids(args)?;
    let clk_tck = procfs::clk_tck() as f64;
    let bound =
        PUBLISHER_UP_TIMEOUT + warmup * 2 + duration + JOIN_TIMEOUT + Duration::from_secs(60);
    let log = Arc::new(SendLog::new(
        (bound.as_secs_f64() * media::FPS as f64) as usize + 2 * media::FPS as usize,
    ));
    let clock = Clock::new();
    let (live_tx, live_rx) = oneshot::channel();
    let (pub_stop_tx, pub_stop_rx) = watch::channel(false);
    let publisher = {
        let log = log.clone();
        std::thread::Builder::new().name("publisher".into()).spawn(
            move || -> Result<publisher::PublisherReport> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                Ok(rt.block_on(publisher::run(publish, clock, log, live_tx, pub_stop_rx)))
            },
        )?
    };
    match timeout(PUBLISHER_UP_TIMEOUT, live_rx).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(e),
        _ => {
            let _ = pub_stop_tx.send(true);
            bail!("publisher not up after {PUBLISHER_UP_TIMEOUT:?}");
        }
    }
    // The stream needs a segment before clients join.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sampler = tokio::spawn(sample_memory(pids.clone(), pub_stop_tx.subscribe()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let spacing = Duration::from_millis(args.connect_spacing_ms.min(100));
    let mut handles = Vec::new();
    for _ in 0..args.viewers {
        handles.push(tokio::spawn(viewer_llhls::run(
            target.clone(),
            clock,
            stop_rx.clone(),
        )));
        tokio::time::sleep(spacing).await;
    }
    tokio::time::sleep(warmup).await;
    let (w0, t0, self0) = (
        clock.now_ns(),
        procfs::cpu_ticks(&pids),
        procfs::self_ticks()?,
    );
    tokio::time::sleep(duration).await;
    let (w1, t1, self1) = (
        clock.now_ns(),
        procfs::cpu_ticks(&pids),
        procfs::self_ticks()?,
    );
    // A last part in flight comes within a blocking reload.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + JOIN_TIMEOUT;
    let results = join_all(handles, deadline).await?;
    let _ = pub_stop_tx.send(true);
    let (peak_rss_kib, hwm_kib) = sampler.await.unwrap_or((0, 0));
    let pub_report = publisher
        .join()
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    let window_s = (w1 - w0) as f64 / 1e9;
    let requests: usize = results
        .iter()
        .map(|r| {
            r.requests
                .iter()
                .filter(|q| q.done_ns >= w0 && q.done_ns < w1)
                .count()
        })
        .sum();
    let failed: usize = results
        .iter()
        .map(|r| {
            r.requests
                .iter()
                .filter(|q| q.done_ns >= w0 && q.done_ns < w1 && !q.ok)
                .count()
        })
        .sum();
    let server_cpu_s = match (t0, t1) {
        (Ok(a), Ok(b)) if !pids.is_empty() => Some((b - a) as f64 / clk_tck),
        _ => None,
    };
    let mut lat = viewer_llhls::latencies_us(&results, &log, w0, w1);
    lat.sort_unstable();
    let ms = |p: f64| stats::percentile(&lat, p).map(|us| us as f64 / 1000.0);
    let (parts, missed) = viewer_llhls::parts_missed(&results, w0, w1);
    Ok(serde_json::json!({
        "protocol": "ll-hls",
        "server": args.server_name,
        "clients": args.viewers,
        "clients_with_parts": results.iter().filter(|r| !r.parts.is_empty()).count(),
        "window_s": window_s,
        "requests_per_s": requests as f64 / window_s,
        "failed_requests": failed,
        "server_cpu_s": server_cpu_s,
        "server_cpu_ms_per_1000_requests": server_cpu_s.map(|c| c * 1000.0 * 1000.0 / requests.max(1) as f64),
        "part_available_to_fetched_ms": { "p50": ms(0.5), "p99": ms(0.99), "max": ms(1.0), "samples": lat.len() },
        "parts_in_window": parts,
        "parts_missed": missed,
        "peak_rss_mib": peak_rss_kib as f64 / MIB,
        "vm_hwm_mib": hwm_kib as f64 / MIB,
        "bench_cpu_s": (self1 - self0) as f64 / clk_tck,
        "publisher": pub_report,
        "errors": results.iter().map(|r| r.errors).sum::<u64>(),
    }))
}

/// The K-core mode's search: one run per step against the same server.
async fn find_max(args: &Args, bound_ms: f64) -> Result<serde_json::Value> {
    use onair_bench::step::{self, MaxSearch};
    let mut search = MaxSearch::new(args.viewers, args.find_max_limit, 0.05);
    let mut steps = Vec::new();
    while let Some(n) = search.next() {
        // A stream of its own per step: nothing of the last step's stream (its GOP, its
        // viewers' state) carries over into this one.
        let mut step_args = args.clone();
        let key = format!("s{}", steps.len() + 1);
        let default_play = args
            .play_url
            .clone()
            .unwrap_or_else(|| args.publish.clone());
        let (publish, play) = step::step_urls(&args.publish, &default_play, &key)?;
        step_args.publish = publish;
        step_args.play_url = Some(play);
        let r = run(&step_args, n).await?;
        let p99 = r.latency_ms.p99;
        let passed = r.connected_viewers == r.viewers
            && p99.is_some_and(|p| p <= bound_ms)
            && r.delivered_fraction
                .is_some_and(|d| d >= args.min_delivered);
        eprintln!(
            "onair-bench: find-max step N={n}: p99 {p99:?} ms, delivered {:?}, connected {}/{} -> {}",
            r.delivered_fraction,
            r.connected_viewers,
            n,
            if passed { "pass" } else { "fail" }
        );
        search.record(n, passed);
        steps.push(serde_json::json!({
            "viewers": n,
            "passed": passed,
            "connected_viewers": r.connected_viewers,
            "latency_ms": r.latency_ms,
            "delivered_fraction": r.delivered_fraction,
            "cpu_s_per_gbit": r.cpu_s_per_gbit,
            "server_cpu_s": r.server_cpu_s,
            "peak_rss_mib": r.peak_rss_mib,
            "bench_cpu_s": r.bench_cpu_s,
        }));
        // The server drops the last step's viewers and publisher before the next.
        sleep(Duration::from_secs(2)).await;
    }
    Ok(serde_json::json!({
        "server": args.server_name,
        "protocol": format!("{:?}", args.protocol).to_lowercase(),
        "sample": args.sample,
        "p99_bound_ms": bound_ms,
        "min_delivered": args.min_delivered,
        "max_viewers": search.best(),
        "steps": steps,
    }))
}

async fn run(args: &Args, viewer_count: u32) -> Result<Report> {
    let sample = media::Sample::by_name(&args.sample).context("--sample 720p or 360p")?;
    let duration = secs("duration", args.duration, 3600.0)?;
    if duration.is_zero() {
        bail!("--duration must be positive");
    }
    let warmup = secs("warmup", args.warmup, 600.0)?;
    let viewers = viewer_count as usize;
    let publish = RtmpTarget::parse(&args.publish)?;
    let (play, play_url) = match args.protocol {
        Protocol::Rtmp => {
            let url = args
                .play_url
                .clone()
                .unwrap_or_else(|| args.publish.clone());
            (Play::Rtmp(Arc::new(RtmpTarget::parse(&url)?)), url)
        }
        Protocol::Flv => {
            let url = args
                .play_url
                .clone()
                .context("--protocol flv needs --play-url http://HOST:PORT/PATH.flv")?;
            (Play::Flv(Arc::new(HttpTarget::parse(&url)?)), url)
        }
        Protocol::Hls => {
            let url = args
                .play_url
                .clone()
                .context("--protocol hls needs --play-url http://HOST:PORT/APP/STREAM.m3u8")?;
            (Play::Hls(Arc::new(HttpTarget::parse(&url)?)), url)
        }
        Protocol::Whep => {
            let url = args
                .play_url
                .clone()
                .context("--protocol whep needs --play-url http://HOST:PORT/APP/STREAM/whep")?;
            (Play::Whep(Arc::new(HttpTarget::parse(&url)?)), url)
        }
        Protocol::LlHls => bail!("ll-hls runs through run_ll"),
    };
    if args.hls_probe_ms.is_some() && args.protocol != Protocol::Hls {
        bail!("--hls-probe-ms is for --protocol hls");
    }
    let pids = server_pids(args)?;
    if let Some(limit) = procfs::nofile_soft_limit() {
        let need = viewers as u64 + 64;
        if limit < need {
            bail!("open-file limit {limit} is below the {need} this run needs; raise it with `ulimit -n {need}`");
        }
    }
    let clk_tck = procfs::clk_tck() as f64;

    let spacing = Duration::from_millis(args.connect_spacing_ms.min(100));
    let ramp = if args.connect_batch > 0 {
        JOIN_TIMEOUT * viewer_count.div_ceil(args.connect_batch)
    } else {
        spacing * viewer_count
    };
    // Everything the publisher may have to send before it is stopped, with room to spare.
    let grace_max = if args.protocol == Protocol::Hls {
        HLS_GRACE_MAX
    } else {
        GRACE
    };
    let bound = PUBLISHER_UP_TIMEOUT + ramp + warmup * 2 + duration + grace_max + JOIN_TIMEOUT;
    let log = Arc::new(SendLog::new(
        (bound.as_secs_f64() * media::FPS as f64) as usize + 2 * media::FPS as usize,
    ));
    let clock = Clock::new();

    let (live_tx, live_rx) = oneshot::channel();
    let (pub_stop_tx, pub_stop_rx) = watch::channel(false);
    let publisher = {
        let (log, target) = (log.clone(), publish);
        std::thread::Builder::new().name("publisher".into()).spawn(
            move || -> Result<publisher::PublisherReport> {
                // Its own thread and runtime, so viewer load does not disturb the pacing.
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                Ok(rt.block_on(publisher::run_sample(
                    target,
                    sample,
                    clock,
                    log,
                    live_tx,
                    pub_stop_rx,
                )))
            },
        )?
    };
    let stop_publisher = || {
        let _ = pub_stop_tx.send(true);
    };
    match timeout(PUBLISHER_UP_TIMEOUT, live_rx).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(e),
        Ok(Err(_)) => bail!("publisher thread ended before the stream was up"),
        Err(_) => {
            stop_publisher();
            bail!("publisher not up after {PUBLISHER_UP_TIMEOUT:?}");
        }
    }

    let (view_stop_tx, view_stop_rx) = watch::channel(false);
    let sampler = tokio::spawn(sample_memory(pids.clone(), pub_stop_tx.subscribe()));
    let mut lives = Vec::with_capacity(viewers);
    let mut handles: Vec<JoinHandle<ViewerResult>> = Vec::new();
    let mut hls_handles: Vec<JoinHandle<HlsClientResult>> = Vec::new();
    let hls_shared = Arc::new(HlsShared::default());
    let whep_totals = Arc::new(WhepTotals::default());
    let probe = match (&play, args.hls_probe_ms) {
        (Play::Hls(t), Some(ms)) => {
            let rec = ViewerRecorder::new(clock, log.clone(), Arc::new(ViewerLive::default()));
            let opts = ClientOptions {
                poll_every: Some(Duration::from_millis(ms)),
                fetch_segments: false,
                seed: 1,
            };
            Some(tokio::spawn(viewer_hls::run(
                t.clone(),
                rec,
                opts,
                hls_shared.clone(),
                view_stop_rx.clone(),
            )))
        }
        _ => None,
    };
    let readers = Readers::start(args.reader_threads)?;
    let ramp_start = Instant::now();
    for i in 0..viewer_count {
        if args.connect_batch == 0 {
            sleep_until(ramp_start + spacing * i).await;
        } else if i > 0 && i % args.connect_batch == 0 {
            wait_batch(&lives, &handles, args.connect_batch as usize).await;
        }
        let live = Arc::new(ViewerLive::default());
        let rec = ViewerRecorder::new(clock, log.clone(), live.clone());
        let stop = view_stop_rx.clone();
        match &play {
            Play::Rtmp(t) => handles.push(tokio::spawn(viewer_rtmp::run(
                t.clone(),
                rec,
                stop,
                readers.clone(),
            ))),
            Play::Flv(t) => handles.push(tokio::spawn(viewer_flv::run(
                t.clone(),
                rec,
                stop,
                readers.clone(),
            ))),
            Play::Whep(t) => handles.push(tokio::spawn(viewer_whep::run(
                t.clone(),
                rec,
                whep_totals.clone(),
                stop,
            ))),
            Play::Hls(t) => {
                let opts = ClientOptions {
                    poll_every: None,
                    fetch_segments: true,
                    seed: u64::from(i + 2).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                };
                hls_handles.push(tokio::spawn(viewer_hls::run(
                    t.clone(),
                    rec,
                    opts,
                    hls_shared.clone(),
                    stop,
                )));
            }
        }
        lives.push(live);
    }

    sleep(warmup).await;
    let extra = Instant::now() + warmup;
    while receiving(&lives) < viewers && Instant::now() < extra {
        sleep(Duration::from_millis(50)).await;
    }
    let connected = receiving(&lives);

    let thread = args.server_thread.as_deref();
    let packets = |t: &WhepTotals| {
        (
            t.video_packets.load(Ordering::Relaxed),
            t.audio_packets.load(Ordering::Relaxed),
        )
    };
    let w0 = Snapshot::take(&clock, &pids, thread, &lives)?;
    let p0 = packets(&whep_totals);
    sleep(duration).await;
    let w1 = Snapshot::take(&clock, &pids, thread, &lives)?;
    let p1 = packets(&whep_totals);
    let target_ms = hls_shared.target_ms.load(Ordering::Relaxed);
    let grace = match args.protocol {
        Protocol::Hls => {
            let target = Duration::from_millis(if target_ms > 0 {
                target_ms
            } else {
                viewer_hls::DEFAULT_TARGET_MS
            });
            (target * 2 + GRACE).min(HLS_GRACE_MAX)
        }
        _ => GRACE,
    };
    sleep(grace).await;

    let _ = view_stop_tx.send(true);
    let deadline = Instant::now() + JOIN_TIMEOUT;
    let mut results = join_all(handles, deadline).await?;
    let mut hls_records: Vec<HlsRecord> = Vec::with_capacity(hls_handles.len());
    for r in join_all(hls_handles, deadline).await? {
        results.push(r.viewer);
        hls_records.push(r.hls);
    }
    let probe_record = match probe {
        Some(h) => join_all(vec![h], deadline).await?.pop().map(|r| r.hls),
        None => None,
    };
    stop_publisher();
    let pub_report = match timeout(
        JOIN_TIMEOUT,
        tokio::task::spawn_blocking(move || publisher.join()),
    )
    .await
    {
        Ok(Ok(Ok(Ok(r)))) => r,
        Ok(Ok(Ok(Err(e)))) => bail!("publisher runtime: {e:#}"),
        Ok(_) => bail!("publisher thread panicked"),
        Err(_) => bail!("publisher did not stop within {JOIN_TIMEOUT:?}"),
    };
    let (peak_rss, hwm) = sampler.await.unwrap_or((0, 0));

    let seqs = log.seqs_sent_between(w0.ns, w1.ns);
    let agg = stats::aggregate(&results, viewers, seqs);
    let window_s = (w1.ns - w0.ns) as f64 / 1e9;
    let gbit = (w1.bytes - w0.bytes) as f64 * 8.0 / 1e9;
    let (server_cpu_s, server_error) = match (&w0.server_ticks, &w1.server_ticks) {
        _ if pids.is_empty() => (None, None),
        (Ok(a), Ok(b)) => (Some(b.saturating_sub(*a) as f64 / clk_tck), None),
        (Err(e), _) | (_, Err(e)) => (None, Some(format!("{e:#}"))),
    };
    let have_mem = !pids.is_empty() && peak_rss > 0;
    let thread_cpu = args.server_thread.clone().map(|name| {
        let cpu_s = w1.thread_ticks.0.saturating_sub(w0.thread_ticks.0) as f64 / clk_tck;
        ThreadCpu {
            name,
            threads: w1.thread_ticks.1,
            cpu_s,
            share_of_server: server_cpu_s.filter(|&c| c > 0.0).map(|c| cpu_s / c),
        }
    });
    let whep = (args.protocol == Protocol::Whep).then(|| WhepReport {
        connected: whep_totals.connected.load(Ordering::Relaxed),
        video_packets_per_s: (p1.0 - p0.0) as f64 / window_s,
        audio_packets_per_s: (p1.1 - p0.1) as f64 / window_s,
        incomplete_frames: whep_totals.incomplete_frames.load(Ordering::Relaxed),
    });
    let hls = (args.protocol == Protocol::Hls).then(|| {
        hls_report(
            &hls_records,
            probe_record.as_ref(),
            args.hls_probe_ms,
            &log,
            (w0.ns, w1.ns),
            target_ms,
            server_cpu_s,
        )
    });
    Ok(Report {
        server: args.server_name.clone().unwrap_or_else(|| "server".into()),
        protocol: match args.protocol {
            Protocol::Rtmp => "rtmp",
            Protocol::Flv => "flv",
            Protocol::Hls => "hls",
            Protocol::LlHls => "ll-hls",
            Protocol::Whep => "whep",
        },
        publish_url: args.publish.clone(),
        play_url,
        viewers,
        connected_viewers: connected,
        window_s,
        latency_ms: agg.latency,
        ttff_ms: agg.ttff,
        ttfk_ms: agg.ttfk,
        frames_sent: agg.frames_sent,
        frames_received: agg.frames_received,
        delivered_fraction: agg.delivered_fraction,
        gbit_delivered: gbit,
        server_pids: pids,
        server_cpu_s,
        cpu_s_per_gbit: server_cpu_s.filter(|_| gbit > 0.0).map(|c| c / gbit),
        peak_rss_mib: have_mem.then(|| peak_rss as f64 / MIB),
        vm_hwm_mib: have_mem.then(|| hwm as f64 / MIB),
        bench_cpu_s: w1.self_ticks.saturating_sub(w0.self_ticks) as f64 / clk_tck,
        duplicate_frames: agg.duplicates,
        foreign_frames: agg.foreign,
        publisher: pub_report,
        server_error,
        errors: agg
            .errors
            .into_iter()
            .map(|(reason, viewers)| ErrorCount { reason, viewers })
            .collect(),
        hls,
        server_thread: thread_cpu,
        whep,
    })
}

/// The HLS part of the report, over the window `(w0, w1)` in clock ns.
fn hls_report(
    clients: &[HlsRecord],
    probe: Option<&HlsRecord>,
    probe_ms: Option<u64>,
    log: &SendLog,
    (w0, w1): (u64, u64),
    target_ms: u64,
    server_cpu_s: Option<f64>,
) -> HlsReport {
    let window_s = (w1 - w0) as f64 / 1e9;
    let req = hls_stats::requests(clients, w0, w1);
    let probe_req = probe.map(|p| hls_stats::requests([p], w0, w1));
    let served = req.playlist + req.segment + probe_req.as_ref().map_or(0, |p| p.playlist);
    let ranges = hls_stats::frame_ranges(clients);
    let available = |listers: &[&HlsRecord]| {
        hls_stats::availability(
            &hls_stats::first_listed(listers.iter().copied()),
            &ranges,
            log,
            w0,
            w1,
        )
    };
    let all: Vec<&HlsRecord> = clients.iter().chain(probe).collect();
    HlsReport {
        target_duration_s: (target_ms > 0).then(|| target_ms as f64 / 1000.0),
        probe_ms,
        playlist_requests_per_s: req.playlist as f64 / window_s,
        segment_requests_per_s: req.segment as f64 / window_s,
        probe_requests_per_s: probe_req.as_ref().map(|p| p.playlist as f64 / window_s),
        playlist_latency_ms: req.playlist_latency,
        segment_latency_ms: req.segment_latency,
        cpu_s_per_1000_requests: server_cpu_s
            .filter(|_| served > 0)
            .map(|c| c / (served as f64 / 1000.0)),
        segment_available_ms: available(&clients.iter().collect::<Vec<_>>()),
        segment_available_probe_ms: probe.map(|p| available(&[p])),
        skipped_segments: clients.iter().map(|c| c.skipped_segments).sum(),
        non_200: all.iter().map(|c| c.non_200).sum(),
        timeouts: all.iter().map(|c| c.timeouts).sum(),
        ts_parse_failures: clients.iter().map(|c| c.ts_failures).sum(),
        reconnects: all.iter().map(|c| c.connects.saturating_sub(1)).sum(),
        errors: hls_stats::errors(all.iter().copied())
            .into_iter()
            .map(|(reason, count)| HlsErrorCount { reason, count })
            .collect(),
    }
}
