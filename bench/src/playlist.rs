//! A tiny live media playlist (m3u8) parser for the HLS clients: target duration, media
//! sequence, the segments' URIs and durations, end of list. Lines it does not need are
//! skipped; sizes are bounded; it never panics. Segment URIs are resolved against the
//! playlist's path (relative, absolute-path, or same-host http:// URIs).

/// Largest playlist accepted, in bytes.
pub const MAX_PLAYLIST: usize = 1 << 20;
/// Most segments one playlist may list.
pub const MAX_SEGMENTS: usize = 10_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media sequence number: EXT-X-MEDIA-SEQUENCE plus the segment's index.
    pub msn: u64,
    pub uri: String,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist {
    pub target_duration_ms: u64,
    pub media_sequence: u64,
    pub segments: Vec<Segment>,
    pub ended: bool,
}

impl MediaPlaylist {
    pub fn last_msn(&self) -> Option<u64> {
        self.segments.last().map(|s| s.msn)
    }
}

/// Why a playlist was refused, naming the line at fault.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlaylistError {
    #[error("playlist over {MAX_PLAYLIST} bytes")]
    TooBig,
    #[error("playlist is not UTF-8")]
    NotUtf8,
    #[error("playlist does not start with #EXTM3U")]
    NoHeader,
    #[error("bad {tag} value {value:?}")]
    BadValue { tag: &'static str, value: String },
    #[error("{0} overflows")]
    Overflow(&'static str),
    #[error("EXT-X-MEDIA-SEQUENCE after the first segment")]
    LateMediaSequence,
    #[error("segment {0:?} without EXTINF")]
    NoExtinf(String),
    #[error("over {MAX_SEGMENTS} segments")]
    TooManySegments,
    #[error("no EXT-X-TARGETDURATION")]
    NoTargetDuration,
}

pub fn parse(text: &[u8]) -> Result<MediaPlaylist, PlaylistError> {
    if text.len() > MAX_PLAYLIST {
        return Err(PlaylistError::TooBig);
    }
    let text = std::str::from_utf8(text).map_err(|_| PlaylistError::NotUtf8)?;
    let bad = |tag: &'static str, v: &str| PlaylistError::BadValue {
        tag,
        value: v.to_string(),
    };
    let mut lines = text.lines().map(str::trim);
    if lines.next().map(|l| l.trim_start_matches('\u{feff}')) != Some("#EXTM3U") {
        return Err(PlaylistError::NoHeader);
    }
    let mut target = None;
    let mut media_sequence = 0u64;
    let mut segments = Vec::new();
    let mut ended = false;
    let mut duration_ms = None;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            let s: u64 = v
                .trim()
                .parse()
                .map_err(|_| bad("EXT-X-TARGETDURATION", v))?;
            target = Some(
                s.checked_mul(1000)
                    .ok_or(PlaylistError::Overflow("target duration"))?,
            );
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            if !segments.is_empty() {
                return Err(PlaylistError::LateMediaSequence);
            }
            media_sequence = v
                .trim()
                .parse()
                .map_err(|_| bad("EXT-X-MEDIA-SEQUENCE", v))?;
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let d = v.split(',').next().unwrap_or_default().trim();
            let secs: f64 = d.parse().map_err(|_| bad("EXTINF", v))?;
            if !(0.0..=86_400.0).contains(&secs) {
                return Err(bad("EXTINF", v));
            }
            duration_ms = Some((secs * 1000.0).round() as u64);
        } else if line == "#EXT-X-ENDLIST" {
            ended = true;
        } else if line.starts_with('#') {
            // Other tags (version, program date time, discontinuity, …) and comments.
        } else {
            let Some(d) = duration_ms.take() else {
                return Err(PlaylistError::NoExtinf(line.to_string()));
            };
            if segments.len() >= MAX_SEGMENTS {
                return Err(PlaylistError::TooManySegments);
            }
            let msn = media_sequence
                .checked_add(segments.len() as u64)
                .ok_or(PlaylistError::Overflow("media sequence"))?;
            segments.push(Segment {
                msn,
                uri: line.to_string(),
                duration_ms: d,
            });
        }
    }
    Ok(MediaPlaylist {
        target_duration_ms: target.ok_or(PlaylistError::NoTargetDuration)?,
        media_sequence,
        segments,
        ended,
    })
}

