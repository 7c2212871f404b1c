//! `GET /api/streams`: what is live, described for people and dashboards.

use std::time::Instant;

use serde::Serialize;

use crate::hub::{Hub, Protocol};

#[derive(Debug, Serialize)]
pub struct StreamInfo {
    pub app: String,
    pub name: String,
    /// Publisher connected now (false while the stream waits for it to return).
    pub live: bool,
    pub video: Option<VideoInfo>,
    pub audio: Option<AudioInfo>,
    pub ingest_bitrate_bps: u64,
    pub viewers: Viewers,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub frames_dropped: u64,
    pub uptime_s: f64,
    pub publisher: Option<PublisherView>,
    pub urls: Urls,
}

#[derive(Debug, Serialize)]
pub struct VideoInfo {
    pub codec: &'static str,
    pub profile: Option<String>,
    pub level: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct AudioInfo {
    pub codec: &'static str,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
}

#[derive(Debug, Serialize)]
pub struct Viewers {
    pub rtmp: usize,
    pub flv: usize,
    pub hls: usize,
    pub total: usize,
}

#[derive(Debug, Serialize)]
pub struct PublisherView {
    pub addr: String,
    pub connected_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Urls {
    pub flv: String,
    pub rtmp_path: String,
}

pub fn streams(hub: &Hub) -> Vec<StreamInfo> {
    let now = Instant::now();
    hub.list()
        .into_iter()
        .map(|s| {
            let media = s.media();
            let (bps, measured_fps) = s.rates(now);
            let c = &s.counters;
            let v = |p| c.viewers(p);
            let publisher = s.publisher();
            StreamInfo {
                app: s.key.app.clone(),
                name: s.key.name.clone(),
                live: publisher.is_some(),
                video: media.video_codec.map(|codec| VideoInfo {
                    codec,
                    profile: media.video_profile.clone(),
                    level: media.video_level,
                    width: media.width,
                    height: media.height,
                    fps: if measured_fps > 0.0 {
                        Some((measured_fps * 100.0).round() / 100.0)
                    } else {
                        media.metadata_fps
                    },
                }),
                audio: media.audio_codec.map(|codec| AudioInfo {
                    codec,
                    sample_rate: media.audio_sample_rate,
                    channels: media.audio_channels,
                }),
                ingest_bitrate_bps: bps as u64,
                viewers: Viewers {
                    rtmp: v(Protocol::Rtmp),
                    flv: v(Protocol::Flv),
                    hls: v(Protocol::Hls),
                    total: Protocol::ALL.iter().map(|&p| v(p)).sum(),
                },
                bytes_in: c.bytes_in.load(std::sync::atomic::Ordering::Relaxed),
                bytes_out: c.bytes_out.load(std::sync::atomic::Ordering::Relaxed),
                frames_dropped: c.frames_dropped.load(std::sync::atomic::Ordering::Relaxed),
                uptime_s: now.saturating_duration_since(s.created).as_secs_f64(),
                publisher: publisher.map(|p| PublisherView {
                    addr: p.addr.to_string(),
                    connected_s: now.saturating_duration_since(p.since).as_secs_f64(),
                }),
                urls: Urls {
                    flv: format!("/{}/{}.flv", s.key.app, s.key.name),
                    rtmp_path: format!("/{}/{}", s.key.app, s.key.name),
                },
            }
        })
        .collect()
}
