//! Async viewers for the end-to-end tests, built on the benchmark's clients: each
//! returns the media messages it received, in order, for checks on order and time.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use onair_bench::http::{
    get_request, get_request_keep_alive, head_end, parse_head, ChunkedDecoder, ResponseHead,
};
use onair_bench::rtmp::RtmpClient;
use onair_bench::target::RtmpTarget;
use onair_shared::flv::{FlvDemuxer, FlvEvent, TAG_AUDIO, TAG_VIDEO};
use rml_rtmp::sessions::ClientSessionEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One audio or video message as a viewer saw it.
#[derive(Debug, Clone)]
pub struct Media {
    pub tag_type: u8,
    pub timestamp: u32,
    pub body: Bytes,
}

/// Plays an RTMP URL until `video_frames` video messages arrived (or fails after `limit`).
pub async fn rtmp_media(url: &str, video_frames: usize, limit: Duration) -> Result<Vec<Media>> {
    let mut got = Vec::new();
    let mut videos = 0;
    rtmp_play(url, limit, |m| {
        videos += (m.tag_type == TAG_VIDEO) as usize;
        got.push(m);
        videos < video_frames
    })
    .await?;
    Ok(got)
}

/// Plays an RTMP URL, handing each media message to `on` until it returns false.
pub async fn rtmp_play(
    url: &str,
    limit: Duration,
    mut on: impl FnMut(Media) -> bool,
) -> Result<()> {
    tokio::time::timeout(limit, async {
        let target = RtmpTarget::parse(url)?;
        let mut client = RtmpClient::connect(&target).await?;
        let req = client.session.request_playback(target.stream.clone())?;
        client.send(req).await?;
        loop {
            client.read_some().await?;
            for e in client.process().await? {
                let (tag_type, data, timestamp) = match e {
                    ClientSessionEvent::VideoDataReceived {
                        data, timestamp, ..
                    } => (TAG_VIDEO, data, timestamp),
                    ClientSessionEvent::AudioDataReceived {
                        data, timestamp, ..
                    } => (TAG_AUDIO, data, timestamp),
                    _ => continue,
                };
                if !on(Media {
                    tag_type,
                    timestamp: timestamp.value,
                    body: data,
                }) {
                    return Ok(());
                }
            }
        }
    })
    .await
    .context("rtmp viewer timed out")?
}

/// Plays an HTTP-FLV URL (`http://addr/path`) until `video_frames` video tags arrived.
pub async fn flv_media(
    addr: SocketAddr,
    path: &str,
    video_frames: usize,
    limit: Duration,
) -> Result<Vec<Media>> {
    let mut got = Vec::new();
    let mut videos = 0;
    flv_play(addr, path, limit, |m| {
        videos += (m.tag_type == TAG_VIDEO) as usize;
        got.push(m);
        videos < video_frames
    })
    .await?;
    Ok(got)
}

/// Plays `http://addr/path` as FLV, handing each media tag to `on` until it returns false.
pub async fn flv_play(
    addr: SocketAddr,
    path: &str,
    limit: Duration,
    on: impl FnMut(Media) -> bool,
) -> Result<()> {
    flv_play_after(addr, None, path, limit, on)
        .await
        .map(|_| ())
}

