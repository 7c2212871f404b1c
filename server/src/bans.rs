//! Address bans checked at accept: ranges listed in the config, bans an operator adds
//! through the admin API, and automatic bans of addresses that keep giving wrong keys or
//! tokens. Bounded in entries and in tracked addresses (`auth.max_bans`,
//! `auth.max_tracked_addresses`); never does I/O, logs a ban once.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::Serialize;

use crate::config::AuthConfig;
use crate::metrics::Metrics;

/// Shortest and longest ban an operator may set (a second, a year).
pub const MIN_BAN_MS: u64 = 1000;
pub const MAX_BAN_MS: u64 = 365 * 24 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BanError {
    #[error("{0:?} is neither an IP address nor a CIDR range: {1}")]
    BadAddress(String, String),
    #[error("a ban lasts {MIN_BAN_MS} ms to {MAX_BAN_MS} ms, got {0}")]
    BadDuration(u64),
    #[error("the ban list is full (auth.max_bans = {0})")]
    Full(usize),
    #[error("{0} is listed in the config file (auth.banned); remove it there and reload")]
    FromConfig(IpNet),
}

/// Parses `203.0.113.7` (one address) or `10.0.0.0/8`, normalized to its network.
pub fn parse_net(s: &str) -> Result<IpNet, BanError> {
    let s = s.trim();
    let parsed = if s.contains('/') {
        s.parse::<IpNet>().map_err(|e| e.to_string())
    } else {
        s.parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|e| e.to_string())
    };
    parsed
        .map(|n| n.trunc())
        .map_err(|e| BanError::BadAddress(s.to_string(), e))
}

/// Who set a ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BanSource {
    /// `auth.banned` in the config file: lasts while listed there.
    Config,
    /// An operator, through the admin API.
    Admin,
    /// Too many wrong keys or tokens (`auth.ban_after_failures`).
    Auto,
}

impl BanSource {
    pub fn name(self) -> &'static str {
        match self {
            BanSource::Config => "config",
            BanSource::Admin => "admin",
            BanSource::Auto => "auto",
        }
    }
}

/// One ban, as the admin API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BanInfo {
    /// The banned address or CIDR range.
    pub address: String,
    pub source: BanSource,
    pub reason: String,
    /// Milliseconds until it lifts; absent for config bans, which last while listed.
    pub expires_in_ms: Option<u64>,
}

struct Ban {
    net: IpNet,
    until: Instant,
    source: BanSource,
    reason: String,
}

#[derive(Debug, Clone, Copy, Default)]
struct Policy {
    after: u32,
    window: Duration,
    duration: Duration,
    max_bans: usize,
    max_tracked: usize,
}

#[derive(Default)]
struct Inner {
    configured: Vec<IpNet>,
    bans: Vec<Ban>,
    failures: HashMap<IpAddr, VecDeque<Instant>>,
    policy: Policy,
}

impl Inner {
    fn prune(&mut self, now: Instant) {
        self.bans.retain(|b| b.until > now);
    }
}

pub struct Bans {
    inner: Mutex<Inner>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Bans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bans")
    }
}

impl Bans {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The configured ranges and the automatic-ban policy, checked without applying them.
    pub fn parse_config(cfg: &AuthConfig) -> Result<Vec<IpNet>, BanError> {
        cfg.banned.iter().map(|s| parse_net(s)).collect()
    }

    /// Applies the config's ranges and policy (start and reload); other bans stay.
    pub fn configure(&self, cfg: &AuthConfig) -> Result<(), BanError> {
        let nets = Self::parse_config(cfg)?;
        let mut inner = self.lock();
        inner.configured = nets;
        inner.policy = Policy {
            after: cfg.ban_after_failures,
            window: Duration::from_millis(cfg.ban_window_ms),
            duration: Duration::from_millis(cfg.ban_duration_ms.clamp(1, MAX_BAN_MS)),
            max_bans: cfg.max_bans,
            max_tracked: cfg.max_tracked_addresses,
        };
        if inner.policy.after == 0 {
            inner.failures.clear();
        }
        Ok(())
    }

