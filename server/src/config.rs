//! Server configuration: one TOML file, every limit named and defaulted, so that
//! `onair serve` works with no file at all. Unknown keys are errors, not silent defaults.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub rtmp: RtmpConfig,
    pub http: HttpConfig,
    pub hub: HubConfig,
    pub hls: HlsConfig,
    pub auth: AuthConfig,
    pub api: ApiConfig,
    pub qoe: QoeConfig,
    pub admin: AdminConfig,
    pub metrics: MetricsConfig,
    pub tls: TlsConfig,
    pub rtmpt: RtmptConfig,
    pub record: crate::record::RecordConfig,
    /// Edges, origins and the stream directory (issue 14).
    pub cluster: crate::cluster::config::ClusterConfig,
    /// Streams pulled from other servers and cameras (`[[pull]]`).
    pub pull: Vec<crate::cluster::config::PullConfig>,
    pub webrtc: crate::webrtc::WebRtcConfig,
}

/// The certificate of the RTMPS and HTTPS listeners (`rtmp.tls_addr`, `http.tls_addr`):
/// PEM files, re-read on every reload (certificate renewals), or one generated at start.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert: Option<std::path::PathBuf>,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<std::path::PathBuf>,
    /// Generate a self-signed certificate for localhost at start (local tests only).
    pub self_signed: bool,
    /// The TLS handshake must finish within this time after accept.
    pub handshake_timeout_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            self_signed: false,
            handshake_timeout_ms: 5_000,
        }
    }
}

/// Viewer-experience beacons (`POST /api/qoe`): what players report about their playback,
/// kept per stream as aggregates over a sliding window. Every bound is here: body size,
/// body read time, beacons per client address, addresses tracked, samples per stream.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct QoeConfig {
    /// Accept beacons at `POST /api/qoe` (otherwise 404, and the API's `qoe` is null).
    pub enabled: bool,
    /// Largest beacon body; a longer one is answered 413 without being kept.
    pub max_body_bytes: usize,
    /// The body must arrive within this after the request head (else 408).
    pub body_read_timeout_ms: u64,
    /// Aggregates cover the beacons of this last stretch of time.
    pub window_ms: u64,
    /// Most beacons kept per stream; past it the oldest go first (the window shrinks).
    pub max_samples_per_stream: usize,
    /// Token bucket per client address (IPv6: per /64): beacons per second refilled...
    pub client_beacons_per_s: f64,
    /// ...and the bucket's size: beacons one address may send at once. A player sends
    /// one every 10 s, so this is about how many viewers may share one address (NAT).
    pub client_burst: u32,
    /// Most client addresses whose buckets are remembered; past it full buckets are
    /// forgotten first, then the longest idle.
    pub max_tracked_clients: usize,
}

impl Default for QoeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_body_bytes: 2048,
            body_read_timeout_ms: 5_000,
            window_ms: 60_000,
            max_samples_per_stream: 4096,
            client_beacons_per_s: 2.0,
            client_burst: 40,
            max_tracked_clients: 10_000,
        }
    }
}

/// A secret (publish key, play token, admin token) with a name that logs and the admin API
/// show instead of the secret. In the file either `{ name = "studio-obs", secret = "…" }` or
/// a bare string, which is named by its position (`publish_keys.live[0]`), so files written
/// before names existed keep loading.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Credential {
    Bare(String),
    Named(NamedCredential),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NamedCredential {
    pub name: String,
    pub secret: String,
}

impl Credential {
    pub fn secret(&self) -> &str {
        match self {
            Credential::Bare(s) => s,
            Credential::Named(n) => &n.secret,
        }
    }

    /// Its name, or `position` for a bare string.
    pub fn name(&self, position: impl FnOnce() -> String) -> String {
        match self {
            Credential::Bare(_) => position(),
            Credential::Named(n) => n.name.clone(),
        }
    }
}

impl From<&str> for Credential {
    fn from(s: &str) -> Self {
        Credential::Bare(s.to_string())
    }
}

