//! A viewer's place in a stream: start frames first, then live frames in batches.
//! The only per-viewer state is a couple of flags; frames are shared `Arc`s. A viewer
//! that lagged past the broadcast bound is moved to the next keyframe, never waited for.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use super::frame::SharedFrame;
use super::stats::Protocol;
use super::stream::{Event, Stream};

/// One step of a stream in publish order, for consumers that must see where publishers
/// changed (the HLS segmenter), unlike viewers, which only need frames.
#[derive(Debug, Clone)]
pub enum Item {
    Frame(Arc<SharedFrame>),
    PublisherLeft,
    PublisherReturned,
    /// Frames were skipped because this consumer fell behind.
    Lagged(u64),
}

/// The stream ended (publisher gone past its grace period, or server shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stream ended")]
pub struct StreamEnded;

pub struct Subscription {
    stream: Arc<Stream>,
    rx: broadcast::Receiver<Event>,
    pending: VecDeque<Arc<SharedFrame>>,
    /// `None` for server-side consumers, which are not viewers.
    protocol: Option<Protocol>,
    admission: Admission,
    publisher_present: bool,
    merge_wait: Duration,
    /// Frames skipped for this viewer because it fell behind.
    pub dropped: u64,
}

/// Frames an emptied queue keeps room for (see `drain_pending`).
const PENDING_KEPT: usize = 8;

impl Subscription {
    pub(super) fn new(
        stream: Arc<Stream>,
        rx: broadcast::Receiver<Event>,
        start: Vec<Arc<SharedFrame>>,
        has_video: bool,
        publisher_present: bool,
        protocol: Option<Protocol>,
    ) -> Self {
        if let Some(p) = protocol {
            stream.counters.viewer_joined(p);
        }
        let merge_wait = Duration::from_millis(stream.config().merge_wait_ms);
        let mut sub = Self {
            stream,
            rx,
            pending: VecDeque::new(),
            protocol,
            admission: Admission::new(has_video),
            publisher_present,
            merge_wait,
            dropped: 0,
        };
        for f in start {
            if let Some(f) = sub.admit(f) {
                sub.pending.push_back(f);
            }
        }
        sub
    }

    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// Whether a publisher is sending right now (false during the grace period).
    pub fn publisher_present(&self) -> bool {
        self.publisher_present
    }

