//! Viewer experience (QoE): players POST a small beacon to `/api/qoe` every 10 s (latency,
//! stalls, dropped frames, A/V offset); this keeps per-stream aggregates over a sliding
//! window for `/api/streams` and `/metrics`. A beacon needs no credential and grants
//! nothing. Everything is bounded (body, read time, rate per address, addresses, samples
//! per stream), and nothing per client (address, session id) ever leaves this module.

pub mod beacon;
pub mod rate;
pub mod window;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use crate::config::QoeConfig;
use crate::hub::{Hub, StreamKey};
use beacon::{Beacon, BeaconError};
use rate::ClientLimiter;
use window::{QoeSummary, StreamWindow};

/// The path players POST beacons to.
pub const PATH: &str = "/api/qoe";

/// What became of one beacon request.
#[derive(Debug)]
pub enum Outcome {
    Accepted,
    Disabled,
    TooLarge,
    SlowBody,
    BrokenBody,
    RateLimited,
    Invalid(BeaconError),
    UnknownStream,
    /// Only when more streams hold beacons than the hub may have live (cannot happen
    /// unless streams churn faster than they are pruned).
    Full,
}

impl Outcome {
    pub fn status(&self) -> StatusCode {
        match self {
            Outcome::Accepted => StatusCode::NO_CONTENT,
            Outcome::Disabled | Outcome::UnknownStream => StatusCode::NOT_FOUND,
            Outcome::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Outcome::SlowBody => StatusCode::REQUEST_TIMEOUT,
            Outcome::BrokenBody | Outcome::Invalid(_) => StatusCode::BAD_REQUEST,
            Outcome::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Outcome::Full => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short fixed word for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Disabled => "disabled",
            Outcome::TooLarge => "too_large",
            Outcome::SlowBody => "slow_body",
            Outcome::BrokenBody => "broken_body",
            Outcome::RateLimited => "rate_limited",
            Outcome::Invalid(_) => "invalid",
            Outcome::UnknownStream => "unknown_stream",
            Outcome::Full => "full",
        }
    }

    /// The text answered with a refusal.
    pub fn message(&self) -> String {
        match self {
            Outcome::Accepted => String::new(),
            Outcome::Disabled => "QoE beacons are disabled on this server".into(),
            Outcome::TooLarge => "beacon body too large".into(),
            Outcome::SlowBody => "beacon body did not arrive in time".into(),
            Outcome::BrokenBody => "beacon body could not be read".into(),
            Outcome::RateLimited => "too many beacons from this client".into(),
            Outcome::Invalid(e) => e.to_string(),
            Outcome::UnknownStream => "no such stream".into(),
            Outcome::Full => "too many streams with beacons".into(),
        }
    }
}

/// The shared QoE state: per-stream windows and the per-address buckets, each behind its
/// own lock, held only for in-memory work.
pub struct Qoe {
    cfg: QoeConfig,
    streams: Mutex<HashMap<StreamKey, StreamWindow>>,
    limiter: Mutex<ClientLimiter>,
}

impl std::fmt::Debug for Qoe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Qoe")
    }
}

impl Qoe {
    pub fn new(cfg: QoeConfig) -> Self {
        let limiter = ClientLimiter::new(
            cfg.client_beacons_per_s,
            cfg.client_burst,
            cfg.max_tracked_clients,
        );
        Self {
            cfg,
            streams: Mutex::default(),
            limiter: Mutex::new(limiter),
        }
    }

    pub fn enabled(&self) -> bool {
        self.cfg.enabled
    }

