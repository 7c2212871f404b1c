//! The DVR plan with made-up segment times and file indexes: a stream whose timeline is
//! 10 s ahead of its recording's (the recording's times start near 0), keyframes and
//! fragments every second.

use super::*;
use crate::llhls::render_plain;
use crate::record::index::{FragmentInfo, TrackInfo, TrackTime};

const VIDEO: u32 = 1;
const AUDIO: u32 = 2;
/// Stream time (ms) at which the recording's time 0 lies.
const BASE_MS: u64 = 10_000;

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_119_200)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Live segment `msn` of `len` seconds starting `at` seconds into the stream.
fn past(msn: u64, at: f64, len: f64) -> PastSegment {
    PastSegment {
        msn,
        program_date_time: t0() + secs(at),
        duration: secs(len),
        discontinuity: false,
        discontinuities_before: 0,
        generation: 0,
        first_dts: ((BASE_MS as f64 / 1000.0 + at) * 90_000.0).round() as u64,
        timescale: 90_000,
    }
}

/// Segments `from..to`, one second each.
fn history(from: u64, to: u64) -> Vec<PastSegment> {
    (from..to).map(|m| past(m, m as f64, 1.0)).collect()
}

/// A recording of fragments starting at stream seconds `starts` (each until the next,
/// the last 1 s long), its file started at stream second `starts[0]` plus `skew`.
fn file(starts: &[f64], skew: f64) -> (SystemTime, FileIndex) {
    let mut fragments = Vec::new();
    let mut offset = 1000;
    let rec = |s: f64, ts: f64| ((s - starts[0]) * ts).round() as u64;
    for (i, s) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(s + 1.0);
        let len = 5_000 + i as u64;
        fragments.push(FragmentInfo {
            offset,
            moof_len: 200,
            len,
            tracks: vec![
                TrackTime {
                    track_id: VIDEO,
                    base: rec(*s, 90_000.0),
                    duration: rec(end, 90_000.0) - rec(*s, 90_000.0),
                    tfdt_at: 40,
                    tfdt_64: true,
                },
                TrackTime {
                    track_id: AUDIO,
                    base: rec(*s, 48_000.0),
                    duration: rec(end, 48_000.0) - rec(*s, 48_000.0),
                    tfdt_at: 120,
                    tfdt_64: true,
                },
            ],
            keyframe_start: true,
        });
        offset += len;
    }
    let idx = FileIndex {
        init_len: 1000,
        tracks: vec![
            TrackInfo {
                id: VIDEO,
                timescale: 90_000,
                video: true,
            },
            TrackInfo {
                id: AUDIO,
                timescale: 48_000,
                video: false,
            },
        ],
        fragments,
        complete_len: offset,
        file_len: offset,
    };
    let at = starts[0] + skew;
    let start = if at >= 0.0 {
        t0() + secs(at)
    } else {
        t0() - secs(-at)
    };
    (start, idx)
}

fn recorded(files: &[(SystemTime, FileIndex)]) -> Vec<Recorded<'_>> {
    files
        .iter()
        .map(|(start, index)| Recorded {
            start: *start,
            index,
        })
        .collect()
}

