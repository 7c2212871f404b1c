//! One WebRTC viewer: its str0m `Rtc` (ICE-lite, DTLS-SRTP, RTCP, NACK), fed datagrams
//! by the UDP reader and frames by the hub, sending RTP payloads packetized once per
//! frame for everyone. It owns nothing shared but `Arc`s; it never blocks on a socket
//! (a full send buffer drops the datagram, as UDP would) and ends on consent loss.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::Codec as RtcCodec;
use str0m::media::{MediaKind, Mid};
use str0m::net::{Protocol as NetProtocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::clock::{squeeze, ViewerClock};
use super::demux::{kind, Kind};
use super::transcode::{FeedHandle, OpusPacket};
use super::WebRtcShared;
use crate::hub::{SharedFrame, Subscription};

/// A datagram for this viewer, as the UDP reader got it.
#[derive(Debug)]
pub struct Datagram {
    pub source: SocketAddr,
    pub at: Instant,
    pub data: Vec<u8>,
}

/// What the WHEP resource asks of a running session.
#[derive(Debug)]
pub enum Command {
    /// A trickled remote candidate (PATCH).
    Candidate(Candidate),
}

pub(super) struct Session {
    /// The stream's video codec when the offer was answered (H.264 or AV1).
    pub video_codec: Option<onair_shared::Codec>,
    pub id: String,
    pub rtc: Rtc,
    pub sub: Subscription,
    pub feed: Option<(FeedHandle, broadcast::Receiver<Arc<OpusPacket>>)>,
    pub datagrams: mpsc::Receiver<Datagram>,
    pub commands: mpsc::Receiver<Command>,
    pub stop: CancellationToken,
    pub shared: Arc<WebRtcShared>,
    pub socket: Arc<UdpSocket>,
    pub span: tracing::Span,
}

struct Track {
    mid: Mid,
    pt: str0m::format::PayloadParams,
    seq: u64,
}

impl Session {
    pub async fn run(mut self) {
        let cfg = self.shared.cfg.clone();
        let started = Instant::now();
        let connect_deadline = started + Duration::from_millis(cfg.connect_timeout_ms);
        let consent_timeout = Duration::from_millis(cfg.consent_timeout_ms);
        let mut last_stun = started;
        let mut connected = false;
        let mut video: Option<Track> = None;
        let mut audio: Option<Track> = None;
        let mut clock = ViewerClock::new(random_u32(), random_u32());
        let mut batch: Vec<Arc<SharedFrame>> = Vec::new();
        let mut burst_done = false;
        // The start burst, sent one frame per loop turn so str0m's send buffer (which
        // also holds packets between write and transmit) never has to hold the whole GOP.
        let mut burst: std::collections::VecDeque<(Arc<SharedFrame>, i64)> = Default::default();
        let mut plis = 0u64;
        let local = self.shared.local;
        let reason = loop {
            // Everything str0m wants to send now, and when it next wants the time.
            let next = match self.drain_output(&mut video, &mut audio, &mut connected, &mut plis) {
                Ok(t) => t,
                Err(r) => break r,
            };
            if !self.rtc.is_alive() {
                break "closed";
            }
            let now = Instant::now();
            if !connected && now >= connect_deadline {
                break "ICE/DTLS did not complete in time";
            }
            if connected && now.duration_since(last_stun) > consent_timeout {
                break "consent expired (no STUN from the viewer)";
            }
            if let (Some((f, out_ms)), Some(track)) = (burst.pop_front(), video.as_mut()) {
                let now = Instant::now();
                send_video_frame(
                    &mut self.rtc,
                    &mut clock,
                    track,
                    &f,
                    out_ms,
                    cfg.rtp_payload_bytes,
                    now,
                );
                continue;
            }
            // Frames the hub gave before a select branch won are still in `batch`.
            if connected && !batch.is_empty() {
                if !burst_done {
                    // The start frames: everything already waiting. Drain it all, then squeeze.
                    drain_now(&mut self.sub, &mut batch).await;
                    burst = plan_burst(&mut clock, &batch);
                    burst_done = true;
                } else {
                    send_live(
                        &mut self.rtc,
                        &mut clock,
                        video.as_mut(),
                        &batch,
                        cfg.rtp_payload_bytes,
                    );
                }
                batch.clear();
                continue;
            }
            let wake = tokio::time::Instant::from_std(next.min(now + Duration::from_millis(500)));
            let want_media = connected && (video.is_some() || audio.is_some());
            tokio::select! {
                d = self.datagrams.recv() => {
                    let Some(d) = d else { break "server stopping" };
                    if kind(&d.data) == Kind::Stun {
                        last_stun = d.at;
                    }
                    let Ok(contents) = d.data.as_slice().try_into() else { continue };
                    let input = Input::Receive(d.at, Receive {
                        proto: NetProtocol::Udp,
                        source: d.source,
                        destination: local,
                        contents,
                    });
                    if let Err(e) = self.rtc.handle_input(input) {
                        tracing::debug!(parent: &self.span, error = %e, "datagram refused");
                    }
                }
                c = self.commands.recv() => match c {
                    Some(Command::Candidate(c)) => self.rtc.add_remote_candidate(c),
                    None => break "deleted",
                },
                r = self.sub.next_batch(&mut batch), if want_media => {
                    if r.is_err() {
                        break "stream ended";
                    }
                }
                p = recv_audio(&mut self.feed), if want_media && audio.is_some() => {
                    match p {
                        Ok(p) => send_audio(&mut self.rtc, &mut clock, audio.as_mut(), &p),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::debug!(parent: &self.span, skipped = n, "opus packets skipped");
                        }
                        Err(broadcast::error::RecvError::Closed) => self.feed = None,
                    }
                }
                () = self.stop.cancelled() => break "deleted",
                () = tokio::time::sleep_until(wake) => {}
            }
            if let Err(e) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
                tracing::debug!(parent: &self.span, error = %e, "session error");
                break "session error";
            }
        };
        self.rtc.disconnect();
        let _ = self.drain_output(&mut video, &mut audio, &mut connected, &mut plis);
        tracing::info!(parent: &self.span, reason, plis, secs = started.elapsed().as_secs(), "webrtc viewer left");
        self.shared.remove(&self.id);
    }

    /// Polls str0m until it only has a timeout left; sends what it gives, handles events.
    fn drain_output(
        &mut self,
        video: &mut Option<Track>,
        audio: &mut Option<Track>,
        connected: &mut bool,
        plis: &mut u64,
    ) -> Result<Instant, &'static str> {
        loop {
            let out = match self.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(parent: &self.span, error = %e, "session failed");
                    return Err("session failed");
                }
            };
            match out {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    // A full socket buffer drops the datagram, as the network would.
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(e) => match e {
                    Event::Connected => {
                        *connected = true;
                        tracing::info!(parent: &self.span, "webrtc viewer connected");
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return Err("ICE disconnected");
                    }
                    Event::MediaAdded(m) => {
                        let track = pick_track(&self.rtc, m.mid, m.kind, self.video_codec);
                        match m.kind {
                            MediaKind::Video if video.is_none() => *video = track,
                            MediaKind::Audio if audio.is_none() => *audio = track,
                            _ => {}
                        }
                    }
                    Event::KeyframeRequest(_) => {
                        // The publisher's next keyframe comes on its own; asking an RTMP
                        // encoder for one is not possible. Counted for the log.
                        *plis += 1;
                    }
                    _ => {}
                },
            }
        }
    }
}

