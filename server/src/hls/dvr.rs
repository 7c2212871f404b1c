//! The DVR window (time-shift for live viewers): fMP4 segments that left the live window,
//! listed again before it and served from the stream's recording, their decode times moved
//! onto the live timeline so the whole playlist is one timeline with the live numbering.
//! `plan` is pure (segment times and file indexes in, which fragments make each segment
//! out); the rest lists and indexes the files off the async workers and streams one
//! segment's bytes from its file. It never reads a whole file into memory, never writes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::Response;

use super::cmaf::{CmafMedia, CmafStream};
use crate::http::body::ResponseBody;
use crate::llhls::{LlPlaylist, LlSegment, MediaName, PastSegment};
use crate::record::files::list_stream;
use crate::record::http::{file_body, Piece};
use crate::record::index::{scan, scan_more, FileIndex};
use crate::record::RecordFormat;

/// A recorded fragment starts at the live segment's keyframe when their times, mapped
/// through the two wall clocks (the recorder's file start, the segment's
/// PROGRAM-DATE-TIME), are this close (or 45 % of the file's closest fragment spacing,
/// if less): more than the two tasks' skew in reading the clock for the same frames
/// (milliseconds), less than half the spacing of fragments. A file whose skew is beyond
/// it is not used rather than used one fragment off.
pub const SNAP_TOLERANCE: Duration = Duration::from_millis(400);
/// Most recording files one stream's DVR window reads (a rotation every
/// `record.segment_duration_ms` makes few; publisher returns make one each).
pub const MAX_FILES: usize = 256;
/// A plan is rebuilt at the latest this long after it was made (it is rebuilt anyway
/// each time a segment leaves the live window), so retention's deletions show soon.
const REFRESH: Duration = Duration::from_secs(2);

/// One stream's DVR settings: `hls.dvr_window_ms`, `hls.dvr_max_segments` and its
/// recording folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DvrSettings {
    pub window: Duration,
    pub max_segments: usize,
    pub dir: PathBuf,
}

/// A recording file as `plan` sees it: its wall-clock start (from its name) and index.
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'a> {
    pub start: SystemTime,
    pub index: &'a FileIndex,
}

/// A past segment and where its media lies in the recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DvrSegment {
    pub past: PastSegment,
    /// Index into the files given to `plan`.
    pub file: usize,
    /// Fragments `first..end` of that file.
    pub first: usize,
    pub end: usize,
    /// (track id, ticks added to its tfdt): the file's times onto the live timeline.
    pub shifts: Vec<(u32, i64)>,
}

/// `a - b` in seconds, signed.
fn secs_between(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// A file's fragments by their start on the driving track: (base, fragment index),
/// ascending (fragments without a run of that track are left out), and its timescale.
struct Starts {
    timescale: u32,
    bases: Vec<(u64, usize)>,
}

impl Starts {
    fn of(index: &FileIndex) -> Option<Starts> {
        let d = index.drive()?;
        let bases: Vec<(u64, usize)> = index
            .fragments
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.time(d.id).map(|t| (t.base, i)))
            .collect();
        // Times only go forward in a recording; a damaged one is not used.
        if bases.is_empty() || bases.windows(2).any(|w| w[1].0 < w[0].0) {
            return None;
        }
        Some(Starts {
            timescale: d.timescale,
            bases,
        })
    }

    /// The fragment whose start is nearest `x` (ticks).
    fn nearest(&self, x: f64) -> (u64, usize) {
        let at = self.bases.partition_point(|(b, _)| (*b as f64) < x);
        let after = self.bases.get(at);
        let before = at.checked_sub(1).and_then(|i| self.bases.get(i));
        match (before, after) {
            (Some(b), Some(a)) if x - b.0 as f64 <= a.0 as f64 - x => *b,
            (_, Some(a)) => *a,
            (Some(b), None) => *b,
            (None, None) => (0, 0),
        }
    }
}

/// Ticks (of the driving track) to add to `file`'s decode times to put them on the live
/// timeline: found by a past segment whose start, mapped through the wall clocks, falls
/// within `SNAP_TOLERANCE` of a fragment's start; that pair then gives the exact shift
/// (both are the same keyframe). `None` when no segment of `history` meets a fragment.
pub fn file_shift(file: &Recorded, history: &[PastSegment]) -> Option<i64> {
    file_shift_of(file, &Starts::of(file.index)?, history)
}

