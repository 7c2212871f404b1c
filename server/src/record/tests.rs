//! The recording writer, the file walk and the cut, with byte vectors: frames in, the
//! files the actions describe, read back by `index::scan`.

use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::cut::plan;
use super::index::{parse_moof, rebase_moof, scan, FileIndex};
use super::segment::{Action, RecordSegmenter, SegmentConfig, AUDIO_TRACK, VIDEO_TRACK};
use super::RecordFormat;
use crate::hls::ts::tests::{aac_config, audio, avc_config, video};

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_119_200)
}

fn cfg(segment_ms: u64) -> SegmentConfig {
    SegmentConfig {
        format: RecordFormat::Fmp4,
        segment_duration: Duration::from_millis(segment_ms),
        fragment_duration: Duration::from_millis(1000),
        max_fragment_bytes: 1 << 20,
    }
}

/// The files the actions write: (start, bytes), and whether each was closed.
#[derive(Default)]
struct Disk {
    files: Vec<(SystemTime, Vec<u8>, bool)>,
}

impl Disk {
    fn apply(&mut self, actions: &mut Vec<Action>) {
        for a in actions.drain(..) {
            match a {
                Action::Open { start, head } => {
                    if let Some(f) = self.files.last_mut() {
                        f.2 = true;
                    }
                    self.files.push((start, head.to_vec(), false));
                }
                Action::Write(b) => {
                    let f = self.files.last_mut().expect("a write needs an open file");
                    assert!(!f.2, "write after close");
                    f.1.extend_from_slice(&b);
                }
                Action::Close => {
                    if let Some(f) = self.files.last_mut() {
                        f.2 = true;
                    }
                }
            }
        }
    }

    fn index(&self, i: usize) -> FileIndex {
        let b = &self.files[i].1;
        scan(&mut Cursor::new(b), b.len() as u64).expect("a recording")
    }
}

/// 30 fps H.264 (a keyframe every `gop` frames, ms timestamps as RTMP has them) and
/// 48 kHz AAC, interleaved by time, video frames `from..to`; the wall clock follows media.
fn feed(seg: &mut RecordSegmenter, disk: &mut Disk, from: u64, to: u64, gop: u64) {
    let mut out = Vec::new();
    let mut a = (from * 1000 / 30) * 48 / 1024;
    for k in from..to {
        let dts = k * 1000 / 30;
        while a * 1024 / 48 <= dts {
            seg.push_frame(
                &audio(a * 1024 / 48, 20),
                t0() + Duration::from_millis(a * 1024 / 48),
                &mut out,
            )
            .unwrap();
            a += 1;
        }
        seg.push_frame(
            &video(dts, 66, k % gop == 0, 100),
            t0() + Duration::from_millis(dts),
            &mut out,
        )
        .unwrap();
        disk.apply(&mut out);
    }
}

fn start(seg: &mut RecordSegmenter) {
    let mut out = Vec::new();
    seg.push_config(&Arc::new(avc_config()), &mut out);
    seg.push_config(&Arc::new(aac_config(48_000, 2)), &mut out);
    assert!(out.is_empty(), "configs alone open nothing");
}

