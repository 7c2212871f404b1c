//! LL-HLS media playlist renderer (draft-pantos-hls-rfc8216bis): EXT-X-MAP, PART-INF,
//! PART, PRELOAD-HINT, SERVER-CONTROL, SKIP and a PROGRAM-DATE-TIME on every segment.
//! m3u8-rs 6 has no types for the LL tags, so this writes the text itself. Pure: a
//! playlist value and the request's skip wish in, text out; it never fails.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};

/// A partial segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlPart {
    pub uri: String,
    pub duration: Duration,
    /// Starts with a keyframe (INDEPENDENT=YES); every part of an audio-only stream is.
    pub independent: bool,
}

/// A complete segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlSegment {
    pub msn: u64,
    pub uri: String,
    pub duration: Duration,
    /// Wall-clock time of its first frame.
    pub program_date_time: SystemTime,
    /// The publisher came back (or the codec config changed) before this segment.
    pub discontinuity: bool,
    /// Its parts; rendered only while the segment is within three target durations of
    /// the playlist's end, as the draft asks.
    pub parts: Vec<LlPart>,
    /// The init segment changes here (EXT-X-MAP before it); `None`: the one before it, or
    /// the playlist's `map_uri`, stays.
    pub map_uri: Option<String>,
}

/// EXT-X-SERVER-CONTROL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerControl {
    pub can_block_reload: bool,
    /// Raised to three part targets if smaller (the draft's minimum).
    pub part_hold_back: Duration,
    /// Delta updates are offered when set; the draft wants at least six target durations.
    pub can_skip_until: Option<Duration>,
}

impl ServerControl {
    /// Blocking reload, PART-HOLD-BACK of three parts, delta updates skipping what is six
    /// target durations old.
    pub fn standard(target_duration: Duration, part_target: Duration) -> Self {
        Self {
            can_block_reload: true,
            part_hold_back: part_target * 3,
            can_skip_until: Some(target_duration * 6),
        }
    }
}

/// A live (or ended) LL-HLS media playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlPlaylist {
    /// At least the longest segment; rendered as whole seconds, rounded up.
    pub target_duration: Duration,
    pub part_target: Duration,
    /// EXT-X-DISCONTINUITY-SEQUENCE: discontinuities that left the window.
    pub discontinuity_sequence: u64,
    pub map_uri: String,
    /// Complete segments, oldest first, with consecutive msn.
    pub segments: Vec<LlSegment>,
    /// The msn of the segment being built: EXT-X-MEDIA-SEQUENCE when `segments` is empty.
    pub next_msn: u64,
    /// Complete parts of the segment being built.
    pub next_parts: Vec<LlPart>,
    /// The segment being built follows a discontinuity.
    pub next_discontinuity: bool,
    /// The part being built, announced with EXT-X-PRELOAD-HINT (left out once ended).
    pub preload_hint_uri: Option<String>,
    pub server_control: ServerControl,
    /// The publisher left for good: EXT-X-ENDLIST.
    pub ended: bool,
}

fn secs(d: Duration) -> String {
    format!("{:.5}", d.as_secs_f64())
}

fn write_parts(out: &mut String, parts: &[LlPart]) {
    for p in parts {
        let _ = write!(
            out,
            "#EXT-X-PART:DURATION={},URI=\"{}\"",
            secs(p.duration),
            p.uri
        );
        if p.independent {
            out.push_str(",INDEPENDENT=YES");
        }
        out.push('\n');
    }
}

/// The init segment in effect at segment `i` (`segments.len()`: at the parts after them).
fn map_at(p: &LlPlaylist, i: usize) -> &str {
    p.segments[..i.min(p.segments.len())]
        .iter()
        .rev()
        .find_map(|s| s.map_uri.as_deref())
        .unwrap_or(&p.map_uri)
}

/// Writes a segment's DISCONTINUITY, its EXT-X-MAP where the init changes (not for the
/// first one written: the header names its init) and its PROGRAM-DATE-TIME.
fn write_segment_head(out: &mut String, s: &LlSegment, first: bool) {
    if s.discontinuity {
        out.push_str("#EXT-X-DISCONTINUITY\n");
    }
    if let (Some(m), false) = (&s.map_uri, first) {
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{m}\"");
    }
    let pdt = DateTime::<Utc>::from(s.program_date_time);
    let _ = writeln!(
        out,
        "#EXT-X-PROGRAM-DATE-TIME:{}",
        pdt.to_rfc3339_opts(SecondsFormat::Millis, true)
    );
}

