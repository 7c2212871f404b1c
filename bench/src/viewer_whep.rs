//! A WHEP viewer: POSTs a receive-only H.264 + Opus offer made by str0m, then runs ICE,
//! DTLS-SRTP and RTCP (receiver reports, NACK) with str0m over a UDP socket of its own, on
//! loopback only. Every RTP packet is read in str0m's RTP mode; a video frame counts as
//! received when all its packets are in (`FrameAssembler`). It never sends media.

use crate::http;
use crate::stats::{ViewerRecorder, ViewerResult};
use crate::target::HttpTarget;
use anyhow::{bail, Context, Result};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::time::timeout;

const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// ICE and DTLS must complete within this after the answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest WHEP answer read.
const MAX_ANSWER: usize = 64 * 1024;
/// Datagrams taken from the socket per wake-up before str0m's output is drained.
const RECV_BATCH: usize = 64;

/// What all WHEP viewers of a run received besides video frames.
#[derive(Debug, Default)]
pub struct WhepTotals {
    pub video_packets: AtomicU64,
    pub audio_packets: AtomicU64,
    /// Frames whose packets did not all arrive before they were given up.
    pub incomplete_frames: AtomicU64,
    /// Viewers whose ICE and DTLS completed.
    pub connected: AtomicU64,
}

pub async fn run(
    target: Arc<HttpTarget>,
    mut rec: ViewerRecorder,
    totals: Arc<WhepTotals>,
    mut stop: watch::Receiver<bool>,
) -> ViewerResult {
    rec.connecting();
    let mut location = None;
    let error = tokio::select! {
        r = session(&target, &mut rec, &totals, &mut location) => r.err().map(|e| format!("{e:#}")),
        _ = stop.changed() => None,
    };
    // Leave politely, so the server frees the session now rather than at consent timeout.
    if let Some(path) = location {
        let _ = timeout(Duration::from_secs(2), delete(&target, &path)).await;
    }
    rec.finish(error)
}

/// The offer/answer exchange: `(Location, answer SDP)`.
async fn post_offer(target: &HttpTarget, offer: &str) -> Result<(String, String)> {
    let mut sock = TcpStream::connect(target.addr)
        .await
        .with_context(|| format!("tcp connect to {}", target.addr))?;
    sock.set_nodelay(true)?;
    let req = http::post_request(&target.host, &target.path, "application/sdp", offer);
    sock.write_all(req.as_bytes())
        .await
        .context("write offer")?;
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(end) = http::head_end(&buf) {
            break end;
        }
        if buf.len() > http::MAX_HEAD {
            bail!("response head over {} bytes", http::MAX_HEAD);
        }
        let n = sock.read(&mut chunk).await.context("read answer head")?;
        if n == 0 {
            bail!("server closed the connection before the answer");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = http::parse_head(&buf[..end])?;
    let head_text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let want = head.content_length.unwrap_or(MAX_ANSWER as u64) as usize;
    if want > MAX_ANSWER {
        bail!("answer of {want} bytes, over {MAX_ANSWER}");
    }
    let mut body = buf.split_off(end);
    while body.len() < want {
        let n = sock.read(&mut chunk).await.context("read answer")?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(want);
    let body = String::from_utf8_lossy(&body).into_owned();
    if head.status != 201 {
        bail!("WHEP answered {}: {}", head.status, body.trim());
    }
    let location = http::header(&head_text, "location")
        .context("201 without a Location")?
        .to_string();
    Ok((location, body))
}

async fn delete(target: &HttpTarget, path: &str) -> Result<()> {
    let mut sock = TcpStream::connect(target.addr).await?;
    let req = format!(
        "DELETE {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: onair-bench\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        target.host
    );
    sock.write_all(req.as_bytes()).await?;
    let mut b = [0u8; 512];
    let _ = sock.read(&mut b).await?;
    Ok(())
}

/// The answer without candidates off loopback: this tool sends to loopback only, and the
/// server may advertise its other addresses too.
pub fn loopback_candidates_only(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|line| {
            let Some(c) = line.trim_end().strip_prefix("a=candidate:") else {
                return true;
            };
            // foundation component transport priority address port typ ...
            c.split_ascii_whitespace()
                .nth(4)
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                .is_some_and(|ip| ip.is_loopback())
        })
        .collect()
}

async fn session(
    target: &HttpTarget,
    rec: &mut ViewerRecorder,
    totals: &WhepTotals,
    location: &mut Option<String>,
) -> Result<()> {
    let bind = SocketAddr::new(target.addr.ip(), 0);
    let socket = UdpSocket::bind(bind)
        .await
        .with_context(|| format!("bind UDP on {bind}"))?;
    let local = socket.local_addr()?;
    let mut rtc = Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .build(Instant::now());
    let candidate = Candidate::host(local, "udp").context("host candidate")?;
    rtc.add_local_candidate(candidate);
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().context("str0m made no offer")?;
    let (path, answer) = timeout(SETUP_TIMEOUT, post_offer(target, &offer.to_sdp_string()))
        .await
        .context("WHEP POST timed out")??;
    *location = Some(path);
    let answer = SdpAnswer::from_sdp_string(&loopback_candidates_only(&answer))
        .map_err(|e| anyhow::anyhow!("the answer is not SDP: {e}"))?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| anyhow::anyhow!("answer refused: {e}"))?;
    let video_pts: Vec<u8> = rtc
        .codec_config()
        .params()
        .iter()
        .filter(|p| p.spec().codec == Codec::H264)
        .map(|p| *p.pt())
        .collect();

    let mut v = Viewer {
        rtc,
        socket,
        local,
        video_pts,
        frames: FrameAssembler::default(),
        connected: false,
    };
    let started = Instant::now();
    let mut buf = vec![0u8; 2048];
    loop {
        let next = v.drain(rec, totals)?;
        if !v.rtc.is_alive() {
            bail!("session closed");
        }
        if !v.connected && started.elapsed() > CONNECT_TIMEOUT {
            bail!("ICE/DTLS did not complete within {CONNECT_TIMEOUT:?}");
        }
        let wait = next.saturating_duration_since(Instant::now());
        tokio::select! {
            r = v.socket.recv_from(&mut buf) => {
                let (n, source) = r.context("UDP receive")?;
                v.feed(rec, source, &buf[..n]);
                // Whatever else is already queued, each datagram's output drained before
                // the next (str0m holds one received RTP packet for the next poll).
                for _ in 1..RECV_BATCH {
                    match v.socket.try_recv_from(&mut buf) {
                        Ok((n, source)) => {
                            v.drain(rec, totals)?;
                            v.feed(rec, source, &buf[..n]);
                        }
                        Err(_) => break,
                    }
                }
            }
            () = tokio::time::sleep(wait) => {
                v.rtc.handle_input(Input::Timeout(Instant::now()))
                    .map_err(|e| anyhow::anyhow!("str0m: {e}"))?;
            }
        }
    }
}

