//! Co-hosting: a guest's live stream pulled (`pull`), decoded (`decode`) and kept for the
//! host's process stages as its latest picture and a jitter buffer of its audio (`jitter`).
//! The host's stages only take what is there under a short lock: a late, stalled or gone
//! guest never holds the host's frame clock. The guest thread reconnects with backoff
//! while the push runs; it never lets the guest's data grow memory without bound.

pub mod decode;
pub mod jitter;
pub mod pull;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::media::I420;
use decode::{Decoded, GuestDecoder};
use jitter::JitterBuffer;
use pull::{GuestConn, GuestError, GuestUrl};

/// Audio buffered before the guest is heard (absorbs network jitter).
pub const JITTER_TARGET_MS: u32 = 80;
/// Most guest audio held; past it the oldest is dropped back to the target.
pub const JITTER_MAX_MS: u32 = 300;
/// No guest picture for this long: the guest is shown offline.
pub const OFFLINE_AFTER: Duration = Duration::from_millis(1000);
/// No data at all for this long: the connection is dropped and made again.
pub const STALL_RECONNECT: Duration = Duration::from_secs(3);
/// Guest audio fades in and out over this long.
pub const FADE_MS: u32 = 300;
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What the status line says about the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestStatus {
    pub online: bool,
    /// Delay the guest has on its way into the host's mix: how late its latest picture
    /// arrived against its own timestamps (network jitter) plus the audio buffered.
    pub delay_ms: u64,
}

struct State {
    picture: Option<Arc<I420>>,
    last_picture: Option<Instant>,
    audio: JitterBuffer,
    /// Min over this connection of (arrival ms - tag timestamp): the on-time baseline.
    baseline: Option<i64>,
    lateness_ms: u64,
}

pub struct GuestShared {
    state: Mutex<State>,
    started: Instant,
}

impl GuestShared {
    fn new(rate: u32, channels: u8) -> Self {
        Self {
            state: Mutex::new(State {
                picture: None,
                last_picture: None,
                audio: JitterBuffer::new(rate, channels, JITTER_TARGET_MS, JITTER_MAX_MS),
                baseline: None,
                lateness_ms: 0,
            }),
            started: Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The guest's latest picture, or `None` when it is offline (none for `OFFLINE_AFTER`).
    pub fn picture(&self) -> Option<Arc<I420>> {
        let s = self.lock();
        match s.last_picture {
            Some(at) if at.elapsed() < OFFLINE_AFTER => s.picture.clone(),
            _ => None,
        }
    }

    /// Fills `out` with the guest's next audio; returns the sample frames that are real.
    pub fn pull_audio(&self, out: &mut [i16]) -> usize {
        self.lock().audio.pull(out)
    }

    pub fn status(&self) -> GuestStatus {
        let s = self.lock();
        GuestStatus {
            online: s
                .last_picture
                .is_some_and(|at| at.elapsed() < OFFLINE_AFTER),
            delay_ms: s.lateness_ms + s.audio.depth_ms(),
        }
    }

    fn arrived(&self, s: &mut State, dts: u64) {
        let now = self.started.elapsed().as_millis() as i64;
        let offset = now - dts as i64;
        let base = *s.baseline.get_or_insert(offset);
        let base = base.min(offset);
        s.baseline = Some(base);
        s.lateness_ms = (offset - base) as u64;
    }
}

/// Starts pulling the guest on a thread of its own; it ends when `stop` is set.
pub fn start(
    url: GuestUrl,
    rate: u32,
    channels: u8,
    stop: Arc<AtomicBool>,
) -> Result<(Arc<GuestShared>, std::thread::JoinHandle<()>), std::io::Error> {
    let shared = Arc::new(GuestShared::new(rate, channels));
    let s = shared.clone();
    let h = std::thread::Builder::new()
        .name("push-guest".into())
        .spawn(move || run(&url, &s, rate, channels, &stop))?;
    Ok((shared, h))
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while !stop.load(Relaxed) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
    }
}

fn run(url: &GuestUrl, shared: &GuestShared, rate: u32, channels: u8, stop: &AtomicBool) {
    let mut backoff = BACKOFF_MIN;
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Relaxed) {
        let reason = match GuestConn::open(url) {
            Ok(mut conn) => {
                tracing::info!(guest = url.as_str(), "guest connected");
                backoff = BACKOFF_MIN;
                shared.lock().baseline = None;
                let mut decoder = GuestDecoder::new(rate, channels);
                let mut last_data = Instant::now();
                let mut bad_tags = 0u64;
                loop {
                    if stop.load(Relaxed) {
                        return;
                    }
                    let tags = match conn.read_tags(&mut buf) {
                        Ok(t) => t,
                        Err(e) => break e,
                    };
                    if tags.is_empty() {
                        if last_data.elapsed() > STALL_RECONNECT {
                            break GuestError::Stalled(STALL_RECONNECT);
                        }
                        continue;
                    }
                    last_data = Instant::now();
                    for t in tags {
                        match decoder.decode(&t) {
                            Ok(Decoded::Picture(p)) => {
                                let mut s = shared.lock();
                                shared.arrived(&mut s, t.dts);
                                s.picture = Some(Arc::new(p));
                                s.last_picture = Some(Instant::now());
                            }
                            Ok(Decoded::Audio(pcm)) => shared.lock().audio.push(&pcm),
                            Ok(Decoded::Nothing) => {}
                            Err(e) => {
                                bad_tags += 1;
                                if bad_tags == 1 || bad_tags.is_power_of_two() {
                                    tracing::warn!(guest = url.as_str(), error = %e, bad_tags, "guest data skipped");
                                }
                            }
                        }
                    }
                }
            }
            Err(e) => e,
        };
        shared.lock().audio.clear();
        if stop.load(Relaxed) {
            return;
        }
        tracing::warn!(guest = url.as_str(), %reason, retry_in_ms = backoff.as_millis() as u64, "guest away");
        sleep_unless_stopped(backoff, stop);
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
