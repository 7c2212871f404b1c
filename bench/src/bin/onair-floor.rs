//! onair-floor: the fan-out floor probe. A stand-in "server" that takes one RTMP publisher and
//! N RTMP or HTTP-FLV viewers and, on a single thread, makes one blocking write per viewer
//! per video frame (audio rides in the next video frame's write): the kernel's own cost of
//! moving the stream over loopback, for the bench to measure like any server. It must never
//! do per-viewer work beyond that write: no queue, no task, no read while streaming.

use anyhow::{bail, Context, Result};
use clap::Parser;
use onair_bench::floor::{Fanout, Media, Step, FLV_RESPONSE_HEAD};
use onair_bench::http;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread;
use std::time::Duration;

/// A peer that does not finish its setup within this is dropped.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// New connections waiting for the fan-out thread to take them.
const JOIN_QUEUE: usize = 1024;
const READ_BUF: usize = 64 * 1024;
/// The GOP cache a joining viewer starts from holds at most this many bytes.
const MAX_GOP: usize = 16 * 1024 * 1024;

/// One-write-per-frame fan-out floor: RTMP publish in, RTMP and HTTP-FLV viewers out.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// RTMP listen address (publisher and RTMP viewers), loopback only.
    #[arg(long, default_value = "127.0.0.1:1935")]
    rtmp_addr: SocketAddr,
    /// HTTP-FLV listen address (any GET path plays the stream), loopback only.
    #[arg(long)]
    http_addr: Option<SocketAddr>,
    /// Most viewers at once; further ones are closed at once.
    #[arg(long, default_value_t = 20_000)]
    max_viewers: usize,
    /// RTMP chunk size sent to viewers (nginx-rtmp's in bench/compare.sh is 4096).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(128..=65536))]
    chunk_size: u32,
    /// A viewer whose write blocks this long is dropped.
    #[arg(long, default_value_t = 2000)]
    write_timeout_ms: u64,
}

/// What the setup threads hand the fan-out thread.
enum Join {
    Publisher {
        sock: TcpStream,
        session: Box<ServerSession>,
        /// Media events that came in the same reads as the publish request.
        early: Vec<ServerSessionEvent>,
    },
    Rtmp(TcpStream),
    Flv(TcpStream),
}

fn main() -> Result<()> {
    let args = Args::parse();
    for addr in std::iter::once(args.rtmp_addr).chain(args.http_addr) {
        if !addr.ip().is_loopback() {
            bail!("{addr} is not a loopback address");
        }
    }
    let (tx, rx) = mpsc::sync_channel(JOIN_QUEUE);
    let rtmp = TcpListener::bind(args.rtmp_addr).context("bind RTMP")?;
    let chunk_size = args.chunk_size;
    {
        let tx = tx.clone();
        thread::Builder::new()
            .name("floor-rtmp-accept".into())
            .spawn(move || accept_rtmp(rtmp, chunk_size, tx))?;
    }
    if let Some(addr) = args.http_addr {
        let http = TcpListener::bind(addr).context("bind HTTP")?;
        let tx = tx.clone();
        thread::Builder::new()
            .name("floor-http-accept".into())
            .spawn(move || accept_flv(http, tx))?;
    }
    drop(tx);
    eprintln!(
        "onair-floor: RTMP on {}{}",
        args.rtmp_addr,
        args.http_addr
            .map_or(String::new(), |a| format!(", HTTP-FLV on {a}"))
    );
    fan_out(&args, rx)
}

fn accept_rtmp(listener: TcpListener, chunk_size: u32, tx: SyncSender<Join>) {
    for sock in listener.incoming().flatten() {
        // One setup at a time: joins are spaced by the bench, and setup is not measured work.
        match rtmp_setup(sock, chunk_size) {
            Ok(j) => {
                if tx.send(j).is_err() {
                    return;
                }
            }
            Err(e) => eprintln!("onair-floor: RTMP setup: {e:#}"),
        }
    }
}

