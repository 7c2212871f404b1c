//! One stream's beacons over a sliding window, and the aggregates the API and `/metrics`
//! show: latency percentiles, stall ratio, sessions reporting, dropped frames, A/V offset.
//! Pure: time is a parameter. Bounded: at most `max_samples` beacons, oldest dropped first.
//! The summary describes the stream, never a viewer: session ids stay inside.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::beacon::Beacon;

/// What one beacon leaves behind (about 48 bytes).
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    session: u64,
    interval_ms: f32,
    /// Stalled time within the interval (capped at the interval).
    stall_ms: f32,
    latency_ms: Option<f32>,
    av_offset_ms: Option<f32>,
    stalls: u32,
    dropped_frames: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
}

/// Per-stream viewer experience over the window. Field names say what they measure and
/// name nothing that identifies a client.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QoeSummary {
    /// Distinct player sessions that sent a beacon in the window.
    pub viewer_sessions: usize,
    /// Beacons in the window (at most `qoe.max_samples_per_stream`).
    pub beacons: usize,
    /// Length of the window, seconds.
    pub window_s: f64,
    /// End-to-end latency as players measured it; null when no beacon carried one.
    pub latency_ms: Option<Percentiles>,
    /// Stalled time over watched time: sum(stall_ms) / sum(interval_ms).
    pub stall_ratio: f64,
    /// Stalls (rebuffering events) in the window, all sessions together.
    pub stalls: u64,
    /// Mean dropped frames per beacon interval.
    pub dropped_frames_mean: f64,
    /// Median A/V offset players measured (positive: sound after picture); null when none did.
    pub av_offset_ms_p50: Option<f64>,
}

#[derive(Debug)]
pub struct StreamWindow {
    samples: VecDeque<Sample>,
    window: Duration,
    max_samples: usize,
}

/// Linear-interpolated percentile (`p` in 0..=1) of sorted, non-empty `v`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = p * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

impl StreamWindow {
    pub fn new(window: Duration, max_samples: usize) -> Self {
        Self {
            samples: VecDeque::new(),
            window,
            max_samples: max_samples.max(1),
        }
    }