/// The request path of `uri` listed in the playlist at `base` (a path, e.g. `/live/a.m3u8`):
/// relative URIs replace the last path segment, `/…` stands as is, `http://{host}/…` must
/// name `host`. Anything else (another host, another scheme, `..`) is refused.
pub fn resolve(base: &str, host: &str, uri: &str) -> Option<String> {
    let path = if let Some(rest) = uri.strip_prefix("http://") {
        let (auth, path) = rest.split_at(rest.find('/')?);
        if !auth.eq_ignore_ascii_case(host) {
            return None;
        }
        path.to_string()
    } else if uri.starts_with('/') {
        uri.to_string()
    } else if uri.contains("://") || uri.is_empty() {
        return None;
    } else {
        let base = base.split(['?', '#']).next().unwrap_or_default();
        let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
        format!("{}{uri}", if dir.is_empty() { "/" } else { dir })
    };
    let bad = path
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .split('/')
        .any(|s| s == "..")
        || path.bytes().any(|b| b.is_ascii_control() || b == b' ');
    (!bad).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use m3u8_rs::{MediaPlaylist as M3u8, MediaSegment};

    /// A live playlist written by m3u8-rs, the writer onair itself uses.
    fn written(first: u64, n: u64, ended: bool) -> Vec<u8> {
        let p = M3u8 {
            version: Some(3),
            target_duration: 2,
            media_sequence: first,
            segments: (first..first + n)
                .map(|s| MediaSegment {
                    uri: format!("bench-{s}.ts"),
                    duration: if s % 2 == 0 { 2.0 } else { 2.033 },
                    discontinuity: s == first + 1,
                    ..Default::default()
                })
                .collect(),
            end_list: ended,
            ..Default::default()
        };
        let mut out = Vec::new();
        p.write_to(&mut out).unwrap();
        out
    }

    #[test]
    fn parses_what_m3u8_rs_writes() {
        let p = parse(&written(41, 6, false)).unwrap();
        assert_eq!(p.target_duration_ms, 2000);
        assert_eq!(p.media_sequence, 41);
        assert_eq!(p.segments.len(), 6);
        assert_eq!(
            p.segments[0],
            Segment {
                msn: 41,
                uri: "bench-41.ts".into(),
                duration_ms: 2033
            }
        );
        assert_eq!(p.last_msn(), Some(46));
        assert!(!p.ended);
        assert!(parse(&written(0, 2, true)).unwrap().ended);
        assert_eq!(parse(&written(0, 0, false)).unwrap().segments, vec![]);
    }

    #[test]
    fn parses_onair_style_text_and_crlf() {
        let text = "#EXTM3U\r\n#EXT-X-VERSION:3\r\n#EXT-X-TARGETDURATION:4\r\n\
                    #EXT-X-MEDIA-SEQUENCE:4294967301\r\n\
                    #EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:02.000Z\r\n#EXTINF:3.4,\r\nt-4294967301.ts\r\n\
                    #EXT-X-DISCONTINUITY\r\n#EXTINF:2,title, with comma\r\nt-4294967302.ts\r\n";
        let p = parse(text.as_bytes()).unwrap();
        assert_eq!(p.target_duration_ms, 4000);
        assert_eq!(p.segments[0].duration_ms, 3400);
        assert_eq!(p.segments[1].msn, 4_294_967_302);
        assert_eq!(p.segments[1].uri, "t-4294967302.ts");
    }

    #[test]
    fn rejects_bad_playlists() {
        for bad in [
            &b""[..],
            b"not a playlist",
            b"#EXTM3U\n#EXTINF:2,\na.ts\n",
            b"#EXTM3U\n#EXT-X-TARGETDURATION:x\n",
            b"#EXTM3U\n#EXT-X-TARGETDURATION:2\na.ts\n",
            b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:-1,\na.ts\n",
            b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:nan,\na.ts\n",
            b"#EXTM3U\n#EXT-X-TARGETDURATION:99999999999999999999\n",
            b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n#EXT-X-MEDIA-SEQUENCE:3\n",
            b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n#EXTINF:2,\na\n#EXTINF:2,\nb\n",
            b"#EXTM3U\xff\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let big = vec![b'#'; MAX_PLAYLIST + 1];
        assert!(parse(&big).is_err());
    }

    #[test]
    fn resolves_segment_uris() {
        let h = "127.0.0.1:8080";
        assert_eq!(
            resolve("/live/bench.m3u8", h, "bench-3.ts").as_deref(),
            Some("/live/bench-3.ts")
        );
        assert_eq!(
            resolve("/live/bench.m3u8?token=1", h, "seg/3.ts?x=1").as_deref(),
            Some("/live/seg/3.ts?x=1")
        );
        assert_eq!(resolve("/a.m3u8", h, "b.ts").as_deref(), Some("/b.ts"));
        assert_eq!(
            resolve("/live/a.m3u8", h, "/other/b.ts").as_deref(),
            Some("/other/b.ts")
        );
        assert_eq!(
            resolve("/live/a.m3u8", h, "http://127.0.0.1:8080/x/b.ts").as_deref(),
            Some("/x/b.ts")
        );
        assert_eq!(resolve("/live/a.m3u8", h, "http://example.com/b.ts"), None);
        assert_eq!(
            resolve("/live/a.m3u8", h, "https://127.0.0.1:8080/b.ts"),
            None
        );
        assert_eq!(resolve("/live/a.m3u8", h, "../b.ts"), None);
        assert_eq!(resolve("/live/a.m3u8", h, "b c.ts"), None);
        assert_eq!(resolve("/live/a.m3u8", h, ""), None);
    }
}
