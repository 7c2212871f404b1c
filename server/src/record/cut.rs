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