/// One viewer's WebRTC session and what it has put together so far.
struct Viewer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    /// Payload types of the offered H.264 formats (everything else is audio).
    video_pts: Vec<u8>,
    frames: FrameAssembler,
    connected: bool,
}

impl Viewer {
    /// Sends what str0m wants sent and handles its events until it only has a timeout left;
    /// returns that. It must run after every datagram fed: str0m keeps one received RTP
    /// packet for the next poll, and the next datagram would replace it.
    fn drain(&mut self, rec: &mut ViewerRecorder, totals: &WhepTotals) -> Result<Instant> {
        loop {
            match self
                .rtc
                .poll_output()
                .map_err(|e| anyhow::anyhow!("str0m: {e}"))?
            {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    // A full socket buffer drops the datagram, as a network would.
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(e) => match e {
                    Event::Connected => {
                        self.connected = true;
                        totals.connected.fetch_add(1, Ordering::Relaxed);
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        bail!("ICE disconnected");
                    }
                    Event::RtpPacket(p) => {
                        if self.video_pts.contains(&*p.header.payload_type) {
                            totals.video_packets.fetch_add(1, Ordering::Relaxed);
                            let now = rec.clock().now_ns();
                            for (seq, key) in self.frames.push(
                                *p.seq_no,
                                p.header.timestamp,
                                p.header.marker,
                                &p.payload,
                                &totals.incomplete_frames,
                            ) {
                                rec.on_frame(seq, key, now);
                            }
                        } else {
                            totals.audio_packets.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                },
            }
        }
    }

    fn feed(&mut self, rec: &ViewerRecorder, source: SocketAddr, data: &[u8]) {
        rec.on_bytes(data.len());
        let Ok(contents) = data.try_into() else {
            // Not STUN, DTLS or (S)RTP: nothing str0m takes.
            return;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        // A packet str0m refuses (a replay, a bad tag) is dropped, as a browser would.
        let _ = self.rtc.handle_input(input);
    }
}

/// The bench's sequence number and keyframe flag, from the RTP payload that starts its
/// frame: a single NAL unit, or the first FU-A fragment (the magic follows the NAL header).
pub fn frame_start(payload: &[u8]) -> Option<(u64, bool)> {
    let nal = payload.first()? & 0x1f;
    let (ty, body) = match nal {
        1..=23 => (nal, payload.get(1..)?),
        28 if payload.get(1)? & 0x80 != 0 => (payload[1] & 0x1f, payload.get(2..)?),
        _ => return None,
    };
    if body.get(..8)? != crate::media::MAGIC {
        return None;
    }
    let seq = u64::from_be_bytes(body.get(8..16)?.try_into().ok()?);
    Some((seq, ty == 5))
}

/// Received RTP packets remembered (sequence number and RTP time), per viewer (a ring).
const RING: usize = 4096;
/// Frames waiting for a missing packet (a NACK retransmission) at most; older ones are
/// given up as incomplete.
const MAX_PENDING: usize = 16;

/// A frame being put together: the packets of one RTP timestamp.
#[derive(Debug, Clone)]
struct Pending {
    ts: u32,
    first: u64,
    marker: Option<u64>,
    /// The bench's sequence number and keyframe flag, from the frame's first fragment.
    start: Option<(u64, bool)>,
}

/// Puts a viewer's video RTP packets back into frames: a frame is the packets of one RTP
/// timestamp, and is complete once its marker and its magic-bearing start have arrived,
/// every sequence number from its lowest to its marker is in, and the packet before its
/// lowest belongs to another frame (so its first packets are not missing). A retransmission
/// may complete it later, marker included. Pure: no clock, no socket.
pub struct FrameAssembler {
    /// Per ring slot: the sequence number received there and its RTP time.
    seen: Vec<(u64, u32)>,
    first_seq: Option<u64>,
    pending: VecDeque<Pending>,
}

impl Default for FrameAssembler {
    fn default() -> Self {
        Self {
            seen: vec![(u64::MAX, 0); RING],
            first_seq: None,
            pending: VecDeque::new(),
        }
    }
}

impl FrameAssembler {
    /// One video packet (extended sequence number, RTP time); returns the frames it
    /// completed, with `incomplete` counting those given up.
    pub fn push(
        &mut self,
        seq: u64,
        ts: u32,
        marker: bool,
        payload: &[u8],
        incomplete: &AtomicU64,
    ) -> Vec<(u64, bool)> {
        let slot = seq as usize % RING;
        if self.seen[slot].0 == seq {
            return Vec::new();
        }
        self.seen[slot] = (seq, ts);
        let first_seq = *self.first_seq.get_or_insert(seq);
        let idx = match self.pending.iter().position(|p| p.ts == ts) {
            Some(i) => i,
            None => {
                self.pending.push_back(Pending {
                    ts,
                    first: seq,
                    marker: None,
                    start: None,
                });
                while self.pending.len() > MAX_PENDING {
                    self.pending.pop_front();
                    incomplete.fetch_add(1, Ordering::Relaxed);
                }
                self.pending.len() - 1
            }
        };
        let p = &mut self.pending[idx];
        p.first = p.first.min(seq);
        if marker {
            p.marker = Some(seq);
        }
        if let Some(start) = frame_start(payload) {
            p.start = Some(start);
        }
        // This packet can complete its own frame, or the next one (whose predecessor it is).
        let mut done = Vec::new();
        for check in [Some(ts), self.seen_ts(seq + 1)] {
            let Some(t) = check else { continue };
            if let Some(i) = self.pending.iter().position(|p| p.ts == t) {
                if let Some(frame) = self.complete(&self.pending[i], first_seq) {
                    done.push(frame);
                    self.pending.remove(i);
                }
            }
        }
        done
    }

    fn seen_ts(&self, seq: u64) -> Option<u32> {
        let (s, ts) = self.seen[seq as usize % RING];
        (s == seq).then_some(ts)
    }

    fn complete(&self, p: &Pending, first_seq: u64) -> Option<(u64, bool)> {
        let (start, marker) = (p.start?, p.marker?);
        let span = marker.checked_sub(p.first)?;
        if span >= RING as u64 - 1 || !(p.first..=marker).all(|s| self.seen_ts(s) == Some(p.ts)) {
            return None;
        }
        let head_in = p.first == first_seq
            || p.first
                .checked_sub(1)
                .and_then(|s| self.seen_ts(s))
                .is_some_and(|t| t != p.ts);
        head_in.then_some(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::MAGIC;

    fn fu_start(seq: u64, key: bool) -> Vec<u8> {
        let ty = if key { 5 } else { 1 };
        let mut p = vec![0x60 | 28, 0x80 | ty];
        p.extend_from_slice(&MAGIC);
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0; 100]);
        p
    }

    fn fu_middle() -> Vec<u8> {
        vec![0x60 | 28, 0x01, 1, 2, 3]
    }

    #[test]
    fn frame_starts() {
        assert_eq!(frame_start(&fu_start(7, true)), Some((7, true)));
        assert_eq!(frame_start(&fu_start(8, false)), Some((8, false)));
        let mut single = vec![0x41];
        single.extend_from_slice(&MAGIC);
        single.extend_from_slice(&9u64.to_be_bytes());
        assert_eq!(frame_start(&single), Some((9, false)));
        // STAP-A (SPS/PPS), a middle fragment, a foreign frame, short input.
        assert_eq!(frame_start(&[0x78, 0, 2, 0x67, 0x64]), None);
        assert_eq!(frame_start(&fu_middle()), None);
        assert_eq!(frame_start(&[0x7c, 0x85, b'X', 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(frame_start(&[]), None);
        assert_eq!(frame_start(&[0x7c]), None);
    }

    #[test]
    fn complete_frames_and_late_retransmissions() {
        let lost = AtomicU64::new(0);
        let mut a = FrameAssembler::default();
        // Keyframe 0 (RTP time 1000): STAP-A, start, middle, end (marker) = packets 100..=103.
        let stap = [0x78, 0, 2, 0x67, 0x64];
        assert!(a.push(100, 1000, false, &stap, &lost).is_empty());
        assert!(a
            .push(101, 1000, false, &fu_start(0, true), &lost)
            .is_empty());
        assert!(a.push(102, 1000, false, &fu_middle(), &lost).is_empty());
        assert_eq!(
            a.push(103, 1000, true, &fu_middle(), &lost),
            vec![(0, true)]
        );
        // Frame 1: 104..=106 with 105 lost, then frame 2 complete, then 105 retransmitted.
        assert!(a
            .push(104, 2000, false, &fu_start(1, false), &lost)
            .is_empty());
        assert!(a.push(106, 2000, true, &fu_middle(), &lost).is_empty());
        assert!(a
            .push(107, 3000, false, &fu_start(2, false), &lost)
            .is_empty());
        assert_eq!(
            a.push(108, 3000, true, &fu_middle(), &lost),
            vec![(2, false)]
        );
        assert_eq!(
            a.push(105, 2000, false, &fu_middle(), &lost),
            vec![(1, false)]
        );
        // A duplicate changes nothing.
        assert!(a.push(105, 2000, false, &fu_middle(), &lost).is_empty());
        // Frame 3's marker (111) lost: frame 4 cannot be told whole (is 111 its head?) until
        // 111 is retransmitted, which completes both.
        assert!(a
            .push(109, 4000, false, &fu_start(3, false), &lost)
            .is_empty());
        assert!(a.push(110, 4000, false, &fu_middle(), &lost).is_empty());
        assert!(a
            .push(112, 5000, false, &fu_start(4, false), &lost)
            .is_empty());
        assert!(a.push(113, 5000, true, &fu_middle(), &lost).is_empty());
        assert_eq!(
            a.push(111, 4000, true, &fu_middle(), &lost),
            vec![(3, false), (4, false)]
        );
        // Frame 5's first packet (114, its start) lost: not complete until it comes.
        assert!(a.push(115, 6000, true, &fu_middle(), &lost).is_empty());
        assert_eq!(
            a.push(114, 6000, false, &fu_start(5, false), &lost),
            vec![(5, false)]
        );
        assert_eq!(lost.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_frame_missing_its_head_waits_for_it() {
        let lost = AtomicU64::new(0);
        let mut a = FrameAssembler::default();
        assert_eq!(
            a.push(10, 1, true, &fu_start(0, true), &lost),
            vec![(0, true)]
        );
        // Frame 1 is 11..=13; 11 (a STAP-A) is lost: 12 and 13 alone do not make it.
        assert!(a.push(12, 2, false, &fu_start(1, false), &lost).is_empty());
        assert!(a.push(13, 2, true, &fu_middle(), &lost).is_empty());
        assert_eq!(
            a.push(11, 2, false, &[0x78, 0, 2, 0x67], &lost),
            vec![(1, false)]
        );
    }

    #[test]
    fn frames_waiting_too_long_are_given_up() {
        let lost = AtomicU64::new(0);
        let mut a = FrameAssembler::default();
        // Frames 0..=16, each of packets 3f..=3f+2 with the middle one lost.
        for f in 0..=MAX_PENDING as u64 {
            let ts = f as u32 * 3000;
            assert!(a
                .push(3 * f, ts, false, &fu_start(f, false), &lost)
                .is_empty());
            assert!(a.push(3 * f + 2, ts, true, &fu_middle(), &lost).is_empty());
        }
        // The oldest was given up; the newest waiting one still completes.
        assert_eq!(lost.load(Ordering::Relaxed), 1);
        assert!(a.push(1, 0, false, &fu_middle(), &lost).is_empty());
        let last = MAX_PENDING as u64;
        assert_eq!(
            a.push(3 * last + 1, last as u32 * 3000, false, &fu_middle(), &lost),
            vec![(last, false)]
        );
    }

    #[test]
    fn only_loopback_candidates_stay() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 192.168.1.7 8189 typ host\r\n\
                   a=candidate:2 1 udp 2130706431 127.0.0.1 8189 typ host\r\na=end\r\n";
        assert_eq!(
            loopback_candidates_only(sdp),
            "v=0\r\na=candidate:2 1 udp 2130706431 127.0.0.1 8189 typ host\r\na=end\r\n"
        );
    }
}
