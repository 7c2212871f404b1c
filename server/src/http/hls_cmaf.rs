//! HTTP answers of fMP4 (CMAF) HLS: which variant a playlist request gets, the fMP4 and
//! LL-HLS playlists, and the init, segment and part files. Playlists that can block are
//! `no-cache`; media files never change, so any cache may keep them.

use std::time::Duration;

use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};

use super::body::ResponseBody;
use super::{text, HttpContext};
use crate::config::HlsVariant;
use crate::hls::cmaf::{Answer, CmafMedia, PlaylistKind};
use crate::hls::Hls;
use crate::hub::{parse_stream_name, StreamKey};

/// What a `.m3u8` request gets under `hls.variant`: `?variant=ts|fmp4|ll` picks one of
/// those the server runs; without it `auto` and `low-latency` give LL-HLS, `fmp4` plain
/// fMP4 and `ts` MPEG-TS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    Ts,
    Cmaf(PlaylistKind),
    /// The variant asked for is off on this server.
    Off(&'static str),
}

pub fn choose(variant: HlsVariant, query: &str) -> Chosen {
    let asked = crate::auth::query_param(query, "variant");
    match (variant, asked) {
        (HlsVariant::Ts, None | Some("ts")) => Chosen::Ts,
        (HlsVariant::Ts, Some(_)) => {
            Chosen::Off("fMP4 HLS is off on this server (hls.variant = \"ts\")")
        }
        (HlsVariant::Auto, Some("ts")) => Chosen::Ts,
        (_, Some("ts")) => Chosen::Off("MPEG-TS HLS is off on this server"),
        (HlsVariant::Fmp4, Some("ll" | "low-latency")) => {
            Chosen::Off("low-latency HLS is off on this server (hls.variant = \"fmp4\")")
        }
        (HlsVariant::Fmp4, _) | (_, Some("fmp4")) => Chosen::Cmaf(PlaylistKind::Plain),
        _ => Chosen::Cmaf(PlaylistKind::LowLatency),
    }
}

fn answer(a: Answer, content_type: &'static str, cache: Option<String>) -> Response<ResponseBody> {
    match a {
        Answer::Playlist(b) | Answer::Media(b) => {
            let mut r = Response::new(ResponseBody::full(b));
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            if let Some(v) = cache.and_then(|c| HeaderValue::from_str(&c).ok()) {
                h.insert(CACHE_CONTROL, v);
            }
            r
        }
        Answer::BadRequest(why) => text(StatusCode::BAD_REQUEST, why),
        Answer::NotFound(why) => text(StatusCode::NOT_FOUND, why),
        Answer::Busy => {
            let mut r = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many blocking requests held (hls.max_blocking_requests)",
            );
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        Answer::TimedOut => {
            let mut r = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the part asked for did not come in time (hls.blocking_timeout_ms)",
            );
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    }
}

/// With play tokens, media URIs carry the client's token along.
fn with_token(ctx: &HttpContext, query: &str, b: bytes::Bytes) -> bytes::Bytes {
    match crate::auth::query_param(query, "token") {
        Some(t) if ctx.auth.needs_play_token() => {
            let s = String::from_utf8_lossy(&b)
                .replace(".m4s\"", &format!(".m4s?token={t}\""))
                .replace(".m4s\n", &format!(".m4s?token={t}\n"))
                .replace(".mp4\"", &format!(".mp4?token={t}\""));
            bytes::Bytes::from(s)
        }
        _ => b,
    }
}

pub async fn playlist(
    ctx: &HttpContext,
    hls: &Hls,
    key: &StreamKey,
    peer: std::net::SocketAddr,
    query: &str,
    kind: PlaylistKind,
) -> Response<ResponseBody> {
    let Some(stream) = hls.get_cmaf(key) else {
        return text(StatusCode::NOT_FOUND, format!("stream {key} is not live"));
    };
    if let Some(ts) = hls.get(key) {
        ts.saw_client(peer.ip());
    }
    let cfg = hls.config();
    let limit = Duration::from_millis(cfg.blocking_timeout_ms);
    let raw = (!query.is_empty()).then_some(query);
    // The DVR window, planned for the live window as it is now.
    let dvr = match hls.dvr(key) {
        Some(d) => crate::hls::dvr::plan_for(&stream, &d).await,
        None => None,
    };
    let a = stream
        .playlist(kind, raw, hls.held(), limit, dvr.as_ref())
        .await;
    let a = match a {
        Answer::Playlist(b) => Answer::Playlist(with_token(ctx, query, b)),
        other => other,
    };
    let cache = match kind {
        // It can block and changes with every part.
        PlaylistKind::LowLatency => "no-cache",
        PlaylistKind::Plain => "public, max-age=1",
    };
    answer(a, "application/vnd.apple.mpegurl", Some(cache.to_string()))
}

