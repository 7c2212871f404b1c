//! Live counters of a push and the one-line status built from them (fps, bitrate, queue,
//! dropped, reconnects). Counters are atomics shared by the stages; `StatusLine` turns two
//! snapshots into a line, purely.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Stats {
    /// Video frames handed to the sink (sent or written).
    pub video_frames: AtomicU64,
    /// Payload bytes handed to the sink.
    pub bytes: AtomicU64,
    /// Frames dropped by the send queue.
    pub dropped: AtomicU64,
    /// Raw frames dropped at capture because encoding fell behind real time.
    pub capture_dropped: AtomicU64,
    pub reconnects: AtomicU64,
    pub queue_frames: AtomicU64,
    pub queue_ms: AtomicU64,
    pub connected: AtomicBool,
    /// What the video encoder aims for now, bit/s (lowered on a congested link).
    pub target_bitrate: AtomicU64,
    /// Co-hosting: 0 = no guest, 1 = guest online, 2 = guest offline.
    pub guest: AtomicU64,
    /// The guest's delay into the mix, ms (see `guest::GuestStatus`).
    pub guest_delay_ms: AtomicU64,
    /// Voice activity: 0 = not detecting, 1 = silent, 2 = speaking.
    pub voice: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub video_frames: u64,
    pub bytes: u64,
    pub dropped: u64,
    pub capture_dropped: u64,
    pub reconnects: u64,
    pub queue_frames: u64,
    pub queue_ms: u64,
    pub connected: bool,
    pub target_bitrate: u64,
    pub guest: u64,
    pub guest_delay_ms: u64,
    pub voice: u64,
}

impl Stats {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            video_frames: self.video_frames.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            capture_dropped: self.capture_dropped.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            queue_frames: self.queue_frames.load(Relaxed),
            queue_ms: self.queue_ms.load(Relaxed),
            connected: self.connected.load(Relaxed),
            target_bitrate: self.target_bitrate.load(Relaxed),
            guest: self.guest.load(Relaxed),
            guest_delay_ms: self.guest_delay_ms.load(Relaxed),
            voice: self.voice.load(Relaxed),
        }
    }
}

/// The status line for the interval between two snapshots `secs` apart.
pub fn status_line(prev: &Snapshot, now: &Snapshot, secs: f64, network: bool) -> String {
    let secs = if secs > 0.0 { secs } else { 1.0 };
    let fps = now.video_frames.saturating_sub(prev.video_frames) as f64 / secs;
    let kbps = now.bytes.saturating_sub(prev.bytes) as f64 * 8.0 / 1000.0 / secs;
    let mut line = format!(
        "fps={fps:.1} bitrate={kbps:.0}kbit/s queue={}/{}ms dropped={} capture_dropped={}",
        now.queue_frames, now.queue_ms, now.dropped, now.capture_dropped
    );
    if network {
        line.push_str(&format!(
            " target={}kbit/s reconnects={} {}",
            now.target_bitrate / 1000,
            now.reconnects,
            if now.connected {
                "connected"
            } else {
                "connecting"
            }
        ));
    }
    match now.voice {
        1 => line.push_str(" voice=silent"),
        2 => line.push_str(" voice=speaking"),
        _ => {}
    }
    match now.guest {
        1 => line.push_str(&format!(
            " guest=online guest_delay={}ms",
            now.guest_delay_ms
        )),
        2 => line.push_str(" guest=offline"),
        _ => {}
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_from_two_snapshots() {
        let a = Snapshot::default();
        let b = Snapshot {
            video_frames: 60,
            bytes: 500_000,
            dropped: 3,
            reconnects: 1,
            queue_frames: 4,
            queue_ms: 120,
            connected: true,
            target_bitrate: 1_500_000,
            ..a
        };
        assert_eq!(
            status_line(&a, &b, 2.0, true),
            "fps=30.0 bitrate=2000kbit/s queue=4/120ms dropped=3 capture_dropped=0 target=1500kbit/s reconnects=1 connected"
        );
        assert!(!status_line(&a, &b, 2.0, false).contains("reconnects"));
        assert!(!status_line(&a, &b, 2.0, false).contains("guest"));
        let g = Snapshot {
            guest: 1,
            guest_delay_ms: 95,
            ..b
        };
        assert!(status_line(&a, &g, 2.0, false).ends_with(" guest=online guest_delay=95ms"));
        let v = Snapshot { voice: 2, ..b };
        assert!(status_line(&a, &v, 2.0, false).ends_with(" voice=speaking"));
        let g = Snapshot { guest: 2, ..b };
        assert!(status_line(&a, &g, 2.0, false).ends_with(" guest=offline"));
    }
}
