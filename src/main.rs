//! `onair`: the one command users run. `onair serve` runs the live server; `onair push`
//! publishes a stream to it (or to any RTMP server, or to an FLV file).

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
        /// Print the effective configuration as TOML and exit.
        #[arg(long)]
        print_config: bool,
    },
    /// Push a live stream: capture or synthesize, process, encode H.264 + AAC, and publish
    /// over RTMP (or write an FLV file). The default source is a test pattern with a
    /// burned-in clock and a tone; every frame carries its capture time in an SEI.
    Push(Box<onair_pusher::PushArgs>),
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
            print_config,
        } => {
            let mut cfg = match &config {
                Some(path) => Config::load(path)?,
                None => Config::default(),
            };
            if let Some(a) = rtmp_addr {
                cfg.rtmp.addr = a;
            }
            if let Some(a) = http_addr {
                cfg.http.addr = a;
            }
            if print_config {
                print!("{}", toml::to_string(&cfg)?);
                return Ok(());
            }
            let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            rt.block_on(serve(cfg))
        }
        Command::Push(args) => push(*args),
    }
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

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let server = Server::start(cfg).await?;
    // One machine-readable line on stdout, so scripts and tests can find the ports.
    println!(
        "onair listening rtmp={} http={}",
        server.rtmp_addr, server.http_addr
    );
    wait_for_signal().await?;
    tracing::info!("shutting down");
    server.shutdown(Duration::from_secs(5)).await;
    Ok(())
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