fn file_shift_of(file: &Recorded, starts: &Starts, history: &[PastSegment]) -> Option<i64> {
    let ts = starts.timescale;
    let r0 = starts.bases.first()?.0;
    let span = file.index.duration() + 2.0 * SNAP_TOLERANCE.as_secs_f64();
    // Within the tolerance, and under half the closest spacing of two fragments, so a
    // fragment next to the right one is never taken for it.
    let spacing = starts
        .bases
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .filter(|d| *d > 0)
        .min()
        .map_or(f64::MAX, |d| d as f64 * 0.45);
    let tol = (SNAP_TOLERANCE.as_secs_f64() * ts as f64).min(spacing);
    // The past segments that began while the file was written, nearest its start first.
    let from = file.start.checked_sub(SNAP_TOLERANCE).unwrap_or(file.start);
    let to = file.start + Duration::from_secs_f64(span.max(0.0));
    let first = history.partition_point(|h| h.program_date_time < from);
    let mut candidates: Vec<&PastSegment> = history[first..]
        .iter()
        .take_while(|h| h.program_date_time <= to)
        .filter(|h| h.timescale == ts)
        .take(8)
        .collect();
    candidates.sort_by(|a, b| {
        let da = secs_between(a.program_date_time, file.start).abs();
        let db = secs_between(b.program_date_time, file.start).abs();
        da.total_cmp(&db)
    });
    for h in candidates {
        // The recorded time of the wall instant the segment began.
        let x = r0 as f64 + secs_between(h.program_date_time, file.start) * ts as f64;
        let (nearest, _) = starts.nearest(x);
        if (nearest as f64 - x).abs() <= tol {
            return Some(h.first_dts as i64 - nearest as i64);
        }
    }
    None
}

/// Each track's shift, from the driving track's (`drive_ts` ticks) scaled to its timescale.
fn track_shifts(index: &FileIndex, drive_shift: i64, drive_ts: u32) -> Vec<(u32, i64)> {
    index
        .tracks
        .iter()
        .map(|t| {
            let s = drive_shift as i128 * t.timescale as i128 / drive_ts.max(1) as i128;
            (t.id, s.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
        })
        .collect()
}

/// A file ready for `locate`: its fragment starts and its shift.
struct Placed {
    starts: Starts,
    shift: i64,
}

/// Where past segment `h` lies in the recording: the fragments of one file whose start
/// (on the live timeline) falls within the segment, newest file first.
fn locate(h: &PastSegment, files: &[Recorded], placed: &[Option<Placed>]) -> Option<DvrSegment> {
    for (fi, p) in placed.iter().enumerate().rev() {
        let Some(p) = p else { continue };
        let ts = p.starts.timescale;
        if ts != h.timescale {
            continue;
        }
        // A millisecond of slack: durations went through microseconds.
        let slack = (ts / 1000).max(1) as i128;
        let lo = h.first_dts as i128 - p.shift as i128 - slack;
        let len = h.duration.as_micros() as i128 * ts as i128 / 1_000_000;
        let hi = lo + len;
        let b = &p.starts.bases;
        let i = b.partition_point(|(x, _)| (*x as i128) < lo);
        let j = b.partition_point(|(x, _)| (*x as i128) < hi);
        if i >= j {
            continue;
        }
        return Some(DvrSegment {
            past: *h,
            file: fi,
            first: b[i].1,
            end: b[j - 1].1 + 1,
            shifts: track_shifts(files[fi].index, p.shift, ts),
        });
    }
    None
}

/// The DVR part of the playlist: the past segments just before `first_live_msn`, newest
/// back, as long as each one is in the recording, has the next number, started within
/// `window` before `now`, and fewer than `max_segments` are listed. Oldest first.
pub fn plan(
    history: &[PastSegment],
    first_live_msn: u64,
    files: &[Recorded],
    now: SystemTime,
    window: Duration,
    max_segments: usize,
) -> Vec<DvrSegment> {
    let since = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
    let placed: Vec<Option<Placed>> = files
        .iter()
        .map(|f| {
            let starts = Starts::of(f.index)?;
            let shift = file_shift_of(f, &starts, history)?;
            Some(Placed { starts, shift })
        })
        .collect();
    let mut out = Vec::new();
    let Some(mut expect) = first_live_msn.checked_sub(1) else {
        return out;
    };
    for h in history.iter().rev().filter(|h| h.msn < first_live_msn) {
        if h.msn != expect || out.len() >= max_segments || h.program_date_time < since {
            break;
        }
        let Some(seg) = locate(h, files, &placed) else {
            break;
        };
        out.push(seg);
        match expect.checked_sub(1) {
            Some(e) => expect = e,
            None => break,
        }
    }
    out.reverse();
    out
}

/// `p` (the live playlist) with the DVR segments before its own: numbering, times and
/// discontinuities as the live playlist had them, EXT-X-MAP where the init changes.
/// Segments that left the live window since the plan was made (a blocking request held
/// while the window moved on) are taken from `history` (the live segmenter's), so every
/// answer lists the whole window; the media requests plan again and find them. Left as it
/// is when the plan and the history do not reach the live window.
pub fn prepend<'a>(
    p: &mut LlPlaylist,
    plan: &DvrPlan,
    history: impl DoubleEndedIterator<Item = &'a PastSegment>,
    name: &str,
    live_generation: u32,
) {
    let Some(first_live) = p.segments.first().map(|s| s.msn) else {
        return;
    };
    let mut dvr: Vec<PastSegment> = plan
        .segments
        .iter()
        .map(|s| s.past)
        .filter(|s| s.msn < first_live)
        .collect();
    let Some(planned_to) = dvr.last().map(|s| s.msn) else {
        return;
    };
    if planned_to + 1 != first_live {
        let mut moved: Vec<PastSegment> = history
            .rev()
            .skip_while(|h| h.msn >= first_live)
            .take_while(|h| h.msn > planned_to)
            .copied()
            .collect();
        moved.reverse();
        let consecutive = moved.iter().zip(planned_to + 1..).all(|(h, m)| h.msn == m);
        if !consecutive || moved.len() as u64 != first_live - planned_to - 1 {
            return;
        }
        dvr.extend(moved);
    }
    let init = |g: u32| format!("{name}-init{g}.mp4");
    let mut segments = Vec::with_capacity(dvr.len() + p.segments.len());
    let mut generation = dvr[0].generation;
    p.map_uri = init(generation);
    p.discontinuity_sequence = dvr[0].discontinuities_before;
    for s in dvr {
        let map_uri = (s.generation != generation).then(|| init(s.generation));
        generation = s.generation;
        segments.push(LlSegment {
            msn: s.msn,
            uri: format!("{name}-{}", MediaName::Segment(s.msn).file_name()),
            duration: s.duration,
            program_date_time: s.program_date_time,
            discontinuity: s.discontinuity,
            parts: Vec::new(),
            map_uri,
        });
    }
    let mut live = std::mem::take(&mut p.segments);
    if generation != live_generation {
        live[0].map_uri = Some(init(live_generation));
    }
    segments.extend(live);
    p.segments = segments;
}

