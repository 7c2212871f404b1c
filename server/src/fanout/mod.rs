//! Fan-out loops: a few tasks per stream, each holding many plain-TCP viewers' sockets
//! and writing every frame to all of them in one pass (non-blocking vectored writes of
//! bytes serialized once per frame), instead of one task woken per viewer per frame.
//! A viewer whose socket would block keeps the rest of its batch in its own queue and is
//! waited for alone; while it waits its frames stay in the stream's broadcast ring, so it
//! lags and is skipped to the next keyframe, or is handed back and dropped after the
//! write timeout: the slow-viewer policy of every other viewer path. The connection's own
//! task keeps reading the socket and runs its protocol session; it takes the viewer back
//! (its subscription, and the bytes not yet written) whenever it must write itself.
//! This module never parses or decides protocol; it never blocks on one viewer.

mod pass_wire;
mod queue;
#[cfg(test)]
mod tests;

use pass_wire::PassWire;
pub use queue::{OutQueue, MAX_SLICES};

use std::collections::{HashMap, HashSet};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{AbortHandle, BoxFuture, FutureExt};
use futures_util::stream::{FuturesUnordered, StreamExt};
use onair_shared::eflv::connect::ClientCaps;
use onair_shared::Codec;
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use crate::clients::ByteCounter;
use crate::hub::{Event, SharedFrame, Stream, Subscription};

/// Commands queued for one loop; a driver that finds the queue full keeps its viewer.
const COMMAND_QUEUE: usize = 1024;

/// How a viewer's frames are turned into bytes (once per frame, shared by all viewers).
#[derive(Debug, Clone)]
pub enum Format {
    /// RTMP chunks on message stream 1 at the server's chunk size; `caps` is what the
    /// player announced, so a codec it did not ask for hands it back to be refused.
    Rtmp { caps: ClientCaps, chunk_size: u32 },
    /// FLV tags, the body of an HTTP-FLV response whose head is already written.
    Flv,
}

impl Format {
    /// `f`'s bytes in this format, built on first use and shared by every viewer.
    fn wire<'f>(&self, f: &'f SharedFrame) -> &'f Bytes {
        match self {
            Format::Rtmp { chunk_size, .. } => {
                f.rtmp_chunks(|fr| crate::rtmp::messages::frame_chunks(fr, 1, *chunk_size))
            }
            Format::Flv => f.flv_tag(),
        }
    }

    /// Its place in a pass's joined bytes (`PassWire`).
    fn slot(&self) -> usize {
        match self {
            Format::Rtmp { .. } => 0,
            Format::Flv => 1,
        }
    }

    /// The protocol label of its viewers in the metrics.
    fn protocol(&self) -> &'static str {
        match self {
            Format::Rtmp { .. } => "rtmp",
            Format::Flv => "flv",
        }
    }

    /// A codec in `batch` this viewer cannot be sent (only an RTMP player announces).
    fn refused(&self, batch: &[Arc<SharedFrame>]) -> Option<Codec> {
        match self {
            Format::Rtmp { caps, .. } => crate::rtmp::driver::unannounced_codec(caps, batch),
            Format::Flv => None,
        }
    }
}

/// A viewer offered to a loop.
pub struct Viewer {
    pub sub: Subscription,
    pub sock: Arc<TcpStream>,
    pub format: Format,
    pub client: Option<ByteCounter>,
    /// A socket that takes nothing for this long gets its viewer handed back, timed out.
    pub write_timeout: Duration,
}

/// Why a loop gave a viewer back.
#[derive(Debug)]
pub enum Why {
    /// The connection asked for it (`Ticket::recall`).
    Recalled,
    /// The stream ended.
    Ended,
    /// The socket took nothing for the write timeout.
    WriteTimeout(Duration),
    Io(std::io::Error),
    /// The next frames are of a codec this player did not announce; none of their bytes
    /// went out.
    Refused(Codec),
}

/// A viewer given back to its connection: write `unsent` first (the rest of a frame the
/// socket took only part of), then carry on from `sub`.
pub struct Handback {
    pub sub: Subscription,
    pub unsent: Vec<Bytes>,
    pub why: Why,
}

/// The connection's side of a viewer held by a loop. Dropped unanswered, it tells the
/// loop to let the viewer (and its socket) go.
pub struct Ticket {
    id: u64,
    cmds: mpsc::Sender<Command>,
    back: Option<oneshot::Receiver<Handback>>,
}

