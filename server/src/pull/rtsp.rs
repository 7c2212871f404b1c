//! RTSP camera pulls through retina: DESCRIBE (Digest or Basic credentials from the URL),
//! SETUP of the first H.264 or H.265 video and the first AAC audio stream over TCP
//! (interleaved) or UDP, PLAY, and retina's depacketized frames into a `Feed`. G.711
//! (PCMA/PCMU) and other audio are not set up: onair's outputs carry no G.711, and it
//! does not transcode; the log says so. This file maps retina's frames and parameters to
//! onair's; it never retries (the caller does).

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use onair_shared::ingest::{audio_config, video_config};
use onair_shared::{Codec, CodecConfig, Frame, MediaKind};
use retina::client::{
    Credentials, PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions,
    Transport, UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};

use super::{Ended, Feed, PullError, Watch};
use crate::cluster::config::{ClusterConfig, RtspTransport};

/// One set-up stream: retina's index, our codec, the last configuration pushed.
struct Track {
    index: usize,
    kind: MediaKind,
    codec: Codec,
    pushed: Option<Bytes>,
}

fn rtsp_err(e: impl std::fmt::Display) -> PullError {
    PullError::Rtsp(e.to_string())
}

/// Splits credentials off the URL (retina takes them apart from it).
fn parse(url_text: &str) -> Result<(url::Url, Option<Credentials>), PullError> {
    let mut url = url::Url::parse(url_text)
        .map_err(|_| PullError::BadUrl(super::redact(url_text), "not a URL"))?;
    if url.scheme() != "rtsp" {
        return Err(PullError::BadUrl(super::redact(url_text), "not rtsp://"));
    }
    let creds = (!url.username().is_empty()).then(|| Credentials {
        username: percent_decode(url.username()),
        password: percent_decode(url.password().unwrap_or("")),
    });
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((url, creds))
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

pub async fn pull(
    url_text: &str,
    transport: RtspTransport,
    cfg: &ClusterConfig,
    feed: &mut Feed,
    watch: &mut Watch<'_>,
) -> Result<Ended, PullError> {
    let (url, creds) = parse(url_text)?;
    let setup_limit = Duration::from_millis(cfg.connect_timeout_ms);
    let (mut session, tracks) = tokio::time::timeout(setup_limit, async {
        let mut described = Session::describe(
            url,
            SessionOptions::default()
                .creds(creds)
                .user_agent("onair".into()),
        )
        .await
        .map_err(rtsp_err)?;
        let mut tracks = Vec::new();
        let mut skipped = Vec::new();
        for (i, s) in described.streams().iter().enumerate() {
            let kind = match s.media() {
                "video" => MediaKind::Video,
                "audio" => MediaKind::Audio,
                _ => continue,
            };
            let codec = match (kind, s.encoding_name()) {
                (MediaKind::Video, "h264") => Codec::H264,
                (MediaKind::Video, "h265") => Codec::Hevc,
                (MediaKind::Audio, "mpeg4-generic") => Codec::Aac,
                (_, other) => {
                    skipped.push(format!("{} {other}", s.media()));
                    continue;
                }
            };
            if tracks.iter().any(|t: &Track| t.kind == kind) {
                continue;
            }
            tracks.push(Track {
                index: i,
                kind,
                codec,
                pushed: None,
            });
        }
        if !skipped.is_empty() {
            tracing::warn!(skipped = ?skipped, "RTSP streams not carried (onair relays H.264/H.265 and AAC; G.711 is not transcoded)");
        }
        if tracks.is_empty() {
            return Err(PullError::Rtsp("no H.264, H.265 or AAC stream in the SDP".into()));
        }
        for t in &tracks {
            let transport = match transport {
                RtspTransport::Tcp => Transport::Tcp(TcpTransportOptions::default()),
                RtspTransport::Udp => Transport::Udp(UdpTransportOptions::default()),
            };
            described
                .setup(
                    t.index,
                    SetupOptions::default()
                        .transport(transport)
                        .frame_format(FrameFormat::MP4),
                )
                .await
                .map_err(rtsp_err)?;
        }
        let playing = described
            .play(PlayOptions::default())
            .await
            .map_err(rtsp_err)?;
        let demuxed = playing.demuxed().map_err(rtsp_err)?;
        Ok::<_, PullError>((demuxed, tracks))
    })
    .await
    .map_err(|_| PullError::SetupTimeout(setup_limit))??;
    let mut tracks = tracks;
    tracing::info!(tracks = tracks.len(), ?transport, "RTSP playing");
    let stall = Duration::from_millis(cfg.read_timeout_ms);
    let mut tick = tokio::time::interval(watch.tick());
    let mut last_item = tokio::time::Instant::now();
    loop {
        let item = tokio::select! {
            r = tokio::time::timeout_at(last_item + stall, session.next()) => match r {
                Err(_) => return Err(PullError::Stalled(stall)),
                Ok(None) => return Err(PullError::Closed),
                Ok(Some(item)) => item.map_err(rtsp_err)?,
            },
            _ = tick.tick() => {
                if let Some(ended) = watch.check() {
                    return Ok(ended);
                }
                continue;
            }
            _ = watch.shutdown.cancelled() => return Ok(Ended::Shutdown),
        };
        let (index, ts, keyframe, data) = match item {
            CodecItem::VideoFrame(f) => {
                let ts = f.timestamp();
                let key = f.is_random_access_point();
                (f.stream_id(), ts, key, Bytes::from(f.into_data()))
            }
            CodecItem::AudioFrame(f) => (
                f.stream_id(),
                f.timestamp(),
                false,
                Bytes::copy_from_slice(f.data()),
            ),
            _ => continue,
        };
        last_item = tokio::time::Instant::now();
        let Some(t) = tracks.iter_mut().find(|t| t.index == index) else {
            continue;
        };
        // Parameters come with (or before) the first frame and may change mid-stream.
        let extra = match session.streams()[index].parameters() {
            Some(ParametersRef::Video(v)) => Some(Bytes::copy_from_slice(v.extra_data())),
            Some(ParametersRef::Audio(a)) => Some(Bytes::copy_from_slice(a.extra_data())),
            _ => None,
        };
        if let Some(extra) = extra.filter(|e| t.pushed.as_ref() != Some(e)) {
            let config: CodecConfig = match t.kind {
                MediaKind::Video => video_config(t.codec, extra.clone())?,
                _ => audio_config(t.codec, extra.clone())?,
            };
            feed.config(config)?;
            t.pushed = Some(extra);
        }
        if t.pushed.is_none() {
            continue;
        }
        feed.count_in(data.len())?;
        let rate = ts.clock_rate().get() as i64;
        let ms = ts.elapsed().max(0) * 1000 / rate;
        feed.frame(Frame {
            kind: t.kind,
            track: 0,
            codec: t.codec,
            dts: ms as u64,
            cts: 0,
            nanos: 0,
            keyframe: keyframe && t.kind == MediaKind::Video,
            data,
        })?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_off_the_url() {
        let (url, creds) = parse("rtsp://adm%40n:p%3Ass@127.0.0.1:8554/cam").unwrap();
        assert_eq!(url.as_str(), "rtsp://127.0.0.1:8554/cam");
        let c = creds.unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("adm@n", "p:ss")
        );
        let (_, creds) = parse("rtsp://127.0.0.1/cam").unwrap();
        assert!(creds.is_none());
        assert!(parse("http://x/cam").is_err());
    }
}
