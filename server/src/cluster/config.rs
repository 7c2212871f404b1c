//! The `[cluster]` and `[[pull]]` sections: where an edge pulls from, how long it waits and
//! keeps pulling, the stream directory, and the pull sources. Defaults leave all of it off.

use serde::{Deserialize, Serialize};

/// What an edge does with a publish that reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgePublish {
    /// Accept it locally and relay it to the first origin that takes it.
    Forward,
    /// Refuse it (`NetStream.Publish.BadName`, "publish to an origin").
    #[default]
    Refuse,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Origins to pull from, `rtmp://host:port`, tried in order (after the directory's
    /// answer). Non-empty (or `directory` set) makes this server an edge for streams that
    /// are not published here.
    pub origins: Vec<String>,
    /// The pull stops this long after its last viewer left (HLS: after the last playlist
    /// or segment request).
    pub edge_idle_ms: u64,
    /// Viewers arriving while a pull starts wait this long for it, then get 404 /
    /// `NetStream.Play.StreamNotFound`.
    pub edge_wait_ms: u64,
    /// The play token the edge presents upstream (`?token=`), so origins may require one.
    pub origin_credential: String,
    pub edge_publish: EdgePublish,
    /// `redis://host:port`: the stream directory shared by origins (and read by edges).
    pub directory: String,
    /// How long a directory entry lives unless renewed: a crashed origin frees its names
    /// within this.
    pub directory_lease_ms: u64,
    /// Each Redis command must answer within this, or the directory counts as down.
    pub directory_timeout_ms: u64,
    /// The RTMP base URL other servers reach this one at, written in the directory
    /// (default: `rtmp://` and the RTMP listener's address).
    pub advertise: String,
    /// This server's name in the hop list (`onair_via`) of pulls; default: random.
    pub node_id: String,
    /// A pull whose request already passed this many servers is refused (loops, runaway trees).
    pub max_hops: usize,
    /// Most pulls running at once (edge and `[[pull]]`); a viewer of one more stream gets
    /// 404 rather than a new upstream (requests for made-up names cannot pile them up).
    pub max_pulls: usize,
    /// Reconnect backoff of pulls: first wait, doubled per failure up to the max.
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
    /// TCP connect, handshake and play must be done within this.
    pub connect_timeout_ms: u64,
    /// An upstream that sends nothing for this long is dropped as stalled.
    pub read_timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            origins: Vec::new(),
            edge_idle_ms: 10_000,
            edge_wait_ms: 5_000,
            origin_credential: String::new(),
            edge_publish: EdgePublish::Refuse,
            directory: String::new(),
            directory_lease_ms: 5_000,
            directory_timeout_ms: 1_000,
            advertise: String::new(),
            node_id: String::new(),
            max_hops: 8,
            max_pulls: 1000,
            retry_min_ms: 200,
            retry_max_ms: 5_000,
            connect_timeout_ms: 3_000,
            read_timeout_ms: 5_000,
        }
    }
}

impl ClusterConfig {
    /// Streams not published here are pulled from an origin.
    pub fn is_edge(&self) -> bool {
        !self.origins.is_empty() || !self.directory.is_empty()
    }
}

/// RTSP transport of a camera pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    /// RTP interleaved on the RTSP connection (works through NAT and firewalls).
    #[default]
    Tcp,
    Udp,
}

/// One `[[pull]]`: a stream of this server fed from another server or a camera.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PullConfig {
    /// `app/stream` it is served as.
    pub name: String,
    /// `rtmp://host:port/app/stream` or `rtsp://[user:pass@]host:port/path`.
    pub url: String,
    /// Pull only while someone watches (stops `cluster.edge_idle_ms` after the last
    /// viewer); `false` pulls from start to shutdown.
    pub on_demand: bool,
    /// RTSP only.
    pub transport: RtspTransport,
}

impl Default for PullConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            url: String::new(),
            on_demand: true,
            transport: RtspTransport::Tcp,
        }
    }
}
