//! Measurement: one clock for publisher and viewers, the table of frame send times, each
//! viewer's record of what it received and when, and the percentiles the report is made of.

use crate::media::{classify_video, VideoTag};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Nanoseconds since one start `Instant`, shared by every task and thread of the run.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// When each video frame was handed to the publisher's socket, indexed by sequence number.
/// 0 means not sent; a fixed capacity bounds the run.
pub struct SendLog {
    sent_ns: Box<[AtomicU64]>,
}

impl SendLog {
    pub fn new(capacity: usize) -> Self {
        Self {
            sent_ns: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.sent_ns.len()
    }

    /// Records the send time of `seq`; false if the log is full.
    pub fn record(&self, seq: u64, now_ns: u64) -> bool {
        match self.sent_ns.get(seq as usize) {
            Some(slot) => {
                slot.store(now_ns.max(1), Ordering::Release);
                true
            }
            None => false,
        }
    }

    pub fn get(&self, seq: u64) -> Option<u64> {
        let ns = self.sent_ns.get(seq as usize)?.load(Ordering::Acquire);
        (ns != 0).then_some(ns)
    }

    /// The first and last sequence numbers sent within `[start_ns, end_ns]`.
    pub fn seqs_sent_between(&self, start_ns: u64, end_ns: u64) -> Option<(u64, u64)> {
        let mut first = None;
        let mut last = None;
        for seq in 0..self.sent_ns.len() as u64 {
            match self.get(seq) {
                Some(t) if t >= start_ns && t <= end_ns => {
                    first.get_or_insert(seq);
                    last = Some(seq);
                }
                Some(t) if t > end_ns => break,
                _ => {}
            }
        }
        Some((first?, last?))
    }
}

/// What the orchestrator may read from a viewer while it runs.
#[derive(Default)]
pub struct ViewerLive {
    pub bytes: AtomicU64,
    /// Clock time of the first measured video frame; 0 until then.
    pub first_frame_ns: AtomicU64,
}

/// Per-sequence entry of a viewer's record: not received at all.
pub const NOT_RECEIVED: u32 = u32::MAX;
/// Received, but sent before this viewer's first frame (a GOP-cache burst): no latency sample.
pub const NO_SAMPLE: u32 = u32::MAX - 1;

/// A viewer's own record, written only by its task (no locks on the hot path).
pub struct ViewerRecorder {
    clock: Clock,
    log: Arc<SendLog>,
    live: Arc<ViewerLive>,
    connect_ns: u64,
    first_video_ns: Option<u64>,
    first_key_ns: Option<u64>,
    /// Latency in µs per sequence number, or NOT_RECEIVED / NO_SAMPLE.
    per_seq: Vec<u32>,
    duplicates: u64,
    foreign: u64,
}

/// A viewer's record once it has stopped.
#[derive(Debug, Clone)]
pub struct ViewerResult {
    pub connect_ns: u64,
    pub first_video_ns: Option<u64>,
    pub first_key_ns: Option<u64>,
    pub per_seq: Vec<u32>,
    pub duplicates: u64,
    pub foreign: u64,
    pub error: Option<String>,
}

impl ViewerRecorder {
    pub fn new(clock: Clock, log: Arc<SendLog>, live: Arc<ViewerLive>) -> Self {
        let per_seq = vec![NOT_RECEIVED; log.capacity()];
        Self {
            clock,
            log,
            live,
            connect_ns: clock.now_ns(),
            first_video_ns: None,
            first_key_ns: None,
            per_seq,
            duplicates: 0,
            foreign: 0,
        }
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// How many frames' sequence numbers the record has room for (the send log's).
    pub fn capacity(&self) -> usize {
        self.per_seq.len()
    }

    pub fn connect_ns(&self) -> u64 {
        self.connect_ns
    }

    /// Marks the start of this viewer's connect (time to first frame counts from here).
    pub fn connecting(&mut self) {
        self.connect_ns = self.clock.now_ns();
    }

    pub fn on_bytes(&self, n: usize) {
        self.live.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// One video tag body, received at `now_ns`.
    pub fn on_video(&mut self, body: &[u8], now_ns: u64) {
        match classify_video(body) {
            VideoTag::Frame { seq, keyframe } => self.on_frame(seq, keyframe, now_ns),
            VideoTag::Config => {}
            VideoTag::Foreign => self.on_foreign(),
        }
    }

    /// A coded frame without our magic.
    pub fn on_foreign(&mut self) {
        self.foreign += 1;
    }

    /// Measured frame `seq`, received (or, for HLS, its segment fetched) at `now_ns`.
    pub fn on_frame(&mut self, seq: u64, keyframe: bool, now_ns: u64) {
        let Some(slot) = self.per_seq.get_mut(seq as usize) else {
            self.foreign += 1;
            return;
        };
        if *slot != NOT_RECEIVED {
            self.duplicates += 1;
            return;
        }
        let first = *self.first_video_ns.get_or_insert_with(|| {
            self.live
                .first_frame_ns
                .store(now_ns.max(1), Ordering::Release);
            now_ns
        });
        if keyframe && self.first_key_ns.is_none() {
            self.first_key_ns = Some(now_ns);
        }
        *slot = match self.log.get(seq) {
            Some(sent) if sent >= first => {
                ((now_ns.saturating_sub(sent)) / 1000).min(NO_SAMPLE as u64 - 1) as u32
            }
            _ => NO_SAMPLE,
        };
    }

    pub fn finish(self, error: Option<String>) -> ViewerResult {
        ViewerResult {
            connect_ns: self.connect_ns,
            first_video_ns: self.first_video_ns,
            first_key_ns: self.first_key_ns,
            per_seq: self.per_seq,
            duplicates: self.duplicates,
            foreign: self.foreign,
            error,
        }
    }
}

impl ViewerResult {
    /// The record of a viewer whose recorder was lost with `error` (nothing received).
    pub fn failed(connect_ns: u64, capacity: usize, error: String) -> Self {
        Self {
            connect_ns,
            first_video_ns: None,
            first_key_ns: None,
            per_seq: vec![NOT_RECEIVED; capacity],
            duplicates: 0,
            foreign: 0,
            error: Some(error),
        }
    }
}

/// Nearest-rank percentile of sorted values (`p` in 0..=100).
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Percentiles in milliseconds of microsecond samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Spread {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    pub samples: usize,
}

impl Spread {
    pub fn of_us(mut samples: Vec<u32>) -> Self {
        samples.sort_unstable();
        let ms = |v: Option<u32>| v.map(|us| us as f64 / 1000.0);
        Self {
            p50: ms(percentile(&samples, 50.0)),
            p90: ms(percentile(&samples, 90.0)),
            p99: ms(percentile(&samples, 99.0)),
            max: ms(samples.last().copied()),
            samples: samples.len(),
        }
    }
}

/// What all viewers saw of the frames sent in the measurement window.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub frames_sent: u64,
    pub frames_received: u64,
    pub delivered_fraction: Option<f64>,
    pub latency: Spread,
    pub ttff: Spread,
    pub ttfk: Spread,
    pub duplicates: u64,
    pub foreign: u64,
    /// Distinct viewer errors, with how many viewers had each.
    pub errors: BTreeMap<String, usize>,
}

/// Combines viewer records for the frames numbered `seqs` (inclusive), out of `viewers` asked for.
pub fn aggregate(results: &[ViewerResult], viewers: usize, seqs: Option<(u64, u64)>) -> Aggregate {
    let mut latency = Vec::new();
    let mut frames_received = 0u64;
    let frames_sent = seqs.map_or(0, |(lo, hi)| hi - lo + 1);
    for r in results {
        if let Some((lo, hi)) = seqs {
            let hi = (hi as usize).min(r.per_seq.len().saturating_sub(1));
            for &v in r.per_seq.get(lo as usize..=hi).unwrap_or(&[]) {
                if v != NOT_RECEIVED {
                    frames_received += 1;
                    if v != NO_SAMPLE {
                        latency.push(v);
                    }
                }
            }
        }
    }
    let since_connect = |f: fn(&ViewerResult) -> Option<u64>| -> Vec<u32> {
        results
            .iter()
            .filter_map(|r| f(r).map(|t| (t.saturating_sub(r.connect_ns) / 1000) as u32))
            .collect()
    };
    let mut errors = BTreeMap::new();
    for e in results.iter().filter_map(|r| r.error.as_ref()) {
        *errors.entry(e.clone()).or_insert(0) += 1;
    }
    let expected = frames_sent * viewers as u64;
    Aggregate {
        frames_sent,
        frames_received,
        delivered_fraction: (expected > 0).then(|| frames_received as f64 / expected as f64),
        latency: Spread::of_us(latency),
        ttff: Spread::of_us(since_connect(|r| r.first_video_ns)),
        ttfk: Spread::of_us(since_connect(|r| r.first_key_ns)),
        duplicates: results.iter().map(|r| r.duplicates).sum(),
        foreign: results.iter().map(|r| r.foreign).sum(),
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{filler, video_frame, video_sequence_header};

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        let s = Spread::of_us(vec![3000, 1000, 2000]);
        assert_eq!(s.p50, Some(2.0));
        assert_eq!(s.max, Some(3.0));
        assert_eq!(s.samples, 3);
    }

    #[test]
    fn send_log_window() {
        let log = SendLog::new(4);
        assert!(log.record(0, 100));
        assert!(log.record(1, 200));
        assert!(log.record(2, 300));
        assert!(!log.record(4, 400));
        assert_eq!(log.get(3), None);
        assert_eq!(log.seqs_sent_between(150, 300), Some((1, 2)));
        assert_eq!(log.seqs_sent_between(301, 900), None);
    }

    #[test]
    fn recorder_excludes_burst_and_counts_window() {
        let clock = Clock::new();
        let log = Arc::new(SendLog::new(10));
        let live = Arc::new(ViewerLive::default());
        let mut rec = ViewerRecorder::new(clock, log.clone(), live.clone());
        rec.connect_ns = 1_000;
        let f = filler();
        for seq in 0..6 {
            log.record(seq, 10_000_000 * (seq + 1));
        }
        rec.on_video(&video_sequence_header().unwrap(), 30_000_000);
        // Frames 0..=2 arrive as a burst at 30.5 ms; 3..=5 live, 2 ms after being sent.
        for seq in 0..3 {
            rec.on_video(&video_frame(seq, &f), 30_500_000);
        }
        rec.on_video(&video_frame(1, &f), 30_600_000);
        for seq in 3..6 {
            rec.on_video(&video_frame(seq, &f), 10_000_000 * (seq + 1) + 2_000_000);
        }
        rec.on_video(&[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41], 70_000_000);
        assert_eq!(live.first_frame_ns.load(Ordering::Relaxed), 30_500_000);
        let r = rec.finish(Some("closed".into()));
        assert_eq!(r.per_seq[0], NO_SAMPLE);
        assert_eq!(r.per_seq[3], 2_000);
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.foreign, 1);
        let missing = ViewerResult {
            per_seq: vec![NOT_RECEIVED; 10],
            first_video_ns: None,
            first_key_ns: None,
            error: Some("closed".into()),
            ..r.clone()
        };
        let a = aggregate(&[r, missing], 2, Some((2, 5)));
        assert_eq!(a.frames_sent, 4);
        assert_eq!(a.frames_received, 4);
        assert_eq!(a.delivered_fraction, Some(0.5));
        assert_eq!(a.latency.samples, 3);
        assert_eq!(a.latency.p50, Some(2.0));
        assert_eq!(a.ttff.samples, 1);
        assert_eq!(a.ttff.p50, Some(30.499));
        assert_eq!(a.errors.get("closed"), Some(&2));
    }
}