/// How many leading segments a delta update may replace with EXT-X-SKIP: those that end
/// at least `until` before the playlist's end (a conservative reading of the Skip
/// Boundary: never skips a segment the client may still need).
pub fn skippable_segments(p: &LlPlaylist, until: Duration) -> usize {
    let mut from_end: Duration = p.next_parts.iter().map(|x| x.duration).sum();
    let mut skippable = 0;
    for (i, s) in p.segments.iter().enumerate().rev() {
        if from_end >= until {
            skippable = i + 1;
            break;
        }
        from_end += s.duration;
    }
    skippable
}

/// The playlist text. `skip` is the request's `_HLS_skip=YES`/`v2`; it only takes effect
/// when the playlist offers delta updates (CAN-SKIP-UNTIL).
pub fn render(p: &LlPlaylist, skip: bool) -> String {
    let mut out = String::with_capacity(256 + p.segments.len() * 160);
    let longest = p
        .segments
        .iter()
        .map(|s| s.duration.as_secs_f64().round() as u64)
        .max()
        .unwrap_or(0);
    let target = p.target_duration.as_secs_f64().ceil() as u64;
    let target = target.max(longest).max(1);
    let sc = &p.server_control;
    let version = if sc.can_skip_until.is_some() { 9 } else { 7 };
    let media_sequence = p.segments.first().map_or(p.next_msn, |s| s.msn);
    let _ = writeln!(out, "#EXTM3U");
    let _ = writeln!(out, "#EXT-X-VERSION:{version}");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    let _ = write!(out, "#EXT-X-SERVER-CONTROL:");
    let mut attrs = Vec::new();
    if sc.can_block_reload {
        attrs.push("CAN-BLOCK-RELOAD=YES".to_string());
    }
    attrs.push(format!(
        "PART-HOLD-BACK={}",
        secs(sc.part_hold_back.max(p.part_target * 3))
    ));
    if let Some(until) = sc.can_skip_until {
        attrs.push(format!("CAN-SKIP-UNTIL={}", secs(until)));
    }
    let _ = writeln!(out, "{}", attrs.join(","));
    let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", secs(p.part_target));
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{media_sequence}");
    if p.discontinuity_sequence > 0 {
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            p.discontinuity_sequence
        );
    }
    let skipped = match (skip, sc.can_skip_until) {
        (true, Some(until)) => skippable_segments(p, until),
        _ => 0,
    };
    if skipped > 0 {
        let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
    }
    let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", map_at(p, skipped));

    // Parts are listed for segments ending within three target durations of the end.
    let parts_window = Duration::from_secs(target * 3);
    let mut from_end: Duration = p.next_parts.iter().map(|x| x.duration).sum();
    let mut with_parts = vec![false; p.segments.len()];
    for (i, s) in p.segments.iter().enumerate().rev() {
        if from_end >= parts_window {
            break;
        }
        with_parts[i] = true;
        from_end += s.duration;
    }
    for (i, s) in p.segments.iter().enumerate().skip(skipped) {
        write_segment_head(&mut out, s, i == skipped);
        if with_parts[i] {
            write_parts(&mut out, &s.parts);
        }
        let _ = writeln!(out, "#EXTINF:{},\n{}", secs(s.duration), s.uri);
    }
    if p.next_discontinuity && (!p.next_parts.is_empty() || p.preload_hint_uri.is_some()) {
        out.push_str("#EXT-X-DISCONTINUITY\n");
    }
    write_parts(&mut out, &p.next_parts);
    if p.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    } else if let Some(uri) = &p.preload_hint_uri {
        let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{uri}\"");
    }
    out
}

