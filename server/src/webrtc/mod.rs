//! WebRTC playback over WHEP: str0m sessions (ICE-lite, DTLS-SRTP) on one muxed UDP
//! port, H.264 passed through as RTP packetized once per frame, audio as Opus (AAC
//! transcoded once per stream). This module owns the socket and the session registry;
//! protocol work is in the sans-IO parts (`demux`, `offer`, `h264`, `clock`). It never
//! lets one viewer's traffic (or garbage on the port) slow another.

pub mod av1;
mod clock;
pub mod config;
pub mod demux;
pub mod h264;
pub mod offer;
mod session;
mod transcode;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::{Candidate, IceCreds, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::WebRtcConfig;
pub use offer::OfferError;
use session::{Command, Datagram, Session};

use crate::hub::{Hub, Protocol, SharedFrame, StreamKey, SubscribeError};

/// Most source addresses one session may be reached from (ICE checks from each of the
/// viewer's candidates); past it further ones are not routed.
const MAX_ADDRS_PER_SESSION: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum WhepError {
    #[error(transparent)]
    Offer(#[from] OfferError),
    #[error("the offer is not valid SDP: {0}")]
    Sdp(String),
    #[error("the offer could not be answered: {0}")]
    Answer(String),
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
    #[error("this server already has its limit of {0} WebRTC viewers")]
    TooManyViewers(usize),
}

impl WhepError {
    pub fn http_status(&self) -> u16 {
        match self {
            WhepError::Offer(OfferError::TooLarge(..)) => 413,
            WhepError::Offer(
                OfferError::NoH264
                | OfferError::NoAv1
                | OfferError::NoOpus
                | OfferError::VideoCodec(_),
            ) => 406,
            WhepError::Offer(_) | WhepError::Sdp(_) => 400,
            WhepError::Answer(_) => 500,
            WhepError::Subscribe(SubscribeError::NotFound(_)) => 404,
            WhepError::Subscribe(SubscribeError::TooManyViewers(..))
            | WhepError::TooManyViewers(_) => 503,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            WhepError::Offer(OfferError::TooLarge(..)) => "whep_offer_too_large",
            WhepError::Offer(
                OfferError::NoH264
                | OfferError::NoAv1
                | OfferError::NoOpus
                | OfferError::VideoCodec(_),
            ) => "whep_codec",
            WhepError::Offer(_) | WhepError::Sdp(_) => "whep_bad_offer",
            WhepError::Answer(_) => "whep_answer",
            WhepError::Subscribe(SubscribeError::NotFound(_)) => "not_found",
            WhepError::Subscribe(SubscribeError::TooManyViewers(..)) => "max_viewers_per_stream",
            WhepError::TooManyViewers(_) => "webrtc_max_viewers",
        }
    }
}

/// An answered offer: the SDP answer and the id of the WHEP resource.
#[derive(Debug)]
pub struct Answer {
    pub id: String,
    pub sdp: String,
}

/// The WebRTC output: cheap to clone, one per server.
#[derive(Clone)]
pub struct WebRtc {
    shared: Arc<WebRtcShared>,
}

pub(crate) struct WebRtcShared {
    cfg: Arc<WebRtcConfig>,
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    candidates: Vec<SocketAddr>,
    sessions: Mutex<Sessions>,
    feeds: transcode::OpusFeeds,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// Datagrams that matched no session (garbage, floods, late packets).
    pub unrouted: AtomicU64,
    /// Datagrams dropped because their session's queue was full.
    pub dropped: AtomicU64,
}

#[derive(Default)]
struct Sessions {
    by_id: HashMap<String, Entry>,
    by_ufrag: HashMap<String, String>,
    by_addr: HashMap<SocketAddr, String>,
}

struct Entry {
    key: StreamKey,
    ufrag: String,
    addrs: Vec<SocketAddr>,
    datagrams: mpsc::Sender<Datagram>,
    commands: mpsc::Sender<Command>,
    stop: CancellationToken,
    /// The viewer's line in the client list (kick, bytes); dropped with the session.
    client: Option<crate::clients::ClientHandle>,
}

impl WebRtc {
    /// The WebRTC output as configured: `None` when disabled, or when its UDP port cannot
    /// be bound (logged; the rest of the server runs, WHEP answers 503).
    pub async fn start(
        cfg: WebRtcConfig,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Option<WebRtc> {
        if !cfg.enabled {
            return None;
        }
        let addr = cfg.udp_addr;
        match Self::bind(cfg, shutdown, tasks).await {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(udp = %addr, error = %e, "webrtc disabled: cannot bind its UDP port");
                None
            }
        }
    }

    /// Binds the UDP port and starts its reader.
    pub async fn bind(
        cfg: WebRtcConfig,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> std::io::Result<WebRtc> {
        let socket = Arc::new(UdpSocket::bind(cfg.udp_addr).await?);
        let local = socket.local_addr()?;
        let port = if cfg.advertised_port == 0 {
            local.port()
        } else {
            cfg.advertised_port
        };
        let ips = if !cfg.advertised_ips.is_empty() {
            cfg.advertised_ips.clone()
        } else if local.ip().is_unspecified() {
            let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
            primary_ip().into_iter().chain([loopback]).collect()
        } else {
            vec![local.ip()]
        };
        let candidates: Vec<SocketAddr> = ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect();
        tracing::info!(udp = %local, advertised = ?candidates, "webrtc listening (set webrtc.advertised_ips for viewers behind NAT)");
        let shared = Arc::new(WebRtcShared {
            cfg: Arc::new(cfg),
            socket,
            local,
            candidates,
            sessions: Mutex::default(),
            feeds: transcode::OpusFeeds::default(),
            tasks: tasks.clone(),
            shutdown: shutdown.clone(),
            unrouted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        tasks.spawn(read_loop(shared.clone(), shutdown));
        Ok(WebRtc { shared })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    pub fn config(&self) -> &WebRtcConfig {
        &self.shared.cfg
    }

    /// Viewers connected or connecting now.
    pub fn viewers(&self) -> usize {
        self.shared.lock().by_id.len()
    }

    /// Answers a WHEP offer for `key` and starts the viewer's session.
    pub fn offer(&self, hub: &Hub, key: &StreamKey, body: &[u8]) -> Result<Answer, WhepError> {
        let cfg = &self.shared.cfg;
        let (text, codecs) = offer::inspect(body, cfg.max_sdp_bytes)?;
        let sdp = SdpOffer::from_sdp_string(text).map_err(|e| WhepError::Sdp(e.to_string()))?;
        let stream = hub
            .get(key)
            .ok_or_else(|| SubscribeError::NotFound(key.clone()))?;
        let served = stream.served_tracks();
        let video = served.iter().find(|c| c.is_video()).map(|c| c.codec);
        let has_audio = served.iter().any(|c| c.is_audio());
        offer::check_playable(&codecs, video, has_audio)?;
        if self.viewers() >= cfg.max_viewers {
            hub.metrics().refused("webrtc_max_viewers");
            return Err(WhepError::TooManyViewers(cfg.max_viewers));
        }
        let sub = hub.subscribe(key, Protocol::WebRtc)?;
        let creds = IceCreds {
            ufrag: random_token(8),
            pass: random_token(24),
        };
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_local_ice_credentials(creds.clone())
            .clear_codecs()
            .enable_h264(true)
            .enable_av1(true)
            .enable_opus(true, false)
            .set_send_buffer_video(cfg.nack_buffer_packets)
            .set_send_buffer_audio(cfg.nack_buffer_packets.min(256))
            .build(Instant::now());
        for addr in &self.shared.candidates {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => tracing::warn!(%addr, error = %e, "advertised address refused"),
            }
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(sdp)
            .map_err(|e| WhepError::Answer(e.to_string()))?;
        let feed = has_audio.then(|| {
            self.shared
                .feeds
                .join(&stream, cfg.opus_bitrate, cfg.opus_queue_packets)
        });
        let id = random_token(16);
        let (dtx, datagrams) = mpsc::channel(cfg.viewer_queue_datagrams.max(8));
        let (ctx, commands) = mpsc::channel(16);
        let stop = self.shared.shutdown.child_token();
        let span = tracing::info_span!(parent: &stream.span, "webrtc", session = %id);
        {
            let mut s = self.shared.lock();
            s.by_ufrag.insert(creds.ufrag.clone(), id.clone());
            s.by_id.insert(
                id.clone(),
                Entry {
                    key: key.clone(),
                    ufrag: creds.ufrag,
                    addrs: Vec::new(),
                    datagrams: dtx,
                    commands: ctx,
                    stop: stop.clone(),
                    client: None,
                },
            );
        }
        let session = Session {
            video_codec: video,
            id: id.clone(),
            rtc,
            sub,
            feed,
            datagrams,
            commands,
            stop,
            shared: self.shared.clone(),
            socket: self.shared.socket.clone(),
            span,
        };
        self.shared.tasks.spawn(session.run());
        Ok(Answer {
            id,
            sdp: answer.to_sdp_string(),
        })
    }

    /// The token that ends session `id` (an operator's kick cancels it).
    pub fn stopper(&self, id: &str) -> CancellationToken {
        self.shared
            .lock()
            .by_id
            .get(id)
            .map(|e| e.stop.clone())
            .unwrap_or_default()
    }

    /// Keeps `client` listed for as long as session `id` lives.
    pub fn keep_listed(&self, id: &str, client: crate::clients::ClientHandle) {
        if let Some(e) = self.shared.lock().by_id.get_mut(id) {
            e.client = Some(client);
        }
    }

    /// Ends a session (WHEP DELETE). False when there is none with this id for `key`.
    pub fn delete(&self, key: &StreamKey, id: &str) -> bool {
        let s = self.shared.lock();
        match s.by_id.get(id) {
            Some(e) if &e.key == key => {
                e.stop.cancel();
                true
            }
            _ => false,
        }
    }

    /// Adds trickled candidates (WHEP PATCH). False when there is no such session.
    pub fn trickle(&self, key: &StreamKey, id: &str, candidates: Vec<Candidate>) -> bool {
        let s = self.shared.lock();
        match s.by_id.get(id) {
            Some(e) if &e.key == key => {
                for c in candidates {
                    let _ = e.commands.try_send(Command::Candidate(c));
                }
                true
            }
            _ => false,
        }
    }
}

impl WebRtcShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remove(&self, id: &str) {
        let mut s = self.lock();
        if let Some(e) = s.by_id.remove(id) {
            s.by_ufrag.remove(&e.ufrag);
            for a in e.addrs {
                s.by_addr.remove(&a);
            }
        }
    }

    /// Routes one datagram to its session: STUN by the server ufrag it names (learning
    /// the source address), everything else by source address.
    fn route(&self, source: SocketAddr, data: &[u8]) {
        let mut s = self.lock();
        let id = match demux::kind(data) {
            demux::Kind::Stun => match demux::stun_server_ufrag(data) {
                Ok(Some(ufrag)) => s.by_ufrag.get(ufrag).cloned(),
                Ok(None) => s.by_addr.get(&source).cloned(),
                Err(_) => None,
            },
            demux::Kind::Dtls | demux::Kind::Rtp => s.by_addr.get(&source).cloned(),
            demux::Kind::Other => None,
        };
        let Some(id) = id else {
            self.unrouted.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let learn = !s.by_addr.contains_key(&source);
        let Some(entry) = s.by_id.get_mut(&id) else {
            return;
        };
        if learn {
            if entry.addrs.len() >= MAX_ADDRS_PER_SESSION {
                self.unrouted.fetch_add(1, Ordering::Relaxed);
                return;
            }
            entry.addrs.push(source);
        }
        let d = Datagram {
            source,
            at: Instant::now(),
            data: data.to_vec(),
        };
        if entry.datagrams.try_send(d).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        if learn {
            s.by_addr.insert(source, id);
        }
    }
}

async fn read_loop(shared: Arc<WebRtcShared>, shutdown: CancellationToken) {
    let mut buf = vec![0u8; 2048];
    loop {
        let r = tokio::select! {
            r = shared.socket.recv_from(&mut buf) => r,
            () = shutdown.cancelled() => return,
        };
        match r {
            Ok((n, source)) => shared.route(source, &buf[..n]),
            // ICMP port unreachable from a gone viewer shows up as an error on Linux.
            Err(e) => tracing::debug!(error = %e, "webrtc udp receive"),
        }
    }
}

/// The frame's RTP payloads, packetized once and shared by every viewer.
fn rtp_payloads(f: &SharedFrame, max_payload: usize) -> &[Arc<[u8]>] {
    f.rtp_payloads(|f| {
        let (Some(frame), Some(config)) = (f.as_frame(), f.codec_config()) else {
            return Vec::new();
        };
        let packetized = match &config.params {
            onair_shared::codec_config::CodecParams::Avc(avc) => {
                h264::packetize(&frame.data, avc, frame.keyframe, max_payload)
                    .map(|p| p.payloads)
                    .map_err(|e| e.to_string())
            }
            onair_shared::codec_config::CodecParams::Av1(av1c) => {
                av1::packetize(&frame.data, av1c, frame.keyframe, max_payload)
                    .map_err(|e| e.to_string())
            }
            _ => return Vec::new(),
        };
        packetized.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "video frame not packetized");
            Vec::new()
        })
    })
}

/// The address of the interface the default route leaves by: a UDP socket `connect`ed to a
/// documentation address (RFC 5737) learns it without sending anything. `None` offline.
fn primary_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

/// A random token of ICE-safe characters (ufrag, password, resource ids).
fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut b = vec![0u8; len];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b.iter()
        .map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char)
        .collect()
}
