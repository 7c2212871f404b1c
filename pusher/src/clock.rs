//! The one capture clock shared by audio and video: both tracks take their timestamps
//! from it, so they stay in sync. Real-time mode follows the monotonic clock (and waits
//! for it); free-running mode, for writing files as fast as the encoders go, advances
//! only with the media and never sleeps.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub struct CaptureClock {
    start: Instant,
    start_wall_us: u64,
    realtime: bool,
}

/// Microseconds since the Unix epoch now.
pub fn wall_now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl CaptureClock {
    pub fn new(realtime: bool) -> Self {
        Self {
            start: Instant::now(),
            start_wall_us: wall_now_us(),
            realtime,
        }
    }

    pub fn is_realtime(&self) -> bool {
        self.realtime
    }

    /// Milliseconds since the start (real-time mode only; free-running clocks say 0).
    pub fn now_ms(&self) -> u64 {
        if self.realtime {
            self.start.elapsed().as_millis() as u64
        } else {
            0
        }
    }

    /// The wall-clock time of a capture at `pts_ms`: the real time in real-time mode (so the
    /// SEI measures everything after capture), the start time plus `pts_ms` otherwise.
    pub fn wallclock_us(&self, pts_ms: u64) -> u64 {
        if self.realtime {
            wall_now_us()
        } else {
            self.start_wall_us + pts_ms * 1000
        }
    }

    /// In real-time mode, sleeps until `pts_ms` on this clock or until `stop` says so
    /// (checked every 100 ms). Free-running clocks return at once.
    pub fn wait_until(&self, pts_ms: u64, stop: &std::sync::atomic::AtomicBool) {
        if !self.realtime {
            return;
        }
        let target = self.start + Duration::from_millis(pts_ms);
        loop {
            let now = Instant::now();
            if now >= target || stop.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            std::thread::sleep((target - now).min(Duration::from_millis(100)));
        }
    }
}