async fn recv_audio(
    feed: &mut Option<(FeedHandle, broadcast::Receiver<Arc<OpusPacket>>)>,
) -> Result<Arc<OpusPacket>, broadcast::error::RecvError> {
    match feed {
        Some((_, rx)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Takes every frame already waiting, without waiting for more.
async fn drain_now(sub: &mut Subscription, batch: &mut Vec<Arc<SharedFrame>>) {
    loop {
        let before = batch.len();
        // A zero timeout polls once: what is ready lands in `batch` even when it elapses.
        let _ = tokio::time::timeout(Duration::ZERO, sub.next_batch(batch)).await;
        if batch.len() == before {
            return;
        }
    }
}

/// The payload type of the negotiated codec this output sends on `mid`.
fn pick_track(
    rtc: &Rtc,
    mid: Mid,
    kind: MediaKind,
    video: Option<onair_shared::Codec>,
) -> Option<Track> {
    let want_av1 = video == Some(onair_shared::Codec::Av1);
    let remote = rtc.media(mid)?.remote_pts().to_vec();
    let params = rtc.codec_config().params();
    let mut best: Option<(u8, str0m::format::PayloadParams)> = None;
    for p in params.iter().filter(|p| remote.contains(&p.pt())) {
        let spec = p.spec();
        let score = match (kind, spec.codec) {
            (MediaKind::Audio, RtcCodec::Opus) => 1,
            (MediaKind::Video, RtcCodec::Av1) if want_av1 => 1,
            (MediaKind::Video, RtcCodec::H264)
                if !want_av1 && spec.format.packetization_mode == Some(1) =>
            {
                // Constrained baseline (42e0..) is what every WebRTC H.264 decoder takes;
                // the decoder plays other profiles too, the id is only a label.
                match spec.format.profile_level_id.map(|id| id >> 8) {
                    Some(0x42e0) => 3,
                    Some(0x4200) => 2,
                    _ => 1,
                }
            }
            _ => 0,
        };
        if score > 0 && best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, *p));
        }
    }
    best.map(|(_, pt)| Track {
        mid,
        pt,
        seq: random_u32() as u64 & 0x7fff,
    })
}