/// `/{app}/{name}-init{g}.mp4`, `-seg{msn}.m4s`, `-part{msn}.{i}.m4s`.
pub fn parse_media_path(path: &str) -> Option<(StreamKey, CmafMedia)> {
    let (app, file) = path.strip_prefix('/')?.split_once('/')?;
    parse_stream_name(app).ok()?;
    let (name, media) = CmafMedia::parse(file)?;
    let (name, _) = parse_stream_name(name).ok()?;
    Some((StreamKey::new(app, name), media))
}

pub async fn media(ctx: &HttpContext, key: &StreamKey, media: CmafMedia) -> Response<ResponseBody> {
    let Some(hls) = &ctx.hls else {
        return text(StatusCode::NOT_FOUND, "HLS is disabled on this server");
    };
    let Some(stream) = hls.get_cmaf(key) else {
        return text(StatusCode::NOT_FOUND, "no such stream");
    };
    let cfg = hls.config();
    let limit = Duration::from_millis(cfg.blocking_timeout_ms);
    let a = stream.media(media, hls.held(), limit).await;
    // Numbers are not reused while a stream lives; after a restart of the server they
    // are, so caches may keep a file about as long as the window lists it.
    let max_age = (cfg.segment_duration_ms * cfg.window.max(10) as u64 + cfg.keep_after_ms) / 1000;
    let cache = format!("public, max-age={max_age}, immutable");
    // Gone from memory: a segment (or old init) of the DVR window, from the recording.
    if let (Answer::NotFound(_), Some(dvr)) = (&a, hls.dvr(key)) {
        let dvr_age = (cfg.dvr_window_ms + cfg.keep_after_ms) / 1000;
        let dvr_cache = format!("public, max-age={dvr_age}, immutable");
        if let Some(r) = crate::hls::dvr::media(&stream, &dvr, media, &dvr_cache).await {
            return r;
        }
    }
    let content_type = match media {
        CmafMedia::Init(_) => "video/mp4",
        _ => "video/iso.segment",
    };
    answer(a, content_type, Some(cache))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants() {
        use HlsVariant::*;
        let ll = Chosen::Cmaf(PlaylistKind::LowLatency);
        let plain = Chosen::Cmaf(PlaylistKind::Plain);
        assert_eq!(choose(Auto, ""), ll);
        assert_eq!(choose(Auto, "variant=ts"), Chosen::Ts);
        assert_eq!(choose(Auto, "token=x&variant=fmp4"), plain);
        assert_eq!(choose(Auto, "variant=ll"), ll);
        assert_eq!(choose(Ts, ""), Chosen::Ts);
        assert!(matches!(choose(Ts, "variant=ll"), Chosen::Off(_)));
        assert_eq!(choose(Fmp4, ""), plain);
        assert!(matches!(choose(Fmp4, "variant=ll"), Chosen::Off(_)));
        assert!(matches!(choose(Fmp4, "variant=ts"), Chosen::Off(_)));
        assert_eq!(choose(LowLatency, ""), ll);
        assert_eq!(choose(LowLatency, "variant=fmp4"), plain);
        assert!(matches!(choose(LowLatency, "variant=ts"), Chosen::Off(_)));
    }

    #[test]
    fn media_paths() {
        let (k, m) = parse_media_path("/live/my-cam-part3.1.m4s").unwrap();
        assert_eq!((k.app.as_str(), k.name.as_str()), ("live", "my-cam"));
        assert_eq!(m, CmafMedia::Part(3, 1));
        assert!(parse_media_path("/live/../x-seg1.m4s").is_none());
        assert!(parse_media_path("/live/a/b-seg1.m4s").is_none());
        assert!(parse_media_path("/live/-seg1.m4s").is_none());
    }
}