/// One stream's recording files with their indexes, kept between plans: a file that grew
/// is read on from where its index ended, one that did not is not read at all.
#[derive(Default)]
pub struct FileCache {
    /// By file name (without `.part`, so the rename at close keeps the entry).
    files: HashMap<String, (u64, Arc<FileIndex>)>,
}

/// A recording file the plan uses.
#[derive(Debug, Clone)]
pub struct Listed {
    pub path: PathBuf,
    pub start: SystemTime,
    pub index: Arc<FileIndex>,
}

impl FileCache {
    /// The fMP4 recordings in `dir` written to since `since`, oldest first, indexed
    /// (blocking: reads the folder and the new part of each file).
    pub fn load(&mut self, dir: &Path, since: SystemTime) -> Vec<Listed> {
        let files: Vec<_> = list_stream(dir)
            .into_iter()
            .filter(|f| f.format == RecordFormat::Fmp4 && f.modified >= since)
            .collect();
        let skip = files.len().saturating_sub(MAX_FILES);
        let mut listed = Vec::new();
        let mut keep = HashMap::new();
        for f in files.into_iter().skip(skip) {
            let cached = self.files.remove(&f.name);
            let index = match cached {
                Some((size, idx)) if size == f.size => Some(idx),
                Some((size, idx)) if size < f.size => {
                    let mut idx = (*idx).clone();
                    std::fs::File::open(&f.path)
                        .ok()
                        .and_then(|mut file| scan_more(&mut file, &mut idx, f.size).ok())
                        .map(|()| Arc::new(idx))
                }
                _ => std::fs::File::open(&f.path)
                    .ok()
                    .and_then(|mut file| scan(&mut file, f.size).ok())
                    .map(Arc::new),
            };
            let Some(index) = index else { continue };
            keep.insert(f.name.clone(), (f.size, index.clone()));
            listed.push(Listed {
                path: f.path,
                start: f.start,
                index,
            });
        }
        self.files = keep;
        listed
    }
}

/// The DVR part of one stream's playlist, as last planned.
#[derive(Debug)]
pub struct DvrPlan {
    /// Unique per plan made: playlists rendered with it are kept under this.
    pub id: u64,
    /// The live window began with this segment when it was planned.
    pub first_live_msn: u64,
    pub made: Instant,
    pub files: Vec<Listed>,
    pub segments: Vec<DvrSegment>,
}

impl DvrPlan {
    pub fn segment(&self, msn: u64) -> Option<&DvrSegment> {
        let i = self
            .segments
            .binary_search_by_key(&msn, |s| s.past.msn)
            .ok()?;
        self.segments.get(i)
    }