    /// Whether connections from `ip` are refused now.
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        let ip = canonical(ip);
        let inner = self.lock();
        inner.configured.iter().any(|n| n.contains(&ip))
            || inner
                .bans
                .iter()
                .any(|b| b.until > now && b.net.contains(&ip))
    }

    /// An operator's ban of `net` for `duration_ms`.
    pub fn add(
        &self,
        net: IpNet,
        duration_ms: u64,
        reason: String,
        now: Instant,
    ) -> Result<BanInfo, BanError> {
        if !(MIN_BAN_MS..=MAX_BAN_MS).contains(&duration_ms) {
            return Err(BanError::BadDuration(duration_ms));
        }
        let until = now
            .checked_add(Duration::from_millis(duration_ms))
            .ok_or(BanError::BadDuration(duration_ms))?;
        let mut inner = self.lock();
        inner.prune(now);
        inner.bans.retain(|b| b.net != net);
        if inner.bans.len() >= inner.policy.max_bans {
            return Err(BanError::Full(inner.policy.max_bans));
        }
        inner.bans.push(Ban {
            net,
            until,
            source: BanSource::Admin,
            reason,
        });
        self.metrics.ban_started(BanSource::Admin.name());
        Ok(info(inner.bans.last().expect("just pushed"), now))
    }

    /// Lifts an operator or automatic ban of exactly `net`; `Ok(false)` if there was none.
    pub fn remove(&self, net: IpNet, now: Instant) -> Result<bool, BanError> {
        let mut inner = self.lock();
        inner.prune(now);
        let before = inner.bans.len();
        inner.bans.retain(|b| b.net != net);
        if before != inner.bans.len() {
            inner.failures.retain(|ip, _| !net.contains(ip));
            return Ok(true);
        }
        if inner.configured.contains(&net) {
            return Err(BanError::FromConfig(net));
        }
        Ok(false)
    }

    /// Every ban in force: config ranges first, then the others by expiry.
    pub fn list(&self, now: Instant) -> Vec<BanInfo> {
        let mut inner = self.lock();
        inner.prune(now);
        let mut out: Vec<BanInfo> = inner
            .configured
            .iter()
            .map(|n| BanInfo {
                address: n.to_string(),
                source: BanSource::Config,
                reason: "listed in auth.banned".into(),
                expires_in_ms: None,
            })
            .collect();
        let mut rest: Vec<BanInfo> = inner.bans.iter().map(|b| info(b, now)).collect();
        rest.sort_by_key(|b| b.expires_in_ms);
        out.extend(rest);
        out
    }

    /// A wrong key or token from `ip`: the Nth within the window bans it (logged once).
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let ip = canonical(ip);
        let mut inner = self.lock();
        let policy = inner.policy;
        if policy.after == 0 {
            return;
        }
        if !inner.failures.contains_key(&ip) && inner.failures.len() >= policy.max_tracked {
            let window = policy.window;
            inner
                .failures
                .retain(|_, t| t.back().is_some_and(|&l| now.duration_since(l) < window));
            if inner.failures.len() >= policy.max_tracked {
                tracing::debug!(peer = %ip, "too many addresses tracked; failure not counted");
                return;
            }
        }
        let times = inner.failures.entry(ip).or_default();
        times.push_back(now);
        while times
            .front()
            .is_some_and(|&t| now.duration_since(t) >= policy.window)
            || times.len() > policy.after as usize
        {
            times.pop_front();
        }
        if times.len() < policy.after as usize {
            return;
        }
        inner.failures.remove(&ip);
        inner.prune(now);
        let net = IpNet::from(ip);
        if inner.bans.iter().any(|b| b.net.contains(&ip)) || inner.bans.len() >= policy.max_bans {
            return;
        }
        let Some(until) = now.checked_add(policy.duration) else {
            return;
        };
        inner.bans.push(Ban {
            net,
            until,
            source: BanSource::Auto,
            reason: format!("{} wrong keys or tokens", policy.after),
        });
        drop(inner);
        self.metrics.ban_started(BanSource::Auto.name());
        tracing::warn!(
            peer = %ip,
            failures = policy.after,
            duration_ms = policy.duration.as_millis() as u64,
            "address banned after repeated wrong keys or tokens"
        );
    }
}