impl Ticket {
    /// Waits until the loop gives the viewer back by itself; `None` if the loop is gone.
    /// Cancel-safe; after it returned, the ticket is spent.
    pub async fn returned(&mut self) -> Option<Handback> {
        let back = self.back.as_mut()?;
        let r = back.await.ok();
        self.back = None;
        r
    }

    /// Takes the viewer back now; `None` if the loop is gone.
    pub async fn recall(mut self) -> Option<Handback> {
        let mut back = self.back.take()?;
        if self.cmds.send(Command::Recall(self.id)).await.is_err() {
            // The loop ended; it may still have answered before it did.
            return back.try_recv().ok();
        }
        back.await.ok()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.back.is_some() {
            // A full queue is fine: the loop also notices the closed answer channel.
            let _ = self.cmds.try_send(Command::Recall(self.id));
        }
    }
}

/// What `ticket` gives back, if there is one; never resolves without one (for a select).
pub async fn returned(ticket: &mut Option<Ticket>) -> Option<Handback> {
    match ticket {
        Some(t) => t.returned().await,
        None => std::future::pending().await,
    }
}

enum Command {
    Attach(Box<Entry>),
    Recall(u64),
}

/// A stream's loops, started as its fan-out viewers need them.
#[derive(Debug, Default)]
pub struct Loops {
    running: Mutex<Vec<LoopHandle>>,
}

/// One running loop: its command queue and how many viewers it holds.
#[derive(Debug)]
struct LoopHandle {
    cmds: mpsc::Sender<Command>,
    /// Counted up when a viewer is offered, down when its entry is dropped (`Held`).
    viewers: Arc<AtomicUsize>,
    /// The viewers its last pass served in step (from the loop's own read); stored once
    /// per pass, read by the tests.
    #[cfg_attr(not(test), allow(dead_code))]
    in_step: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Attach(e) => write!(f, "Attach({})", e.id),
            Command::Recall(id) => write!(f, "Recall({id})"),
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Hands `viewer` to one of its stream's loops, at most `loops` of them (0: one per CPU
/// core): the least loaded one, unless each holds `hub.fanout_viewers_per_loop` viewers
/// and another may start. Gives it back when no loop can take it now.
pub fn attach(viewer: Viewer, loops: usize) -> Result<Ticket, Box<Viewer>> {
    let stream = viewer.sub.stream().clone();
    let most = match loops {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let per_loop = stream.config().fanout_viewers_per_loop;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = oneshot::channel();
    let (cmds, in_loop) = stream.fanout.pick(&stream, most, per_loop);
    let held = Held::new(
        stream.metrics().fanout_viewers(viewer.format.protocol()),
        in_loop,
    );
    let entry = Box::new(Entry {
        id,
        _held: held,
        sub: viewer.sub,
        fd: viewer.sock.as_raw_fd(),
        sock: viewer.sock,
        format: viewer.format,
        client: viewer.client,
        write_timeout: viewer.write_timeout,
        back: tx,
        queue: OutQueue::default(),
        blocked: false,
        uncounted: 0,
        stalled_since: Instant::now(),
        wait: None,
        parked: None,
        ended: false,
    });
    match cmds.try_send(Command::Attach(entry)) {
        Ok(()) => Ok(Ticket {
            id,
            cmds,
            back: Some(rx),
        }),
        Err(e) => {
            let (mpsc::error::TrySendError::Full(Command::Attach(e))
            | mpsc::error::TrySendError::Closed(Command::Attach(e))) = e
            else {
                unreachable!("only an attach was sent")
            };
            Err(Box::new(Viewer {
                sub: e.sub,
                sock: e.sock,
                format: e.format,
                client: e.client,
                write_timeout: e.write_timeout,
            }))
        }
    }
}

impl Loops {
    /// The loop for a new viewer, of at most `most`: the least loaded running one, or a
    /// new one when every running loop holds `per_loop` viewers (or none runs). The viewer
    /// is counted in that loop's load at once (under the lock, so that viewers offered
    /// together see each other), and `Held` counts it down.
    fn pick(
        &self,
        stream: &Arc<Stream>,
        most: usize,
        per_loop: usize,
    ) -> (mpsc::Sender<Command>, Arc<AtomicUsize>) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        // A loop ends only with its stream's last handle; one that did is replaced.
        running.retain(|h| !h.cmds.is_closed());
        let least = running
            .iter()
            .min_by_key(|h| h.viewers.load(Ordering::Relaxed));
        let handle = match least {
            Some(h) if h.viewers.load(Ordering::Relaxed) < per_loop || running.len() >= most => h,
            _ => {
                running.push(spawn_loop(stream));
                running.last().expect("just pushed")
            }
        };
        handle.viewers.fetch_add(1, Ordering::Relaxed);
        (handle.cmds.clone(), handle.viewers.clone())
    }

    /// The viewers of each running loop, in the order the loops started.
    #[cfg(test)]
    fn loads(&self) -> Vec<usize> {
        self.each_loop(|h| &h.viewers)
    }

    /// The viewers each running loop's last pass served in step.
    #[cfg(test)]
    fn in_step(&self) -> Vec<usize> {
        self.each_loop(|h| &h.in_step)
    }

    /// One count of each running loop, in the order the loops started.
    #[cfg(test)]
    fn each_loop(&self, count: impl Fn(&LoopHandle) -> &AtomicUsize) -> Vec<usize> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running
            .iter()
            .filter(|h| !h.cmds.is_closed())
            .map(|h| count(h).load(Ordering::Relaxed))
            .collect()
    }
}

