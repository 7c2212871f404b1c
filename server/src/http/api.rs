//! `GET /api/streams` and `GET /api/streams/{app}/{name}`: what is live, described for
//! viewers, the player and dashboards. This is the public schema: it must never identify a
//! client (no address, port, key, token or per-connection figure); those belong to an
//! operator's API behind its own credential.

use std::time::Instant;

use serde::Serialize;

use onair_shared::{CodecConfig, MediaKind};

use crate::config::ApiConfig;
use crate::hub::{Hub, Protocol, Stream, StreamKey};
use crate::qoe::window::QoeSummary;
use crate::qoe::Qoe;

#[derive(Debug, Serialize)]
pub struct StreamInfo {
    pub app: String,
    pub name: String,
    /// Publisher connected now (false while the stream waits for it to return).
    pub live: bool,
    /// What feeds it: "publish", "edge" (pulled from an origin), "rtmp" or "rtsp" (a
    /// pull source); null while waiting for a return. Never the source's address.
    pub source: Option<&'static str>,
    /// Seconds since the current publish began (absent while waiting for a return).
    pub live_for_s: Option<f64>,
    /// How many publishes this stream has had since it appeared (a reconnecting encoder
    /// counts again), so a dashboard sees restarts without seeing who restarted.
    pub publishes: u64,
    pub video: Option<VideoInfo>,
    pub audio: Option<AudioInfo>,
    /// Every track the publisher sends, track 0 (the one every output serves) included:
    /// Enhanced RTMP multitrack publishers send more than one per kind.
    pub tracks: Vec<TrackInfo>,
    /// Whether the stream's `.m3u8` (HLS with MPEG-TS segments) can serve it, and why not.
    pub hls: HlsInfo,
    pub ingest_bitrate_bps: u64,
    pub viewers: Viewers,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub frames_dropped: u64,
    pub uptime_s: f64,
    pub urls: Urls,
    /// What viewers' players report (QoE beacons), aggregated over the stream; null
    /// without beacons in the window.
    pub qoe: Option<QoeSummary>,
}

#[derive(Debug, Serialize)]
pub struct VideoInfo {
    pub codec: &'static str,
    pub profile: Option<String>,
    pub level: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    /// RFC 6381 codec string (`hvc1.1.6.L60.90`, `av01.0.04M.08`), for
    /// `MediaSource.isTypeSupported`.
    pub codec_string: Option<String>,
    /// The colour description an Enhanced RTMP publisher sent (Metadata colorInfo), with
    /// ISO/IEC 23091-2 code points; absent when none was sent.
    pub color: Option<ColorView>,
}