#[test]
fn fragments_start_at_keyframes_a_second_apart_and_files_rotate() {
    let mut seg = RecordSegmenter::new(cfg(3000));
    let mut disk = Disk::default();
    start(&mut seg);
    // Keyframes every 0.5 s, 5 s of media: files rotate at 3 s, fragments at 1 s steps.
    feed(&mut seg, &mut disk, 0, 150, 15);
    let mut out = Vec::new();
    seg.finish(&mut out);
    disk.apply(&mut out);
    assert_eq!(disk.files.len(), 2);
    assert!(disk.files.iter().all(|f| f.2), "both closed");
    assert_eq!(disk.files[0].0, t0());
    assert_eq!(disk.files[1].0, t0() + Duration::from_millis(3000));

    let first = disk.index(0);
    assert_eq!(first.tracks.len(), 2);
    assert_eq!(first.drive().unwrap().id, VIDEO_TRACK);
    assert_eq!(first.complete_len, disk.files[0].1.len() as u64);
    let starts: Vec<f64> = (0..first.fragments.len())
        .map(|i| first.fragment_start(i).unwrap())
        .collect();
    assert_eq!(starts, vec![0.0, 1.0, 2.0]);
    assert!(first.fragments.iter().all(|f| f.keyframe_start));
    // The file's video is exactly frames 0..90: 3 s, the tfdt of the first fragment 0.
    let v0 = first.fragments[0].time(VIDEO_TRACK).unwrap();
    assert_eq!(v0.base, 0);
    assert!(
        (first.duration() - 3.0).abs() < 1e-9,
        "{}",
        first.duration()
    );
    let video_ticks: u64 = first
        .fragments
        .iter()
        .map(|f| f.time(VIDEO_TRACK).unwrap().duration)
        .sum();
    assert_eq!(video_ticks, 3 * 90_000);

    // The second file starts at the 3 s keyframe with its times near 0, and the audio
    // frame waiting at the cut is in it rather than lost.
    let second = disk.index(1);
    let v = second.fragments[0].time(VIDEO_TRACK).unwrap();
    let a = second.fragments[0].time(AUDIO_TRACK).unwrap();
    assert!(
        v.base < 90 * 25,
        "video starts within an audio frame of 0: {}",
        v.base
    );
    assert_eq!(
        a.base, 0,
        "the carried audio frame is the file's first sample"
    );
    // 60 video frames of 33.3 ms; the last lasts as long as the one before it.
    assert!(
        (second.duration() - 2.0).abs() < 0.002,
        "{}",
        second.duration()
    );
    let audio_total: u64 = [&first, &second]
        .iter()
        .flat_map(|i| i.fragments.iter())
        .map(|f| f.time(AUDIO_TRACK).map_or(0, |t| t.duration))
        .sum();
    // 5 s of 48 kHz audio in 1024-sample frames (ms timestamps: within a frame per file).
    assert!(audio_total.abs_diff(5 * 48_000) < 2 * 1024, "{audio_total}");
}

#[test]
fn a_returning_publisher_starts_a_new_file_at_its_first_keyframe() {
    let mut seg = RecordSegmenter::new(cfg(3_600_000));
    let mut disk = Disk::default();
    start(&mut seg);
    feed(&mut seg, &mut disk, 0, 40, 30);
    let mut out = Vec::new();
    seg.publisher_returned(&mut out);
    disk.apply(&mut out);
    assert_eq!(disk.files.len(), 1);
    assert!(disk.files[0].2, "closed on return");
    start(&mut seg);
    // Frames before the newcomer's first keyframe are left out.
    feed(&mut seg, &mut disk, 41, 45, 1000);
    assert_eq!(disk.files.len(), 1);
    feed(&mut seg, &mut disk, 60, 70, 30);
    assert_eq!(disk.files.len(), 2);
    assert_eq!(disk.files[1].0, t0() + Duration::from_millis(2000));
    let mut out = Vec::new();
    seg.finish(&mut out);
    disk.apply(&mut out);
    let second = disk.index(1);
    assert!(second.fragments[0].keyframe_start);
    // Its times start near 0 (an audio frame sent just before the keyframe comes along).
    assert!(second.fragments[0].time(VIDEO_TRACK).unwrap().base < 90 * 25);
    assert_eq!(second.fragments[0].time(AUDIO_TRACK).unwrap().base, 0);
}