fn spawn_loop(stream: &Arc<Stream>) -> LoopHandle {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let in_step = Arc::new(AtomicUsize::new(0));
    let state = LoopState {
        in_step: in_step.clone(),
        stream: Arc::downgrade(stream),
        out_bytes: 0,
        passes: 0,
        wake: stream.wake_receiver(),
        seq: 0,
        fresh: Vec::new(),
        fresh_clean: true,
        fresh_max: stream.config().viewer_queue_frames.max(16),
        served: 0,
        strays: HashSet::new(),
        has_video: stream.has_video(),
        merge_wait: Duration::from_millis(stream.config().merge_wait_ms),
        viewers: HashMap::new(),
        blocked: FuturesUnordered::new(),
        batch: Vec::new(),
        pass_wire: PassWire::default(),
        back: Vec::new(),
    };
    let span = stream.span.clone();
    // The loop holds no `Arc<Stream>` of its own: once the stream's last handle (the
    // viewers' subscriptions included) is gone, its queue closes and the loop ends.
    tokio::spawn(tracing::Instrument::instrument(state.run(rx), span));
    LoopHandle {
        cmds: tx,
        viewers: Arc::default(),
        in_step,
    }
}

/// Counts a viewer in `onair_fanout_viewers` while it is in a loop (or on its way there),
/// and counts it down in its loop's load (counted up by `Loops::pick`) when it leaves.
struct Held {
    gauge: prometheus_client::metrics::gauge::Gauge,
    in_loop: Arc<AtomicUsize>,
}

