//! The registry of live client connections that the admin API lists and kicks: RTMP
//! publishers and players, HTTP-FLV viewers (HLS clients are not connections). An entry is
//! a description plus a kill switch that the connection's own task watches; the registry
//! never holds a socket and never blocks a connection (one short lock per change).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::hub::StreamKey;

/// What a client does on its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientRole {
    /// Connected, not publishing or playing yet.
    Connecting,
    Publisher,
    Viewer,
}

/// One connected client, as the admin API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClientInfo {
    pub id: u64,
    /// The peer's address and port.
    pub address: String,
    /// `rtmp` or `flv`.
    pub protocol: String,
    pub role: ClientRole,
    /// `app/name` once publishing or playing.
    pub stream: Option<String>,
    /// The name of the publish key or play token it used (never the secret); absent when
    /// none was needed.
    pub credential: Option<String>,
    /// Bytes received from a publisher, or sent to a viewer.
    pub bytes: u64,
    /// Seconds since the connection was accepted.
    pub duration_s: f64,
}

struct Described {
    role: ClientRole,
    stream: Option<StreamKey>,
    credential: Option<String>,
}

struct Entry {
    id: u64,
    addr: SocketAddr,
    protocol: &'static str,
    since: Instant,
    bytes: AtomicU64,
    described: Mutex<Described>,
    kill: CancellationToken,
    kicked: AtomicBool,
}

impl Entry {
    fn info(&self, now: Instant) -> ClientInfo {
        let d = self.described.lock().unwrap_or_else(|p| p.into_inner());
        ClientInfo {
            id: self.id,
            address: self.addr.to_string(),
            protocol: self.protocol.to_string(),
            role: d.role,
            stream: d.stream.as_ref().map(|k| k.to_string()),
            credential: d.credential.clone(),
            bytes: self.bytes.load(Ordering::Relaxed),
            duration_s: now.saturating_duration_since(self.since).as_secs_f64(),
        }
    }

    fn kick(&self) {
        self.kicked.store(true, Ordering::Relaxed);
        self.kill.cancel();
    }
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    entries: HashMap<u64, Arc<Entry>>,
    /// Most entries listed: the RTMP and HTTP connection limits together, so it only
    /// bites right after a reload lowered them.
    max: usize,
}

/// The live connections; cheap to clone (one shared registry).
#[derive(Clone)]
pub struct Clients {
    inner: Arc<Mutex<Registry>>,
}

/// Adds to one connection's byte count; it does not keep the connection listed.
#[derive(Clone)]
pub struct ByteCounter(Arc<Entry>);