fn accept_flv(listener: TcpListener, tx: SyncSender<Join>) {
    for sock in listener.incoming().flatten() {
        match flv_setup(sock) {
            Ok(s) => {
                if tx.send(Join::Flv(s)).is_err() {
                    return;
                }
            }
            Err(e) => eprintln!("onair-floor: HTTP-FLV setup: {e:#}"),
        }
    }
}

fn write_results(
    sock: &mut TcpStream,
    results: Vec<ServerSessionResult>,
) -> Result<Vec<ServerSessionEvent>> {
    let mut events = Vec::new();
    for r in results {
        match r {
            ServerSessionResult::OutboundResponse(p) => sock.write_all(&p.bytes)?,
            ServerSessionResult::RaisedEvent(e) => events.push(e),
            ServerSessionResult::UnhandleableMessageReceived(_) => {}
        }
    }
    Ok(events)
}

/// Handshake, connect, then publish or play; everything accepted.
fn rtmp_setup(mut sock: TcpStream, chunk_size: u32) -> Result<Join> {
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(SETUP_TIMEOUT))?;
    sock.set_write_timeout(Some(SETUP_TIMEOUT))?;
    let mut buf = vec![0u8; READ_BUF];
    let mut hs = Handshake::new(PeerType::Server);
    let leftover = loop {
        let n = sock.read(&mut buf).context("handshake read")?;
        if n == 0 {
            bail!("closed during the handshake");
        }
        match hs.process_bytes(&buf[..n])? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                sock.write_all(&response_bytes)?
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                sock.write_all(&response_bytes)?;
                break remaining_bytes;
            }
        }
    };
    let mut config = ServerSessionConfig::new();
    config.chunk_size = chunk_size;
    let (mut session, initial) = ServerSession::new(config)?;
    write_results(&mut sock, initial)?;
    let mut input = leftover;
    loop {
        let results = session.handle_input(&input)?;
        let mut events = write_results(&mut sock, results)?.into_iter();
        while let Some(e) = events.next() {
            match e {
                ServerSessionEvent::ConnectionRequested { request_id, .. } => {
                    let r = session.accept_request(request_id)?;
                    write_results(&mut sock, r)?;
                }
                ServerSessionEvent::PublishStreamRequested { request_id, .. } => {
                    let r = session.accept_request(request_id)?;
                    let mut early = write_results(&mut sock, r)?;
                    early.extend(events);
                    sock.set_read_timeout(None)?;
                    return Ok(Join::Publisher {
                        sock,
                        session: Box::new(session),
                        early,
                    });
                }
                ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                    let r = session.accept_request(request_id)?;
                    write_results(&mut sock, r)?;
                    return Ok(Join::Rtmp(sock));
                }
                _ => {}
            }
        }
        let n = sock.read(&mut buf).context("setup read")?;
        if n == 0 {
            bail!("closed during setup");
        }
        input = buf[..n].to_vec();
    }
}

/// Reads the request head (any GET) and answers with the response head.
fn flv_setup(mut sock: TcpStream) -> Result<TcpStream> {
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(SETUP_TIMEOUT))?;
    sock.set_write_timeout(Some(SETUP_TIMEOUT))?;
    let mut head = Vec::new();
    let mut b = [0u8; 2048];
    while http::head_end(&head).is_none() {
        if head.len() > 16 * 1024 {
            bail!("request head over 16 KiB");
        }
        let n = sock.read(&mut b).context("read request head")?;
        if n == 0 {
            bail!("closed before the request head");
        }
        head.extend_from_slice(&b[..n]);
    }
    if !head.starts_with(b"GET ") {
        sock.write_all(
            b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        bail!("not a GET");
    }
    sock.write_all(FLV_RESPONSE_HEAD)?;
    Ok(sock)
}

struct Viewers {
    rtmp: Vec<TcpStream>,
    flv: Vec<TcpStream>,
}

impl Viewers {
    fn len(&self) -> usize {
        self.rtmp.len() + self.flv.len()
    }
}

