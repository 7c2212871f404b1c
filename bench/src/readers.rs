//! Reader threads: once a viewer's setup is done (the HTTP head, or the RTMP handshake
//! and play request), its socket is read by one of a few threads, each polling many
//! sockets with plain epoll (mio) and reading them into one buffer of its own, instead of
//! by a tokio task of its own. At thousands of viewers the bench shares the machine with
//! the server it measures: a profile of 10,000 HTTP-FLV viewers had the bench's tokio
//! tasks (waking, polling, a 64 KB buffer and a demuxer copy per viewer) at about a third
//! of its CPU, the CPU the server then did not get. What a viewer's bytes mean is its
//! `Demux`'s business (sans-IO); this module only moves bytes and times them.

use crate::stats::{ViewerRecorder, ViewerResult};
use anyhow::{bail, Context, Result};
use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// One read takes at most this much; a reader thread has one such buffer for all its
/// viewers.
const READ_BUF: usize = 256 * 1024;
/// How long a reader thread sleeps in its poll at most, so it sees a stop in time.
const POLL_TICK: Duration = Duration::from_millis(20);
const WAKE: Token = Token(usize::MAX);

/// What a viewer makes of its bytes. Sans-IO: bytes in, records and replies out.
pub trait Demux: Send {
    /// `data` was read at `now_ns`. Records what it carries in `rec`; bytes the server
    /// must be sent in answer (RTMP acknowledgements) go to `reply`. An error ends the
    /// viewer with it.
    fn feed(
        &mut self,
        data: &[u8],
        now_ns: u64,
        rec: &mut ViewerRecorder,
        reply: &mut Vec<u8>,
    ) -> Result<()>;
}

/// A viewer handed to a reader thread.
struct Job {
    sock: std::net::TcpStream,
    demux: Box<dyn Demux>,
    rec: ViewerRecorder,
    done: oneshot::Sender<ViewerResult>,
}

struct Thread {
    jobs: Mutex<mpsc::Sender<Job>>,
    waker: Waker,
}

/// The reader threads of one bench run. Dropping it stops them (each viewer still held
/// is finished without an error, as at a stop).
pub struct Readers {
    threads: Vec<Arc<Thread>>,
    next: AtomicUsize,
    stop: Arc<AtomicBool>,
    joins: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Readers {
    /// Starts `threads` reader threads (0: one per CPU core).
    pub fn start(threads: usize) -> Result<Arc<Self>> {
        let n = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::with_capacity(n);
        let mut joins = Vec::with_capacity(n);
        for i in 0..n {
            let poll = Poll::new().context("epoll instance for a reader thread")?;
            let waker = Waker::new(poll.registry(), WAKE).context("reader thread waker")?;
            let (tx, rx) = mpsc::channel();
            handles.push(Arc::new(Thread {
                jobs: Mutex::new(tx),
                waker,
            }));
            let stop = stop.clone();
            let join = std::thread::Builder::new()
                .name(format!("reader-{i}"))
                .spawn(move || ReaderThread::new(poll, rx, stop).run())
                .context("start a reader thread")?;
            joins.push(join);
        }
        Ok(Arc::new(Self {
            threads: handles,
            next: AtomicUsize::new(0),
            stop,
            joins: Mutex::new(joins),
        }))
    }

    /// Reads `sock` on a reader thread, through `demux`, until the server closes it, an
    /// error, or `stop`; returns the viewer's record. `demux` has had every byte read
    /// before (the setup's leftovers included).
    pub async fn read(
        &self,
        sock: tokio::net::TcpStream,
        demux: Box<dyn Demux>,
        rec: ViewerRecorder,
        mut stop: watch::Receiver<bool>,
    ) -> ViewerResult {
        let capacity = rec.capacity();
        let connect_ns = rec.connect_ns();
        let failed = |e: String| ViewerResult::failed(connect_ns, capacity, e);
        let sock = match sock.into_std() {
            Ok(s) => s,
            Err(e) => return failed(format!("take the socket from tokio: {e}")),
        };
        let (done, mut result) = oneshot::channel();
        let job = Job {
            sock,
            demux,
            rec,
            done,
        };
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.threads.len();
        let thread = &self.threads[i];
        let sent = thread
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job);
        if sent.is_err() || thread.waker.wake().is_err() {
            return failed("reader thread gone".into());
        }
        tokio::select! {
            r = &mut result => return r.unwrap_or_else(|_| failed("reader thread gone".into())),
            _ = stop.changed() => self.stop(),
        }
        result
            .await
            .unwrap_or_else(|_| failed("reader thread gone".into()))
    }

