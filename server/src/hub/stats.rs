//! Per-stream counters and the ingest rate meter behind `/api/streams`.
//! The meter is pure: callers pass the time, so tests need no clock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Rtmp,
    Flv,
    Hls,
    #[serde(rename = "webrtc")]
    WebRtc,
}

impl Protocol {
    pub const ALL: [Protocol; 4] = [
        Protocol::Rtmp,
        Protocol::Flv,
        Protocol::Hls,
        Protocol::WebRtc,
    ];

    fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Flv => "flv",
            Protocol::Hls => "hls",
            Protocol::WebRtc => "webrtc",
        }
    }
}

/// Counters updated by ingest and viewers without taking the stream lock.
#[derive(Debug, Default)]
pub struct StreamCounters {
    viewers: [AtomicUsize; 4],
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Frames skipped for viewers that fell behind.
    pub frames_dropped: AtomicU64,
}

impl StreamCounters {
    pub fn viewer_joined(&self, p: Protocol) {
        self.viewers[p.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn viewer_left(&self, p: Protocol) {
        self.viewers[p.index()].fetch_sub(1, Ordering::Relaxed);
    }

    /// For protocols without connections to count (HLS), the consumer's own estimate.
    pub fn set_viewers(&self, p: Protocol, n: usize) {
        self.viewers[p.index()].store(n, Ordering::Relaxed);
    }

    pub fn viewers(&self, p: Protocol) -> usize {
        self.viewers[p.index()].load(Ordering::Relaxed)
    }

    pub fn add_out(&self, bytes: usize) {
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Bytes and video frames over a sliding window of the last few seconds, from the
/// frames themselves: a young stream is measured over its own age, not a whole window.
#[derive(Debug)]
pub struct RateMeter {
    window: Duration,
    first: Option<Instant>,
    events: VecDeque<(Instant, u32, bool)>,
}

/// Bound on remembered frames (a 5 s window at 1000 frames/s).
const MAX_EVENTS: usize = 5000;

impl RateMeter {
    pub fn new(window_secs: u64) -> Self {
        Self {
            window: Duration::from_secs(window_secs.max(1)),
            first: None,
            events: VecDeque::new(),
        }
    }

    pub fn record(&mut self, now: Instant, bytes: usize, video_frame: bool) {
        self.first.get_or_insert(now);
        self.events
            .push_back((now, bytes.min(u32::MAX as usize) as u32, video_frame));
        while self.events.len() > MAX_EVENTS
            || self
                .events
                .front()
                .is_some_and(|e| now.saturating_duration_since(e.0) > self.window)
        {
            self.events.pop_front();
        }
    }

    /// (bits per second, video frames per second) over the window ending at `now`.
    pub fn rates(&self, now: Instant) -> (f64, f64) {
        let Some(first) = self.first else {
            return (0.0, 0.0);
        };
        let span = now
            .saturating_duration_since(first)
            .min(self.window)
            .as_secs_f64();
        if span < 0.5 {
            return (0.0, 0.0);
        }
        let recent = self
            .events
            .iter()
            .filter(|e| now.saturating_duration_since(e.0) <= self.window);
        let (bytes, frames) =
            recent.fold((0u64, 0u64), |(b, f), e| (b + e.1 as u64, f + e.2 as u64));
        (bytes as f64 * 8.0 / span, frames as f64 / span)
    }
}

pub fn since(start: Instant, now: Instant) -> Duration {
    now.saturating_duration_since(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_complete_seconds() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(5);
        for i in 0..300u64 {
            // 30 fps, 1250 bytes per frame = 300 kbit/s
            m.record(t0 + Duration::from_millis(i * 1000 / 30), 1250, true);
        }
        let (bps, fps) = m.rates(t0 + Duration::from_secs(10));
        assert!((bps - 300_000.0).abs() < 1.0, "{bps}");
        assert!((fps - 30.0).abs() < 0.01, "{fps}");
    }

    #[test]
    fn young_stream_uses_its_age() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(5);
        for i in 0..60u64 {
            m.record(t0 + Duration::from_millis(i * 1000 / 30), 100, true);
        }
        let (_, fps) = m.rates(t0 + Duration::from_millis(2000));
        assert!((fps - 30.0).abs() < 0.5, "{fps}");
    }

    #[test]
    fn old_frames_are_forgotten() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(5);
        for s in 0..100u64 {
            m.record(t0 + Duration::from_secs(s), 1, false);
        }
        assert!(m.events.len() <= 6);
    }

    #[test]
    fn stream_starting_late_in_a_second_is_not_undercounted() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(5);
        let first = t0 + Duration::from_millis(900);
        for i in 0..90u64 {
            m.record(first + Duration::from_millis(i * 1000 / 30), 100, true);
        }
        let (_, fps) = m.rates(first + Duration::from_millis(3000));
        assert!((fps - 30.0).abs() < 0.5, "{fps}");
    }
}