    /// Reads, checks and records one `POST /api/qoe`. The body is read with a size bound
    /// and a deadline before the rate check, so a refused request still leaves the
    /// connection reusable; a declared length over the bound is refused unread.
    pub async fn receive(&self, hub: &Hub, req: Request<Incoming>, client: IpAddr) -> Outcome {
        if !self.cfg.enabled {
            return Outcome::Disabled;
        }
        let max = self.cfg.max_body_bytes;
        let declared = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Outcome::TooLarge;
        }
        let read = Limited::new(req.into_body(), max).collect();
        let body =
            match tokio::time::timeout(Duration::from_millis(self.cfg.body_read_timeout_ms), read)
                .await
            {
                Err(_) => return Outcome::SlowBody,
                Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
                    return Outcome::TooLarge
                }
                Ok(Err(_)) => return Outcome::BrokenBody,
                Ok(Ok(c)) => c.to_bytes(),
            };
        let now = Instant::now();
        if !self.lock_limiter().allow(client, now) {
            return Outcome::RateLimited;
        }
        match Beacon::parse(&body) {
            Ok(b) => self.record(hub, &b, now),
            Err(e) => Outcome::Invalid(e),
        }
    }

    /// Records a checked beacon for a stream the hub has (live, or waiting for its
    /// publisher to return).
    pub fn record(&self, hub: &Hub, b: &Beacon, now: Instant) -> Outcome {
        if hub.get(&b.stream).is_none() {
            return Outcome::UnknownStream;
        }
        let mut streams = self.lock_streams();
        if !streams.contains_key(&b.stream) && streams.len() >= hub.config().max_streams {
            streams.retain(|k, w| {
                w.expire(now);
                !w.is_empty() && hub.get(k).is_some()
            });
            if streams.len() >= hub.config().max_streams {
                return Outcome::Full;
            }
        }
        streams
            .entry(b.stream.clone())
            .or_insert_with(|| {
                StreamWindow::new(
                    Duration::from_millis(self.cfg.window_ms),
                    self.cfg.max_samples_per_stream,
                )
            })
            .record(b, now);
        Outcome::Accepted
    }

    /// One stream's aggregates; `None` without beacons in the window.
    pub fn summary(&self, key: &StreamKey, now: Instant) -> Option<QoeSummary> {
        self.lock_streams().get_mut(key)?.summary(now)
    }

    /// Every stream with beacons in the window, sorted by key; empty windows are dropped.
    pub fn summaries(&self, now: Instant) -> Vec<(StreamKey, QoeSummary)> {
        let mut streams = self.lock_streams();
        let mut out: Vec<_> = streams
            .iter_mut()
            .filter_map(|(k, w)| Some((k.clone(), w.summary(now)?)))
            .collect();
        streams.retain(|_, w| !w.is_empty());
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Client addresses whose rate buckets are remembered (bounded by
    /// `qoe.max_tracked_clients`).
    pub fn tracked_clients(&self) -> usize {
        self.lock_limiter().tracked()
    }

    fn lock_streams(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, StreamWindow>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_limiter(&self) -> std::sync::MutexGuard<'_, ClientLimiter> {
        self.limiter.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HubConfig;

    fn beacon_for(stream: &StreamKey, latency: f64) -> Beacon {
        Beacon {
            stream: stream.clone(),
            protocol: beacon::BeaconProtocol::Hls,
            session: 7,
            interval_ms: 10_000.0,
            latency_ms: Some(latency),
            stalls: 0,
            stall_ms: 0.0,
            dropped_frames: 0,
            av_offset_ms: None,
        }
    }

    // Outside a tokio runtime a publisher that leaves ends its stream at once, so the
    // hub's state is known at every step.
    #[test]
    fn beacons_only_for_streams_the_hub_has_and_gone_streams_make_room() {
        let hub = Hub::new(HubConfig {
            max_streams: 1,
            ..HubConfig::default()
        });
        let qoe = Qoe::new(QoeConfig::default());
        let (a, b) = (StreamKey::new("live", "a"), StreamKey::new("live", "b"));
        let t0 = Instant::now();
        assert!(matches!(
            qoe.record(&hub, &beacon_for(&a, 100.0), t0),
            Outcome::UnknownStream
        ));
        let peer = "127.0.0.1:9".parse().unwrap();
        let pa = hub.publish(a.clone(), peer).unwrap();
        assert!(matches!(
            qoe.record(&hub, &beacon_for(&a, 100.0), t0),
            Outcome::Accepted
        ));
        assert_eq!(qoe.summary(&a, t0).unwrap().latency_ms.unwrap().p50, 100.0);
        drop(pa);
        assert!(hub.get(&a).is_none());
        let _pb = hub.publish(b.clone(), peer).unwrap();
        // a's window is still within its time, but its stream is gone: b takes its place.
        assert!(matches!(
            qoe.record(&hub, &beacon_for(&b, 300.0), t0),
            Outcome::Accepted
        ));
        let all = qoe.summaries(t0);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0, b);
        assert!(qoe.summary(&a, t0).is_none());
    }
}
