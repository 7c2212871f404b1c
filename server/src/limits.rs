//! Connection admission: address bans, then a total and a per-address bound, checked at
//! accept. A permit gives its place back when dropped, so every exit path of a connection
//! releases it. The bounds can change while running (reload); open connections keep theirs.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::bans::Bans;
use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Total,
    PerIp,
}

impl Refusal {
    /// The metrics label of this refusal.
    pub fn reason(self, protocol: &str) -> &'static str {
        match (protocol, self) {
            ("rtmp" | "rtmps" | "rtmpt" | "rtmpts", Refusal::Total) => "rtmp_max_connections",
            ("rtmp" | "rtmps" | "rtmpt" | "rtmpts", Refusal::PerIp) => {
                "rtmp_max_connections_per_ip"
            }
            (_, Refusal::Total) => "http_max_connections",
            (_, Refusal::PerIp) => "http_max_connections_per_ip",
        }
    }
}

#[derive(Debug)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

#[derive(Debug, Clone)]
pub struct ConnLimiter {
    max_total: Arc<AtomicUsize>,
    max_per_ip: Arc<AtomicUsize>,
    counts: Arc<Mutex<Counts>>,
}

#[derive(Debug)]
pub struct Permit {
    ip: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl ConnLimiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total: Arc::new(AtomicUsize::new(max_total)),
            max_per_ip: Arc::new(AtomicUsize::new(max_per_ip)),
            counts: Arc::new(Mutex::new(Counts {
                total: 0,
                per_ip: HashMap::new(),
            })),
        }
    }

    /// New bounds for connections accepted from now on.
    pub fn set_limits(&self, max_total: usize, max_per_ip: usize) {
        self.max_total.store(max_total, Ordering::Relaxed);
        self.max_per_ip.store(max_per_ip, Ordering::Relaxed);
    }

    pub fn try_acquire(&self, ip: IpAddr) -> Result<Permit, Refusal> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= self.max_total.load(Ordering::Relaxed) {
            return Err(Refusal::Total);
        }
        let n = c.per_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip.load(Ordering::Relaxed) {
            return Err(Refusal::PerIp);
        }
        *n += 1;
        c.total += 1;
        Ok(Permit {
            ip,
            counts: self.counts.clone(),
        })
    }

    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

/// An admitted connection's place: counted open in the metrics until dropped.
#[derive(Debug)]
pub struct Admission {
    _permit: Permit,
    metrics: Arc<Metrics>,
    protocol: &'static str,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.metrics.connection_closed(self.protocol);
    }
}

/// A place for a connection that did not come through `accept_admitted` (an RTMPT session
/// is an RTMP connection carried by HTTP requests): the same bounds, counted open under
/// `protocol` until dropped.
pub fn admit(
    limiter: &ConnLimiter,
    ip: IpAddr,
    metrics: &Arc<Metrics>,
    protocol: &'static str,
) -> Result<Admission, Refusal> {
    let permit = limiter.try_acquire(ip)?;
    metrics.connection_opened(protocol);
    Ok(Admission {
        _permit: permit,
        metrics: metrics.clone(),
        protocol,
    })
}

/// Accepts until a connection is from an address not banned (when `bans` is given) and
/// within the limits, closing and counting the others; `None` once `shutdown` fires.
pub async fn accept_admitted(
    listener: &TcpListener,
    limiter: &ConnLimiter,
    bans: Option<&Bans>,
    metrics: &Arc<Metrics>,
    protocol: &'static str,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, SocketAddr, Admission)> {
    loop {
        let (socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => return None,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of fds and the like: back off briefly instead of spinning.
                    tracing::warn!(protocol, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if bans.is_some_and(|b| b.is_banned(peer.ip(), Instant::now())) {
            // The ban itself was logged when it started; one line per attempt would let a
            // banned address fill the log.
            tracing::debug!(peer = %peer, protocol, "connection from a banned address refused");
            metrics.refused("banned");
            continue;
        }
        match limiter.try_acquire(peer.ip()) {
            Ok(permit) => {
                metrics.connection_opened(protocol);
                let admission = Admission {
                    _permit: permit,
                    metrics: metrics.clone(),
                    protocol,
                };
                return Some((socket, peer, admission));
            }
            Err(refusal) => {
                let reason = refusal.reason(protocol);
                tracing::warn!(peer = %peer, reason, "connection refused");
                metrics.refused(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_total_bounds_and_release() {
        let l = ConnLimiter::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let p1 = l.try_acquire(a).unwrap();
        let _p2 = l.try_acquire(a).unwrap();
        assert_eq!(l.try_acquire(a).unwrap_err(), Refusal::PerIp);
        let _p3 = l.try_acquire(b).unwrap();
        assert_eq!(l.try_acquire(b).unwrap_err(), Refusal::Total);
        drop(p1);
        let _p4 = l.try_acquire(a).unwrap();
        assert_eq!(l.open(), 3);
        l.set_limits(4, 2);
        let _p5 = l.try_acquire(b).unwrap();
        assert_eq!(l.open(), 4);
    }
}