#[test]
fn a_changed_configuration_rotates_the_file() {
    let mut seg = RecordSegmenter::new(cfg(3_600_000));
    let mut disk = Disk::default();
    start(&mut seg);
    feed(&mut seg, &mut disk, 0, 20, 10);
    let mut out = Vec::new();
    // The same configuration again is no change.
    seg.push_config(&Arc::new(avc_config()), &mut out);
    assert!(out.is_empty());
    seg.push_config(&Arc::new(aac_config(44_100, 1)), &mut out);
    disk.apply(&mut out);
    assert!(disk.files[0].2, "closed for the new audio configuration");
    feed(&mut seg, &mut disk, 20, 40, 10);
    assert_eq!(disk.files.len(), 2);
}

#[test]
fn an_audio_only_stream_is_recorded() {
    let mut seg = RecordSegmenter::new(cfg(3_600_000));
    let mut out = Vec::new();
    seg.push_config(&Arc::new(aac_config(48_000, 2)), &mut out);
    let mut disk = Disk::default();
    for a in 0..200u64 {
        let dts = a * 1024 / 48;
        seg.push_frame(&audio(dts, 20), t0(), &mut out).unwrap();
        disk.apply(&mut out);
    }
    seg.finish(&mut out);
    disk.apply(&mut out);
    let idx = disk.index(0);
    assert_eq!(idx.tracks.len(), 1);
    assert!(idx.fragments.len() >= 4, "{}", idx.fragments.len());
    assert!((idx.duration() - 200.0 * 1024.0 / 48_000.0).abs() < 0.03);
}

fn recording() -> Disk {
    let mut seg = RecordSegmenter::new(cfg(3_600_000));
    let mut disk = Disk::default();
    start(&mut seg);
    // A keyframe every second, 6 s.
    feed(&mut seg, &mut disk, 0, 180, 30);
    let mut out = Vec::new();
    seg.finish(&mut out);
    disk.apply(&mut out);
    disk
}

#[test]
fn the_cut_starts_at_the_keyframe_before_start_and_rebases_tfdt() {
    let disk = recording();
    let idx = disk.index(0);
    assert_eq!(idx.fragments.len(), 6);
    let p = plan(
        &idx,
        t0(),
        t0() + Duration::from_millis(2300),
        Duration::from_secs(2),
    )
    .unwrap();
    // Keyframe at 2 s, up to 4.3 s: fragments 2, 3 and 4.
    assert_eq!((p.first, p.end), (2, 5));
    assert_eq!(p.start, t0() + Duration::from_secs(2));
    assert_eq!(p.duration, Duration::from_secs(3));
    let frags = &idx.fragments[2..5];
    assert_eq!(
        p.len,
        idx.init_len + frags.iter().map(|f| f.len).sum::<u64>()
    );
    // Every track moves back by the same time: the earliest first sample of fragment 2.
    let v = frags[0].time(VIDEO_TRACK).unwrap().base;
    let a = frags[0].time(AUDIO_TRACK).unwrap().base;
    let earliest_ms = (v / 90).min(a * 1000 / 48_000);
    for (id, base) in &p.bases {
        let ts = if *id == VIDEO_TRACK { 90_000 } else { 48_000 };
        assert!(
            (*base * 1000 / ts).abs_diff(earliest_ms) <= 1,
            "track {id}: {base}"
        );
    }
    // The rebased moof: the same size, its tfdts moved, 0 for the earlier track.
    let f = &frags[0];
    let b = &disk.files[0].1;
    let moof = &b[f.offset as usize..(f.offset + f.moof_len) as usize];
    let rebased = rebase_moof(moof, f, &p.bases);
    assert_eq!(rebased.len(), moof.len());
    let times = parse_moof(&rebased[8..], 8);
    let min = times.iter().map(|(t, _)| t.base).min().unwrap();
    assert_eq!(min, 0);
    let rv = times
        .iter()
        .find(|(t, _)| t.track_id == VIDEO_TRACK)
        .unwrap();
    assert_eq!(
        rv.0.base,
        v - p.bases.iter().find(|b| b.0 == VIDEO_TRACK).unwrap().1
    );
    assert!(rv.1, "starts with a keyframe");
    // Outside the moof, nothing changed.
    assert!(rebased.iter().zip(moof).filter(|(x, y)| x != y).count() <= 16);
}