impl Held {
    fn new(gauge: prometheus_client::metrics::gauge::Gauge, in_loop: Arc<AtomicUsize>) -> Self {
        gauge.inc();
        Self { gauge, in_loop }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.gauge.dec();
        self.in_loop.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One viewer in a loop. `repr(C)`, hot fields first: a pass reads each viewer's entry
/// once per frame, and what it reads (the descriptor, the flags, the subscription's
/// position, the wire format) should sit in its first two cache lines, not be spread over
/// all of them.
#[repr(C)]
struct Entry {
    /// `sock`'s descriptor, kept here because reaching it through the `Arc` costs a cache
    /// miss per viewer per frame; valid for as long as `sock` is held.
    fd: RawFd,
    /// Waiting for its socket to take more; its frames wait in the broadcast ring.
    blocked: bool,
    /// Bytes written but not yet added to `client`: its counter is an atomic in memory of
    /// its own, one cache miss per add, so adds are batched (see `report`).
    uncounted: usize,
    client: Option<ByteCounter>,
    sub: Subscription,
    format: Format,
    /// Bytes of the current batch the socket has not taken yet.
    queue: OutQueue,
    id: u64,
    _held: Held,
    sock: Arc<TcpStream>,
    write_timeout: Duration,
    back: oneshot::Sender<Handback>,
    /// When its socket last took bytes (meaningful while blocked).
    stalled_since: Instant,
    /// Cancels its wait for writability: a viewer that leaves the loop must not leave its
    /// socket open in a wait until the write timeout.
    wait: Option<WaitGuard>,
    /// In step with the loop: served from the loop's own read of the stream, its
    /// subscription left unread since the loop had read this many events (see
    /// `LoopState::line_up`). `None`: it reads its own subscription (a stray).
    parked: Option<u64>,
    /// Its subscription saw the stream end while the loop was lining viewers up.
    ended: bool,
}

/// Cancels a wait for writability when dropped.
struct WaitGuard(AbortHandle);

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A blocked viewer's socket became writable (`true`) or its write timeout passed;
/// `None` once cancelled.
type Writable = BoxFuture<'static, Option<(u64, bool)>>;

struct LoopState {
    /// For the stream's byte counters, added to once per pass (not per write: the
    /// counters are shared by every loop of the stream). Weak: see `spawn_loop`.
    stream: Weak<Stream>,
    /// Bytes written since they were last added to the stream's counters.
    out_bytes: usize,
    passes: u64,
    /// Every event of the stream, read once for the loop: it wakes the loop, and its
    /// frames are what every viewer in step (`Entry::parked`) is owed.
    wake: broadcast::Receiver<Event>,
    /// Events `wake` has taken (those it lagged past included): the loop's place in the
    /// stream, by which a parked viewer's place is kept.
    seq: u64,
    /// Frames `wake` took since the last pass.
    fresh: Vec<Arc<SharedFrame>>,
    /// `fresh` is all there was: no publisher change, end or lag among those events, and
    /// no more of them than a subscription holds. Otherwise no viewer is served from it;
    /// each reads its own subscription.
    fresh_clean: bool,
    /// The most frames `fresh` keeps: what a viewer's subscription holds.
    fresh_max: usize,
    /// `seq` when the last pass took `fresh`: what every parked viewer was served to.
    served: u64,
    /// Viewers not in step: newcomers, and those waiting on their socket or for a
    /// keyframe. Each reads its own subscription.
    strays: HashSet<u64>,
    has_video: bool,
    merge_wait: Duration,
    viewers: HashMap<u64, Box<Entry>>,
    /// Blocked viewers' sockets becoming writable (or their write timeout passing).
    blocked: FuturesUnordered<Writable>,
    batch: Vec<Arc<SharedFrame>>,
    /// The current pass's bytes for viewers owed the same frames.
    pass_wire: PassWire,
    /// Viewers to hand back after the current pass.
    back: Vec<(u64, Why)>,
    /// How many viewers the last pass served in step (`LoopHandle::in_step`).
    in_step: Arc<AtomicUsize>,
}

/// What a loop's wake-up saw.
#[derive(Default)]
struct Wake {
    /// Something that must go out now: video, a publisher change, the end.
    go: bool,
    closed: bool,
}

/// What serving a viewer came to.
enum Served {
    Keep,
    Back(Why),
    /// Its connection is gone: drop it.
    Gone,
}

/// Where a stray's frames come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// What `line_up` pulled into its subscription's queue: exactly up to the loop's place.
    Pulled,
    /// Whatever its subscription holds now (a newcomer, a socket writable again).
    Subscription,
}

impl LoopState {
    async fn run(mut self, mut cmds: mpsc::Receiver<Command>) {
        // Set while a batch of audio alone waits for video to go with it.
        let mut merge_deadline: Option<Instant> = None;
        loop {
            let merging = merge_deadline.is_some();
            let deadline = merge_deadline.unwrap_or_else(Instant::now);
            tokio::select! {
                biased;
                cmd = cmds.recv() => match cmd {
                    None => break,
                    Some(Command::Attach(entry)) => {
                        let id = entry.id;
                        self.viewers.insert(id, entry);
                        self.strays.insert(id);
                        self.serve_id(id);
                    }
                    Some(Command::Recall(id)) => self.back.push((id, Why::Recalled)),
                },
                Some(ready) = self.blocked.next(), if !self.blocked.is_empty() => {
                    if let Some((id, writable)) = ready {
                        self.on_writable(id, writable);
                    }
                }
                event = self.wake.recv() => {
                    let mut wake = Wake::default();
                    self.take(event, &mut wake);
                    self.drain_wake(&mut wake);
                    // A batch of audio alone waits up to `merge_wait` for a video frame
                    // to go with it, so a viewer is written about once per video frame;
                    // video never waits.
                    if wake.go || !self.has_video {
                        merge_deadline = None;
                        self.pass();
                    } else if !merging {
                        merge_deadline = Some(Instant::now() + self.merge_wait);
                    }
                    if wake.closed && self.viewers.is_empty() {
                        break;
                    }
                }
                _ = tokio::time::sleep_until(deadline), if merging => {
                    merge_deadline = None;
                    self.pass();
                }
            }
            self.hand_back();
        }
        self.back
            .extend(self.viewers.keys().map(|&id| (id, Why::Ended)));
        self.hand_back();
    }

