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
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Rtmp, Protocol::Flv, Protocol::Hls];

    fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Flv => "flv",
            Protocol::Hls => "hls",
        }
    }
}

/// Counters updated by ingest and viewers without taking the stream lock.
#[derive(Debug, Default)]
pub struct StreamCounters {
    viewers: [AtomicUsize; 3],
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

/// Bytes and video frames per whole second over a short sliding window.
#[derive(Debug)]
pub struct RateMeter {
    start: Instant,
    window_secs: u64,
    buckets: VecDeque<(u64, u64, u32)>,
}

impl RateMeter {
    pub fn new(start: Instant, window_secs: u64) -> Self {
        Self {
            start,
            window_secs: window_secs.max(1),
            buckets: VecDeque::new(),
        }
    }

    pub fn record(&mut self, now: Instant, bytes: usize, video_frame: bool) {
        let sec = now.saturating_duration_since(self.start).as_secs();
        match self.buckets.back_mut() {
            Some(b) if b.0 == sec => {
                b.1 += bytes as u64;
                b.2 += video_frame as u32;
            }
            _ => self
                .buckets
                .push_back((sec, bytes as u64, video_frame as u32)),
        }
        while self
            .buckets
            .front()
            .is_some_and(|b| b.0 + self.window_secs + 1 < sec)
        {
            self.buckets.pop_front();
        }
    }

    /// (bits per second, video frames per second) over the last complete seconds.
    pub fn rates(&self, now: Instant) -> (f64, f64) {
        let sec = now.saturating_duration_since(self.start).as_secs();
        let first = sec.saturating_sub(self.window_secs);
        let full: Vec<_> = self
            .buckets
            .iter()
            .filter(|b| b.0 >= first && b.0 < sec)
            .collect();
        // A stream younger than the window is measured over its own age.
        let span = (sec - first).min(sec).max(1) as f64;
        let bytes: u64 = full.iter().map(|b| b.1).sum();
        let frames: u32 = full.iter().map(|b| b.2).sum();
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
        let mut m = RateMeter::new(t0, 5);
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
        let mut m = RateMeter::new(t0, 5);
        for i in 0..60u64 {
            m.record(t0 + Duration::from_millis(i * 1000 / 30), 100, true);
        }
        let (_, fps) = m.rates(t0 + Duration::from_millis(2500));
        assert!((fps - 30.0).abs() < 0.01, "{fps}");
    }

    #[test]
    fn old_buckets_are_dropped() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(t0, 5);
        for s in 0..100u64 {
            m.record(t0 + Duration::from_secs(s), 1, false);
        }
        assert!(m.buckets.len() <= 7);
    }
}