/// The operators' API on a listener of its own, behind bearer tokens. Off without a token.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address the admin listener binds. Keep it on loopback or a private network.
    pub addr: SocketAddr,
    /// Bearer tokens (`Authorization: Bearer SECRET`); the admin API is off while empty.
    pub tokens: Vec<Credential>,
    /// Most admin connections at once.
    pub max_connections: usize,
    /// Largest request body (a ban), in bytes.
    pub max_body_bytes: usize,
    /// Request headers must arrive within this time (slowloris).
    pub header_read_timeout_ms: u64,
    /// Largest request head, in bytes; at least 8192.
    pub max_header_bytes: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            addr: ([127, 0, 0, 1], 8081).into(),
            tokens: Vec::new(),
            max_connections: 64,
            max_body_bytes: 16 << 10,
            header_read_timeout_ms: 5_000,
            max_header_bytes: 16 << 10,
        }
    }
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsListener {
    /// On the public HTTP port, without a token.
    #[default]
    Public,
    /// Only on the admin listener, behind an admin token.
    Admin,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub listener: MetricsListener,
}

/// The public JSON API on the HTTP port. It describes streams for viewers and the player
/// and never identifies a client: no addresses, no per-connection data, no credentials.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Serve the list of streams at `/api/streams`. Without it the list answers 404, while
    /// one stream stays readable by its name (`/api/streams/{app}/{name}`) and playable.
    pub public_list: bool,
    /// Apps whose streams are left out of the public list (still playable by name).
    pub private_apps: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            public_list: true,
            private_apps: Vec::new(),
        }
    }
}

/// Who may publish and play. With the defaults everyone may.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Publish keys per app: a publisher to `app` must give one of them as `key`
    /// (`rtmp://host/app/name?key=SECRET`, or OBS stream key `name?key=SECRET`).
    pub publish_keys: std::collections::BTreeMap<String, Vec<Credential>>,
    /// Refuse publishing to apps that have no keys listed.
    pub require_publish_key: bool,
    /// If not empty, playing needs one of these as `token` (`rtmp://host/app/name?token=T`,
    /// `http://host/app/name.flv?token=T`, `…/name.m3u8?token=T`).
    pub play_tokens: Vec<Credential>,
    /// `http://` URL POSTed a JSON event on every publish and play (like SRS on_publish
    /// and nginx-rtmp on_publish); a 2xx answer allows, anything else refuses.
    pub hook_url: String,
    /// The hook must answer within this, or the request is refused.
    pub hook_timeout_ms: u64,
    /// An address that gives this many wrong publish keys or play tokens within
    /// `ban_window_ms` is refused at accept for `ban_duration_ms`. 0: never.
    pub ban_after_failures: u32,
    pub ban_window_ms: u64,
    pub ban_duration_ms: u64,
    /// Most operator and automatic bans at once.
    pub max_bans: usize,
    /// Most addresses whose recent wrong keys and tokens are remembered.
    pub max_tracked_addresses: usize,
    /// Addresses or CIDR ranges (`203.0.113.7`, `10.0.0.0/8`) refused at accept on every
    /// listener, for as long as they are listed.
    pub banned: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            publish_keys: Default::default(),
            require_publish_key: false,
            play_tokens: Vec::new(),
            hook_url: String::new(),
            hook_timeout_ms: 0,
            ban_after_failures: 0,
            ban_window_ms: 60_000,
            ban_duration_ms: 600_000,
            max_bans: 10_000,
            max_tracked_addresses: 10_000,
            banned: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HlsConfig {
    /// Segment every live stream for HLS.
    pub enabled: bool,
    /// Target segment length. Segments are cut at keyframes, so the real length is
    /// max(target, GOP length).
    pub segment_duration_ms: u64,
    /// Segments listed in the live playlist.
    pub window: usize,
    /// How long a segment stays fetchable after leaving the playlist, for slow clients.
    pub keep_after_ms: u64,
    /// A segment that grows past this without a keyframe to cut at is dropped.
    pub max_segment_bytes: usize,
    /// Also write segments and playlists under this folder (`{dir}/{app}/{stream}/`),
    /// deleting them as they expire. Empty: memory only.
    pub dir: std::path::PathBuf,
    /// What `{stream}.m3u8` serves; see `HlsVariant`.
    pub variant: HlsVariant,
    /// Target length of a Low-Latency HLS part (cut at frame boundaries).
    pub part_duration_ms: u64,
    /// Bytes of segments and parts one stream holds in memory, all variants together
    /// (with `auto`, TS and fMP4 get half each); the oldest segments go first.
    pub max_memory_bytes: usize,
    /// Blocking playlist and part requests held at once, server-wide; past it a request
    /// that would be held is answered 503 at once.
    pub max_blocking_requests: usize,
    /// Longest a blocking request is held before it is answered 503.
    pub blocking_timeout_ms: u64,
    /// DVR window (time-shift): for streams being recorded as fMP4 (`[record]`), the fMP4
    /// and LL-HLS playlists also list the segments of this much time before the live
    /// window, served from the recording. 0: off.
    pub dvr_window_ms: u64,
    /// Most segments the DVR window lists before the live window (bounds the playlist and
    /// the segment times each stream remembers).
    pub dvr_max_segments: usize,
}

