//! Bitrate adaptation for a congested link: once a second the pusher looks at its send queue
//! and tells the video encoder what to aim for. Pure: counters in, a bitrate out.
//!
//! - The queue dropped frames in the last second, or is more than half full: aim 30 % lower
//!   (never below a quarter of the asked bitrate).
//! - The queue stayed under a tenth full for 5 seconds in a row: aim 10 % higher (never
//!   above the asked bitrate).

#[derive(Debug, Clone)]
pub struct BitrateController {
    asked: u32,
    min: u32,
    current: u32,
    last_dropped: u64,
    calm_secs: u32,
}

/// Seconds of a calm queue before stepping back up.
const CALM_SECS: u32 = 5;

impl BitrateController {
    pub fn new(asked: u32) -> Self {
        Self {
            asked,
            min: (asked / 4).max(50_000),
            current: asked,
            last_dropped: 0,
            calm_secs: 0,
        }
    }

    pub fn current(&self) -> u32 {
        self.current
    }

    /// One second passed without a connection: drops now are not the link's doing, so they
    /// are noted and not acted on.
    pub fn hold(&mut self, dropped_total: u64) {
        self.last_dropped = dropped_total;
        self.calm_secs = 0;
    }

    /// One second passed. `dropped_total`: frames the queue dropped so far; `fill`: the
    /// queue's span over its bound (0..1). Returns the new target when it changes.
    pub fn tick(&mut self, dropped_total: u64, fill: f64) -> Option<u32> {
        let dropped = dropped_total > self.last_dropped;
        self.last_dropped = dropped_total;
        let before = self.current;
        if dropped || fill > 0.5 {
            self.calm_secs = 0;
            self.current = ((self.current as u64 * 7 / 10) as u32).max(self.min);
        } else if fill < 0.1 {
            self.calm_secs += 1;
            if self.calm_secs >= CALM_SECS {
                self.calm_secs = 0;
                self.current = ((self.current as u64 * 11 / 10) as u32).min(self.asked);
            }
        } else {
            self.calm_secs = 0;
        }
        (self.current != before).then_some(self.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_on_drops_and_recovers_when_calm() {
        let mut c = BitrateController::new(2_000_000);
        assert_eq!(c.tick(0, 0.0), None, "calm at the asked rate stays");
        assert_eq!(c.tick(5, 0.9), Some(1_400_000));
        assert_eq!(
            c.tick(5, 0.7),
            Some(980_000),
            "a full queue alone backs off too"
        );
        for _ in 0..10 {
            c.tick(100, 1.0);
        }
        assert_eq!(c.current(), 500_000, "floor: a quarter of the asked rate");
        // Calm: up 10 % every 5 s, up to the asked rate and no further.
        let mut ups = 0;
        for _ in 0..200 {
            if c.tick(100, 0.0).is_some() {
                ups += 1;
            }
        }
        assert_eq!(c.current(), 2_000_000);
        assert!(ups >= 10);
        // Drops while disconnected do not lower the rate once connected again.
        let mut c = BitrateController::new(1_000_000);
        c.hold(500);
        assert_eq!(c.tick(500, 0.0), None);
        // A queue between a tenth and a half holds the rate.
        let mut c = BitrateController::new(1_000_000);
        c.tick(1, 0.0);
        for _ in 0..20 {
            assert_eq!(c.tick(1, 0.3), None);
        }
    }
}