    /// Finishes every viewer (without an error) and ends the threads.
    pub fn stop(&self) {
        if !self.stop.swap(true, Ordering::AcqRel) {
            for t in &self.threads {
                let _ = t.waker.wake();
            }
        }
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.stop();
        let joins = std::mem::take(&mut *self.joins.lock().unwrap_or_else(|p| p.into_inner()));
        for j in joins {
            let _ = j.join();
        }
    }
}

/// A viewer on a reader thread.
struct Reading {
    sock: MioStream,
    demux: Box<dyn Demux>,
    rec: ViewerRecorder,
    done: oneshot::Sender<ViewerResult>,
}

struct ReaderThread {
    poll: Poll,
    jobs: mpsc::Receiver<Job>,
    stop: Arc<AtomicBool>,
    viewers: HashMap<usize, Reading>,
    next_token: usize,
    buf: Box<[u8]>,
    reply: Vec<u8>,
}

impl ReaderThread {
    fn new(poll: Poll, jobs: mpsc::Receiver<Job>, stop: Arc<AtomicBool>) -> Self {
        Self {
            poll,
            jobs,
            stop,
            viewers: HashMap::new(),
            next_token: 0,
            buf: vec![0u8; READ_BUF].into_boxed_slice(),
            reply: Vec::new(),
        }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        while !self.stop.load(Ordering::Acquire) {
            if let Err(e) = self.poll.poll(&mut events, Some(POLL_TICK)) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                let msg = format!("epoll: {e}");
                for (_, v) in self.viewers.drain() {
                    let _ = v.done.send(v.rec.finish(Some(msg.clone())));
                }
                return;
            }
            for ev in events.iter() {
                match ev.token() {
                    WAKE => self.take_jobs(),
                    Token(t) => self.on_readable(t),
                }
            }
        }
        self.take_jobs();
        for (_, v) in self.viewers.drain() {
            let _ = v.done.send(v.rec.finish(None));
        }
    }

    fn take_jobs(&mut self) {
        while let Ok(job) = self.jobs.try_recv() {
            let token = self.next_token;
            self.next_token += 1;
            let mut sock = MioStream::from_std(job.sock);
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut sock, Token(token), Interest::READABLE)
            {
                let _ = job
                    .done
                    .send(job.rec.finish(Some(format!("epoll add: {e}"))));
                continue;
            }
            self.viewers.insert(
                token,
                Reading {
                    sock,
                    demux: job.demux,
                    rec: job.rec,
                    done: job.done,
                },
            );
            // Bytes may have arrived before the registration; its first edge was then
            // the registration itself, which epoll reports, so nothing is missed.
        }
    }

    fn on_readable(&mut self, token: usize) {
        let Some(v) = self.viewers.get_mut(&token) else {
            return;
        };
        if let Err(e) = read_ready(v, &mut self.buf, &mut self.reply) {
            if let Some(mut v) = self.viewers.remove(&token) {
                let _ = self.poll.registry().deregister(&mut v.sock);
                let _ = v.done.send(v.rec.finish(Some(format!("{e:#}"))));
            }
        }
    }
}

/// Reads what the socket holds (edge-triggered: until a read comes back short) through
/// the viewer's demuxer, and writes any reply.
fn read_ready(v: &mut Reading, buf: &mut [u8], reply: &mut Vec<u8>) -> Result<()> {
    let clock = v.rec.clock();
    loop {
        let n = match v.sock.read(buf) {
            Ok(0) => bail!("server closed the connection"),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("read"),
        };
        let now = clock.now_ns();
        v.rec.on_bytes(n);
        reply.clear();
        v.demux.feed(&buf[..n], now, &mut v.rec, reply)?;
        if !reply.is_empty() {
            write_reply(&mut v.sock, reply)?;
        }
        // A short read emptied the socket: the next bytes bring a new edge.
        if n < buf.len() {
            return Ok(());
        }
    }
}

/// Writes a reply (a few bytes, to a socket that is otherwise never written) whole.
fn write_reply(sock: &mut MioStream, mut bytes: &[u8]) -> Result<()> {
    let mut tries = 0;
    while !bytes.is_empty() {
        match sock.write(bytes) {
            Ok(0) => bail!("write: the socket took nothing"),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock && tries < 100 => {
                // The server is not reading its own socket: give it a moment, bounded.
                tries += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e).context("write a reply"),
        }
    }
    Ok(())
}
