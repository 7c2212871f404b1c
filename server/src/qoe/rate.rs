//! Token buckets per client address for beacons, so one client cannot flood the window.
//! Pure: time is a parameter. Bounded: at most `max_clients` addresses are remembered;
//! when full, buckets that have refilled (as good as new) are forgotten first, then the
//! longest idle. IPv6 clients are bucketed per /64, which is what one subscriber holds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug)]
pub struct ClientLimiter {
    per_s: f64,
    burst: f64,
    max_clients: usize,
    buckets: HashMap<IpAddr, Bucket>,
}

/// The address a bucket belongs to: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by /64.
fn bucket_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::from(seg)
        }
        v4 => v4,
    }
}

impl ClientLimiter {
    /// `per_s` tokens refill each second, up to `burst` (at least 1).
    pub fn new(per_s: f64, burst: u32, max_clients: usize) -> Self {
        Self {
            per_s: if per_s.is_finite() {
                per_s.max(0.0)
            } else {
                0.0
            },
            burst: f64::from(burst.max(1)),
            max_clients: max_clients.max(1),
            buckets: HashMap::new(),
        }
    }

    fn refilled(&self, b: &Bucket, now: Instant) -> f64 {
        let dt = now.saturating_duration_since(b.last).as_secs_f64();
        (b.tokens + dt * self.per_s).min(self.burst)
    }

    /// Takes one token for `ip` at `now`; false when its bucket is empty.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let ip = bucket_of(ip);
        if let Some(b) = self.buckets.get(&ip).copied() {
            let tokens = self.refilled(&b, now);
            let ok = tokens >= 1.0;
            self.buckets.insert(
                ip,
                Bucket {
                    tokens: if ok { tokens - 1.0 } else { tokens },
                    last: now,
                },
            );
            return ok;
        }
        if self.buckets.len() >= self.max_clients {
            self.evict(now);
        }
        self.buckets.insert(
            ip,
            Bucket {
                tokens: self.burst - 1.0,
                last: now,
            },
        );
        true
    }

    fn evict(&mut self, now: Instant) {
        let (per_s, burst) = (self.per_s, self.burst);
        self.buckets.retain(|_, b| {
            let dt = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens + dt * per_s < burst
        });
        while self.buckets.len() >= self.max_clients {
            let Some(oldest) = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.last)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.buckets.remove(&oldest);
        }
    }

    /// Addresses remembered now.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut l = ClientLimiter::new(2.0, 5, 100);
        let a = ip("10.0.0.1");
        let allowed = (0..20).filter(|_| l.allow(a, t0)).count();
        assert_eq!(allowed, 5);
        // Another address has its own bucket.
        assert!(l.allow(ip("10.0.0.2"), t0));
        // Half a second refills one token at 2/s.
        assert!(l.allow(a, t0 + Duration::from_millis(500)));
        assert!(!l.allow(a, t0 + Duration::from_millis(500)));
        // Long idle refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!((0..20).filter(|_| l.allow(a, later)).count(), 5);
    }

    #[test]
    fn ipv6_shares_a_bucket_per_64_and_mapped_v4_is_v4() {
        let t0 = Instant::now();
        let mut l = ClientLimiter::new(0.0, 2, 100);
        assert!(l.allow(ip("2001:db8:1:2::1"), t0));
        assert!(l.allow(ip("2001:db8:1:2:ffff::9"), t0));
        assert!(!l.allow(ip("2001:db8:1:2::77"), t0));
        assert!(l.allow(ip("2001:db8:1:3::1"), t0));
        assert!(l.allow(ip("10.1.1.1"), t0));
        assert!(l.allow(ip("::ffff:10.1.1.1"), t0));
        assert!(!l.allow(ip("10.1.1.1"), t0));
    }

    #[test]
    fn tracked_addresses_are_bounded_and_busy_ones_kept() {
        let t0 = Instant::now();
        let mut l = ClientLimiter::new(1.0, 3, 50);
        let flooder = ip("10.9.9.9");
        for _ in 0..10 {
            l.allow(flooder, t0);
        }
        for i in 0..10_000u32 {
            let a = IpAddr::from((0x0b00_0000 + i).to_be_bytes());
            l.allow(a, t0 + Duration::from_millis(u64::from(i)));
            assert!(l.tracked() <= 50);
        }
        assert!(l.tracked() > 0);
    }

    #[test]
    fn refilled_buckets_go_first() {
        let t0 = Instant::now();
        let mut l = ClientLimiter::new(1.0, 3, 2);
        let busy = ip("10.0.0.1");
        let idle = ip("10.0.0.2");
        assert!(l.allow(idle, t0));
        for _ in 0..3 {
            l.allow(busy, t0 + Duration::from_secs(10));
        }
        // The idle one has refilled by now (3 tokens at 1/s after 10 s): it goes, the busy
        // one (empty bucket) stays and stays limited.
        assert!(l.allow(ip("10.0.0.3"), t0 + Duration::from_secs(10)));
        assert_eq!(l.tracked(), 2);
        assert!(!l.allow(busy, t0 + Duration::from_secs(10)));
    }
}