fn seconds(from: u64, to: u64) -> Vec<f64> {
    (from..to).map(|s| s as f64).collect()
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn each_past_segment_is_its_fragment_moved_onto_the_live_timeline() {
    // Live window from segment 10; the recorder's clock read 30 ms late.
    let files = [file(&seconds(0, 20), 0.030)];
    let h = history(0, 20);
    let now = t0() + secs(20.0);
    let p = plan(&h, 10, &recorded(&files), now, HOUR, 1000);
    assert_eq!(
        p.iter().map(|s| s.past.msn).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    for s in &p {
        assert_eq!(
            (s.file, s.first, s.end),
            (0, s.past.msn as usize, s.past.msn as usize + 1)
        );
        // Exactly the recording's offset on the stream timeline, per track.
        assert_eq!(
            s.shifts,
            vec![
                (VIDEO, (BASE_MS * 90) as i64),
                (AUDIO, (BASE_MS * 48) as i64)
            ]
        );
        assert_eq!(s.past.duration, secs(1.0));
        assert_eq!(s.past.program_date_time, t0() + secs(s.past.msn as f64));
    }
    // Nothing before the first segment of the stream, nothing when the live window
    // starts at 0.
    assert!(plan(&h, 0, &recorded(&files), now, HOUR, 1000).is_empty());
}

#[test]
fn segments_of_several_fragments_and_a_recording_started_mid_segment() {
    // 2 s live segments over 1 s fragments; the file starts one second into segment 0.
    let files = [file(&seconds(1, 20), -0.1)];
    let h: Vec<_> = (0..10).map(|m| past(m, 2.0 * m as f64, 2.0)).collect();
    let p = plan(&h, 6, &recorded(&files), t0() + secs(20.0), HOUR, 1000);
    let got: Vec<_> = p.iter().map(|s| (s.past.msn, s.first, s.end)).collect();
    // Segment 0 is half in the recording: it is served with what there is (fragment 0
    // starts in it); the others are two fragments each.
    assert_eq!(
        got,
        vec![
            (0, 0, 1),
            (1, 1, 3),
            (2, 3, 5),
            (3, 5, 7),
            (4, 7, 9),
            (5, 9, 11)
        ]
    );
    // The recording's 0 is stream second 11 here.
    assert_eq!(p[0].shifts[0], (VIDEO, 11 * 90_000));
}

#[test]
fn the_window_and_the_segment_bound_cut_the_oldest() {
    let files = [file(&seconds(0, 40), 0.0)];
    let h = history(0, 40);
    let now = t0() + secs(40.0);
    let msns = |p: Vec<DvrSegment>| p.iter().map(|s| s.past.msn).collect::<Vec<_>>();
    // 15 s window: segments that started at stream second 25 or later.
    assert_eq!(
        msns(plan(&h, 30, &recorded(&files), now, secs(15.0), 1000)),
        (25..30).collect::<Vec<_>>()
    );
    // At most 3 segments.
    assert_eq!(
        msns(plan(&h, 30, &recorded(&files), now, HOUR, 3)),
        vec![27, 28, 29]
    );
}

#[test]
fn retention_and_holes_end_the_window_where_the_recording_ends() {
    // A rotation at stream second 10: two files, each with its own times from 0.
    let both = [file(&seconds(0, 10), 0.01), file(&seconds(10, 25), 0.02)];
    let h = history(0, 25);
    let now = t0() + secs(25.0);
    let p = plan(&h, 15, &recorded(&both), now, HOUR, 1000);
    assert_eq!(p.len(), 15);
    assert_eq!((p[9].file, p[9].first), (0, 9));
    assert_eq!((p[10].file, p[10].first), (1, 0));
    assert_eq!(p[10].shifts[0], (VIDEO, 20 * 90_000));
    // Retention deleted the first file: the window starts with the second one.
    let p = plan(&h, 15, &recorded(&both[1..]), now, HOUR, 1000);
    assert_eq!(p.first().map(|s| s.past.msn), Some(10));
    assert_eq!(p.len(), 5);
    // No recording at all: no DVR segments.
    assert!(plan(&h, 15, &[], now, HOUR, 1000).is_empty());
    // A segment missing from the history (dropped by the live segmenter) ends it too.
    let mut gap = h.clone();
    gap.retain(|s| s.msn != 12);
    let p = plan(&gap, 15, &recorded(&both), now, HOUR, 1000);
    assert_eq!(
        p.iter().map(|s| s.past.msn).collect::<Vec<_>>(),
        vec![13, 14]
    );
}

#[test]
fn a_file_whose_clock_does_not_match_is_not_used() {
    // The file's start is 0.5 s off the live times, halfway between two keyframes: no
    // fragment can be told to start a segment, and nothing is guessed. (The two wall
    // clocks are read by two tasks as the same frames arrive: milliseconds apart.)
    let files = [file(&seconds(0, 20), 0.5)];
    let h = history(0, 20);
    let r = recorded(&files);
    assert_eq!(file_shift(&r[0], &h), None);
    assert!(plan(&h, 10, &r, t0() + secs(20.0), HOUR, 1000).is_empty());
    // Within it, the shift is exact.
    let files = [file(&seconds(0, 20), -0.35)];
    assert_eq!(
        file_shift(&recorded(&files)[0], &h),
        Some((BASE_MS * 90) as i64)
    );
}

fn live_playlist(first: u64, to: u64) -> LlPlaylist {
    LlPlaylist {
        target_duration: secs(1.0),
        part_target: Duration::from_millis(200),
        discontinuity_sequence: 1,
        map_uri: "cam-init1.mp4".into(),
        segments: (first..to)
            .map(|m| LlSegment {
                msn: m,
                uri: format!("cam-seg{m}.m4s"),
                duration: secs(1.0),
                program_date_time: t0() + secs(m as f64),
                discontinuity: false,
                parts: Vec::new(),
                map_uri: None,
            })
            .collect(),
        next_msn: to,
        next_parts: Vec::new(),
        next_discontinuity: false,
        preload_hint_uri: None,
        server_control: crate::llhls::ServerControl::standard(secs(1.0), secs(0.2)),
        ended: false,
    }
}

fn dvr_plan(segments: Vec<DvrSegment>) -> DvrPlan {
    DvrPlan {
        id: 0,
        first_live_msn: 4,
        made: Instant::now(),
        files: Vec::new(),
        segments,
    }
}

#[test]
fn the_playlist_lists_past_segments_with_their_init_and_discontinuities() {
    // Segments 1..=3 from the recording; the publisher came back before segment 2 (a
    // new init, generation 1), and the live window (generation 1) starts at 4.
    let mut h = history(1, 4);
    h[0].discontinuities_before = 0;
    h[1].discontinuity = true;
    h[1].discontinuities_before = 0;
    h[1].generation = 1;
    h[2].discontinuities_before = 1;
    h[2].generation = 1;
    let segs = h
        .iter()
        .map(|p| DvrSegment {
            past: *p,
            file: 0,
            first: 0,
            end: 1,
            shifts: Vec::new(),
        })
        .collect();
    let mut p = live_playlist(4, 6);
    prepend(&mut p, &dvr_plan(segs), [].iter(), "cam", 1);
    assert_eq!(
        render_plain(&p),
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:1\n\
         #EXT-X-MAP:URI=\"cam-init0.mp4\"\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-12-01T10:00:01.000Z\n#EXTINF:1.00000,\ncam-seg1.m4s\n\
         #EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"cam-init1.mp4\"\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-12-01T10:00:02.000Z\n#EXTINF:1.00000,\ncam-seg2.m4s\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-12-01T10:00:03.000Z\n#EXTINF:1.00000,\ncam-seg3.m4s\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-12-01T10:00:04.000Z\n#EXTINF:1.00000,\ncam-seg4.m4s\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-12-01T10:00:05.000Z\n#EXTINF:1.00000,\ncam-seg5.m4s\n"
    );
    // A delta update that skips the first two names the init of the first one it lists.
    let mut ll = p.clone();
    ll.server_control.can_skip_until = Some(secs(2.5));
    let text = crate::llhls::render(&ll, true);
    assert!(
        text.contains(
            "#EXT-X-SKIP:SKIPPED-SEGMENTS=2\n#EXT-X-MAP:URI=\"cam-init1.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-12-01T10:00:03.000Z\n"
        ),
        "{text}"
    );
    assert_eq!(text.matches("EXT-X-MAP").count(), 1, "{text}");
}

#[test]
fn a_plan_the_live_window_moved_past_is_completed_from_the_history() {
    let segs: Vec<DvrSegment> = history(0, 3)
        .iter()
        .map(|p| DvrSegment {
            past: *p,
            file: 0,
            first: 0,
            end: 1,
            shifts: Vec::new(),
        })
        .collect();
    // The live window moved on to 5 since the plan (made for 3) was made: segments 3 and
    // 4 come from the live segmenter's history.
    let history = history(0, 7);
    let mut p = live_playlist(5, 7);
    prepend(&mut p, &dvr_plan(segs.clone()), history.iter(), "cam", 0);
    assert_eq!(
        p.segments.iter().map(|s| s.msn).collect::<Vec<_>>(),
        (0..7).collect::<Vec<_>>()
    );
    assert_eq!(p.segments[3].program_date_time, t0() + secs(3.0));
    // Without them in the history: the live playlist as it is, never a hole.
    let mut p = live_playlist(5, 7);
    let before = p.clone();
    prepend(
        &mut p,
        &dvr_plan(segs.clone()),
        history[..4].iter(),
        "cam",
        0,
    );
    assert_eq!(p, before);
    // Made for 3: listed, and the live segments get their init back.
    let mut p = live_playlist(3, 5);
    prepend(&mut p, &dvr_plan(segs), [].iter(), "cam", 1);
    assert_eq!(p.segments.len(), 5);
    assert_eq!(p.map_uri, "cam-init0.mp4");
    assert_eq!(p.segments[3].map_uri.as_deref(), Some("cam-init1.mp4"));
    assert_eq!(p.discontinuity_sequence, 0);
}

/// The recorder and the live segmenter fed the same frames (a publish whose timeline is at
/// 5 s when recording starts, a file rotation every 3 s, the live side reading the clock
/// 13 ms later): every past segment is found in the recording, and its recorded moofs,
/// moved by the plan's shifts, carry the live segment's decode times.
#[test]
fn recorded_fragments_moved_by_the_plan_carry_the_live_decode_times() {
    use crate::hls::ts::tests::{aac_config, audio, avc_config, video};
    use crate::llhls::{LlSegmenter, LlSegmenterConfig};
    use crate::record::index::{parse_moof, scan, shift_moof};
    use crate::record::segment::{Action, RecordSegmenter, SegmentConfig};
    use onair_shared::fmp4::{Sample, Track};

    let (v, a) = (avc_config(), aac_config(48_000, 2));
    let mut rec = RecordSegmenter::new(SegmentConfig {
        format: RecordFormat::Fmp4,
        segment_duration: Duration::from_secs(3),
        fragment_duration: Duration::from_secs(1),
        max_fragment_bytes: 1 << 20,
    });
    let mut out = Vec::new();
    rec.push_config(&Arc::new(v.clone()), &mut out);
    rec.push_config(&Arc::new(a.clone()), &mut out);
    let tracks = vec![
        Track::from_config(&v).unwrap(),
        Track::from_config(&a).unwrap(),
    ];
    let cfg = LlSegmenterConfig {
        window: 100,
        history: 100,
        ..Default::default()
    };
    let mut live = LlSegmenter::new(tracks, cfg).unwrap();
    let mut files: Vec<(SystemTime, Vec<u8>)> = Vec::new();
    let apply = |out: &mut Vec<Action>, files: &mut Vec<(SystemTime, Vec<u8>)>| {
        for act in out.drain(..) {
            match act {
                Action::Open { start, head } => files.push((start, head.to_vec())),
                Action::Write(b) => files.last_mut().unwrap().1.extend_from_slice(&b),
                Action::Close => {}
            }
        }
    };
    let skew = Duration::from_millis(13);
    let mut next_audio = 5_000 * 48 / 1024 + 1;
    for k in 150..150 + 30 * 9 {
        let dts = k * 1000 / 30;
        while next_audio * 1024 / 48 <= dts {
            let at = next_audio * 1024 / 48;
            let f = audio(at, 20);
            rec.push_frame(&f, t0() + Duration::from_millis(at), &mut out)
                .unwrap();
            let s = Sample {
                dts: at * 48,
                cts_offset: 0,
                keyframe: true,
                data: f.data.clone(),
            };
            let _ = live.push(2, s, t0() + Duration::from_millis(at) + skew);
            next_audio += 1;
        }
        let f = video(dts, 66, k % 30 == 0, 100);
        rec.push_frame(&f, t0() + Duration::from_millis(dts), &mut out)
            .unwrap();
        apply(&mut out, &mut files);
        let s = Sample {
            dts: dts * 90,
            cts_offset: 66 * 90,
            keyframe: k % 30 == 0,
            data: f.data.clone(),
        };
        live.push(1, s, t0() + Duration::from_millis(dts) + skew)
            .unwrap();
    }
    rec.finish(&mut out);
    apply(&mut out, &mut files);
    assert_eq!(files.len(), 3, "rotations at 3 s and 6 s");
    let indexes: Vec<FileIndex> = files
        .iter()
        .map(|(_, b)| scan(&mut std::io::Cursor::new(b), b.len() as u64).unwrap())
        .collect();
    let recs: Vec<Recorded> = files
        .iter()
        .zip(&indexes)
        .map(|((start, _), index)| Recorded {
            start: *start,
            index,
        })
        .collect();
    let history: Vec<PastSegment> = live.history().iter().copied().collect();
    let last = history.last().unwrap().msn;
    assert!(last >= 7, "{last}");
    // As if the live window began with the last segment (all are still in memory, to
    // compare with).
    let p = plan(&history, last, &recs, t0() + secs(60.0), HOUR, 1000);
    assert_eq!(
        p.iter().map(|s| s.past.msn).collect::<Vec<_>>(),
        (0..last).collect::<Vec<_>>()
    );
    let tfdts = |moof: &[u8]| -> Vec<(u32, u64)> {
        let mut t: Vec<_> = parse_moof(&moof[8..], 8)
            .into_iter()
            .map(|(t, _)| (t.track_id, t.base))
            .collect();
        t.sort();
        t
    };
    for s in &p {
        let idx = &indexes[s.file];
        assert_eq!(s.end - s.first, 1, "one 1 s fragment per 1 s segment");
        let f = &idx.fragments[s.first];
        let bytes = &files[s.file].1;
        let moof = &bytes[f.offset as usize..(f.offset + f.moof_len) as usize];
        let moved = tfdts(&shift_moof(moof, f, &s.shifts));
        let parts = live.segment(s.past.msn).unwrap();
        let live_first = tfdts(&parts[0]);
        // Video: the same keyframe, the same decode time.
        assert_eq!(moved[0], live_first[0], "segment {}", s.past.msn);
        // Audio: within one AAC frame (which side takes the frame at the cut may differ).
        let d = moved[1].1.abs_diff(live_first[1].1);
        assert!(
            d <= 1024,
            "segment {} audio {moved:?} {live_first:?}",
            s.past.msn
        );
    }
}