#[test]
fn cut_edges() {
    let disk = recording();
    let idx = disk.index(0);
    // A start before the file: from its first fragment.
    let p = plan(
        &idx,
        t0(),
        t0() - Duration::from_secs(1),
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!((p.first, p.end), (0, 1));
    // A window past the end: up to the end.
    let p = plan(
        &idx,
        t0(),
        t0() + Duration::from_millis(5500),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!((p.first, p.end), (5, 6));
    // Windows entirely outside.
    assert!(plan(
        &idx,
        t0(),
        t0() - Duration::from_secs(10),
        Duration::from_secs(2)
    )
    .is_err());
    assert!(plan(
        &idx,
        t0(),
        t0() + Duration::from_secs(7),
        Duration::from_secs(2)
    )
    .is_err());
}

#[test]
fn a_truncated_file_keeps_its_complete_fragments() {
    let disk = recording();
    let b = &disk.files[0].1;
    let full = disk.index(0);
    let third = &full.fragments[3];
    // Cut inside fragment 3's mdat, inside its moof, and inside the moov.
    for (cut, fragments) in [
        (third.offset + third.moof_len + 10, 3),
        (third.offset + 20, 3),
        (third.offset + 4, 3),
        (full.fragments[0].offset + 3, 0),
    ] {
        let part = &b[..cut as usize];
        let idx = scan(&mut Cursor::new(part), cut).unwrap();
        assert_eq!(idx.fragments.len(), fragments, "cut at {cut}");
        let end = idx
            .fragments
            .last()
            .map_or(idx.init_len, |f| f.offset + f.len);
        assert_eq!(idx.complete_len, end);
    }
    assert!(
        scan(&mut Cursor::new(&b[..100]), 100).is_err(),
        "inside the moov"
    );
    assert!(scan(&mut Cursor::new(&b"garbage garbage"[..]), 15).is_err());
}

#[test]
fn flv_recordings_are_tags_from_zero() {
    let mut seg = RecordSegmenter::new(SegmentConfig {
        format: RecordFormat::Flv,
        ..cfg(3_600_000)
    });
    let mut disk = Disk::default();
    start(&mut seg);
    feed(&mut seg, &mut disk, 30, 120, 30);
    let mut out = Vec::new();
    seg.finish(&mut out);
    disk.apply(&mut out);
    let b = &disk.files[0].1;
    let mut demux = onair_shared::flv::FlvDemuxer::new(1 << 20);
    demux.push(b);
    let mut tags = Vec::new();
    while let Ok(Some(e)) = demux.next_event() {
        if let onair_shared::flv::FlvEvent::Tag(t) = e {
            tags.push(t);
        }
    }
    // Two sequence headers, then the media from the first keyframe, rebased to 0.
    assert_eq!(tags[0].tag_type, 9);
    assert_eq!(tags[1].tag_type, 8);
    let first_video = tags.iter().skip(2).find(|t| t.tag_type == 9).unwrap();
    assert_eq!(first_video.timestamp, 0);
    assert_eq!(tags.iter().filter(|t| t.tag_type == 9).count(), 1 + 90);
}

#[test]
fn record_section_is_read_and_typos_refused() {
    let c = crate::Config::from_toml(
        "[record]\nenabled = true\nformat = \"flv\"\napps = [\"live\"]\nmax_bytes = 5\n",
    )
    .unwrap();
    assert!(c.record.records("live"));
    assert!(!c.record.records("other"));
    assert_eq!(c.record.format, RecordFormat::Flv);
    assert_eq!(c.record.max_bytes, 5);
    assert_eq!(c.record.fragment_duration_ms, 1000);
    assert!(!crate::Config::from_toml("").unwrap().record.enabled);
    assert!(crate::Config::from_toml("[record]\nformat = \"mkv\"\n").is_err());
    assert!(crate::Config::from_toml("[record]\nmax_age = 1\n").is_err());
    let all = crate::Config::from_toml("[record]\nenabled = true\n").unwrap();
    assert!(
        all.record.records("anything"),
        "empty apps records every app"
    );
}

#[test]
fn names_that_would_leave_the_folder_are_not_recorded() {
    use crate::hub::StreamKey;
    assert!(super::recordable(&StreamKey::new("live", "cam-1.main_x~")).is_ok());
    for (app, name) in [
        ("..", "cam"),
        (".", "cam"),
        (".hidden", "cam"),
        ("a\\b", "cam"),
        ("live", ".."),
        ("live", "a/b"),
        ("live", ""),
        ("", "cam"),
        ("li ve", "cam"),
        ("live", "c\0am"),
    ] {
        assert!(
            super::recordable(&StreamKey::new(app, name)).is_err(),
            "{app:?}/{name:?}"
        );
    }
}

#[test]
fn damaged_files_never_panic_the_walk_the_cut_or_the_repair() {
    let disk = recording();
    let good = disk.files[0].1.clone();
    let idx = disk.index(0);
    // A deterministic xorshift: flip bytes in the boxes' headers and tables (the first
    // bytes of every fragment) and at random places.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // A 64-bit largesize at the end of the file's first fragment's mdat header.
    let mdat_at = (idx.fragments[0].offset + idx.fragments[0].moof_len) as usize;
    let mut huge = good.clone();
    huge[mdat_at..mdat_at + 4].copy_from_slice(&1u32.to_be_bytes());
    huge.splice(mdat_at + 8..mdat_at + 8, u64::MAX.to_be_bytes());
    let i = scan(&mut Cursor::new(&huge), huge.len() as u64).unwrap();
    assert!(
        i.fragments.is_empty(),
        "a box larger than the file is incomplete"
    );
    for round in 0..400 {
        let mut b = good.clone();
        for _ in 0..1 + round % 8 {
            let f = &idx.fragments[(next() % idx.fragments.len() as u64) as usize];
            let at = if next() % 2 == 0 {
                f.offset + next() % f.moof_len.min(200)
            } else {
                next() % b.len() as u64
            } as usize;
            b[at] = next() as u8;
        }
        let cut = if round % 3 == 0 {
            (next() % b.len() as u64) as usize
        } else {
            b.len()
        };
        let b = &b[..cut];
        if let Ok(i) = scan(&mut Cursor::new(b), b.len() as u64) {
            assert!(i.complete_len <= b.len() as u64);
            let _ = i.duration();
            if let Ok(p) = plan(
                &i,
                t0(),
                t0() + Duration::from_secs(1),
                Duration::from_secs(3),
            ) {
                assert!(p.end <= i.fragments.len() && p.first < p.end);
                for f in &i.fragments[p.first..p.end] {
                    let moof = &b[f.offset as usize..(f.offset + f.moof_len) as usize];
                    assert_eq!(rebase_moof(moof, f, &p.bases).len(), moof.len());
                }
            }
        }
    }
}

#[test]
fn durations_are_measured_once_per_finished_file_version() {
    let cache = super::DurationCache::default();
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
    let mut f = super::files::RecordingFile {
        path: "a.mp4".into(),
        name: "a.mp4".into(),
        start: t,
        format: RecordFormat::Fmp4,
        size: 10,
        modified: t,
        in_progress: false,
    };
    let mut measured = 0;
    for _ in 0..3 {
        assert_eq!(
            cache.get(&f, || {
                measured += 1;
                Some(4.0)
            }),
            Some(4.0)
        );
    }
    assert_eq!(measured, 1);
    // Another size (the file changed): measured again.
    f.size = 11;
    assert_eq!(
        cache.get(&f, || {
            measured += 1;
            Some(5.0)
        }),
        Some(5.0)
    );
    assert_eq!(measured, 2);
    // A file being written is measured every time.
    f.in_progress = true;
    f.size = 12;
    for _ in 0..2 {
        cache.get(&f, || {
            measured += 1;
            Some(6.0)
        });
    }
    assert_eq!(measured, 4);
}

#[test]
fn a_clip_goes_on_into_the_next_file_with_time_only_going_forward() {
    use super::cut::plan_across;
    use super::index::shift_moof;
    let mut seg = RecordSegmenter::new(cfg(3000));
    let mut disk = Disk::default();
    start(&mut seg);
    feed(&mut seg, &mut disk, 0, 180, 30);
    let mut out = Vec::new();
    seg.finish(&mut out);
    disk.apply(&mut out);
    assert_eq!(disk.files.len(), 2);
    let (a, b) = (disk.index(0), disk.index(1));
    let files = [(disk.files[0].0, &a), (disk.files[1].0, &b)];
    // From 2.5 s for 2 s: the keyframe at 2 s in the first file, then the second file's
    // fragments up to 4.5 s.
    let p = plan_across(
        &files,
        t0() + Duration::from_millis(2500),
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(p.spans.len(), 2);
    assert_eq!((p.spans[0].first, p.spans[0].end), (2, 3));
    assert_eq!((p.spans[1].first, p.spans[1].end), (0, 2));
    assert_eq!(p.start, t0() + Duration::from_secs(2));
    let d = p.duration.as_secs_f64();
    assert!((3.0..3.05).contains(&d), "{d}");
    assert_eq!(
        p.len,
        a.init_len + a.fragments[2].len + b.fragments[0].len + b.fragments[1].len
    );
    // Per track, each fragment of the clip starts where the one before it ended, or later.
    let mut next_at: std::collections::HashMap<u32, u64> = Default::default();
    for span in &p.spans {
        let (idx, bytes) = if span.file == 0 {
            (&a, &disk.files[0].1)
        } else {
            (&b, &disk.files[1].1)
        };
        for f in &idx.fragments[span.first..span.end] {
            let moof = &bytes[f.offset as usize..(f.offset + f.moof_len) as usize];
            for (t, _) in parse_moof(&shift_moof(moof, f, &span.shifts)[8..], 8) {
                let at = next_at.entry(t.track_id).or_insert(0);
                assert!(
                    t.base >= *at,
                    "track {}: {} before {}",
                    t.track_id,
                    t.base,
                    *at
                );
                // No gap above 50 ms at the file boundary.
                let ts = if t.track_id == VIDEO_TRACK { 90 } else { 48 };
                assert!(
                    (t.base - *at) / ts <= 50 || *at == 0,
                    "gap {}",
                    t.base - *at
                );
                *at = t.base + t.duration;
            }
        }
    }
    // A clip inside one file stays in it.
    let p = plan_across(
        &files,
        t0() + Duration::from_millis(500),
        Duration::from_secs(1),
    )
    .unwrap();
    assert_eq!(p.spans.len(), 1);
}

#[test]
fn a_growing_file_is_read_on_from_where_its_index_ended() {
    use super::index::scan_more;
    let disk = recording();
    let b = &disk.files[0].1;
    let full = disk.index(0);
    let third = &full.fragments[3];
    // The file as a reader saw it mid-write (inside fragment 3), then as it is now.
    let cut = third.offset + third.moof_len + 10;
    let mut idx = scan(&mut Cursor::new(&b[..cut as usize]), cut).unwrap();
    assert_eq!(idx.fragments.len(), 3);
    scan_more(&mut Cursor::new(b), &mut idx, b.len() as u64).unwrap();
    assert_eq!(idx, full);
    // Nothing new: nothing changes.
    scan_more(&mut Cursor::new(b), &mut idx, b.len() as u64).unwrap();
    assert_eq!(idx, full);
}