    /// Takes every event already there.
    fn drain_wake(&mut self, wake: &mut Wake) {
        loop {
            let e = match self.wake.try_recv() {
                Ok(e) => Ok(e),
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(TryRecvError::Closed) => Err(RecvError::Closed),
                Err(TryRecvError::Empty) => break,
            };
            self.take(e, wake);
        }
    }

    /// Counts one event (or a lag) in the loop's place, and keeps a frame for the viewers
    /// in step.
    fn take(&mut self, e: Result<Event, RecvError>, wake: &mut Wake) {
        match e {
            Ok(Event::Frame(f)) => {
                self.seq += 1;
                if f.is_video() {
                    self.has_video = true;
                    wake.go = true;
                }
                // No more than a subscription holds: a loop this far behind has its
                // viewers read their own subscriptions (and lag) instead.
                if self.fresh.len() >= self.fresh_max {
                    self.fresh_clean = false;
                    self.fresh.clear();
                }
                if self.fresh_clean {
                    self.fresh.push(f);
                }
            }
            // Publisher changes and the end: each viewer's subscription applies them.
            Ok(_) => {
                self.seq += 1;
                self.fresh_clean = false;
                self.fresh.clear();
                wake.go = true;
            }
            Err(RecvError::Lagged(n)) => {
                self.seq += n;
                self.fresh_clean = false;
                self.fresh.clear();
                wake.go = true;
            }
            Err(RecvError::Closed) => {
                wake.closed = true;
                wake.go = true;
            }
        }
    }

    /// Brings every stray that can be written to the loop's place: under the stream's
    /// lock, so that no event slips in between, the loop reads what is left of the stream
    /// and each such stray's subscription takes everything up to the same place into its
    /// queue (`Source::Pulled`). If the loop's frames since the last pass were not all
    /// there was (a publisher change, a lag), every parked viewer first becomes a stray
    /// again, its subscription moved on past what it was served. The lock is held for a
    /// few reads of the broadcast per stray, and only while there are strays.
    fn line_up(&mut self) {
        let Some(stream) = self.stream.upgrade() else {
            return;
        };
        let _held = stream.hold_sends();
        let mut wake = Wake::default();
        self.drain_wake(&mut wake);
        if !self.fresh_clean {
            for e in self.viewers.values_mut() {
                if let Some(at) = e.parked.take() {
                    catch_up(e, self.served.saturating_sub(at));
                    self.strays.insert(e.id);
                }
            }
            self.fresh.clear();
            self.fresh_clean = true;
        }
        for id in &self.strays {
            if let Some(e) = self.viewers.get_mut(id) {
                if !e.blocked && !e.ended && e.sub.pull().is_err() {
                    e.ended = true;
                }
            }
        }
    }