/// IPv4-mapped IPv6 addresses (dual-stack listeners) count as their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn info(b: &Ban, now: Instant) -> BanInfo {
    BanInfo {
        address: b.net.to_string(),
        source: b.source,
        reason: b.reason.clone(),
        expires_in_ms: Some(b.until.saturating_duration_since(now).as_millis() as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn bans(f: impl FnOnce(&mut AuthConfig)) -> Bans {
        let b = Bans::new(Arc::new(Metrics::new()));
        let mut cfg = AuthConfig::default();
        f(&mut cfg);
        b.configure(&cfg).unwrap();
        b
    }

    #[test]
    fn addresses_and_ranges_parse() {
        assert_eq!(parse_net("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
        assert_eq!(parse_net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_net("::1").unwrap().to_string(), "::1/128");
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("nope").is_err());
    }

    #[test]
    fn nth_failure_in_window_bans_for_the_duration() {
        let b = bans(|c| {
            c.ban_after_failures = 3;
            c.ban_window_ms = 10_000;
            c.ban_duration_ms = 5_000;
        });
        let t0 = Instant::now();
        let bad = ip("10.0.0.2");
        b.failed(bad, t0);
        b.failed(bad, t0 + Duration::from_secs(1));
        assert!(!b.is_banned(bad, t0 + Duration::from_secs(1)));
        b.failed(ip("10.0.0.3"), t0 + Duration::from_secs(1));
        b.failed(bad, t0 + Duration::from_secs(2));
        assert!(b.is_banned(bad, t0 + Duration::from_secs(2)));
        assert!(!b.is_banned(ip("10.0.0.3"), t0 + Duration::from_secs(2)));
        assert!(!b.is_banned(bad, t0 + Duration::from_secs(8)), "lifted");
        assert_eq!(b.metrics.bans("auto"), 1);
    }

    #[test]
    fn bounded_in_bans_and_tracked_addresses() {
        let b = bans(|c| {
            c.ban_after_failures = 2;
            c.max_bans = 2;
            c.max_tracked_addresses = 3;
        });
        let now = Instant::now();
        for i in 1..=2 {
            let net = parse_net(&format!("10.1.0.{i}")).unwrap();
            b.add(net, 60_000, String::new(), now).unwrap();
        }
        let third = parse_net("10.1.0.3").unwrap();
        assert_eq!(
            b.add(third, 60_000, String::new(), now).unwrap_err(),
            BanError::Full(2)
        );
        for i in 1..=5 {
            b.failed(ip(&format!("10.2.0.{i}")), now);
        }
        assert!(b.lock().failures.len() <= 3);
        b.failed(ip("10.2.0.1"), now);
        assert!(
            !b.is_banned(ip("10.2.0.1"), now),
            "no room for an automatic ban"
        );
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let b = bans(|c| {
            c.ban_after_failures = 2;
            c.ban_window_ms = 1_000;
        });
        let t0 = Instant::now();
        let a = ip("10.0.0.2");
        b.failed(a, t0);
        b.failed(a, t0 + Duration::from_secs(2));
        assert!(!b.is_banned(a, t0 + Duration::from_secs(2)));
        b.failed(a, t0 + Duration::from_millis(2500));
        assert!(b.is_banned(a, t0 + Duration::from_millis(2500)));
    }

    #[test]
    fn operator_and_config_bans() {
        let b = bans(|c| c.banned = vec!["192.168.0.0/16".into()]);
        let now = Instant::now();
        assert!(b.is_banned(ip("192.168.4.4"), now));
        assert!(b.is_banned(ip("::ffff:192.168.4.4"), now), "mapped v4");
        let net = parse_net("10.0.0.0/30").unwrap();
        b.add(net, 60_000, "test".into(), now).unwrap();
        assert!(b.is_banned(ip("10.0.0.3"), now));
        assert!(!b.is_banned(ip("10.0.0.4"), now));
        assert_eq!(b.list(now).len(), 2);
        assert_eq!(
            b.add(net, u64::MAX, String::new(), now).unwrap_err(),
            BanError::BadDuration(u64::MAX)
        );
        assert_eq!(b.remove(net, now), Ok(true));
        assert_eq!(b.remove(net, now), Ok(false));
        assert!(matches!(
            b.remove(parse_net("192.168.0.0/16").unwrap(), now),
            Err(BanError::FromConfig(_))
        ));
        assert!(!b.is_banned(ip("10.0.0.3"), now));
    }
}
