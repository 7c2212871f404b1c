//! The live media playlist: a sliding window of segments rendered with m3u8-rs.
//! Pure: segments in, playlist text out.

use std::collections::VecDeque;
use std::time::SystemTime;

use chrono::{DateTime, FixedOffset, Utc};
use m3u8_rs::{MediaPlaylist, MediaSegment};

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub seq: u64,
    pub duration_ms: u64,
    pub discontinuity: bool,
    pub program_date_time: SystemTime,
}

#[derive(Debug)]
pub struct Playlist {
    window: usize,
    entries: VecDeque<Entry>,
    /// Discontinuities that scrolled out of the window (EXT-X-DISCONTINUITY-SEQUENCE).
    discontinuity_sequence: u64,
    /// Never decreases: a playlist's target duration must not change downwards.
    target_secs: u64,
}

impl Playlist {
    pub fn new(window: usize, target_ms: u64) -> Self {
        Self {
            window: window.max(1),
            entries: VecDeque::new(),
            discontinuity_sequence: 0,
            target_secs: target_ms.div_ceil(1000).max(1),
        }
    }

    /// Adds a segment; returns the sequence numbers that left the window.
    pub fn push(&mut self, e: Entry) -> Vec<u64> {
        // Segments are cut at keyframes, so they can be longer than asked (pitfall: the
        // target must cover the real maximum).
        self.target_secs = self.target_secs.max(e.duration_ms.div_ceil(1000));
        self.entries.push_back(e);
        let mut gone = Vec::new();
        while self.entries.len() > self.window {
            if let Some(old) = self.entries.pop_front() {
                if old.discontinuity {
                    self.discontinuity_sequence += 1;
                }
                gone.push(old.seq);
            }
        }
        gone
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last_seq(&self) -> Option<u64> {
        self.entries.back().map(|e| e.seq)
    }

    /// Playlist text; `uri` names a segment by its sequence number.
    pub fn render(&self, uri: impl Fn(u64) -> String, ended: bool) -> String {
        let segments = self
            .entries
            .iter()
            .map(|e| MediaSegment {
                uri: uri(e.seq),
                duration: e.duration_ms as f32 / 1000.0,
                discontinuity: e.discontinuity,
                program_date_time: Some(
                    DateTime::<Utc>::from(e.program_date_time)
                        .with_timezone(&FixedOffset::east_opt(0).expect("UTC offset")),
                ),
                ..Default::default()
            })
            .collect();
        let p = MediaPlaylist {
            version: Some(3),
            target_duration: self.target_secs,
            media_sequence: self.entries.front().map_or(0, |e| e.seq),
            discontinuity_sequence: self.discontinuity_sequence,
            segments,
            end_list: ended,
            ..Default::default()
        };
        let mut out = Vec::new();
        p.write_to(&mut out).expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("m3u8-rs writes UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn e(seq: u64, ms: u64, disc: bool) -> Entry {
        Entry {
            seq,
            duration_ms: ms,
            discontinuity: disc,
            program_date_time: UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seq * 2),
        }
    }

    #[test]
    fn window_slides_and_media_sequence_follows() {
        let mut p = Playlist::new(3, 2000);
        for s in 0..3 {
            assert!(p.push(e(s, 2000, false)).is_empty());
        }
        assert_eq!(p.push(e(3, 2000, false)), vec![0]);
        let text = p.render(|s| format!("t-{s}.ts"), false);
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n\
             #EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:02.000Z\n#EXTINF:2,\nt-1.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:04.000Z\n#EXTINF:2,\nt-2.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:06.000Z\n#EXTINF:2,\nt-3.ts\n"
        );
    }

    #[test]
    fn media_sequence_past_u32_and_target_from_longest_segment() {
        let mut p = Playlist::new(2, 2000);
        let big = u32::MAX as u64 + 5;
        p.push(e(big, 2000, false));
        p.push(e(big + 1, 3400, false));
        p.push(e(big + 2, 2000, false));
        let text = p.render(|s| format!("{s}.ts"), false);
        assert!(
            text.contains(&format!("#EXT-X-MEDIA-SEQUENCE:{}", big + 1)),
            "{text}"
        );
        assert!(text.contains("#EXT-X-TARGETDURATION:4"), "{text}");
        assert!(text.contains("#EXTINF:3.4,"), "{text}");
    }

    #[test]
    fn discontinuity_tag_then_discontinuity_sequence_once_scrolled_out() {
        let mut p = Playlist::new(2, 2000);
        p.push(e(0, 2000, false));
        p.push(e(1, 2000, true));
        let text = p.render(|s| format!("{s}.ts"), false);
        assert!(text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:02.000Z\n#EXTINF:2,\n1.ts"), "{text}");
        assert!(!text.contains("DISCONTINUITY-SEQUENCE"), "{text}");
        p.push(e(2, 2000, false));
        p.push(e(3, 2000, false));
        let text = p.render(|s| format!("{s}.ts"), false);
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1"), "{text}");
        assert!(!text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
        assert!(p
            .render(|s| format!("{s}.ts"), true)
            .ends_with("#EXT-X-ENDLIST\n"));
    }
}
