//! `onair`: the one command users run. `onair serve` runs the live server; `onair push`
//! publishes a stream to it (or to any RTMP server, or to an FLV file); `onair demo` runs
//! both at once, a test pattern on `live/demo`, and prints the player URL.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use onair_server::{Config, Server};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "onair",
    version,
    about = "Self-hosted live streaming: RTMP in, RTMP and HTTP-FLV out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: RTMP ingest and play, HTTP-FLV, JSON API.
    Serve {
        /// TOML config file; every setting has a default (see README, "Configuration").
        #[arg(long)]
        config: Option<PathBuf>,
        /// RTMP listen address [default: 0.0.0.0:1935, or the config file's rtmp.addr].
        #[arg(long)]
        rtmp_addr: Option<std::net::SocketAddr>,
        /// HTTP listen address [default: 0.0.0.0:8080, or the config file's http.addr].
        #[arg(long)]
        http_addr: Option<std::net::SocketAddr>,
        /// Admin API listen address [default: 127.0.0.1:8081, or the config file's admin.addr];
        /// the admin API runs only with a token in admin.tokens.
        #[arg(long)]
        admin_addr: Option<std::net::SocketAddr>,
        /// RTMPS listen address (RTMP over TLS; OBS and Facebook expect 443); off unless
        /// given here or as rtmp.tls_addr. Needs a certificate (--tls-cert/--tls-key or
        /// --tls-self-signed).
        #[arg(long)]
        rtmps_addr: Option<std::net::SocketAddr>,
        /// HTTPS listen address: everything the HTTP listener serves, over TLS; off unless
        /// given here or as http.tls_addr.
        #[arg(long)]
        https_addr: Option<std::net::SocketAddr>,
        #[command(flatten)]
        tls: TlsArgs,
        /// Run as an edge of this origin (`rtmp://host:port`; repeat for a failover list):
        /// replaces the config file's cluster.origins.
        #[arg(long = "origin", value_name = "URL")]
        origins: Vec<String>,
        /// Print the effective configuration as TOML and exit.
        #[arg(long)]
        print_config: bool,
    },
    /// Push a live stream: capture or synthesize, process, encode H.264 + AAC, and publish
    /// over RTMP (or write an FLV file). The default source is a test pattern with a
    /// burned-in clock and a tone; every frame carries its capture time in an SEI.
    Push(Box<onair_pusher::PushArgs>),
    /// The one-command demo: the server plus a test-pattern pusher (burned-in clock, tone,
    /// SEI clock for the latency overlay) publishing to it; prints the browser player's URL.
    /// Ctrl-C or SIGTERM stops both.
    Demo {
        /// TOML config file for the server (see `serve`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// RTMP listen address [default: 0.0.0.0:1935]; the pusher connects to it on loopback.
        #[arg(long)]
        rtmp_addr: Option<std::net::SocketAddr>,
        /// HTTP listen address [default: 0.0.0.0:8080].
        #[arg(long)]
        http_addr: Option<std::net::SocketAddr>,
        /// Also serve RTMPS on 127.0.0.1:1936 and HTTPS on 127.0.0.1:8443 with a generated
        /// certificate (its fingerprint is printed).
        #[arg(long)]
        tls_self_signed: bool,
        /// The stream to publish, APP/NAME.
        #[arg(long, default_value = "live/demo")]
        stream: String,
        /// Picture size of the test pattern, WxH.
        #[arg(long, default_value = "1280x720")]
        size: String,
        /// Video bitrate of the test pattern (`k` and `M` suffixes work).
        #[arg(long, default_value = "2500k")]
        bitrate: String,
    },
}

/// The certificate of the TLS listeners (over the config file's `[tls]`).
#[derive(clap::Args, Clone, Default)]
struct TlsArgs {
    /// PEM certificate chain for RTMPS and HTTPS (re-read on SIGHUP) [config: tls.cert].
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert [config: tls.key].
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Generate a self-signed certificate for local use and print its fingerprint.
    #[arg(long, conflicts_with = "tls_cert")]
    tls_self_signed: bool,
}