fn write(
    rtc: &mut Rtc,
    track: &mut Track,
    time: u32,
    wallclock: Instant,
    marker: bool,
    payload: Arc<[u8]>,
) {
    let mut api = rtc.direct_api();
    let stream = match api.stream_tx_by_mid(track.mid, None) {
        Some(s) => s,
        None => return,
    };
    let seq: SeqNo = track.seq.into();
    track.seq += 1;
    stream.write_rtp(
        RtpWrite::new(track.pt.pt(), seq, time, wallclock, payload)
            .marker(marker)
            .nackable(true),
    );
}

fn send_video_frame(
    rtc: &mut Rtc,
    clock: &mut ViewerClock,
    track: &mut Track,
    f: &SharedFrame,
    out_ms: i64,
    max_payload: usize,
    now: Instant,
) {
    let payloads = super::rtp_payloads(f, max_payload);
    let time = clock.video_rtp(out_ms);
    let wallclock = clock.wallclock(out_ms, now);
    let n = payloads.len();
    for (i, p) in payloads.iter().enumerate() {
        write(rtc, track, time, wallclock, i + 1 == n, p.clone());
    }
}

fn is_served_video(f: &SharedFrame) -> bool {
    f.is_video()
        && f.as_frame().is_some_and(|fr| {
            matches!(
                fr.codec,
                onair_shared::Codec::H264 | onair_shared::Codec::Av1
            )
        })
}

/// The start frames with their squeezed output times, in decode order.
fn plan_burst(
    clock: &mut ViewerClock,
    batch: &[Arc<SharedFrame>],
) -> std::collections::VecDeque<(Arc<SharedFrame>, i64)> {
    let frames: Vec<&Arc<SharedFrame>> = batch.iter().filter(|f| is_served_video(f)).collect();
    let pts: Vec<i64> = frames
        .iter()
        .filter_map(|f| f.as_frame().map(|fr| fr.pts()))
        .collect();
    let out = squeeze(&pts);
    // The newest cached frame is "now" for this viewer's wallclock mapping.
    let now = Instant::now();
    if let Some(&newest) = out.iter().max() {
        clock.wallclock(newest, now);
    }
    frames.into_iter().cloned().zip(out).collect()
}

fn send_live(
    rtc: &mut Rtc,
    clock: &mut ViewerClock,
    video: Option<&mut Track>,
    batch: &[Arc<SharedFrame>],
    max_payload: usize,
) {
    let Some(track) = video else { return };
    let now = Instant::now();
    for f in batch.iter().filter(|f| is_served_video(f)) {
        if let Some(fr) = f.as_frame() {
            send_video_frame(rtc, clock, track, f, fr.pts(), max_payload, now);
        }
    }
}

fn send_audio(rtc: &mut Rtc, clock: &mut ViewerClock, audio: Option<&mut Track>, p: &OpusPacket) {
    let Some(track) = audio else { return };
    let ms = (p.pos48 / 48) as i64;
    let wallclock = clock.wallclock(ms, Instant::now());
    let time = clock.audio_rtp(p.pos48);
    write(rtc, track, time, wallclock, false, p.data.clone());
}

pub(super) fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u32::from_be_bytes(b)
}