/// `flv_play`, with `first` (a path) asked for first on the same kept-alive connection
/// and its response skipped; gives the FLV response's head.
pub async fn flv_play_after(
    addr: SocketAddr,
    first: Option<&str>,
    path: &str,
    limit: Duration,
    mut on: impl FnMut(Media) -> bool,
) -> Result<ResponseHead> {
    tokio::time::timeout(limit, async {
        let mut sock = TcpStream::connect(addr).await?;
        sock.set_nodelay(true)?;
        let host = addr.to_string();
        let mut request = String::new();
        if let Some(first) = first {
            request.push_str(&get_request_keep_alive(&host, first));
        }
        request.push_str(&get_request(&host, path));
        sock.write_all(request.as_bytes()).await?;
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let mut skip = first.is_some();
        let (head, end) = loop {
            if let Some(end) = head_end(&buf) {
                let head = parse_head(&buf[..end])?;
                if !skip {
                    break (head, end);
                }
                let len = head
                    .content_length
                    .context("first response has no length")? as usize;
                if buf.len() >= end + len {
                    buf.drain(..end + len);
                    skip = false;
                    continue;
                }
            }
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                bail!("closed before the response head");
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        if head.status != 200 {
            bail!("HTTP status {}", head.status);
        }
        let mut dechunk = head.chunked.then(ChunkedDecoder::new);
        let mut demux = FlvDemuxer::new(16 << 20);
        let mut pending = buf.split_off(end);
        loop {
            match &mut dechunk {
                Some(d) => d.feed(&pending, |s| demux.push(s))?,
                None => demux.push(&pending),
            }
            while let Some(ev) = demux.next_event()? {
                let FlvEvent::Tag(t) = ev else { continue };
                if (t.tag_type == TAG_VIDEO || t.tag_type == TAG_AUDIO)
                    && !on(Media {
                        tag_type: t.tag_type,
                        timestamp: t.timestamp,
                        body: t.body,
                    })
                {
                    return Ok(head);
                }
            }
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                bail!("server closed the stream");
            }
            pending = chunk[..n].to_vec();
        }
    })
    .await
    .context("flv viewer timed out")?
}

/// Checks what a viewer must see: the AVC sequence header before any video frame, a
/// keyframe first, the AAC sequence header before any AAC frame, and per track
/// timestamps that never go backwards.
pub fn check_start_and_order(media: &[Media]) -> Result<()> {
    let mut seen_avc_config = false;
    let mut seen_frame = false;
    let mut seen_aac_config = false;
    let (mut last_v, mut last_a) = (None::<u32>, None::<u32>);
    for (i, m) in media.iter().enumerate() {
        if m.tag_type == TAG_VIDEO {
            let packet_type = m.body.get(1).copied();
            if packet_type == Some(0) {
                seen_avc_config = true;
                continue;
            }
            if !seen_avc_config {
                bail!("video frame at message {i} before the AVC sequence header");
            }
            if !seen_frame {
                let key = m.body.first().map(|b| b >> 4) == Some(1);
                if !key {
                    bail!("first video frame (message {i}) is not a keyframe");
                }
                seen_frame = true;
            }
            if last_v.is_some_and(|l| m.timestamp < l) {
                bail!(
                    "video timestamp went back: {} after {:?}",
                    m.timestamp,
                    last_v
                );
            }
            last_v = Some(m.timestamp);
        } else {
            if m.body.get(1) == Some(&0) {
                seen_aac_config = true;
                continue;
            }
            if !seen_aac_config {
                bail!("AAC frame at message {i} before the AAC sequence header");
            }
            if last_a.is_some_and(|l| m.timestamp < l) {
                bail!(
                    "audio timestamp went back: {} after {:?}",
                    m.timestamp,
                    last_a
                );
            }
            last_a = Some(m.timestamp);
        }
    }
    if !seen_frame {
        bail!("no video frame received");
    }
    Ok(())
}

/// The benchmark's synthetic 720p30 publisher (keyframe every 60 frames), logging each video
/// frame's send time on `clock` so viewers can measure latency.
pub struct SyntheticPublisher {
    pub clock: onair_bench::stats::Clock,
    pub log: std::sync::Arc<onair_bench::stats::SendLog>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<onair_bench::publisher::PublisherReport>,
}

impl SyntheticPublisher {
    /// Publishes to `url` until `stop`; the send log holds `max_secs` of frames.
    pub async fn start(url: &str, max_secs: usize) -> SyntheticPublisher {
        let clock = onair_bench::stats::Clock::new();
        let log = std::sync::Arc::new(onair_bench::stats::SendLog::new(30 * max_secs));
        let (live_tx, live_rx) = tokio::sync::oneshot::channel();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let target = RtmpTarget::parse(url).expect("publish URL");
        let task = tokio::spawn(onair_bench::publisher::run(
            target,
            clock,
            log.clone(),
            live_tx,
            stop_rx,
        ));
        live_rx
            .await
            .expect("publisher reports")
            .expect("publisher live");
        SyntheticPublisher {
            clock,
            log,
            stop,
            task,
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