/// `onair push` options parsed the way the command line would, so the demo's pusher has
/// exactly the defaults of `onair push`.
#[derive(Parser)]
struct PushOnly {
    #[command(flatten)]
    push: onair_pusher::PushArgs,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            rtmp_addr,
            http_addr,
            admin_addr,
            rtmps_addr,
            https_addr,
            tls,
            origins,
            print_config,
        } => {
            let addrs = Addrs {
                origins,
                rtmp: rtmp_addr,
                http: http_addr,
                admin: admin_addr,
                rtmps: rtmps_addr,
                https: https_addr,
                tls,
            };
            let cfg = server_config(config.as_deref(), addrs.clone())?;
            if print_config {
                print!("{}", toml::to_string(&cfg)?);
                return Ok(());
            }
            // SIGHUP and `POST /api/admin/reload` read the file again, addresses on top.
            let loader: onair_server::control::Loader =
                Box::new(move || server_config(config.as_deref(), addrs.clone()));
            let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            rt.block_on(serve(cfg, loader))
        }
        Command::Push(args) => push(*args),
        Command::Demo {
            config,
            rtmp_addr,
            http_addr,
            tls_self_signed,
            stream,
            size,
            bitrate,
        } => {
            let addrs = Addrs {
                rtmp: rtmp_addr,
                http: http_addr,
                admin: None,
                rtmps: tls_self_signed.then_some(([127, 0, 0, 1], 1936).into()),
                https: tls_self_signed.then_some(([127, 0, 0, 1], 8443).into()),
                tls: TlsArgs {
                    tls_self_signed,
                    ..TlsArgs::default()
                },
                origins: Vec::new(),
            };
            let cfg = server_config(config.as_deref(), addrs)?;
            let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            rt.block_on(demo(cfg, &stream, &size, &bitrate))
        }
    }
}

/// Listen addresses and the certificate given on the command line.
#[derive(Clone)]
struct Addrs {
    rtmp: Option<std::net::SocketAddr>,
    http: Option<std::net::SocketAddr>,
    admin: Option<std::net::SocketAddr>,
    rtmps: Option<std::net::SocketAddr>,
    https: Option<std::net::SocketAddr>,
    tls: TlsArgs,
    origins: Vec<String>,
}

/// The config file (or the defaults) with the command line's addresses on top.
fn server_config(path: Option<&std::path::Path>, addrs: Addrs) -> anyhow::Result<Config> {
    let mut cfg = match path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(a) = addrs.rtmp {
        cfg.rtmp.addr = a;
    }
    if let Some(a) = addrs.http {
        cfg.http.addr = a;
    }
    if let Some(a) = addrs.admin {
        cfg.admin.addr = a;
    }
    if let Some(a) = addrs.rtmps {
        cfg.rtmp.tls_addr = Some(a);
    }
    if let Some(a) = addrs.https {
        cfg.http.tls_addr = Some(a);
    }
    if let (Some(cert), Some(key)) = (addrs.tls.tls_cert, addrs.tls.tls_key) {
        cfg.tls.cert = Some(cert);
        cfg.tls.key = Some(key);
        cfg.tls.self_signed = false;
    }
    if !addrs.origins.is_empty() {
        cfg.cluster.origins = addrs.origins;
    }
    if addrs.tls.tls_self_signed {
        cfg.tls.self_signed = true;
        cfg.tls.cert = None;
        cfg.tls.key = None;
    }
    Ok(cfg)
}

