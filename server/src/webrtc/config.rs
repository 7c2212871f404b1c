//! The `[webrtc]` section: the one UDP port all WebRTC viewers share, the addresses put in
//! ICE candidates, and every bound of the WHEP output. Defaults work on one machine.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebRtcConfig {
    /// Serve WHEP (`POST /{app}/{stream}/whep`) and open the UDP port.
    pub enabled: bool,
    /// The one UDP socket all viewers' media, STUN and DTLS share (ICE-lite, muxed).
    pub udp_addr: SocketAddr,
    /// Addresses put in the answer's ICE candidates (with the UDP port). Behind NAT or in
    /// Docker this must be the address viewers reach. Empty: the `udp_addr` IP, or, when
    /// that is unspecified (0.0.0.0), the address of the default route's interface and
    /// 127.0.0.1. The addresses in use are logged at start.
    pub advertised_ips: Vec<IpAddr>,
    /// The port put in the candidates when a NAT or Docker maps another one to `udp_addr`;
    /// 0: the bound port.
    pub advertised_port: u16,
    /// Most WebRTC viewers on this server, all streams together; past it an offer gets 503.
    pub max_viewers: usize,
    /// Largest SDP offer (and trickle PATCH body) accepted; a longer one gets 413.
    pub max_sdp_bytes: usize,
    /// A viewer whose ICE and DTLS have not completed this long after its offer is dropped.
    pub connect_timeout_ms: u64,
    /// A connected viewer from which no STUN consent check arrived this long is dropped
    /// (browsers check every few seconds; RFC 7675 gives up after 30 s).
    pub consent_timeout_ms: u64,
    /// Datagrams queued per viewer between the UDP reader and the viewer; past it, newer
    /// ones are dropped (a STUN or garbage flood fills only the flooded viewer's queue).
    pub viewer_queue_datagrams: usize,
    /// Opus bitrate of the AAC/MP3 transcode, bits per second.
    pub opus_bitrate: i32,
    /// Opus packets buffered per stream between the transcoder and its viewers.
    pub opus_queue_packets: usize,
    /// RTP packets kept per viewer and track for NACK retransmission.
    pub nack_buffer_packets: usize,
    /// Largest RTP payload (bytes) the H.264 packetizer makes.
    pub rtp_payload_bytes: usize,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            udp_addr: SocketAddr::from(([0, 0, 0, 0], 8189)),
            advertised_ips: Vec::new(),
            advertised_port: 0,
            max_viewers: 500,
            max_sdp_bytes: 32 * 1024,
            connect_timeout_ms: 10_000,
            consent_timeout_ms: 15_000,
            viewer_queue_datagrams: 256,
            opus_bitrate: 96_000,
            opus_queue_packets: 64,
            nack_buffer_packets: 1024,
            rtp_payload_bytes: 1150,
        }
    }
}