/// The playlist as plain fMP4 HLS (version 7): complete segments only, no parts, hints,
/// server control or skips, for players without LL-HLS.
pub fn render_plain(p: &LlPlaylist) -> String {
    let mut out = String::with_capacity(128 + p.segments.len() * 96);
    let longest = p
        .segments
        .iter()
        .map(|s| s.duration.as_secs_f64().round() as u64)
        .max()
        .unwrap_or(0);
    let target = (p.target_duration.as_secs_f64().ceil() as u64)
        .max(longest)
        .max(1);
    let media_sequence = p.segments.first().map_or(p.next_msn, |s| s.msn);
    let _ = writeln!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}"
    );
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{media_sequence}");
    if p.discontinuity_sequence > 0 {
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            p.discontinuity_sequence
        );
    }
    let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", map_at(p, 0));
    for (i, s) in p.segments.iter().enumerate() {
        write_segment_head(&mut out, s, i == 0);
        let _ = writeln!(out, "#EXTINF:{},\n{}", secs(s.duration), s.uri);
    }
    if p.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// 2026-12-01T10:00:00Z plus `offset_ms`.
    fn at(offset_ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_119_200) + ms(offset_ms)
    }

    fn part(msn: u64, i: u32, dur: u64, independent: bool) -> LlPart {
        LlPart {
            uri: format!("p{msn}.{i}.m4s"),
            duration: ms(dur),
            independent,
        }
    }

    fn segment(msn: u64, parts: usize) -> LlSegment {
        LlSegment {
            msn,
            uri: format!("s{msn}.m4s"),
            duration: ms(200 * parts as u64),
            program_date_time: at(msn * 200 * parts as u64),
            discontinuity: false,
            parts: (0..parts as u32)
                .map(|i| part(msn, i, 200, i == 0))
                .collect(),
            map_uri: None,
        }
    }

    fn playlist(segments: Vec<LlSegment>, next_parts: Vec<LlPart>) -> LlPlaylist {
        let next_msn = segments.last().map_or(0, |s| s.msn + 1);
        let hint = format!("p{next_msn}.{}.m4s", next_parts.len());
        LlPlaylist {
            target_duration: ms(1000),
            part_target: ms(200),
            discontinuity_sequence: 0,
            map_uri: "init.mp4".into(),
            segments,
            next_msn,
            next_parts,
            next_discontinuity: false,
            preload_hint_uri: Some(hint),
            server_control: ServerControl::standard(ms(1000), ms(200)),
            ended: false,
        }
    }

    #[test]
    fn live_playlist_with_parts_preload_hint_and_server_control() {
        let p = playlist(
            vec![segment(5, 5), segment(6, 5)],
            vec![part(7, 0, 200, true), part(7, 1, 200, false)],
        );
        assert_eq!(
            render(&p, false),
            "#EXTM3U\n\
             #EXT-X-VERSION:9\n\
             #EXT-X-TARGETDURATION:1\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.60000,CAN-SKIP-UNTIL=6.00000\n\
             #EXT-X-PART-INF:PART-TARGET=0.20000\n\
             #EXT-X-MEDIA-SEQUENCE:5\n\
             #EXT-X-MAP:URI=\"init.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-12-01T10:00:05.000Z\n\
             #EXT-X-PART:DURATION=0.20000,URI=\"p5.0.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.20000,URI=\"p5.1.m4s\"\n\
             #EXT-X-PART:DURATION=0.20000,URI=\"p5.2.m4s\"\n\
             #EXT-X-PART:DURATION=0.20000,URI=\"p5.3.m4s\"\n\
             #EXT-X-PART:DURATION=0.20000,URI=\"p5.4.m4s\"\n\
             #EXTINF:1.00000,\n\
             s5.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-12-01T10:00:06.000Z\n\
             #EXT-X-PART:DURATION=0.20000,URI=\"p6.0.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.20000,URI=\"p6.1.m4s\"\n\
             #EXT-X-PART:DURATION=0.20000,URI=\"p6.2.m4s\"\n\
             #EXT-X-PART:DURATION=0.20000,URI=\"p6.3.m4s\"\n\
             #EXT-X-PART:DURATION=0.20000,URI=\"p6.4.m4s\"\n\
             #EXTINF:1.00000,\n\
             s6.m4s\n\
             #EXT-X-PART:DURATION=0.20000,URI=\"p7.0.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.20000,URI=\"p7.1.m4s\"\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p7.2.m4s\"\n"
        );
    }

    #[test]
    fn old_segments_lose_their_parts_and_pdt_stays_on_every_segment() {
        let p = playlist((0..6).map(|m| segment(m, 5)).collect(), vec![]);
        let text = render(&p, false);
        // 3 target durations = 3 s: only the last three segments list parts.
        for m in 0..3 {
            assert!(!text.contains(&format!("p{m}.0.m4s")), "{text}");
        }
        for m in 3..6 {
            assert!(text.contains(&format!("p{m}.0.m4s")), "{text}");
        }
        assert_eq!(text.matches("#EXT-X-PROGRAM-DATE-TIME:").count(), 6);
        assert_eq!(text.matches("#EXTINF:").count(), 6);
        assert!(text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p6.0.m4s\"\n"));
    }

    #[test]
    fn delta_update_skips_what_ends_six_targets_before_the_end() {
        // Ten 1 s segments and 0.4 s of parts: segments 0..=3 end at least 6 s before the
        // end (segment 3 ends at 4 s, the playlist at 10.4 s).
        let p = playlist(
            (0..10).map(|m| segment(m, 5)).collect(),
            vec![part(10, 0, 200, true), part(10, 1, 200, false)],
        );
        assert_eq!(skippable_segments(&p, ms(6000)), 4);
        let text = render(&p, true);
        let head = "#EXTM3U\n\
             #EXT-X-VERSION:9\n\
             #EXT-X-TARGETDURATION:1\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.60000,CAN-SKIP-UNTIL=6.00000\n\
             #EXT-X-PART-INF:PART-TARGET=0.20000\n\
             #EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-SKIP:SKIPPED-SEGMENTS=4\n\
             #EXT-X-MAP:URI=\"init.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-12-01T10:00:04.000Z\n\
             #EXTINF:1.00000,\n\
             s4.m4s\n";
        assert!(text.starts_with(head), "{text}");
        assert!(!text.contains("s3.m4s"));
        // Without the request's wish, or without the offer, nothing is skipped.
        assert!(!render(&p, false).contains("EXT-X-SKIP"));
        let mut no_offer = p.clone();
        no_offer.server_control.can_skip_until = None;
        let text = render(&no_offer, true);
        assert!(!text.contains("EXT-X-SKIP") && text.contains("s0.m4s"));
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"));
        assert!(
            text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.60000\n")
        );
        // A short playlist has nothing to skip.
        let short = playlist(vec![segment(0, 5), segment(1, 5)], vec![]);
        assert!(!render(&short, true).contains("EXT-X-SKIP"));
    }

    #[test]
    fn discontinuities_target_duration_hold_back_and_end() {
        let mut segs = vec![segment(3, 5), segment(4, 5)];
        segs[1].discontinuity = true;
        segs[1].duration = ms(2600); // a long GOP: the target covers it
        let mut p = playlist(segs, vec![part(5, 0, 200, true)]);
        p.discontinuity_sequence = 2;
        p.next_discontinuity = true;
        p.server_control.part_hold_back = ms(100); // raised to 3 parts
        let text = render(&p, false);
        assert!(text.contains("#EXT-X-TARGETDURATION:3\n"), "{text}");
        assert!(text.contains("PART-HOLD-BACK=0.60000"));
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:2\n#EXT-X-MAP"));
        assert!(text.contains(
            "s3.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2026-12-01T10:00:04.000Z\n"
        ));
        assert!(text.contains(
            "s4.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-PART:DURATION=0.20000,URI=\"p5.0.m4s\",INDEPENDENT=YES\n"
        ));
        p.ended = true;
        let text = render(&p, false);
        assert!(
            text.ends_with("INDEPENDENT=YES\n#EXT-X-ENDLIST\n"),
            "{text}"
        );
        assert!(!text.contains("PRELOAD-HINT"));
    }

    #[test]
    fn empty_playlist_names_the_first_part() {
        let p = playlist(vec![], vec![]);
        assert_eq!(
            render(&p, true),
            "#EXTM3U\n\
             #EXT-X-VERSION:9\n\
             #EXT-X-TARGETDURATION:1\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.60000,CAN-SKIP-UNTIL=6.00000\n\
             #EXT-X-PART-INF:PART-TARGET=0.20000\n\
             #EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-MAP:URI=\"init.mp4\"\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p0.0.m4s\"\n"
        );
    }

    #[test]
    fn plain_fmp4_playlist_has_segments_only() {
        let mut p = playlist(
            vec![segment(5, 5), segment(6, 5)],
            vec![part(7, 0, 200, true)],
        );
        p.segments[1].discontinuity = true;
        p.discontinuity_sequence = 2;
        let text = render_plain(&p);
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:5\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:2\n#EXT-X-MAP:URI=\"init.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-12-01T10:00:05.000Z\n#EXTINF:1.00000,\ns5.m4s\n\
             #EXT-X-DISCONTINUITY\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-12-01T10:00:06.000Z\n#EXTINF:1.00000,\ns6.m4s\n"
        );
        p.ended = true;
        assert!(render_plain(&p).ends_with("s6.m4s\n#EXT-X-ENDLIST\n"));
    }
}