/// Writes `bytes` to each socket once; drops those whose write fails or times out.
fn write_each(socks: &mut Vec<TcpStream>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    socks.retain_mut(|s| s.write_all(bytes).is_ok());
}

/// The single fan-out thread: publisher in, one write per viewer per video frame out.
fn fan_out(args: &Args, rx: Receiver<Join>) -> Result<()> {
    let write_timeout = Some(Duration::from_millis(args.write_timeout_ms.max(1)));
    // rml_rtmp's server session gives the first stream a client creates id 1.
    let mut fan = Fanout::new(args.chunk_size as usize, 1, MAX_GOP);
    let mut viewers = Viewers {
        rtmp: Vec::new(),
        flv: Vec::new(),
    };
    let mut publisher: Option<(TcpStream, Box<ServerSession>)> = None;
    let mut buf = vec![0u8; READ_BUF];
    let mut events = Vec::new();
    loop {
        // Joins are taken between frames, so a joiner starts from a complete GOP.
        let next = if publisher.is_some() {
            match rx.try_recv() {
                Ok(j) => Some(j),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => bail!("listeners gone"),
            }
        } else {
            Some(rx.recv().context("listeners gone")?)
        };
        if let Some(j) = next {
            match j {
                Join::Publisher {
                    sock,
                    session,
                    early,
                } => {
                    // A new publisher replaces the old one; its viewers start over.
                    fan.reset();
                    viewers.rtmp.clear();
                    viewers.flv.clear();
                    publisher = Some((sock, session));
                    events = early;
                }
                Join::Rtmp(s) | Join::Flv(s) if viewers.len() >= args.max_viewers => {
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }
                Join::Rtmp(s) => {
                    let _ = s.set_write_timeout(write_timeout);
                    viewers.rtmp.push(s);
                    let n = viewers.rtmp.len();
                    write_each_from(&mut viewers.rtmp, n - 1, &fan.join_rtmp());
                }
                Join::Flv(s) => {
                    let _ = s.set_write_timeout(write_timeout);
                    viewers.flv.push(s);
                    let n = viewers.flv.len();
                    write_each_from(&mut viewers.flv, n - 1, &fan.join_flv());
                }
            }
            continue;
        }
        let Some((sock, session)) = publisher.as_mut() else {
            continue;
        };
        for e in events.drain(..) {
            let media = match &e {
                ServerSessionEvent::VideoDataReceived {
                    data, timestamp, ..
                } => Media::Video {
                    timestamp: timestamp.value,
                    data,
                },
                ServerSessionEvent::AudioDataReceived {
                    data, timestamp, ..
                } => Media::Audio {
                    timestamp: timestamp.value,
                    data,
                },
                _ => continue,
            };
            if fan.push(media) == Step::Write {
                write_each(&mut viewers.rtmp, &fan.frame().rtmp);
                write_each(&mut viewers.flv, &fan.frame().flv);
                fan.written();
            }
        }
        let n = match sock.read(&mut buf) {
            Ok(0) | Err(_) => {
                eprintln!(
                    "onair-floor: publisher gone; dropping {} viewers",
                    viewers.len()
                );
                publisher = None;
                viewers.rtmp.clear();
                viewers.flv.clear();
                fan.reset();
                continue;
            }
            Ok(n) => n,
        };
        match session.handle_input(&buf[..n]) {
            Ok(results) => match write_results(sock, results) {
                Ok(ev) => events = ev,
                Err(_) => publisher = None,
            },
            Err(e) => {
                eprintln!("onair-floor: publisher stream: {e:?}");
                publisher = None;
            }
        }
    }
}

/// `write_each` for the sockets from index `from` on (a joiner's first write).
fn write_each_from(socks: &mut Vec<TcpStream>, from: usize, bytes: &[u8]) {
    let mut tail = socks.split_off(from);
    write_each(&mut tail, bytes);
    socks.append(&mut tail);
}