    /// One pass: every viewer not waiting on its socket gets what is new for it. Viewers
    /// in step get the loop's frames, joined into one buffer per wire format; strays get
    /// what `line_up` pulled for them, and are in step from then on if they can take
    /// every frame (they started at a keyframe) and their socket took it all. Each entry
    /// is a cache miss of its own; the next one is prefetched while this one is written.
    fn pass(&mut self) {
        self.passes = self.passes.wrapping_add(1);
        // A connection that went away without its recall reaching the loop (a full
        // command queue) is noticed within this many passes.
        let check_gone = self.passes.is_multiple_of(REPORT_EVERY);
        if !self.strays.is_empty() || !self.fresh_clean {
            self.line_up();
        }
        let owed = std::mem::take(&mut self.fresh);
        self.served = self.seq;
        self.pass_wire.start(&owed);
        let mut left = Vec::new();
        let LoopState {
            viewers,
            strays,
            blocked,
            batch,
            pass_wire,
            back,
            out_bytes,
            seq,
            ..
        } = self;
        let mut in_step = 0;
        let mut entries = viewers.values_mut().peekable();
        while let Some(e) = entries.next() {
            if let Some(next) = entries.peek() {
                prefetch(next);
            }
            if e.blocked {
                continue;
            }
            let served = match e.parked {
                Some(_) => {
                    in_step += 1;
                    serve_in_step(e, &owed, pass_wire, check_gone, out_bytes)
                }
                None => serve(
                    e,
                    batch,
                    Source::Pulled,
                    Some(&mut *pass_wire),
                    check_gone,
                    out_bytes,
                ),
            };
            match served {
                Served::Keep if e.blocked => {
                    if let Some(at) = e.parked.take() {
                        catch_up(e, seq.saturating_sub(at));
                        strays.insert(e.id);
                    }
                    blocked.push(wait_writable(e));
                }
                Served::Keep => {
                    if e.parked.is_none() && e.sub.started() && !e.ended {
                        e.parked = Some(*seq);
                        strays.remove(&e.id);
                    }
                }
                Served::Back(why) => back.push((e.id, why)),
                Served::Gone => left.push(e.id),
            }
        }
        self.in_step.store(in_step, Ordering::Relaxed);
        for id in left {
            self.forget(id);
        }
        // Holding on to the frames would only delay their release.
        self.pass_wire.clear();
        drop(owed);
        self.count_out();
    }

    /// Removes a viewer, which lets its socket go.
    fn forget(&mut self, id: u64) -> Option<Box<Entry>> {
        self.strays.remove(&id);
        self.viewers.remove(&id)
    }

    /// Adds the bytes written since the last call to the stream's counters.
    fn count_out(&mut self) {
        let n = std::mem::take(&mut self.out_bytes);
        if n > 0 {
            if let Some(stream) = self.stream.upgrade() {
                stream.add_out(n);
            }
        }
    }

    /// Serves a stray from its own subscription, outside a pass.
    fn serve_id(&mut self, id: u64) {
        let Some(entry) = self.viewers.get_mut(&id) else {
            return;
        };
        debug_assert!(
            entry.parked.is_none(),
            "only strays are served on their own"
        );
        let served = serve(
            entry,
            &mut self.batch,
            Source::Subscription,
            None,
            true,
            &mut self.out_bytes,
        );
        self.count_out();
        match served {
            Served::Keep => {}
            Served::Back(why) => self.back.push((id, why)),
            Served::Gone => {
                self.forget(id);
            }
        }
        if let Some(e) = self.viewers.get_mut(&id) {
            if e.blocked && !self.back.iter().any(|(b, _)| *b == id) {
                self.blocked.push(wait_writable(e));
            }
        }
    }

    fn on_writable(&mut self, id: u64, writable: bool) {
        let Some(entry) = self.viewers.get_mut(&id) else {
            return;
        };
        if !entry.blocked {
            return;
        }
        if !writable {
            let limit = entry.write_timeout;
            self.back.push((id, Why::WriteTimeout(limit)));
            return;
        }
        let before = entry.queue.len();
        let flushed = flush(entry, &mut self.out_bytes);
        match flushed {
            Err(e) => self.back.push((id, Why::Io(e))),
            Ok(true) => {
                entry.blocked = false;
                // Now for what it missed while it waited (or the lag it learns of).
                self.serve_id(id);
            }
            Ok(false) => {
                if entry.queue.len() < before {
                    entry.stalled_since = Instant::now();
                }
                self.blocked.push(wait_writable(entry));
            }
        }
        self.count_out();
    }