/// Which HLS `{stream}.m3u8` serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum HlsVariant {
    /// Low-latency fMP4 by default; `?variant=ts` gives MPEG-TS (old set-top players)
    /// and `?variant=fmp4` fMP4 without parts. Both segmenters run.
    #[default]
    Auto,
    /// MPEG-TS segments only (no AV1, VP9, Opus or FLAC).
    Ts,
    /// fMP4 (CMAF) segments, no parts.
    Fmp4,
    /// fMP4 segments with LL-HLS parts, blocking reload and delta updates.
    LowLatency,
}

impl HlsVariant {
    pub fn name(self) -> &'static str {
        match self {
            HlsVariant::Auto => "auto",
            HlsVariant::Ts => "ts",
            HlsVariant::Fmp4 => "fmp4",
            HlsVariant::LowLatency => "low-latency",
        }
    }

    /// The MPEG-TS segmenter runs.
    pub fn has_ts(self) -> bool {
        matches!(self, HlsVariant::Auto | HlsVariant::Ts)
    }

    /// The fMP4 segmenter runs.
    pub fn has_fmp4(self) -> bool {
        self != HlsVariant::Ts
    }
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            segment_duration_ms: 2_000,
            window: 6,
            keep_after_ms: 10_000,
            max_segment_bytes: 64 << 20,
            dir: std::path::PathBuf::new(),
            variant: HlsVariant::Auto,
            part_duration_ms: 200,
            max_memory_bytes: 256 << 20,
            max_blocking_requests: 10_000,
            blocking_timeout_ms: 6_000,
            dvr_window_ms: 0,
            dvr_max_segments: 3_600,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtmpConfig {
    /// Address the RTMP listener binds.
    pub addr: SocketAddr,
    /// Address of the RTMPS listener (RTMP over TLS, certificate from `[tls]`); none: off.
    pub tls_addr: Option<SocketAddr>,
    /// Most RTMP connections at once (publishers and players); more are closed at accept.
    pub max_connections: usize,
    /// Most RTMP connections at once from one IP address.
    pub max_connections_per_ip: usize,
    /// Largest Set Chunk Size a peer may announce.
    pub max_chunk_size: u32,
    /// Largest RTMP message a peer may send (a video keyframe must fit).
    pub max_message_size: u32,
    /// Largest AMF0 command or data message (connect, publish, onMetaData).
    pub max_command_size: u32,
    /// Deepest AMF0 nesting accepted in commands and metadata.
    pub max_amf_depth: usize,
    /// Most chunk streams a peer may have open at once.
    pub max_chunk_streams: usize,
    /// Chunk size we send with; every player shares chunks built once per frame at this size.
    pub out_chunk_size: u32,
    /// The whole handshake must finish within this time.
    pub handshake_timeout_ms: u64,
    /// A connection that sends nothing for this long is closed (publishers, and clients
    /// that have not started playing).
    pub idle_timeout_ms: u64,
    /// After a refusal (its status sent and our side shut down), the client's input is
    /// read and dropped for at most this long, so it reads the status instead of a reset.
    /// 0 closes at once.
    pub refusal_drain_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address the HTTP listener binds (HTTP-FLV, API, player).
    pub addr: SocketAddr,
    /// Address of the HTTPS listener, serving all of the above over TLS; none: off.
    pub tls_addr: Option<SocketAddr>,
    /// Most HTTP connections at once.
    pub max_connections: usize,
    /// Most HTTP connections at once from one IP address.
    pub max_connections_per_ip: usize,
    /// Request headers must arrive within this time (slowloris).
    pub header_read_timeout_ms: u64,
    /// Largest request head (request line plus headers), in bytes; at least 8192.
    pub max_header_bytes: usize,
    /// Folder of the built browser player (`npm run build` in player-web/), served at `/live`.
    pub player_dir: std::path::PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Most live streams at once; further publishes are refused.
    pub max_streams: usize,
    /// Most viewers of one stream at once (RTMP and HTTP-FLV; HLS clients are not connections).
    pub max_viewers_per_stream: usize,
    /// GOP cache bounds: frames since the last keyframe kept for new viewers. Past either
    /// bound the cache is emptied until the next keyframe (new viewers then wait for it).
    pub gop_cache_max_frames: usize,
    pub gop_cache_max_bytes: usize,
    /// Frames a viewer may fall behind the publisher before it is skipped to the next keyframe.
    pub viewer_queue_frames: usize,
    /// A viewer whose socket accepts nothing for this long is dropped.
    pub viewer_write_timeout_ms: u64,
    /// Longest time audio waits to be written together with the next video frame.
    pub merge_wait_ms: u64,
    /// Plain-TCP RTMP viewers are written by per-stream fan-out loops, one pass over many
    /// viewers per frame, rather than each by its own connection task (RTMPS and RTMPT
    /// viewers always are).
    pub fanout: bool,
    /// Most fan-out loops per stream; 0: one per CPU core.
    pub fanout_loops: usize,
    /// A stream starts another fan-out loop (up to `fanout_loops`) only when each of its
    /// loops holds this many viewers: every loop is a task woken per frame, and a second
    /// one costs a cross-core wake-up per frame that a few hundred viewers do not repay.
    pub fanout_viewers_per_loop: usize,
    /// After its publisher leaves, a stream waits this long for it to return before its
    /// viewers are closed.
    pub publisher_grace_ms: u64,
    /// A second publisher of a live name replaces the first (instead of being refused).
    pub publisher_takeover: bool,
    /// A publisher that has sent nothing for this long is replaced by a new publish of its
    /// name: an encoder that lost its network reconnects before its old connection is known
    /// dead. 0: never (then only `publisher_takeover` or the idle timeout frees the name).
    pub publisher_stale_ms: u64,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        Self {
            addr: ([0, 0, 0, 0], 1935).into(),
            tls_addr: None,
            max_connections: 2000,
            max_connections_per_ip: 1000,
            max_chunk_size: 1 << 20,
            max_message_size: 8 << 20,
            max_command_size: 64 << 10,
            max_amf_depth: 16,
            max_chunk_streams: 64,
            out_chunk_size: 4096,
            handshake_timeout_ms: 5_000,
            idle_timeout_ms: 15_000,
            refusal_drain_ms: 2_000,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: ([0, 0, 0, 0], 8080).into(),
            tls_addr: None,
            max_connections: 4000,
            max_connections_per_ip: 1000,
            header_read_timeout_ms: 5_000,
            max_header_bytes: 16 << 10,
            player_dir: "player-web/dist".into(),
        }
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            max_streams: 64,
            max_viewers_per_stream: 5000,
            gop_cache_max_frames: 1200,
            gop_cache_max_bytes: 32 << 20,
            viewer_queue_frames: 512,
            viewer_write_timeout_ms: 10_000,
            merge_wait_ms: 40,
            fanout: true,
            fanout_loops: 0,
            fanout_viewers_per_loop: 500,
            publisher_grace_ms: 5_000,
            publisher_takeover: false,
            publisher_stale_ms: 3_000,
        }
    }
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading config {}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))
    }
}

