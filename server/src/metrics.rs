//! Prometheus metrics at `/metrics`: connections, streams, viewers per protocol, bytes in
//! and out, frames dropped for slow viewers, refusals by reason, HLS segments. Counters are
//! updated where things happen; stream and viewer gauges are read from the hub at scrape.
//! Viewer experience (QoE beacons) per stream: latency percentiles, stall ratio, sessions
//! reporting, set at scrape from the aggregates; per stream only, never per client.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabel {
    pub protocol: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabel {
    pub app: String,
    pub stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

pub struct Metrics {
    registry: Registry,
    connections: Family<ProtocolLabel, Gauge>,
    connections_total: Family<ProtocolLabel, Counter>,
    pub bytes_in: Counter<u64, AtomicU64>,
    pub bytes_out: Counter<u64, AtomicU64>,
    pub frames_dropped: Counter<u64, AtomicU64>,
    refusals: Family<ReasonLabel, Counter>,
    bans: Family<SourceLabel, Counter>,
    pub hls_segments: Counter<u64, AtomicU64>,
    /// LL-HLS blocking requests held now (playlists and preload-hint parts).
    pub hls_blocking_requests: Gauge,
    streams: Gauge,
    viewers: Family<ProtocolLabel, Gauge>,
    fanout_viewers: Family<ProtocolLabel, Gauge>,
    viewer_latency_p50: Family<StreamLabel, FloatGauge>,
    viewer_latency_p95: Family<StreamLabel, FloatGauge>,
    viewer_stall_ratio: Family<StreamLabel, FloatGauge>,
    viewer_sessions: Family<StreamLabel, Gauge>,
    qoe_beacons: Family<ResultLabel, Counter>,
    qoe_clients_tracked: Gauge,
    pub record: crate::record::RecordMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn label(p: &str) -> ProtocolLabel {
    ProtocolLabel {
        protocol: p.to_string(),
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("onair");
        let m = Self {
            connections: Family::default(),
            connections_total: Family::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            frames_dropped: Counter::default(),
            refusals: Family::default(),
            bans: Family::default(),
            hls_segments: Counter::default(),
            hls_blocking_requests: Gauge::default(),
            streams: Gauge::default(),
            viewers: Family::default(),
            fanout_viewers: Family::default(),
            viewer_latency_p50: Family::default(),
            viewer_latency_p95: Family::default(),
            viewer_stall_ratio: Family::default(),
            viewer_sessions: Family::default(),
            qoe_beacons: Family::default(),
            qoe_clients_tracked: Gauge::default(),
            record: Default::default(),
            registry: Registry::default(),
        };
        registry.register(
            "connections",
            "Open connections by protocol",
            m.connections.clone(),
        );
        registry.register(
            "connections_accepted",
            "Connections accepted by protocol",
            m.connections_total.clone(),
        );
        registry.register(
            "streams",
            "Live streams (including those waiting for their publisher)",
            m.streams.clone(),
        );
        registry.register(
            "viewers",
            "Viewers by protocol (HLS: clients seen recently)",
            m.viewers.clone(),
        );
        registry.register(
            "fanout_viewers",
            "Viewers whose frames a fan-out loop writes now, by protocol",
            m.fanout_viewers.clone(),
        );
        registry.register(
            "bytes_in",
            "Media bytes received from publishers",
            m.bytes_in.clone(),
        );
        registry.register(
            "bytes_out",
            "Media bytes sent to viewers",
            m.bytes_out.clone(),
        );
        registry.register(
            "frames_dropped",
            "Frames skipped for viewers that fell behind",
            m.frames_dropped.clone(),
        );
        registry.register(
            "refusals",
            "Connections or requests refused, by reason",
            m.refusals.clone(),
        );
        registry.register(
            "bans",
            "Address bans started, by source (auto: repeated wrong keys or tokens; admin)",
            m.bans.clone(),
        );
        registry.register(
            "hls_segments",
            "HLS segments published",
            m.hls_segments.clone(),
        );
        registry.register(
            "hls_blocking_requests",
            "LL-HLS blocking playlist and part requests held now",
            m.hls_blocking_requests.clone(),
        );
        registry.register(
            "viewer_latency_p50_seconds",
            "Median end-to-end latency players reported (QoE beacons over the window)",
            m.viewer_latency_p50.clone(),
        );
        registry.register(
            "viewer_latency_p95_seconds",
            "95th percentile of the end-to-end latency players reported",
            m.viewer_latency_p95.clone(),
        );
        registry.register(
            "viewer_stall_ratio",
            "Stalled time over watched time that players reported",
            m.viewer_stall_ratio.clone(),
        );
        registry.register(
            "viewer_sessions",
            "Player sessions that sent a QoE beacon in the window",
            m.viewer_sessions.clone(),
        );
        registry.register(
            "qoe_beacons",
            "QoE beacon requests by result",
            m.qoe_beacons.clone(),
        );
        registry.register(
            "qoe_clients_tracked",
            "Client addresses whose beacon rate buckets are remembered",
            m.qoe_clients_tracked.clone(),
        );
        m.record.register(&mut registry);
        Self { registry, ..m }
    }

    /// Counts a QoE beacon request; `result` is a short fixed word.
    pub fn qoe_beacon(&self, result: &'static str) {
        self.qoe_beacons
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }

    /// Replaces the per-stream viewer-experience gauges with `rows` (streams without
    /// beacons in the window are left out), before `render`.
    pub fn set_viewer_experience(
        &self,
        rows: &[(crate::hub::StreamKey, crate::qoe::window::QoeSummary)],
        clients_tracked: usize,
    ) {
        self.qoe_clients_tracked.set(clients_tracked as i64);
        for f in [
            &self.viewer_latency_p50,
            &self.viewer_latency_p95,
            &self.viewer_stall_ratio,
        ] {
            f.clear();
        }
        self.viewer_sessions.clear();
        for (key, q) in rows {
            let l = StreamLabel {
                app: key.app.clone(),
                stream: key.name.clone(),
            };
            if let Some(lat) = q.latency_ms {
                self.viewer_latency_p50
                    .get_or_create(&l)
                    .set(lat.p50 / 1000.0);
                self.viewer_latency_p95
                    .get_or_create(&l)
                    .set(lat.p95 / 1000.0);
            }
            self.viewer_stall_ratio.get_or_create(&l).set(q.stall_ratio);
            self.viewer_sessions
                .get_or_create(&l)
                .set(q.viewer_sessions as i64);
        }
    }

    pub fn connection_opened(&self, protocol: &str) {
        self.connections.get_or_create(&label(protocol)).inc();
        self.connections_total.get_or_create(&label(protocol)).inc();
    }

    /// The gauge of viewers a fan-out loop holds for `protocol`.
    pub fn fanout_viewers(&self, protocol: &str) -> Gauge {
        self.fanout_viewers.get_or_create(&label(protocol)).clone()
    }

    pub fn connection_closed(&self, protocol: &str) {
        self.connections.get_or_create(&label(protocol)).dec();
    }

    /// Counts a refusal; `reason` is a short fixed word (never peer data, never a key).
    pub fn refused(&self, reason: &'static str) {
        self.refusals
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn refusals(&self, reason: &str) -> u64 {
        self.refusals
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .get()
    }

    /// Counts a ban; `source` is `auto` or `admin`.
    pub fn ban_started(&self, source: &'static str) {
        self.bans
            .get_or_create(&SourceLabel {
                source: source.to_string(),
            })
            .inc();
    }

    pub fn bans(&self, source: &str) -> u64 {
        self.bans
            .get_or_create(&SourceLabel {
                source: source.to_string(),
            })
            .get()
    }

    /// The text exposition, with gauges set from `streams` and `viewers` first.
    pub fn render(&self, streams: usize, viewers: &[(&str, usize)]) -> String {
        self.streams.set(streams as i64);
        for (p, n) in viewers {
            self.viewers.get_or_create(&label(p)).set(*n as i64);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family() {
        let m = Metrics::new();
        m.connection_opened("rtmp");
        m.refused("wrong_key");
        m.refused("wrong_key");
        m.bytes_in.inc_by(1000);
        let text = m.render(2, &[("rtmp", 3), ("flv", 1), ("hls", 0)]);
        for line in [
            "onair_connections{protocol=\"rtmp\"} 1",
            "onair_connections_accepted_total{protocol=\"rtmp\"} 1",
            "onair_streams 2",
            "onair_viewers{protocol=\"flv\"} 1",
            "onair_bytes_in_total 1000",
            "onair_refusals_total{reason=\"wrong_key\"} 2",
            "onair_hls_segments_total 0",
            "onair_frames_dropped_total 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert_eq!(m.refusals("wrong_key"), 2);
    }

    #[test]
    fn viewer_experience_per_stream() {
        use crate::qoe::window::{Percentiles, QoeSummary};
        let m = Metrics::new();
        let q = QoeSummary {
            viewer_sessions: 7,
            beacons: 20,
            window_s: 60.0,
            latency_ms: Some(Percentiles {
                p50: 350.0,
                p95: 575.0,
            }),
            stall_ratio: 0.05,
            stalls: 3,
            dropped_frames_mean: 0.5,
            av_offset_ms_p50: None,
        };
        let key = crate::hub::StreamKey::new("live", "cam");
        m.set_viewer_experience(&[(key.clone(), q.clone())], 4);
        m.qoe_beacon("accepted");
        let text = m.render(1, &[]);
        for line in [
            "onair_viewer_latency_p50_seconds{app=\"live\",stream=\"cam\"} 0.35",
            "onair_viewer_latency_p95_seconds{app=\"live\",stream=\"cam\"} 0.575",
            "onair_viewer_stall_ratio{app=\"live\",stream=\"cam\"} 0.05",
            "onair_viewer_sessions{app=\"live\",stream=\"cam\"} 7",
            "onair_qoe_beacons_total{result=\"accepted\"} 1",
            "onair_qoe_clients_tracked 4",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        // A stream whose beacons left the window leaves the exposition too.
        m.set_viewer_experience(&[], 0);
        assert!(!m.render(1, &[]).contains("stream=\"cam\""));
    }
}
