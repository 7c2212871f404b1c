//! The playback cut, pure: which fragments of a recording cover a wanted time range,
//! starting at the keyframe at or before the wanted start, and how far back each track's
//! decode time moves so the clip starts at 0. The HTTP side streams the init segment,
//! the rebased moofs and the mdats straight from the file.

use std::time::{Duration, SystemTime};

use super::index::FileIndex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutPlan {
    /// Fragments `first..end` of the file.
    pub first: usize,
    pub end: usize,
    /// (track id, ticks subtracted from its tfdt).
    pub bases: Vec<(u32, u64)>,
    /// Wall-clock time of the clip's first frame.
    pub start: SystemTime,
    /// Media in the clip.
    pub duration: Duration,
    /// Bytes of the response: init + the fragments.
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CutError {
    #[error("the recording has no complete fragment")]
    Empty,
    #[error("no recording at that time")]
    NotCovered,
}

/// Plans a clip of `file` (which started at wall time `file_start`) from `want` for
/// `length`. The clip starts at the last fragment that starts with a keyframe at or
/// before `want` (or the file's first, when `want` is before it) and ends with the first
/// fragment that reaches `want + length`, or the file's end.
pub fn plan(
    file: &FileIndex,
    file_start: SystemTime,
    want: SystemTime,
    length: Duration,
) -> Result<CutPlan, CutError> {
    let n = file.fragments.len();
    if n == 0 {
        return Err(CutError::Empty);
    }
    let offset = |t: SystemTime| -> f64 {
        match t.duration_since(file_start) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        }
    };
    let from = offset(want);
    let to = from + length.as_secs_f64();
    if to <= 0.0 || from >= file.duration() {
        return Err(CutError::NotCovered);
    }
    let starts: Vec<f64> = (0..n)
        .map(|i| file.fragment_start(i).unwrap_or(0.0))
        .collect();
    let first = (0..n)
        .rev()
        .find(|&i| starts[i] <= from && file.fragments[i].keyframe_start)
        .unwrap_or(0);
    let end = (first + 1..n).find(|&i| starts[i] >= to).unwrap_or(n);
    // One time moves back for every track, the earliest first sample of the clip's first
    // fragment, so the tracks keep their sync and none goes below 0.
    let frag = &file.fragments[first];
    let earliest = frag
        .tracks
        .iter()
        .filter_map(|t| {
            let ts = file.tracks.iter().find(|x| x.id == t.track_id)?.timescale;
            Some((t.base as u128, ts.max(1) as u128))
        })
        .min_by(|a, b| (a.0 * b.1).cmp(&(b.0 * a.1)));
    let Some((base_ticks, base_scale)) = earliest else {
        return Err(CutError::Empty);
    };
    let bases = file
        .tracks
        .iter()
        .map(|t| {
            let b = base_ticks * t.timescale as u128 / base_scale;
            (t.id, b.min(u64::MAX as u128) as u64)
        })
        .collect();
    let clip_end = if end < n {
        starts[end]
    } else {
        file.duration()
    };
    let len = file.init_len
        + file.fragments[first..end]
            .iter()
            .map(|f| f.len)
            .sum::<u64>();
    Ok(CutPlan {
        first,
        end,
        bases,
        start: file_start + Duration::from_secs_f64(starts[first].max(0.0)),
        duration: Duration::from_secs_f64((clip_end - starts[first]).max(0.0)),
        len,
    })
}

/// A clip's stretch of one file: fragments `first..end`, each track's tfdt moved by `shifts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Index into the files given to `plan_across`.
    pub file: usize,
    pub first: usize,
    pub end: usize,
    /// (track id, ticks added to its tfdt; the result is clamped at 0).
    pub shifts: Vec<(u32, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcrossPlan {
    pub spans: Vec<Span>,
    /// Wall-clock time of the clip's first frame.
    pub start: SystemTime,
    /// Media in the clip, from its first sample to its last sample's end.
    pub duration: Duration,
    /// Bytes of the response: the first file's init + every span's fragments.
    pub len: u64,
}

/// The end, in seconds of clip time, of the latest track of `span`.
fn span_end(file: &FileIndex, span: &Span) -> f64 {
    file.tracks
        .iter()
        .filter_map(|t| {
            let last = file.fragments[span.first..span.end]
                .iter()
                .rev()
                .find_map(|f| f.time(t.id))?;
            let shift = span.shifts.iter().find(|s| s.0 == t.id).map_or(0, |s| s.1);
            let end = (last.base + last.duration) as i64 + shift;
            Some(end.max(0) as f64 / t.timescale.max(1) as f64)
        })
        .fold(0.0, f64::max)
}

/// Plans a clip that starts in `files[0]` and, where it reaches that file's end, goes on
/// into the files after it. The caller passes only files that continue the one before
/// (the same init segment, no gap worth a discontinuity): each continues where the
/// previous span's latest track ended, so decode times only go forward.
pub fn plan_across(
    files: &[(SystemTime, &FileIndex)],
    want: SystemTime,
    length: Duration,
) -> Result<AcrossPlan, CutError> {
    let (start0, idx0) = *files.first().ok_or(CutError::Empty)?;
    let p = plan(idx0, start0, want, length)?;
    let mut spans = vec![Span {
        file: 0,
        first: p.first,
        end: p.end,
        shifts: p.bases.iter().map(|(id, b)| (*id, -(*b as i64))).collect(),
    }];
    let mut len = p.len;
    let mut reached_end = p.end == idx0.fragments.len();
    let want_end = want + length;
    let mut clip_end = span_end(idx0, &spans[0]);
    for (k, (start, idx)) in files.iter().enumerate().skip(1) {
        if !reached_end || *start >= want_end {
            break;
        }
        let Ok(q) = plan(
            idx,
            *start,
            *start,
            want_end.duration_since(*start).unwrap_or_default(),
        ) else {
            break;
        };
        let shifts = q
            .bases
            .iter()
            .map(|(id, b)| {
                let ts = idx
                    .tracks
                    .iter()
                    .find(|t| t.id == *id)
                    .map_or(1, |t| t.timescale);
                (*id, (clip_end * ts as f64).ceil() as i64 - *b as i64)
            })
            .collect();
        let span = Span {
            file: k,
            first: q.first,
            end: q.end,
            shifts,
        };
        len += q.len - idx.init_len;
        reached_end = q.end == idx.fragments.len();
        clip_end = span_end(idx, &span);
        spans.push(span);
    }
    Ok(AcrossPlan {
        spans,
        start: p.start,
        duration: Duration::from_secs_f64(clip_end.max(0.0)),
        len,
    })
}
