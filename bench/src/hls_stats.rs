//! What the HLS clients measured, combined: requests served in the window and their latency,
//! when each segment first appeared in a playlist relative to the send of the keyframe that
//! closed it, and the errors.

use crate::stats::{SendLog, Spread};
use crate::viewer_hls::{HlsRecord, Kind};
use std::collections::BTreeMap;

/// Successful (200) requests completed within the window, per kind, with their latency.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requests {
    pub playlist: u64,
    pub segment: u64,
    pub playlist_latency: Spread,
    pub segment_latency: Spread,
}

fn us(ns: u64) -> u32 {
    (ns / 1000).min(u32::MAX as u64) as u32
}

pub fn requests<'a>(
    records: impl IntoIterator<Item = &'a HlsRecord>,
    w0: u64,
    w1: u64,
) -> Requests {
    let (mut pl, mut seg) = (Vec::new(), Vec::new());
    for r in records {
        for q in r
            .requests
            .iter()
            .filter(|q| q.status == 200 && (w0..=w1).contains(&q.done_ns))
        {
            let lat = us(q.done_ns.saturating_sub(q.sent_ns));
            match q.kind {
                Kind::Playlist => pl.push(lat),
                Kind::Segment => seg.push(lat),
            }
        }
    }
    Requests {
        playlist: pl.len() as u64,
        segment: seg.len() as u64,
        playlist_latency: Spread::of_us(pl),
        segment_latency: Spread::of_us(seg),
    }
}

/// Media sequence number → the earliest time any of `records` saw it listed.
pub fn first_listed<'a>(records: impl IntoIterator<Item = &'a HlsRecord>) -> BTreeMap<u64, u64> {
    let mut out = BTreeMap::new();
    for r in records {
        for (&msn, &t) in &r.first_listed {
            out.entry(msn)
                .and_modify(|v: &mut u64| *v = (*v).min(t))
                .or_insert(t);
        }
    }
    out
}

/// Media sequence number → (first, last) frame it held, from whichever client fetched it.
pub fn frame_ranges<'a>(
    records: impl IntoIterator<Item = &'a HlsRecord>,
) -> BTreeMap<u64, (u64, u64)> {
    let mut out = BTreeMap::new();
    for r in records {
        for (&msn, &range) in &r.segment_frames {
            out.entry(msn).or_insert(range);
        }
    }
    out
}

/// Segment availability: for each segment whose closing keyframe (the first frame of the
/// next segment) was sent within the window, first listed − that keyframe's send time.
pub fn availability(
    listed: &BTreeMap<u64, u64>,
    ranges: &BTreeMap<u64, (u64, u64)>,
    log: &SendLog,
    w0: u64,
    w1: u64,
) -> Spread {
    let mut samples = Vec::new();
    for (&msn, &seen) in listed {
        let closing = match (ranges.get(&(msn + 1)), ranges.get(&msn)) {
            (Some(&(first_next, _)), _) => first_next,
            (None, Some(&(_, last))) => last + 1,
            (None, None) => continue,
        };
        let Some(sent) = log.get(closing) else {
            continue;
        };
        if (w0..=w1).contains(&sent) {
            samples.push(us(seen.saturating_sub(sent)));
        }
    }
    Spread::of_us(samples)
}

/// Error kind → occurrences over all `records`.
pub fn errors<'a>(records: impl IntoIterator<Item = &'a HlsRecord>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in records {
        for (k, &n) in &r.errors {
            *out.entry(k.clone()).or_insert(0) += n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::viewer_hls::RequestRecord;

    fn req(kind: Kind, sent_ns: u64, done_ns: u64, status: u16) -> RequestRecord {
        RequestRecord {
            kind,
            sent_ns,
            done_ns,
            status,
        }
    }

    #[test]
    fn requests_in_window_by_kind() {
        let a = HlsRecord {
            requests: vec![
                req(Kind::Playlist, 0, 5_000_000, 200),
                req(Kind::Playlist, 10_000_000, 11_000_000, 200),
                req(Kind::Segment, 11_000_000, 14_000_000, 200),
                req(Kind::Segment, 15_000_000, 16_000_000, 404),
                req(Kind::Playlist, 30_000_000, 31_000_000, 200),
            ],
            ..Default::default()
        };
        let b = HlsRecord {
            requests: vec![req(Kind::Playlist, 12_000_000, 15_000_000, 200)],
            ..Default::default()
        };
        let r = requests([&a, &b], 10_000_000, 20_000_000);
        assert_eq!((r.playlist, r.segment), (2, 1));
        assert_eq!(r.playlist_latency.p50, Some(1.0));
        assert_eq!(r.playlist_latency.max, Some(3.0));
        assert_eq!(r.segment_latency.p50, Some(3.0));
    }

    #[test]
    fn availability_from_the_closing_keyframe() {
        // Frames 0..=59 in segment 0, 60..=119 in 1, 120.. in 2; frame n sent at n ms.
        let log = SendLog::new(300);
        for n in 0..300 {
            log.record(n, n * 1_000_000 + 1);
        }
        let mut a = HlsRecord::default();
        a.segment_frames.insert(0, (0, 59));
        a.segment_frames.insert(1, (60, 119));
        a.first_listed.insert(0, 70_000_001);
        a.first_listed.insert(1, 125_000_001);
        let mut b = HlsRecord::default();
        b.segment_frames.insert(2, (120, 179));
        b.first_listed.insert(1, 121_000_001);
        b.first_listed.insert(2, 200_000_001);
        b.first_listed.insert(3, 250_000_001);
        b.errors.insert("x".into(), 2);
        a.errors.insert("x".into(), 1);
        let listed = first_listed([&a, &b]);
        assert_eq!(listed.get(&1), Some(&121_000_001));
        let ranges = frame_ranges([&a, &b]);
        // Segment 0 closed by frame 60 (sent at 60 ms): 10 ms; segment 1 by 120: 1 ms;
        // segment 2 by 180 (from its last frame): 20 ms; segment 3: frames unknown.
        let s = availability(&listed, &ranges, &log, 0, 1_000_000_000);
        assert_eq!(s.samples, 3);
        assert_eq!((s.p50, s.max), (Some(10.0), Some(20.0)));
        // Only keyframes sent in the window count.
        let s = availability(&listed, &ranges, &log, 100_000_000, 150_000_000);
        assert_eq!((s.samples, s.p50), (1, Some(1.0)));
        assert_eq!(errors([&a, &b]).get("x"), Some(&3));
    }
}