    fn hand_back(&mut self) {
        let back = std::mem::take(&mut self.back);
        for (id, why) in back {
            let Some(mut e) = self.forget(id) else {
                continue;
            };
            e.wait = None;
            if let Some(at) = e.parked.take() {
                catch_up(&mut e, self.served.saturating_sub(at));
            }
            report(&mut e);
            let unsent = e.queue.take();
            let Entry { sub, back, .. } = *e;
            // A connection already gone drops the viewer and, with it, the socket.
            let _ = back.send(Handback { sub, unsent, why });
        }
    }
}

/// Moves a parked viewer's subscription on past the `n` events the loop served it.
fn catch_up(e: &mut Entry, n: u64) {
    if e.sub.skip(n).is_err() {
        e.ended = true;
    }
}

fn wait_writable(e: &mut Entry) -> Writable {
    let (id, sock) = (e.id, e.sock.clone());
    let deadline = e.stalled_since + e.write_timeout;
    let (wait, handle) = futures_util::future::abortable(async move {
        let ready = tokio::time::timeout_at(deadline, sock.writable()).await;
        (id, ready.is_ok())
    });
    e.wait = Some(WaitGuard(handle));
    wait.map(Result::ok).boxed()
}

/// Notices a connection gone without its recall reaching the loop (see `REPORT_EVERY`).
fn gone(e: &mut Entry, check_gone: bool) -> bool {
    if check_gone {
        report(e);
        return e.back.is_closed();
    }
    false
}

/// Gives a viewer in step the loop's frames since the last pass: the pass's joined bytes,
/// one plain `send` (its own subscription is not read).
fn serve_in_step(
    e: &mut Entry,
    owed: &[Arc<SharedFrame>],
    pass_wire: &mut PassWire,
    check_gone: bool,
    out_bytes: &mut usize,
) -> Served {
    if gone(e, check_gone) {
        return Served::Gone;
    }
    if owed.is_empty() {
        return Served::Keep;
    }
    if let Some(codec) = e.format.refused(owed) {
        return Served::Back(Why::Refused(codec));
    }
    let format = &e.format;
    let joined = pass_wire.joined(format.slot(), |f| format.wire(f)).clone();
    write_joined(e, joined, out_bytes)
}

/// Gives a stray what is new for it (from `source`) and writes as much as its socket
/// takes. A batch the socket takes whole (the common case) is written straight from the
/// frames' shared bytes: in a pass (`pass_wire`), the pass's joined bytes if it is owed
/// just the pass's frames; otherwise the frames' own bytes, in one vectored write. Only
/// what is left of a short write is queued.
///
/// A subscription that saw the stream end gets its last frames written (or queued), then
/// is handed back with whatever is unsent.
fn serve(
    e: &mut Entry,
    batch: &mut Vec<Arc<SharedFrame>>,
    source: Source,
    pass_wire: Option<&mut PassWire>,
    check_gone: bool,
    out_bytes: &mut usize,
) -> Served {
    match serve_batch(e, batch, source, pass_wire, check_gone, out_bytes) {
        Served::Keep if e.ended => Served::Back(Why::Ended),
        served => served,
    }
}

fn serve_batch(
    e: &mut Entry,
    batch: &mut Vec<Arc<SharedFrame>>,
    source: Source,
    pass_wire: Option<&mut PassWire>,
    check_gone: bool,
    out_bytes: &mut usize,
) -> Served {
    if gone(e, check_gone) {
        return Served::Gone;
    }
    batch.clear();
    match source {
        Source::Pulled => e.sub.take_pending(batch),
        Source::Subscription => {
            if e.sub.try_batch(batch).is_err() {
                e.ended = true;
            }
        }
    }
    if batch.is_empty() {
        return Served::Keep;
    }
    if let Some(codec) = e.format.refused(batch) {
        batch.clear();
        return Served::Back(Why::Refused(codec));
    }
    let format = &e.format;
    let joined = pass_wire
        .and_then(|pw| pw.get(batch, format.slot(), |f| format.wire(f)))
        .cloned();
    if let Some(joined) = joined {
        batch.clear();
        return write_joined(e, joined, out_bytes);
    }
    if batch.len() <= MAX_SLICES {
        let mut slots = [IoSlice::new(&[]); MAX_SLICES];
        let mut n = 0;
        let mut total = 0;
        for f in batch.iter() {
            let chunks = e.format.wire(f);
            if !chunks.is_empty() {
                slots[n] = IoSlice::new(chunks);
                n += 1;
                total += chunks.len();
            }
        }
        let written = match send_now(e, &slots[..n]) {
            Ok(w) => w,
            Err(why) => return Served::Back(why),
        };
        counted(e, written, out_bytes);
        if written == total {
            batch.clear();
            return Served::Keep;
        }
        for f in batch.iter() {
            e.queue.push(e.format.wire(f).clone());
        }
        e.queue.advance(written);
    } else {
        for f in batch.iter() {
            e.queue.push(e.format.wire(f).clone());
        }
    }
    batch.clear();
    finish(e, out_bytes)
}

/// Writes `joined` (one buffer for a viewer's whole batch); queues what the socket does
/// not take.
fn write_joined(e: &mut Entry, joined: Bytes, out_bytes: &mut usize) -> Served {
    if joined.is_empty() {
        return Served::Keep;
    }
    let written = match send_now(e, &[IoSlice::new(&joined)]) {
        Ok(w) => w,
        Err(why) => return Served::Back(why),
    };
    counted(e, written, out_bytes);
    if written == joined.len() {
        return Served::Keep;
    }
    e.queue.push(joined);
    e.queue.advance(written);
    finish(e, out_bytes)
}

/// After a short write: flushes what the socket takes now, or marks the viewer blocked.
fn finish(e: &mut Entry, out_bytes: &mut usize) -> Served {
    match flush(e, out_bytes) {
        Ok(true) => Served::Keep,
        Ok(false) => {
            e.blocked = true;
            e.stalled_since = Instant::now();
            Served::Keep
        }
        Err(err) => Served::Back(Why::Io(err)),
    }
}

/// What the socket took of a first attempt at `bufs` (0 if it would block, or if there
/// is nothing to send), or why the viewer must be given back.
fn send_now(e: &Entry, bufs: &[IoSlice<'_>]) -> Result<usize, Why> {
    if bufs.is_empty() {
        return Ok(0);
    }
    match send(e, bufs) {
        Ok(0) => Err(Why::Io(std::io::ErrorKind::WriteZero.into())),
        Ok(w) => Ok(w),
        Err(err) if retry_later(&err) => Ok(0),
        Err(err) => Err(Why::Io(err)),
    }
}

/// One non-blocking `sendmsg` (or `send`, for one buffer) of `bufs` to `e`'s socket. It
/// goes to the descriptor directly, not through tokio's readiness check: that check, and
/// reaching the socket through its `Arc`, read memory of the viewer's own, a cache miss
/// per viewer per frame (5 % of a 500-viewer run's samples). Only a send the socket refuses is made again
/// through tokio, whose readiness it must clear so that the wait for writability that
/// follows waits for a fresh edge (the readiness it clears is the one it read before its
/// own attempt, so an edge in between is not lost).
fn send(e: &Entry, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
    // SAFETY: `e.fd` is `e.sock`'s descriptor, and `e.sock` keeps it open while `e` is
    // borrowed here.
    let fd = unsafe { BorrowedFd::borrow_raw(e.fd) };
    let sock = socket2::SockRef::from(&fd);
    // One buffer goes by plain `send`: no message header or slice list for the kernel to
    // copy in and walk.
    let sent = match bufs {
        [one] => sock.send(one),
        _ => sock.send_vectored(bufs),
    };
    match sent {
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => e.sock.try_write_vectored(bufs),
        r => r,
    }
}

fn retry_later(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
    )
}

/// Every this many passes, a loop adds its viewers' bytes to their connections' counts and
/// notices connections gone without their recall reaching it (a full command queue).
const REPORT_EVERY: u64 = 32;

/// Asks the CPU to start loading the first cache lines of `e` (the ones a pass reads).
#[inline(always)]
fn prefetch(e: &Entry) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = (e as *const Entry).cast::<i8>();
        // SAFETY: `prefetch` needs SSE, which every x86_64 CPU has; it is a hint that
        // reads nothing and cannot fault, and both addresses lie inside the live `e`.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = e;
}

/// `n` bytes went out to `e`: the stream's count after the pass, its connection's at the
/// next `report`.
fn counted(e: &mut Entry, n: usize, out_bytes: &mut usize) {
    *out_bytes += n;
    e.uncounted += n;
}

/// Adds what `e` wrote since the last report to its connection's count. Called when the
/// viewer joins or leaves a loop and every `REPORT_EVERY` passes, so the count (shown by
/// the admin API) trails by at most about a second.
fn report(e: &mut Entry) {
    let n = std::mem::take(&mut e.uncounted);
    if let (Some(c), true) = (&e.client, n > 0) {
        c.add(n);
    }
}

/// Writes from `e`'s queue until it is empty (`true`) or the socket would block.
fn flush(e: &mut Entry, out_bytes: &mut usize) -> std::io::Result<bool> {
    while !e.queue.is_empty() {
        let mut slots = [IoSlice::new(&[]); MAX_SLICES];
        let n = e.queue.slices(&mut slots);
        match send(e, &slots[..n]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => {
                e.queue.advance(written);
                counted(e, written, out_bytes);
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(true)
}