    pub fn record(&mut self, b: &Beacon, now: Instant) {
        self.expire(now);
        while self.samples.len() >= self.max_samples {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            at: now,
            session: b.session,
            interval_ms: b.interval_ms as f32,
            stall_ms: b.stall_ms.min(b.interval_ms) as f32,
            latency_ms: b.latency_ms.map(|v| v as f32),
            av_offset_ms: b.av_offset_ms.map(|v| v as f32),
            stalls: b.stalls,
            dropped_frames: b.dropped_frames,
        });
    }

    /// Forgets beacons older than the window.
    pub fn expire(&mut self, now: Instant) {
        while self
            .samples
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.at) >= self.window)
        {
            self.samples.pop_front();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The aggregates over the window ending at `now`; `None` when no beacon is in it.
    pub fn summary(&mut self, now: Instant) -> Option<QoeSummary> {
        self.expire(now);
        if self.samples.is_empty() {
            return None;
        }
        let n = self.samples.len();
        let mut sessions: Vec<u64> = self.samples.iter().map(|s| s.session).collect();
        sessions.sort_unstable();
        sessions.dedup();
        let latency = sorted(
            self.samples
                .iter()
                .filter_map(|s| s.latency_ms.map(f64::from))
                .collect(),
        );
        let offset = sorted(
            self.samples
                .iter()
                .filter_map(|s| s.av_offset_ms.map(f64::from))
                .collect(),
        );
        let watched: f64 = self.samples.iter().map(|s| f64::from(s.interval_ms)).sum();
        let stalled: f64 = self.samples.iter().map(|s| f64::from(s.stall_ms)).sum();
        let dropped: u64 = self
            .samples
            .iter()
            .map(|s| u64::from(s.dropped_frames))
            .sum();
        Some(QoeSummary {
            viewer_sessions: sessions.len(),
            beacons: n,
            window_s: self.window.as_secs_f64(),
            latency_ms: (!latency.is_empty()).then(|| Percentiles {
                p50: round(percentile(&latency, 0.5), 1),
                p95: round(percentile(&latency, 0.95), 1),
            }),
            stall_ratio: if watched > 0.0 {
                round(stalled / watched, 5)
            } else {
                0.0
            },
            stalls: self.samples.iter().map(|s| u64::from(s.stalls)).sum(),
            dropped_frames_mean: round(dropped as f64 / n as f64, 2),
            av_offset_ms_p50: (!offset.is_empty()).then(|| round(percentile(&offset, 0.5), 1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::beacon::BeaconProtocol;
    use super::*;
    use crate::hub::StreamKey;

    fn beacon(session: u64, latency: Option<f64>, stall_ms: f64) -> Beacon {
        Beacon {
            stream: StreamKey::new("live", "t"),
            protocol: BeaconProtocol::Flv,
            session,
            interval_ms: 10_000.0,
            latency_ms: latency,
            stalls: u32::from(stall_ms > 0.0),
            stall_ms,
            dropped_frames: (session % 4) as u32,
            av_offset_ms: Some(session as f64 - 50.0),
        }
    }

    #[test]
    fn percentiles_interpolate() {
        let v: Vec<f64> = (1..=101).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.95), 96.0);
        assert_eq!(percentile(&[7.0], 0.95), 7.0);
        assert_eq!(percentile(&[0.0, 10.0], 0.5), 5.0);
    }

    #[test]
    fn aggregates_of_a_known_distribution() {
        let t0 = Instant::now();
        let mut w = StreamWindow::new(Duration::from_secs(60), 1000);
        // 101 sessions, latencies 100..=600 ms in steps of 5; every other session stalled
        // 1 s of its 10 s; two beacons per session.
        for round in 0..2u64 {
            for i in 0..=100u64 {
                let stall = if i % 2 == 0 { 1000.0 } else { 0.0 };
                w.record(
                    &beacon(i, Some(100.0 + 5.0 * i as f64), stall),
                    t0 + Duration::from_millis(round * 10_000 + i),
                );
            }
        }
        let s = w.summary(t0 + Duration::from_secs(20)).unwrap();
        assert_eq!(s.viewer_sessions, 101);
        assert_eq!(s.beacons, 202);
        assert_eq!(
            s.latency_ms,
            Some(Percentiles {
                p50: 350.0,
                p95: 575.0
            })
        );
        // 51 of 101 sessions stalled 10%.
        assert!((s.stall_ratio - 0.1 * 51.0 / 101.0).abs() < 1e-4, "{s:?}");
        assert_eq!(s.stalls, 102);
        // dropped = session % 4 over 0..=100: (0+1+2+3)*25 + 0 = 150 per round.
        assert_eq!(s.dropped_frames_mean, round(150.0 / 101.0, 2));
        assert_eq!(s.av_offset_ms_p50, Some(0.0));
    }

    #[test]
    fn old_beacons_leave_the_window() {
        let t0 = Instant::now();
        let mut w = StreamWindow::new(Duration::from_secs(60), 1000);
        w.record(&beacon(1, Some(100.0), 0.0), t0);
        w.record(&beacon(2, Some(900.0), 0.0), t0 + Duration::from_secs(30));
        let s = w.summary(t0 + Duration::from_secs(61)).unwrap();
        assert_eq!((s.viewer_sessions, s.beacons), (1, 1));
        assert_eq!(s.latency_ms.unwrap().p50, 900.0);
        assert!(w.summary(t0 + Duration::from_secs(91)).is_none());
        assert!(w.is_empty());
    }

    #[test]
    fn bounded_by_max_samples_oldest_first() {
        let t0 = Instant::now();
        let mut w = StreamWindow::new(Duration::from_secs(60), 10);
        for i in 0..1000u64 {
            w.record(&beacon(i, Some(i as f64), 0.0), t0);
        }
        let s = w.summary(t0).unwrap();
        assert_eq!((s.beacons, s.viewer_sessions), (10, 10));
        assert_eq!(s.latency_ms.unwrap().p50, 994.5);
    }

    #[test]
    fn stall_time_is_capped_by_the_interval_and_nulls_stay_null() {
        let t0 = Instant::now();
        let mut w = StreamWindow::new(Duration::from_secs(60), 10);
        let mut b = beacon(1, None, 25_000.0);
        b.av_offset_ms = None;
        w.record(&b, t0);
        let s = w.summary(t0).unwrap();
        assert_eq!(s.stall_ratio, 1.0);
        assert_eq!((s.latency_ms, s.av_offset_ms_p50), (None, None));
    }
}