    /// Waits for at least one frame, then appends every frame already available.
    /// Audio waits up to `merge_wait` for the next video frame so both go out in one
    /// write; video never waits.
    pub async fn next_batch(&mut self, out: &mut Vec<Arc<SharedFrame>>) -> Result<(), StreamEnded> {
        self.drain_pending(out);
        while out.is_empty() {
            let event = self.recv().await?;
            self.handle(event, out)?;
        }
        self.drain_ready(out)?;
        // A batch of audio alone keeps waiting (through further audio frames) until a video
        // frame joins it or the deadline passes, so a viewer writes about once per video
        // frame. A batch holding video goes at once: video never waits.
        let waits = |out: &Vec<Arc<SharedFrame>>| !out.iter().any(|f| f.is_video());
        if !self.admission.has_video || !waits(out) {
            return Ok(());
        }
        // The clock is read only for a batch that waits.
        let deadline = tokio::time::Instant::now() + self.merge_wait;
        while self.admission.has_video && waits(out) {
            match tokio::time::timeout_at(deadline, self.recv()).await {
                Ok(event) => {
                    self.handle(event?, out)?;
                    self.drain_ready(out)?;
                }
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Whatever is there now, without waiting: the start frames, then every admitted
    /// frame already broadcast (a lag moves this viewer to the next keyframe, as in
    /// `next_batch`). For a fan-out loop, which is woken once for all its viewers.
    pub fn try_batch(&mut self, out: &mut Vec<Arc<SharedFrame>>) -> Result<(), StreamEnded> {
        self.drain_pending(out);
        self.drain_ready(out)
    }

    /// Whether every frame from here on is admitted: a keyframe has been taken since the
    /// start or the last lag or publisher change. A fan-out loop serves such a viewer from
    /// its own read of the stream (`skip` brings this subscription up to it afterwards).
    pub fn started(&self) -> bool {
        self.admission.video_started
    }

    /// Moves every event already broadcast into this subscription's own queue, without
    /// handing anything out; called under the stream's lock (`Stream::holding_sends`), it
    /// leaves this subscription exactly at the broadcast's tail.
    pub fn pull(&mut self) -> Result<(), StreamEnded> {
        let mut got = Vec::new();
        let ended = self.drain_ready(&mut got);
        self.pending.extend(got);
        ended
    }

    /// Moves the queued frames to `out`. The start frames (a whole GOP) made the queue
    /// large; that room goes with them, as live frames seldom queue here.
    fn drain_pending(&mut self, out: &mut Vec<Arc<SharedFrame>>) {
        out.extend(self.pending.drain(..));
        if self.pending.capacity() > PENDING_KEPT {
            self.pending = VecDeque::new();
        }
    }

    /// Appends the frames queued by `pull` (and the start frames), reading nothing new.
    pub fn take_pending(&mut self, out: &mut Vec<Arc<SharedFrame>>) {
        self.drain_pending(out);
    }

    /// Passes over the next `n` events, which another reader of the stream (a fan-out
    /// loop) already delivered for this viewer: they are neither admitted nor counted as
    /// dropped. Only what the broadcast overwrote beyond them is this viewer's own lag.
    pub fn skip(&mut self, mut n: u64) -> Result<(), StreamEnded> {
        while n > 0 {
            match self.rx.try_recv() {
                Ok(_) => n -= 1,
                Err(TryRecvError::Lagged(k)) if k <= n => n -= k,
                Err(TryRecvError::Lagged(k)) => {
                    self.lagged(k - n);
                    n = 0;
                }
                // Not yet overwritten, not yet there: cannot happen for events that
                // were read; stop rather than wait.
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Closed) => return Err(StreamEnded),
            }
        }
        Ok(())
    }

    /// The next admitted frame or publisher change, in order.
    pub async fn next_item(&mut self) -> Result<Item, StreamEnded> {
        if let Some(f) = self.pending.pop_front() {
            return Ok(Item::Frame(f));
        }
        loop {
            let event = match self.rx.recv().await {
                Ok(e) => e,
                Err(RecvError::Lagged(n)) => {
                    self.lagged(n);
                    return Ok(Item::Lagged(n));
                }
                Err(RecvError::Closed) => return Err(StreamEnded),
            };
            let mut one = Vec::new();
            let changed = matches!(event, Event::PublisherLeft | Event::PublisherReturned);
            let returned = matches!(event, Event::PublisherReturned);
            self.handle(event, &mut one)?;
            if changed {
                return Ok(if returned {
                    Item::PublisherReturned
                } else {
                    Item::PublisherLeft
                });
            }
            if let Some(f) = one.pop() {
                return Ok(Item::Frame(f));
            }
        }
    }

    async fn recv(&mut self) -> Result<Event, StreamEnded> {
        loop {
            match self.rx.recv().await {
                Ok(e) => return Ok(e),
                Err(RecvError::Lagged(n)) => self.lagged(n),
                Err(RecvError::Closed) => return Err(StreamEnded),
            }
        }
    }

    fn drain_ready(&mut self, out: &mut Vec<Arc<SharedFrame>>) -> Result<(), StreamEnded> {
        loop {
            match self.rx.try_recv() {
                Ok(e) => self.handle(e, out)?,
                Err(TryRecvError::Lagged(n)) => self.lagged(n),
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Closed) => return Err(StreamEnded),
            }
        }
    }

    fn lagged(&mut self, n: u64) {
        self.dropped += n;
        self.stream.add_dropped(n);
        self.admission.restart();
        tracing::debug!(parent: &self.stream.span, skipped = n, "viewer fell behind; resuming at next keyframe");
    }

    fn handle(&mut self, event: Event, out: &mut Vec<Arc<SharedFrame>>) -> Result<(), StreamEnded> {
        match event {
            Event::Frame(f) => {
                if let Some(f) = self.admit(f) {
                    out.push(f);
                }
            }
            Event::PublisherLeft => self.publisher_present = false,
            Event::PublisherReturned => {
                self.publisher_present = true;
                // The newcomer's frames are decodable only from its first keyframe.
                self.admission.restart();
            }
            Event::Ended => return Err(StreamEnded),
        }
        Ok(())
    }

    fn admit(&mut self, f: Arc<SharedFrame>) -> Option<Arc<SharedFrame>> {
        self.admission.admits(&f).then_some(f)
    }
}

/// Which frames a consumer can use: configuration always; media only from a keyframe on
/// (since it joined, lagged or a new publisher came). Viewers and stream taps share it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admission {
    has_video: bool,
    /// A keyframe has been admitted since the start or the last `restart`.
    video_started: bool,
}

impl Admission {
    pub(crate) fn new(has_video: bool) -> Self {
        Self {
            has_video,
            video_started: false,
        }
    }

    /// Frames from here on are decodable only from the next keyframe.
    pub(crate) fn restart(&mut self) {
        self.video_started = false;
    }

    pub(crate) fn admits(&mut self, f: &SharedFrame) -> bool {
        if f.is_config() {
            if f.is_video() {
                self.has_video = true;
            }
            return true;
        }
        if f.is_video() {
            if f.is_keyframe() {
                self.video_started = true;
            }
            return self.video_started;
        }
        // A frame's clock (`onFrameTime`) belongs to a video frame: none before this
        // viewer's first keyframe either, so the first clock a player sees is that of its
        // first frame (player-web/src/sei.js places the clocks by it).
        let follows_video = f.is_audio()
            || f.as_frame()
                .is_some_and(|fr| onair_shared::frame_time::is_frame_time(&fr.data));
        !(follows_video && self.has_video && !self.video_started)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(p) = self.protocol {
            self.stream.counters.viewer_left(p);
        }
    }
}

/// `sub`'s next batch, if there is a subscription; never resolves without one (for a
/// select).
pub async fn next_batch_of(
    sub: &mut Option<Subscription>,
    out: &mut Vec<Arc<SharedFrame>>,
) -> Result<(), StreamEnded> {
    match sub {
        Some(sub) => sub.next_batch(out).await,
        None => std::future::pending().await,
    }
}