#[derive(Debug, Serialize)]
pub struct ColorView {
    pub bit_depth: Option<f64>,
    pub color_primaries: Option<f64>,
    pub transfer_characteristics: Option<f64>,
    pub matrix_coefficients: Option<f64>,
    /// HDR content light levels, cd/m².
    pub max_cll: Option<f64>,
    pub max_fall: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct AudioInfo {
    pub codec: &'static str,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
    pub codec_string: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TrackInfo {
    /// "video" or "audio".
    pub kind: &'static str,
    /// The track id (0 for legacy publishers).
    pub track: u8,
    pub codec: &'static str,
    pub codec_string: Option<String>,
    pub profile: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
}

#[derive(Debug, Serialize)]
pub struct HlsInfo {
    /// Whether the `.m3u8` serves this stream in its default variant.
    pub available: bool,
    /// Why MPEG-TS cannot serve it, in words (e.g. MPEG-TS cannot carry AV1); fMP4 can.
    pub reason: Option<String>,
    /// `hls.variant`: auto, ts, fmp4 or low-latency.
    pub variant: &'static str,
    /// What `{stream}.m3u8` gives without `?variant=`: "ll-hls", "fmp4" or "ts".
    pub default_variant: &'static str,
    /// Whether `?variant=ts` (or the default, under `ts`) serves it: MPEG-TS carries
    /// H.264, HEVC, AAC and MP3 only.
    pub ts_available: bool,
    /// Target segment duration.
    pub segment_duration_ms: u64,
    /// LL-HLS PART-TARGET (the configured part duration, or what the stream's frame
    /// rate made of it); absent when low-latency HLS is off.
    pub part_duration_ms: Option<u64>,
    /// The DVR window of the fMP4 playlists (`hls.dvr_window_ms`, for a recorded
    /// stream); 0: none, the playlists list the live window only.
    pub dvr_window_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct Viewers {
    pub rtmp: usize,
    pub flv: usize,
    pub hls: usize,
    pub webrtc: usize,
    pub total: usize,
}

#[derive(Debug, Serialize)]
pub struct Urls {
    pub flv: String,
    pub rtmp_path: String,
}

/// The public list: every stream not in a private app.
pub fn streams(
    hub: &Hub,
    cfg: &ApiConfig,
    qoe: &Qoe,
    hls: Option<&crate::hls::Hls>,
) -> Vec<StreamInfo> {
    let now = Instant::now();
    hub.list()
        .into_iter()
        .filter(|s| !cfg.private_apps.iter().any(|a| *a == s.key.app))
        .map(|s| describe(&s, now, qoe, hls))
        .collect()
}

/// One stream by name, private apps included: knowing the name is what playing needs.
pub fn stream(
    hub: &Hub,
    key: &StreamKey,
    qoe: &Qoe,
    hls: Option<&crate::hls::Hls>,
) -> Option<StreamInfo> {
    hub.get(key).map(|s| describe(&s, Instant::now(), qoe, hls))
}

fn hls_info(
    s: &Stream,
    served: &[std::sync::Arc<CodecConfig>],
    hls: Option<&crate::hls::Hls>,
) -> HlsInfo {
    use crate::config::HlsVariant;
    let ts_refusal = crate::hls::ts_refusal(served.iter().map(|c| c.codec));
    let Some(hls) = hls else {
        return HlsInfo {
            available: false,
            reason: Some("HLS is disabled on this server".to_string()),
            variant: "off",
            default_variant: "off",
            ts_available: false,
            segment_duration_ms: 0,
            part_duration_ms: None,
            dvr_window_ms: 0,
        };
    };
    let cfg = hls.config();
    let default_variant = match cfg.variant {
        HlsVariant::Auto | HlsVariant::LowLatency => "ll-hls",
        HlsVariant::Fmp4 => "fmp4",
        HlsVariant::Ts => "ts",
    };
    let part_duration_ms =
        matches!(cfg.variant, HlsVariant::Auto | HlsVariant::LowLatency).then(|| {
            hls.get_cmaf(&s.key)
                .map_or(cfg.part_duration_ms, |c| c.part_target().as_millis() as u64)
        });
    let ts_available = cfg.variant.has_ts() && ts_refusal.is_none();
    HlsInfo {
        available: cfg.variant.has_fmp4() || ts_refusal.is_none(),
        reason: ts_refusal,
        variant: cfg.variant.name(),
        default_variant,
        ts_available,
        segment_duration_ms: cfg.segment_duration_ms,
        part_duration_ms,
        dvr_window_ms: hls.dvr(&s.key).map_or(0, |d| d.window.as_millis() as u64),
    }
}

fn describe(s: &Stream, now: Instant, qoe: &Qoe, hls: Option<&crate::hls::Hls>) -> StreamInfo {
    let media = s.media();
    let (bps, measured_fps) = s.rates(now);
    let c = &s.counters;
    let v = |p| c.viewers(p);
    let publisher = s.publisher();
    let tracks = s.tracks();
    let served = s.served_tracks();
    let codec_string = |kind: MediaKind| {
        served
            .iter()
            .find(|c| c.kind == kind)
            .and_then(|c| c.codec_string())
    };
    let hls = hls_info(s, &served, hls);
    StreamInfo {
        app: s.key.app.clone(),
        name: s.key.name.clone(),
        live: publisher.is_some(),
        source: publisher.as_ref().map(|p| p.source),
        live_for_s: publisher
            .as_ref()
            .map(|p| now.saturating_duration_since(p.since).as_secs_f64()),
        publishes: s.publishes(),
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
            codec_string: codec_string(MediaKind::Video),
            color: served
                .iter()
                .find(|c| c.kind == MediaKind::Video)
                .and_then(|c| c.color.as_deref())
                .map(|c| ColorView {
                    bit_depth: c.bit_depth,
                    color_primaries: c.color_primaries,
                    transfer_characteristics: c.transfer_characteristics,
                    matrix_coefficients: c.matrix_coefficients,
                    max_cll: c.max_cll,
                    max_fall: c.max_fall,
                }),
        }),
        audio: media.audio_codec.map(|codec| AudioInfo {
            codec,
            sample_rate: media.audio_sample_rate,
            channels: media.audio_channels,
            codec_string: codec_string(MediaKind::Audio),
        }),
        tracks: tracks.iter().map(|c| track_info(c)).collect(),
        hls,
        ingest_bitrate_bps: bps as u64,
        viewers: Viewers {
            rtmp: v(Protocol::Rtmp),
            flv: v(Protocol::Flv),
            hls: v(Protocol::Hls),
            webrtc: v(Protocol::WebRtc),
            total: Protocol::ALL.iter().map(|&p| v(p)).sum(),
        },
        bytes_in: c.bytes_in.load(std::sync::atomic::Ordering::Relaxed),
        bytes_out: c.bytes_out.load(std::sync::atomic::Ordering::Relaxed),
        frames_dropped: c.frames_dropped.load(std::sync::atomic::Ordering::Relaxed),
        uptime_s: now.saturating_duration_since(s.created).as_secs_f64(),
        urls: Urls {
            flv: format!("/{}/{}.flv", s.key.app, s.key.name),
            rtmp_path: format!("/{}/{}", s.key.app, s.key.name),
        },
        qoe: qoe.summary(&s.key, now),
    }
}

fn track_info(c: &CodecConfig) -> TrackInfo {
    TrackInfo {
        kind: if c.is_video() { "video" } else { "audio" },
        track: c.track,
        codec: c.codec.name(),
        codec_string: c.codec_string(),
        profile: c.summary.profile.clone(),
        width: c.summary.width,
        height: c.summary.height,
        sample_rate: c.summary.sample_rate,
        channels: c.summary.channels,
    }
}