/// Where a local client reaches a listener: the loopback address when it listens on all.
fn local_addr(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// `onair demo`: the server, then `onair push`'s test pattern into it on a thread of its own
/// (the pusher blocks and runs its own runtime). Stops the pusher first, then the server.
async fn demo(cfg: Config, stream: &str, size: &str, bitrate: &str) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let (app, name) = stream
        .split_once('/')
        .filter(|(a, n)| !a.is_empty() && !n.is_empty() && !n.contains('/'))
        .with_context(|| format!("--stream must be APP/NAME, got {stream:?}"))?;
    let player_built = cfg.http.player_dir.join("index.html").is_file();
    let player_dir = cfg.http.player_dir.display().to_string();
    let server = Server::start(cfg).await?;
    println!("onair listening {}", listening_fields(&server));
    let push_url = format!("rtmp://{}/{app}/{name}", local_addr(server.rtmp_addr));
    let player_url = format!(
        "http://{}/live?stream={app}/{name}",
        local_addr(server.http_addr)
    );
    let push_cfg = PushOnly::try_parse_from([
        "push",
        push_url.as_str(),
        "--overlay",
        "clock",
        "--size",
        size,
        "--bitrate",
        bitrate,
        "--quiet",
    ])
    .context("demo pusher options")?
    .push
    .into_config()?;
    let stop = Arc::new(AtomicBool::new(false));
    let pusher = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("demo-push".into())
            .spawn(move || onair_pusher::run(push_cfg, stop))
            .context("starting the demo pusher")?
    };
    let mut pusher = tokio::task::spawn_blocking(move || pusher.join());
    println!("onair demo: pushing a test pattern (clock overlay, tone) to {push_url}");
    if !player_built {
        println!(
            "onair demo: the browser player is not built (no {player_dir}/index.html): \
             cd player-web && npm ci && npm run build"
        );
    }
    println!("onair demo: watch at {player_url}");
    if let Some(https) = server.https_addr {
        println!(
            "onair demo: or over HTTPS (self-signed) at https://{}/live?stream={app}/{name}",
            local_addr(https)
        );
    }
    let ended_early = tokio::select! {
        r = wait_for_signal() => { r?; None }
        r = &mut pusher => Some(r),
    };
    let result = match ended_early {
        Some(r) => Err(match r {
            Ok(Ok(Ok(_))) => anyhow::anyhow!("the demo pusher stopped"),
            Ok(Ok(Err(e))) => anyhow::Error::new(e).context("the demo pusher failed"),
            _ => anyhow::anyhow!("the demo pusher panicked"),
        }),
        None => {
            tracing::info!("stopping the demo");
            stop.store(true, Ordering::Relaxed);
            if tokio::time::timeout(Duration::from_secs(10), &mut pusher)
                .await
                .is_err()
            {
                tracing::warn!("the demo pusher did not stop within 10 s");
            }
            Ok(())
        }
    };
    server.shutdown(Duration::from_secs(5)).await;
    result
}

/// `onair push`: runs the pipeline on this thread; Ctrl-C or SIGTERM ends it cleanly (the
/// sources stop, the encoders flush, the queue drains, the publisher says goodbye).
fn push(args: onair_pusher::PushArgs) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let cfg = args.into_config()?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the signal runtime")?;
        std::thread::Builder::new()
            .name("push-signals".into())
            .spawn(move || {
                if rt.block_on(wait_for_signal()).is_ok() {
                    tracing::info!("stopping the push");
                    stop.store(true, Ordering::Relaxed);
                }
            })
            .context("starting the signal thread")?;
    }
    let summary = onair_pusher::run(cfg, stop).context("push failed")?;
    tracing::info!(
        video_frames = summary.video_frames,
        bytes = summary.bytes,
        dropped = summary.dropped,
        reconnects = summary.reconnects,
        "push finished"
    );
    Ok(())
}

async fn serve(cfg: Config, loader: onair_server::control::Loader) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup())?;
    let server = Server::start_reloadable(cfg, Some(loader)).await?;
    // One machine-readable line on stdout, so scripts and tests can find the ports.
    println!("onair listening {}", listening_fields(&server));
    let stop = wait_for_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            r = &mut stop => { r?; break; }
            _ = hangup.recv() => {
                // The report and any error are logged by the reload itself; it reads a
                // file, so off the async workers.
                let _ = tokio::task::block_in_place(|| server.reload());
            }
        }
    }
    tracing::info!("shutting down");
    server.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

/// `rtmp=ADDR http=ADDR[ admin=ADDR][ rtmps=ADDR][ https=ADDR][ tls_sha256=FINGERPRINT]`;
/// the fingerprint of the certificate is on this line too, so that a reader may stop
/// reading after it.
fn listening_fields(server: &Server) -> String {
    let mut line = format!("rtmp={} http={}", server.rtmp_addr, server.http_addr);
    let optional = [
        ("admin", server.admin_addr),
        ("rtmps", server.rtmps_addr),
        ("https", server.https_addr),
        ("webrtc", server.webrtc_addr),
    ];
    for (name, addr) in optional {
        if let Some(a) = addr {
            line.push_str(&format!(" {name}={a}"));
        }
    }
    if let Some(fp) = server.tls_fingerprint() {
        line.push_str(&format!(" tls_sha256={fp}"));
    }
    line
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
