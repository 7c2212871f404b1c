//! Past one machine: which origin an edge pulls a stream from (the Redis directory first,
//! then the `origins` list, last good first), what an origin registers in the directory
//! (every stream it carries, under a renewed lease), and the publish rules of a cluster
//! (edges refuse or forward publishes; a name live on another origin is refused or taken
//! over as on one origin). The pulls themselves are `crate::pull`'s.

pub mod config;
pub mod directory;
pub mod forward;
pub mod hops;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::hub::{Hub, PublishError, StreamKey};
use config::{ClusterConfig, EdgePublish};
use directory::{Claim, Directory};

pub struct Cluster {
    cfg: ClusterConfig,
    node_id: String,
    /// `{node_id} {advertise}`: this origin's directory value.
    entry: String,
    directory: Option<Directory>,
    /// Index in `origins` of the last origin a pull reached: tried first next time.
    last_good: Mutex<usize>,
    takeover: bool,
}

impl Cluster {
    /// `rtmp_addr` is the RTMP listener's bound address (the default `advertise`).
    pub fn new(cfg: ClusterConfig, rtmp_addr: SocketAddr, takeover: bool) -> anyhow::Result<Self> {
        let node_id = if cfg.node_id.is_empty() {
            random_id()
        } else if hops::valid_node_id(&cfg.node_id) {
            cfg.node_id.clone()
        } else {
            anyhow::bail!("cluster.node_id must be 1-32 letters or digits");
        };
        for o in &cfg.origins {
            crate::pull::rtmp::Target::origin(o, "live", "x")
                .map_err(|e| anyhow::anyhow!("cluster.origins: {e}"))?;
        }
        let advertise = if cfg.advertise.is_empty() {
            format!("rtmp://{rtmp_addr}")
        } else {
            cfg.advertise.clone()
        };
        let directory = if cfg.directory.is_empty() {
            None
        } else {
            Some(
                Directory::new(
                    &cfg.directory,
                    Duration::from_millis(cfg.directory_timeout_ms),
                    Duration::from_millis(cfg.directory_lease_ms),
                )
                .map_err(|e| anyhow::anyhow!("cluster.directory: {e}"))?,
            )
        };
        tracing::info!(node_id = %node_id, edge = cfg.is_edge(), origins = cfg.origins.len(), directory = directory.is_some(), "cluster");
        Ok(Self {
            entry: format!("{node_id} {advertise}"),
            node_id,
            directory,
            last_good: Mutex::new(0),
            takeover,
            cfg,
        })
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Origins to try for `key`, in order: the directory's (unless it names this server),
    /// then the list starting from the last one that worked.
    pub async fn candidates(&self, key: &StreamKey) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(dir) = &self.directory {
            match dir.lookup(key).await {
                Ok(Some(value)) if value != self.entry => match directory::origin_of(&value) {
                    Some(url) => v.push(url.to_string()),
                    None => tracing::warn!(stream = %key, "directory entry is not `id rtmp://…`"),
                },
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(stream = %key, error = %e, "directory lookup failed; trying the origin list")
                }
            }
        }
        let n = self.cfg.origins.len();
        let start = *self.last_good.lock().unwrap_or_else(|p| p.into_inner());
        for i in 0..n {
            let o = &self.cfg.origins[(start + i) % n];
            if !v.contains(o) {
                v.push(o.clone());
            }
        }
        v
    }

    /// A pull from `origin` went live: try it first next time.
    pub fn reached(&self, origin: &str) {
        if let Some(i) = self.cfg.origins.iter().position(|o| o == origin) {
            *self.last_good.lock().unwrap_or_else(|p| p.into_inner()) = i;
        }
    }

    /// Whether an edge relays publishes (forward) rather than refusing them; `None` on a
    /// server without an origin list (an origin, which takes publishes itself).
    pub fn edge_publish(&self) -> Option<EdgePublish> {
        (!self.cfg.origins.is_empty()).then_some(self.cfg.edge_publish)
    }

    /// The cluster's rules for a publish of `key` on this server: refused on an edge set
    /// to refuse, and refused (or taken over) when another origin holds the name in the
    /// directory. A directory that is down lets the publish through (logged): the local
    /// stream is served, and registration is retried.
    pub async fn admit_publish(&self, key: &StreamKey) -> Result<(), PublishError> {
        if self.edge_publish() == Some(EdgePublish::Refuse) {
            return Err(PublishError::EdgeRefuses);
        }
        let Some(dir) = &self.directory else {
            return Ok(());
        };
        match dir.claim(key, &self.entry).await {
            Ok(Claim::Ours) => Ok(()),
            Ok(Claim::Held(other)) if self.takeover => {
                tracing::info!(stream = %key, holder = %other, "taking over a name live on another origin");
                if let Err(e) = dir.take(key, &self.entry).await {
                    tracing::warn!(stream = %key, error = %e, "directory takeover failed");
                }
                Ok(())
            }
            Ok(Claim::Held(other)) => {
                tracing::warn!(stream = %key, holder = %other, "publish refused: live on another origin");
                Err(PublishError::AlreadyPublishing(key.clone()))
            }
            Err(e) => {
                tracing::warn!(stream = %key, error = %e, "directory unreachable; publishing locally, registration retried");
                Ok(())
            }
        }
    }

    /// A publish was accepted here: on an edge set to forward, relay it to an origin.
    /// `query` is the publish request's (its hop list: forwards must not loop either).
    pub fn published(self: &Arc<Self>, stream: &Arc<crate::hub::Stream>, query: &str) {
        if self.edge_publish() != Some(EdgePublish::Forward) {
            return;
        }
        match hops::extend(&hops::parse(query), &self.node_id, self.cfg.max_hops) {
            Ok(via) => {
                tokio::spawn(forward::run(self.clone(), stream.clone(), via));
            }
            Err(e) => {
                tracing::warn!(parent: &stream.span, error = %e, "publish not forwarded");
            }
        }
    }

    /// Keeps the directory in step with the hub until `shutdown`: every stream carried
    /// here (published or pulled from a source, not edge pulls) is registered and renewed
    /// every third of the lease; names that ended are released.
    pub async fn run_registration(self: Arc<Self>, hub: Hub, shutdown: CancellationToken) {
        let Some(dir) = &self.directory else { return };
        let every = Duration::from_millis((self.cfg.directory_lease_ms / 3).max(50));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut held: HashSet<StreamKey> = HashSet::new();
        let mut down = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            let live: HashSet<StreamKey> = hub
                .list()
                .into_iter()
                .filter(|s| s.publisher().is_some_and(|p| p.source != "edge"))
                .map(|s| s.key.clone())
                .collect();
            let mut failed = None;
            for key in &live {
                match dir.renew(key, &self.entry).await {
                    Ok(true) => {
                        if held.insert(key.clone()) {
                            tracing::info!(stream = %key, "registered in the directory");
                        }
                    }
                    Ok(false) => {
                        if held.remove(key) {
                            tracing::warn!(stream = %key, "another origin took this name in the directory");
                        }
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if failed.is_none() {
                for key in held.clone().difference(&live) {
                    match dir.release(key, &self.entry).await {
                        Ok(()) => {
                            held.remove(key);
                        }
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
            }
            match failed {
                Some(e) if !down => {
                    tracing::warn!(error = %e, "directory unreachable; local streams keep serving, registration retried");
                    down = true;
                }
                None if down => {
                    tracing::info!("directory reachable again");
                    down = false;
                }
                _ => {}
            }
        }
        // Shutdown: free our names at once rather than at lease end.
        for key in &held {
            let _ = dir.release(key, &self.entry).await;
        }
    }
}

/// 8 hex digits from the clock and the process id: enough to tell servers apart in a hop list.
fn random_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}