    /// A file holding segments of init generation `g`: its ftyp + moov is that init.
    pub fn init_file(&self, g: u32) -> Option<&Listed> {
        let s = self.segments.iter().find(|s| s.past.generation == g)?;
        self.files.get(s.file)
    }
}

/// Plans (blocking).
pub fn build(
    cache: &mut FileCache,
    settings: &DvrSettings,
    history: &[PastSegment],
    first_live_msn: u64,
    now: SystemTime,
) -> DvrPlan {
    let since = now
        .checked_sub(settings.window)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let files = cache.load(&settings.dir, since);
    let recorded: Vec<Recorded> = files
        .iter()
        .map(|f| Recorded {
            start: f.start,
            index: &f.index,
        })
        .collect();
    let segments = plan(
        history,
        first_live_msn,
        &recorded,
        now,
        settings.window,
        settings.max_segments,
    );
    static PLANS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    DvrPlan {
        id: PLANS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        first_live_msn,
        made: Instant::now(),
        files,
        segments,
    }
}

/// The name a recording has after (or before) its close: `.part` removed (or added).
fn other_name(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    Some(match name.strip_suffix(crate::record::files::PART) {
        Some(done) => path.with_file_name(done),
        None => path.with_file_name(format!("{name}{}", crate::record::files::PART)),
    })
}

/// One stream's DVR state: the file indexes and the last plan. Behind an async lock so
/// one request plans while the others wait for its plan.
#[derive(Default)]
pub struct DvrCache {
    files: FileCache,
    plan: Option<Arc<DvrPlan>>,
}

/// The stream's DVR plan for its live window now, made again when the window moved or
/// the plan is older than `REFRESH`. `None` before the stream has a live segment.
pub async fn plan_for(stream: &CmafStream, settings: &DvrSettings) -> Option<Arc<DvrPlan>> {
    let first_live = stream.first_live_msn()?;
    let mut cache = stream.dvr_cache().lock().await;
    if let Some(p) = &cache.plan {
        if p.first_live_msn == first_live && p.made.elapsed() < REFRESH {
            return Some(p.clone());
        }
    }
    let now = SystemTime::now();
    let since = now
        .checked_sub(settings.window)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let history = stream.past_segments(first_live, since, settings.max_segments);
    let mut files = std::mem::take(&mut cache.files);
    let s = settings.clone();
    let (files, plan) = tokio::task::spawn_blocking(move || {
        let plan = build(&mut files, &s, &history, first_live, now);
        (files, plan)
    })
    .await
    .ok()?;
    cache.files = files;
    let plan = Arc::new(plan);
    cache.plan = Some(plan.clone());
    Some(plan)
}

/// A past segment, or the init segment of a past generation, read from the recording;
/// `None` when the DVR window does not hold it (or its file is gone: retention).
pub async fn media(
    stream: &CmafStream,
    settings: &DvrSettings,
    media: CmafMedia,
    cache_control: &str,
) -> Option<Response<ResponseBody>> {
    let plan = plan_for(stream, settings).await?;
    let (listed, pieces, rebase, len, content_type) = match media {
        CmafMedia::Segment(msn) => {
            let s = plan.segment(msn)?;
            let listed = plan.files.get(s.file)?;
            let idx = &listed.index;
            let mut pieces = Vec::with_capacity((s.end - s.first) * 2);
            let mut len = 0;
            for i in s.first..s.end {
                let f = idx.fragments.get(i)?;
                pieces.push(Piece::Moof {
                    file: 0,
                    fragment: i,
                });
                pieces.push(Piece::File {
                    file: 0,
                    offset: f.offset + f.moof_len,
                    len: f.len - f.moof_len,
                });
                len += f.len;
            }
            let rebase = vec![(idx.clone(), s.shifts.clone())];
            (listed, pieces, rebase, len, "video/iso.segment")
        }
        CmafMedia::Init(g) => {
            let listed = plan.init_file(g)?;
            let len = listed.index.init_len;
            let pieces = vec![Piece::File {
                file: 0,
                offset: 0,
                len,
            }];
            (listed, pieces, Vec::new(), len, "video/mp4")
        }
        CmafMedia::Part(..) => return None,
    };
    // Retention may have deleted it since the plan was made: 404, as for any gone
    // segment. A file that was being written may have lost its `.part` since.
    let file = match tokio::fs::File::open(&listed.path).await {
        Ok(f) => f,
        Err(_) => tokio::fs::File::open(other_name(&listed.path)?)
            .await
            .ok()?,
    };
    let mut r = Response::new(file_body(vec![file], pieces, rebase));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(cache_control) {
        h.insert(CACHE_CONTROL, v);
    }
    Some(r)
}

#[cfg(test)]
mod tests;