impl ByteCounter {
    pub fn add(&self, n: usize) {
        self.0.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A connection's place in the registry: updated by the connection, removed when dropped.
pub struct ClientHandle {
    entry: Arc<Entry>,
    registry: Arc<Mutex<Registry>>,
}

impl Clients {
    /// A registry listing at most `max` clients (past it a connection runs unlisted).
    pub fn new(max: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Registry {
                max,
                ..Registry::default()
            })),
        }
    }

    pub fn set_max(&self, max: usize) {
        self.registry().max = max;
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lists a new connection; `kill` is the token its task stops on.
    pub fn register(
        &self,
        addr: SocketAddr,
        protocol: &'static str,
        kill: CancellationToken,
    ) -> ClientHandle {
        let mut r = self.registry();
        r.next_id += 1;
        let entry = Arc::new(Entry {
            id: r.next_id,
            addr,
            protocol,
            since: Instant::now(),
            bytes: AtomicU64::new(0),
            described: Mutex::new(Described {
                role: ClientRole::Connecting,
                stream: None,
                credential: None,
            }),
            kill,
            kicked: AtomicBool::new(false),
        });
        if r.entries.len() < r.max {
            r.entries.insert(entry.id, entry.clone());
        }
        ClientHandle {
            entry,
            registry: self.inner.clone(),
        }
    }

    /// Every listed client, by id.
    pub fn list(&self) -> Vec<ClientInfo> {
        let now = Instant::now();
        let mut v: Vec<ClientInfo> = self
            .registry()
            .entries
            .values()
            .map(|e| e.info(now))
            .collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// Kicks one client; its description as it was, or `None` if no such client.
    pub fn kick(&self, id: u64) -> Option<ClientInfo> {
        let entry = self.registry().entries.get(&id).cloned()?;
        entry.kick();
        Some(entry.info(Instant::now()))
    }

    /// Kicks the publishers of `key` (one, unless a takeover is under way).
    pub fn kick_publishers(&self, key: &StreamKey) -> Vec<ClientInfo> {
        self.kick_where(|d, _| d.role == ClientRole::Publisher && d.stream.as_ref() == Some(key))
    }

    /// Kicks every client whose address is in `net` (a new ban).
    pub fn kick_addresses(&self, net: &ipnet::IpNet) -> Vec<ClientInfo> {
        self.kick_where(|_, ip| net.contains(&ip))
    }

    fn kick_where(&self, pick: impl Fn(&Described, IpAddr) -> bool) -> Vec<ClientInfo> {
        let picked: Vec<Arc<Entry>> = self
            .registry()
            .entries
            .values()
            .filter(|e| {
                let d = e.described.lock().unwrap_or_else(|p| p.into_inner());
                pick(&d, e.addr.ip())
            })
            .cloned()
            .collect();
        let now = Instant::now();
        picked
            .iter()
            .map(|e| {
                e.kick();
                e.info(now)
            })
            .collect()
    }
}

impl ClientHandle {
    pub fn id(&self) -> u64 {
        self.entry.id
    }

    /// The token the connection stops on (cancelled by a kick).
    pub fn kill_token(&self) -> &CancellationToken {
        &self.entry.kill
    }

    /// True once an operator kicked this client (not at server shutdown).
    pub fn kicked(&self) -> bool {
        self.entry.kicked.load(Ordering::Relaxed)
    }

    pub fn add_bytes(&self, n: usize) {
        self.entry.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// This connection's byte count, for whoever writes on its behalf (a fan-out loop).
    pub fn byte_counter(&self) -> ByteCounter {
        ByteCounter(self.entry.clone())
    }

    /// The connection now publishes or plays `stream`, with the named credential.
    pub fn started(&self, role: ClientRole, stream: StreamKey, credential: Option<String>) {
        let mut d = self
            .entry
            .described
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *d = Described {
            role,
            stream: Some(stream),
            credential,
        };
    }
}

impl Drop for ClientHandle {
    fn drop(&mut self) {
        let mut r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if r.entries
            .get(&self.entry.id)
            .is_some_and(|e| Arc::ptr_eq(e, &self.entry))
        {
            r.entries.remove(&self.entry.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn register_describe_kick_and_drop() {
        let clients = Clients::new(10);
        let a = clients.register(addr("10.0.0.1:5000"), "rtmp", CancellationToken::new());
        let b = clients.register(addr("10.0.0.2:5000"), "flv", CancellationToken::new());
        a.started(
            ClientRole::Publisher,
            StreamKey::new("live", "t"),
            Some("studio".into()),
        );
        a.add_bytes(1000);
        let list = clients.list();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].stream.as_deref(), Some("live/t"));
        assert_eq!(list[0].credential.as_deref(), Some("studio"));
        assert_eq!(list[0].bytes, 1000);
        assert_eq!(list[1].role, ClientRole::Connecting);

        let kicked = clients.kick_publishers(&StreamKey::new("live", "t"));
        assert_eq!(kicked.len(), 1);
        assert!(a.kicked() && a.kill_token().is_cancelled());
        assert!(!b.kicked() && !b.kill_token().is_cancelled());

        assert!(clients.kick(9999).is_none());
        let net: ipnet::IpNet = "10.0.0.2/32".parse().unwrap();
        assert_eq!(clients.kick_addresses(&net).len(), 1);
        assert!(b.kicked());
        drop(a);
        assert_eq!(clients.list().len(), 1);
        drop(b);
        assert!(clients.list().is_empty());
    }
}