/// RTMPT: RTMP tunnelled in HTTP POSTs (`/open/1`, `/send/…`, `/idle/…`, `/close/…`) on
/// the HTTP and HTTPS listeners. Each session is one RTMP connection: it also takes a place
/// within `[rtmp] max_connections` and `max_connections_per_ip`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtmptConfig {
    /// Answer the RTMPT paths (otherwise they are 404).
    pub enabled: bool,
    /// Most RTMPT sessions at once.
    pub max_sessions: usize,
    /// A session with no request for this long is closed.
    pub idle_timeout_ms: u64,
    /// Largest `/send` body; a larger one is answered 413 and its session closed.
    pub max_send_bytes: usize,
    /// A request body must arrive within this after its head (else 408).
    pub body_read_timeout_ms: u64,
    /// Bytes the server may hold for a session in each direction, waiting for the client's
    /// next request (server to client) or for the RTMP session to read them. A player that
    /// does not poll stalls its writer, which drops it after `hub.viewer_write_timeout_ms`.
    pub buffer_bytes: usize,
    /// Most bytes one reply carries; the rest waits for the next request.
    pub max_reply_bytes: usize,
    /// An `/idle` with nothing to send waits this long for bytes before answering empty.
    pub idle_reply_wait_ms: u64,
}

impl Default for RtmptConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_sessions: 256,
            idle_timeout_ms: 15_000,
            max_send_bytes: 4 << 20,
            body_read_timeout_ms: 5_000,
            buffer_bytes: 1 << 20,
            max_reply_bytes: 512 << 10,
            idle_reply_wait_ms: 200,
        }
    }
}

pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.rtmp.addr.port(), 1935);
        assert_eq!(c.http.addr.port(), 8080);
        assert_eq!(c.hub.viewer_queue_frames, 512);
    }

    #[test]
    fn partial_sections_keep_other_defaults() {
        let c = Config::from_toml("[hub]\nmax_streams = 3\n").unwrap();
        assert_eq!(c.hub.max_streams, 3);
        assert_eq!(c.hub.publisher_grace_ms, 5_000);
    }

    #[test]
    fn qoe_section_is_read() {
        let c = Config::from_toml("[qoe]\nmax_body_bytes = 512\nclient_burst = 3\n").unwrap();
        assert_eq!(c.qoe.max_body_bytes, 512);
        assert_eq!(c.qoe.client_burst, 3);
        assert_eq!(c.qoe.window_ms, 60_000);
        assert!(Config::from_toml("[qoe]\nmax_body = 1\n").is_err());
    }

    #[test]
    fn typo_is_an_error() {
        let err = Config::from_toml("[hub]\nmax_stream = 3\n").unwrap_err();
        assert!(err.to_string().contains("max_stream"), "{err}");
    }

    #[test]
    fn credentials_bare_or_named() {
        let c = Config::from_toml(
            "[auth]\nplay_tokens = [\"t0\", { name = \"web\", secret = \"t1\" }]\n\
             [auth.publish_keys]\nlive = [\"k0\"]\n\
             [admin]\ntokens = [{ name = \"ops\", secret = \"a\" }]\n",
        )
        .unwrap();
        assert_eq!(c.auth.play_tokens[0], Credential::from("t0"));
        assert_eq!(c.auth.play_tokens[1].name(|| "x".into()), "web");
        assert_eq!(c.auth.play_tokens[1].secret(), "t1");
        assert_eq!(c.auth.publish_keys["live"][0].secret(), "k0");
        assert_eq!(c.admin.tokens[0].name(String::new), "ops");
        let err = Config::from_toml("[admin]\ntokens = [{ name = \"ops\", secre = \"a\" }]\n")
            .unwrap_err();
        assert!(err.to_string().contains("tokens"), "{err}");
        let c = Config::from_toml("[metrics]\nlistener = \"admin\"\n").unwrap();
        assert_eq!(c.metrics.listener, MetricsListener::Admin);
    }

    #[test]
    fn defaults_roundtrip_through_toml() {
        let text = toml::to_string(&Config::default()).unwrap();
        let back = Config::from_toml(&text).unwrap();
        assert_eq!(
            back.rtmp.max_message_size,
            Config::default().rtmp.max_message_size
        );
    }
}
