//! The playback API over the recording folder: `GET /api/recordings?stream=APP/NAME`
//! lists a stream's files, `GET /recordings/{app}/{stream}?start=RFC3339&duration=SECONDS`
//! streams one MP4 cut at keyframes, `GET /recordings/{app}/{stream}/{file}` serves a
//! file with Range support. Bodies are read from disk in chunks as the client takes
//! them, never built in memory; every name is checked, so no request leaves the folder.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use hyper::header::{
    HeaderValue, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE,
};
use hyper::{Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::cut::{plan_across, AcrossPlan, CutError};
use super::files::{list_stream, parse_file_name, RecordingFile, PART};
use super::index::{scan, shift_moof, FileIndex};
use super::{RecordConfig, RecordFormat};
use crate::http::body::{Chunks, ResponseBody};
use crate::hub::{parse_stream_name, StreamKey};

/// Answers `/api/recordings` and `/recordings/…`: play tokens and the hook apply as for
/// live playback (protocol `record`).
pub async fn respond(
    ctx: &crate::http::HttpContext,
    path: &str,
    query: &str,
    range: Option<&str>,
    peer: std::net::SocketAddr,
) -> Response<ResponseBody> {
    let Some((cfg, durations)) = ctx
        .record
        .as_ref()
        .filter(|r| r.config().enabled)
        .map(|r| (Arc::new(r.config().clone()), r.durations().clone()))
    else {
        return text(
            StatusCode::NOT_FOUND,
            "recording is disabled on this server",
        );
    };
    let target = if path == "/api/recordings" {
        match list_key(query) {
            Some(k) => Err(k),
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "give the stream as ?stream=APP/NAME (letters, digits, '-', '_', '.', '~')",
                )
            }
        }
    } else {
        match parse_path(path) {
            Some(t) => Ok(t),
            None => return text(StatusCode::NOT_FOUND, "no such recording path"),
        }
    };
    let key = match &target {
        Err(k) | Ok(Target::Clip(k)) | Ok(Target::File(k, _)) => k.clone(),
    };
    if let Err(d) = crate::http::authorize(ctx, &key, "record", query, peer).await {
        return crate::http::refuse(ctx, &d);
    }
    match target {
        Err(k) => list(cfg, durations, k).await,
        Ok(Target::Clip(k)) => clip(cfg, k, query).await,
        Ok(Target::File(k, name)) => file(cfg, k, name, range.map(str::to_string)).await,
    }
}

/// Bytes read from disk per body chunk.
const READ_CHUNK: usize = 256 << 10;

/// What a `/recordings/…` path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/recordings/{app}/{stream}`: a clip by time.
    Clip(StreamKey),
    /// `/recordings/{app}/{stream}/{file}`: one whole file.
    File(StreamKey, String),
}

/// Parses `/recordings/{app}/{stream}[/{file}]`; `None` for anything else (traversal,
/// bad names, extra segments).
pub fn parse_path(path: &str) -> Option<Target> {
    let rest = path.strip_prefix("/recordings/")?;
    let mut parts = rest.split('/');
    let app = parts.next()?;
    let name = parts.next()?;
    let file = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let key = valid_key(app, name)?;
    match file {
        None => Some(Target::Clip(key)),
        Some(f) => {
            let (_, _, in_progress) = parse_file_name(f)?;
            (!in_progress).then(|| Target::File(key, f.to_string()))
        }
    }
}

fn valid_key(app: &str, name: &str) -> Option<StreamKey> {
    parse_stream_name(app).ok()?;
    let (name, query) = parse_stream_name(name).ok()?;
    query.is_none().then(|| StreamKey::new(app, name))
}

