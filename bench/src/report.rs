//! The result of one run: a serde struct printed as one JSON object with --json, or as a
//! human-readable table otherwise.

use crate::publisher::PublisherReport;
use crate::stats::Spread;
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize)]
pub struct ErrorCount {
    pub reason: String,
    pub viewers: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct HlsErrorCount {
    pub reason: String,
    pub count: u64,
}

/// What only an HLS run measures. Its glass-to-fetch latency is `Report::latency_ms`.
#[derive(Debug, Clone, Serialize)]
pub struct HlsReport {
    /// Largest EXT-X-TARGETDURATION seen; clients poll every half of it (±10 %).
    pub target_duration_s: Option<f64>,
    /// The probe's poll interval, when one ran.
    pub probe_ms: Option<u64>,
    /// 200 responses completed in the window, per second (clients only, not the probe).
    pub playlist_requests_per_s: f64,
    pub segment_requests_per_s: f64,
    pub probe_requests_per_s: Option<f64>,
    /// Request sent → last byte read, for 200 responses completed in the window.
    pub playlist_latency_ms: Spread,
    pub segment_latency_ms: Spread,
    /// Server CPU per 1000 requests served in the window (the probe's included).
    pub cpu_s_per_1000_requests: Option<f64>,
    /// First listed in any client's playlist − send of the keyframe that closed the segment.
    pub segment_available_ms: Spread,
    /// The same, as seen by the probe alone.
    pub segment_available_probe_ms: Option<Spread>,
    /// Segments that left the playlist before a client fetched them.
    pub skipped_segments: u64,
    /// Over the whole run: responses other than 200, requests timed out, segments whose TS
    /// did not parse cleanly, TCP connections opened beyond one per client.
    pub non_200: u64,
    pub timeouts: u64,
    pub ts_parse_failures: u64,
    pub reconnects: u64,
    pub errors: Vec<HlsErrorCount>,
}

/// CPU of the server threads named by `--server-thread` over the window (e.g. onair's
/// `onair-opus`, the AAC -> Opus transcode for WebRTC, one thread per stream).
#[derive(Debug, Clone, Serialize)]
pub struct ThreadCpu {
    pub name: String,
    /// Threads of that name at the window's end.
    pub threads: usize,
    pub cpu_s: f64,
    /// `cpu_s` / `server_cpu_s`.
    pub share_of_server: Option<f64>,
}

/// What only a WHEP run measures.
#[derive(Debug, Clone, Serialize)]
pub struct WhepReport {
    /// Viewers whose ICE and DTLS completed (over the whole run).
    pub connected: u64,
    /// RTP packets all viewers received in the window, per second.
    pub video_packets_per_s: f64,
    pub audio_packets_per_s: f64,
    /// Frames given up with a packet missing (over the whole run).
    pub incomplete_frames: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub server: String,
    pub protocol: &'static str,
    pub publish_url: String,
    pub play_url: String,
    pub viewers: usize,
    /// Viewers that had received a frame when the measurement window opened.
    pub connected_viewers: usize,
    pub window_s: f64,
    /// Publisher send to viewer receive, for frames sent in the window after each viewer's first frame.
    pub latency_ms: Spread,
    /// From the start of a viewer's connect to its first video frame.
    pub ttff_ms: Spread,
    /// From the start of a viewer's connect to its first keyframe (first decodable picture).
    pub ttfk_ms: Spread,
    pub frames_sent: u64,
    pub frames_received: u64,
    /// frames_received / (frames_sent × viewers).
    pub delivered_fraction: Option<f64>,
    /// Bytes read by all viewers in the window (wire bytes, audio and framing included).
    pub gbit_delivered: f64,
    pub server_pids: Vec<u32>,
    pub server_cpu_s: Option<f64>,
    pub cpu_s_per_gbit: Option<f64>,
    /// Peak of the summed VmRSS of the server pids, sampled every 100 ms over the run.
    pub peak_rss_mib: Option<f64>,
    /// Largest VmHWM of any server pid at the end.
    pub vm_hwm_mib: Option<f64>,
    /// This benchmark's own CPU time in the window (it shares the machine with the server).
    pub bench_cpu_s: f64,
    pub duplicate_frames: u64,
    pub foreign_frames: u64,
    pub publisher: PublisherReport,
    pub server_error: Option<String>,
    pub errors: Vec<ErrorCount>,
    pub hls: Option<HlsReport>,
    pub server_thread: Option<ThreadCpu>,
    pub whep: Option<WhepReport>,
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

fn num(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.prec$}"))
}

impl Report {
    pub fn table(&self) -> String {
        let mut s = String::new();
        let mut line = |k: &str, v: String| {
            let _ = writeln!(s, "  {k:<26} {v}");
        };
        line(
            "server",
            format!("{} (pids {:?})", self.server, self.server_pids),
        );
        line("protocol", self.protocol.to_string());
        line(
            "publish / play",
            format!("{}  {}", self.publish_url, self.play_url),
        );
        line(
            "viewers connected",
            format!("{} of {}", self.connected_viewers, self.viewers),
        );
        line("window", format!("{:.1} s", self.window_s));
        let spread = |x: &Spread| {
            format!(
                "p50 {}  p90 {}  p99 {}  max {}  ({} samples)",
                ms(x.p50),
                ms(x.p90),
                ms(x.p99),
                ms(x.max),
                x.samples
            )
        };
        line(
            if self.hls.is_some() {
                "glass-to-fetch ms"
            } else {
                "latency ms"
            },
            spread(&self.latency_ms),
        );
        line("time to first frame ms", spread(&self.ttff_ms));
        line("time to first keyframe ms", spread(&self.ttfk_ms));
        line(
            "frames delivered",
            format!(
                "{} of {} × {} = {}",
                self.frames_received,
                self.frames_sent,
                self.viewers,
                num(self.delivered_fraction, 4)
            ),
        );
        line("delivered", format!("{:.3} Gbit", self.gbit_delivered));
        line("server CPU", format!("{} s", num(self.server_cpu_s, 2)));
        line(
            "server CPU per Gbit",
            format!("{} s", num(self.cpu_s_per_gbit, 2)),
        );
        line(
            "server peak RSS",
            format!(
                "{} MiB (max VmHWM {} MiB)",
                num(self.peak_rss_mib, 1),
                num(self.vm_hwm_mib, 1)
            ),
        );
        line("bench CPU", format!("{:.2} s", self.bench_cpu_s));
        if let Some(t) = &self.server_thread {
            line(
                &format!("server threads {}", t.name),
                format!(
                    "{} thread(s), {:.2} CPU-s, {} of the server's",
                    t.threads,
                    t.cpu_s,
                    t.share_of_server
                        .map_or("-".into(), |s| format!("{:.1} %", s * 100.0))
                ),
            );
        }
        if let Some(w) = &self.whep {
            line(
                "WebRTC",
                format!(
                    "{} connected, {:.0} video + {:.0} audio RTP packets/s, {} incomplete frames",
                    w.connected, w.video_packets_per_s, w.audio_packets_per_s, w.incomplete_frames
                ),
            );
        }
        if let Some(h) = &self.hls {
            let rate = |v: f64, lat: &Spread| {
                format!(
                    "{v:.1}/s, latency p50 {}  p99 {}  max {} ms",
                    ms(lat.p50),
                    ms(lat.p99),
                    ms(lat.max)
                )
            };
            line(
                "target duration",
                format!("{} s", num(h.target_duration_s, 1)),
            );
            line(
                "playlist requests",
                rate(h.playlist_requests_per_s, &h.playlist_latency_ms),
            );
            line(
                "segment requests",
                rate(h.segment_requests_per_s, &h.segment_latency_ms),
            );
            line(
                "CPU per 1000 requests",
                format!("{} s", num(h.cpu_s_per_1000_requests, 3)),
            );
            line("segment available ms", spread(&h.segment_available_ms));
            if let (Some(p), Some(s)) = (h.probe_ms, &h.segment_available_probe_ms) {
                line(&format!("  probe ({p} ms polls)"), spread(s));
                line(
                    "  probe requests",
                    format!("{}/s", num(h.probe_requests_per_s, 1)),
                );
            }
            line(
                "HLS errors",
                format!(
                    "{} non-200, {} timeouts, {} TS parse failures, {} skipped segments, {} reconnects",
                    h.non_200, h.timeouts, h.ts_parse_failures, h.skipped_segments, h.reconnects
                ),
            );
            for e in &h.errors {
                line("HLS error", format!("{} × {}", e.count, e.reason));
            }
        }
        let p = &self.publisher;
        line(
            "publisher",
            format!(
                "{} video + {} audio frames, max lag {:.1} ms, {} late",
                p.video_frames, p.audio_frames, p.max_lag_ms, p.late_frames
            ),
        );
        if self.duplicate_frames + self.foreign_frames > 0 {
            line(
                "odd frames",
                format!(
                    "{} duplicates, {} foreign",
                    self.duplicate_frames, self.foreign_frames
                ),
            );
        }
        if let Some(e) = &self.server_error {
            line("server error", e.clone());
        }
        if let Some(e) = &p.error {
            line("publisher error", e.clone());
        }
        for e in &self.errors {
            line("viewer error", format!("{} × {}", e.viewers, e.reason));
        }
        s
    }
}