/// `stream=APP/NAME` of the listing's query.
pub fn list_key(query: &str) -> Option<StreamKey> {
    let v = crate::auth::query_param(query, "stream")?;
    let v = v.replace("%2F", "/").replace("%2f", "/");
    let (app, name) = v.split_once('/')?;
    valid_key(app, name)
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response<ResponseBody> {
    let mut body = msg.into();
    body.push('\n');
    let mut r = Response::new(ResponseBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Debug, serde::Serialize)]
struct Listed {
    file: String,
    url: String,
    start: String,
    /// Media in the file's complete fragments; `null` when it cannot be read.
    duration_ms: Option<u64>,
    size: u64,
    format: RecordFormat,
    /// Still being written.
    recording: bool,
}

#[derive(Debug, serde::Serialize)]
struct Listing {
    stream: String,
    recordings: Vec<Listed>,
}

/// `GET /api/recordings?stream=APP/NAME`.
pub async fn list(
    cfg: Arc<RecordConfig>,
    durations: Arc<super::DurationCache>,
    key: StreamKey,
) -> Response<ResponseBody> {
    let dir = cfg.stream_dir(&key);
    let max = cfg.max_listed.max(1);
    let k = key.clone();
    let rows = tokio::task::spawn_blocking(move || {
        let files = list_stream(&dir);
        let skip = files.len().saturating_sub(max);
        files
            .into_iter()
            .skip(skip)
            .map(|f| Listed {
                url: format!("/recordings/{}/{}/{}", k.app, k.name, f.name),
                start: rfc3339(f.start),
                duration_ms: durations
                    .get(&f, || duration_of(&f))
                    .map(|d| (d * 1000.0).round() as u64),
                size: f.size,
                format: f.format,
                recording: f.in_progress,
                file: f.name,
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let body = serde_json::to_vec_pretty(&Listing {
        stream: key.to_string(),
        recordings: rows,
    })
    .unwrap_or_default();
    let mut r = Response::new(ResponseBody::full(body));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn index_of(path: &Path) -> Option<FileIndex> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    scan(&mut f, len).ok()
}

/// Seconds of media in a file.
fn duration_of(f: &RecordingFile) -> Option<f64> {
    match f.format {
        RecordFormat::Fmp4 => index_of(&f.path).map(|i| i.duration()),
        RecordFormat::Flv => flv_last_timestamp(&f.path).map(|ms| ms as f64 / 1000.0),
    }
}

/// The timestamp of an FLV file's last tag, found through its last PreviousTagSize.
fn flv_last_timestamp(path: &Path) -> Option<u64> {
    use std::io::{Read, Seek};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.checked_sub(4)?)).ok()?;
    let mut b = [0u8; 4];
    f.read_exact(&mut b).ok()?;
    let size = u32::from_be_bytes(b) as u64;
    f.seek(SeekFrom::Start(len.checked_sub(4 + size)?)).ok()?;
    let mut h = [0u8; 11];
    f.read_exact(&mut h).ok()?;
    Some(u32::from_be_bytes([h[7], h[4], h[5], h[6]]) as u64)
}

/// Why a clip request was refused (each a 4xx with this text).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClipError {
    #[error("start must be an RFC 3339 time, e.g. 2026-12-01T14:03:05Z")]
    BadStart,
    #[error("duration must be a number of seconds above 0")]
    BadDuration,
    #[error("duration is longer than the {0} s this server serves in one clip")]
    TooLong(u64),
    #[error("no recordings of this stream")]
    NoRecordings,
    #[error("start is before the first recording of this stream ({0})")]
    BeforeFirst(String),
    #[error("no recording at that time")]
    NotCovered,
    #[error("clips are cut from fMP4 recordings; fetch FLV files whole from the listing")]
    NotFmp4,
}

impl ClipError {
    fn status(&self) -> StatusCode {
        match self {
            ClipError::BadStart | ClipError::BadDuration | ClipError::TooLong(_) => {
                StatusCode::BAD_REQUEST
            }
            ClipError::NotFmp4 => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::NOT_FOUND,
        }
    }
}

/// The start and duration of a clip query.
pub fn clip_query(query: &str, max: Duration) -> Result<(SystemTime, Duration), ClipError> {
    let start = crate::auth::query_param(query, "start").ok_or(ClipError::BadStart)?;
    // A '+' in an offset arrives percent-encoded (or as a space from forms).
    let start = start
        .replace("%2B", "+")
        .replace("%2b", "+")
        .replace("%3A", ":")
        .replace("%3a", ":");
    let start = DateTime::parse_from_rfc3339(&start).map_err(|_| ClipError::BadStart)?;
    let start: SystemTime = start
        .with_timezone(&Utc)
        .timestamp_millis()
        .try_into()
        .ok()
        .map(|ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
        .ok_or(ClipError::BadStart)?;
    let secs: f64 = crate::auth::query_param(query, "duration")
        .and_then(|d| d.parse().ok())
        .ok_or(ClipError::BadDuration)?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(ClipError::BadDuration);
    }
    if secs * 1000.0 > max.as_millis() as f64 {
        return Err(ClipError::TooLong(max.as_secs()));
    }
    Ok((start, Duration::from_secs_f64(secs)))
}

/// Most files one clip goes through (each is open while the clip is sent).
const MAX_CLIP_FILES: usize = 64;
/// A file continues the previous one when it starts within this of the previous one's
/// last write (a rotation opens the next file at the same keyframe).
const CONTINUES_WITHIN: Duration = Duration::from_secs(2);

/// The files of a clip, their indexes and the plan.
type Planned = (Vec<PathBuf>, Vec<Arc<FileIndex>>, AcrossPlan);

fn init_bytes(path: &Path, idx: &FileIndex) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut buf = vec![0u8; idx.init_len as usize];
    std::fs::File::open(path).ok()?.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// Chooses the files and plans the clip (blocking: reads the folder and the indexes of
/// the files the clip goes through).
fn plan_clip(dir: &Path, want: SystemTime, length: Duration) -> Result<Planned, ClipError> {
    let files = list_stream(dir);
    let first = files.first().ok_or(ClipError::NoRecordings)?;
    if want + length <= first.start {
        return Err(ClipError::BeforeFirst(rfc3339(first.start)));
    }
    // The first file that overlaps the window; a file ends about when it was last written.
    let at = files
        .iter()
        .position(|f| f.start < want + length && f.modified > want)
        .ok_or(ClipError::NotCovered)?;
    let f = &files[at];
    if f.format != RecordFormat::Fmp4 {
        return Err(ClipError::NotFmp4);
    }
    let idx = index_of(&f.path).ok_or(ClipError::NotCovered)?;
    let init = init_bytes(&f.path, &idx).ok_or(ClipError::NotCovered)?;
    let mut chosen = vec![(f.clone(), Arc::new(idx))];
    // The files after it that continue it, while the window reaches into them.
    for next in &files[at + 1..] {
        let prev = &chosen[chosen.len() - 1].0;
        if chosen.len() >= MAX_CLIP_FILES
            || next.start >= want + length
            || next.format != RecordFormat::Fmp4
            || next.start > prev.modified + CONTINUES_WITHIN
        {
            break;
        }
        let Some(idx) = index_of(&next.path) else {
            break;
        };
        if init_bytes(&next.path, &idx).as_ref() != Some(&init) {
            break;
        }
        chosen.push((next.clone(), Arc::new(idx)));
    }
    let parts: Vec<(SystemTime, &FileIndex)> =
        chosen.iter().map(|(f, i)| (f.start, i.as_ref())).collect();
    let p = plan_across(&parts, want, length).map_err(|e| match e {
        CutError::Empty | CutError::NotCovered => ClipError::NotCovered,
    })?;
    let used = p.spans.len();
    let (paths, indexes) = chosen
        .into_iter()
        .take(used)
        .map(|(f, i)| (f.path, i))
        .unzip();
    Ok((paths, indexes, p))
}

/// `GET /recordings/{app}/{stream}?start&duration`.
pub async fn clip(cfg: Arc<RecordConfig>, key: StreamKey, query: &str) -> Response<ResponseBody> {
    let (want, length) = match clip_query(query, Duration::from_millis(cfg.max_clip_duration_ms)) {
        Ok(v) => v,
        Err(e) => return text(e.status(), e.to_string()),
    };
    let dir = cfg.stream_dir(&key);
    let planned = tokio::task::spawn_blocking(move || plan_clip(&dir, want, length)).await;
    let (paths, indexes, p) = match planned {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return text(e.status(), e.to_string()),
        Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "clip planning failed"),
    };
    let mut files = Vec::with_capacity(paths.len());
    for path in &paths {
        match tokio::fs::File::open(path).await {
            Ok(f) => files.push(f),
            Err(_) => return text(StatusCode::NOT_FOUND, "the recording is gone"),
        }
    }
    let mut pieces = vec![Piece::File {
        file: 0,
        offset: 0,
        len: indexes[0].init_len,
    }];
    let mut rebase = Vec::with_capacity(p.spans.len());
    for (k, span) in p.spans.iter().enumerate() {
        let idx = &indexes[span.file];
        for i in span.first..span.end {
            let f = &idx.fragments[i];
            pieces.push(Piece::Moof {
                file: k,
                fragment: i,
            });
            pieces.push(Piece::File {
                file: k,
                offset: f.offset + f.moof_len,
                len: f.len - f.moof_len,
            });
        }
        rebase.push((idx.clone(), span.shifts.clone()));
    }
    let body = file_body(files, pieces, rebase);
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(p.len));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&rfc3339(p.start)) {
        h.insert("x-clip-start", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", p.duration.as_secs_f64())) {
        h.insert("x-clip-duration", v);
    }
    let name = format!(
        "attachment; filename=\"{}-{}.mp4\"",
        key.name,
        DateTime::<Utc>::from(p.start).format("%Y-%m-%d_%H-%M-%S%.3f")
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    r
}

/// A Range header this server cannot satisfy (answered 416).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("one byte range within the file, please")]
pub struct BadRange;

/// A single byte range of a `len`-byte file: `Ok(None)` without a Range header,
/// `Err(BadRange)` when it cannot be satisfied.
pub fn parse_range(header: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, BadRange> {
    let Some(h) = header else { return Ok(None) };
    let spec = h.trim().strip_prefix("bytes=").ok_or(BadRange)?;
    if spec.contains(',') {
        return Err(BadRange);
    }
    let (a, b) = spec.split_once('-').ok_or(BadRange)?;
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Result<u64, BadRange> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(BadRange);
        }
        s.parse().map_err(|_| BadRange)
    };
    let (start, end) = if a.is_empty() {
        // The last `b` bytes.
        let n = num(b)?;
        if n == 0 || len == 0 {
            return Err(BadRange);
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start = num(a)?;
        let end = if b.is_empty() { u64::MAX } else { num(b)? };
        if end < start {
            return Err(BadRange);
        }
        (start, end.min(len.saturating_sub(1)))
    };
    if start >= len {
        return Err(BadRange);
    }
    Ok(Some((start, end)))
}

/// `GET /recordings/{app}/{stream}/{file}`, whole or one Range.
pub async fn file(
    cfg: Arc<RecordConfig>,
    key: StreamKey,
    name: String,
    range: Option<String>,
) -> Response<ResponseBody> {
    let dir = cfg.stream_dir(&key);
    let Some((_, format, _)) = parse_file_name(&name) else {
        return text(StatusCode::NOT_FOUND, "no such recording");
    };
    // A file still being written is served as far as it is written.
    let mut path = dir.join(&name);
    let mut file = tokio::fs::File::open(&path).await;
    if file.is_err() {
        path = dir.join(format!("{name}{PART}"));
        file = tokio::fs::File::open(&path).await;
    }
    let Ok(file) = file else {
        return text(StatusCode::NOT_FOUND, "no such recording");
    };
    let len = match file.metadata().await {
        Ok(m) => m.len(),
        Err(_) => return text(StatusCode::NOT_FOUND, "no such recording"),
    };
    let content_type = match format {
        RecordFormat::Fmp4 => "video/mp4",
        RecordFormat::Flv => "video/x-flv",
    };
    let (status, start, end) = match parse_range(range.as_deref(), len) {
        Ok(None) => (StatusCode::OK, 0, len),
        Ok(Some((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b + 1),
        Err(BadRange) => {
            let mut r = text(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("one byte range within the file's {len} bytes, please"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let body = file_body(
        vec![file],
        vec![Piece::File {
            file: 0,
            offset: start,
            len: end - start,
        }],
        Vec::new(),
    );
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)) {
            h.insert(CONTENT_RANGE, v);
        }
    }
    r
}

/// A stretch of the body: bytes of a file, or a fragment's moof with its tfdts moved.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Piece {
    File { file: usize, offset: u64, len: u64 },
    Moof { file: usize, fragment: usize },
}

/// Per file of a clip: its index and each track's tfdt shift.
pub(crate) type Rebase = (Arc<FileIndex>, Vec<(u32, i64)>);

struct BodyState {
    files: Vec<tokio::fs::File>,
    pieces: std::collections::VecDeque<Piece>,
    rebase: Vec<Rebase>,
}

/// A body read from `files` piece by piece, a chunk at a time as hyper asks for it.
pub(crate) fn file_body(
    files: Vec<tokio::fs::File>,
    pieces: Vec<Piece>,
    rebase: Vec<Rebase>,
) -> ResponseBody {
    let state = BodyState {
        files,
        pieces: pieces.into(),
        rebase,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            let piece = st.pieces.pop_front()?;
            match piece {
                Piece::File { len: 0, .. } => continue,
                Piece::File { file, offset, len } => {
                    let n = len.min(READ_CHUNK as u64);
                    let bytes = read_at(st.files.get_mut(file)?, offset, n).await?;
                    if n < len {
                        st.pieces.push_front(Piece::File {
                            file,
                            offset: offset + n,
                            len: len - n,
                        });
                    }
                    return Some((Chunks::from(bytes), st));
                }
                Piece::Moof { file, fragment } => {
                    let (idx, shifts) = st.rebase.get(file)?.clone();
                    let f = idx.fragments.get(fragment)?.clone();
                    let moof = read_at(st.files.get_mut(file)?, f.offset, f.moof_len).await?;
                    let moof = Bytes::from(shift_moof(&moof, &f, &shifts));
                    return Some((Chunks::from(moof), st));
                }
            }
        }
    });
    ResponseBody::Live(Box::pin(stream))
}

/// `len` bytes at `offset`; `None` (the body ends early) when the file is shorter.
async fn read_at(file: &mut tokio::fs::File, offset: u64, len: u64) -> Option<Bytes> {
    file.seek(SeekFrom::Start(offset)).await.ok()?;
    let mut buf = vec![0u8; len as usize];
    file.read_exact(&mut buf).await.ok()?;
    Some(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_refuse_traversal() {
        assert_eq!(
            parse_path("/recordings/live/cam"),
            Some(Target::Clip(StreamKey::new("live", "cam")))
        );
        assert_eq!(
            parse_path("/recordings/live/cam/2026-12-01_14-03-05.123.mp4"),
            Some(Target::File(
                StreamKey::new("live", "cam"),
                "2026-12-01_14-03-05.123.mp4".into()
            ))
        );
        for bad in [
            "/recordings/../etc/passwd",
            "/recordings/live/..",
            "/recordings/live/../cam",
            "/recordings/live/cam/../../x.mp4",
            "/recordings/live/cam/2026-12-01_14-03-05.123.mp4.part",
            "/recordings/live/cam/a/b",
            "/recordings/live/%2e%2e",
            "/recordings/live",
            "/recordings/live/.cam",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
        assert_eq!(
            list_key("stream=live/cam"),
            Some(StreamKey::new("live", "cam"))
        );
        assert_eq!(
            list_key("stream=live%2Fcam&token=x"),
            Some(StreamKey::new("live", "cam"))
        );
        assert_eq!(list_key("stream=../cam"), None);
        assert_eq!(list_key("stream=live/../../x"), None);
        assert_eq!(list_key("stream=live"), None);
    }

    #[test]
    fn clip_queries() {
        let max = Duration::from_secs(3600);
        let (t, d) = clip_query("start=2026-12-01T14:03:05.5Z&duration=20", max).unwrap();
        assert_eq!(
            t,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_133_785_500)
        );
        assert_eq!(d, Duration::from_secs(20));
        let (t2, _) = clip_query("start=2026-12-01T15:03:05.5%2B01:00&duration=1", max).unwrap();
        assert_eq!(t, t2);
        for (q, e) in [
            ("duration=20", ClipError::BadStart),
            ("start=yesterday&duration=20", ClipError::BadStart),
            ("start=2026-12-01T14:03:05Z", ClipError::BadDuration),
            (
                "start=2026-12-01T14:03:05Z&duration=0",
                ClipError::BadDuration,
            ),
            (
                "start=2026-12-01T14:03:05Z&duration=-5",
                ClipError::BadDuration,
            ),
            (
                "start=2026-12-01T14:03:05Z&duration=NaN",
                ClipError::BadDuration,
            ),
            (
                "start=2026-12-01T14:03:05Z&duration=inf",
                ClipError::BadDuration,
            ),
            (
                "start=2026-12-01T14:03:05Z&duration=31536000",
                ClipError::TooLong(3600),
            ),
            ("start=1969-01-01T00:00:00Z&duration=5", ClipError::BadStart),
        ] {
            assert_eq!(clip_query(q, max), Err(e), "{q}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=-1000"), 100), Ok(Some((0, 99))));
        // A huge end is clamped to the file; a huge start cannot be satisfied.
        assert_eq!(
            parse_range(Some("bytes=10-99999999999999999"), 100),
            Ok(Some((10, 99)))
        );
        for bad in [
            "bytes=100-",
            "bytes=99999999999999999999999-",
            "bytes=5-1",
            "bytes=0-1,5-6",
            "bytes=-0",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
        ] {
            assert_eq!(parse_range(Some(bad), 100), Err(BadRange), "{bad}");
        }
    }
}
