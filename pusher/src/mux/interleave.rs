//! Merges the audio and video frame streams into one stream in timestamp order, as FLV
//! files and RTMP servers expect. Bounded: at most `max_per_track` frames wait per track;
//! past that the oldest is released even though the other track has not caught up, so a
//! stalled track never stops the other (or grows memory). Script data (the VP9/AV1 frame
//! clock) travels in the video queue, right after the frame it follows.
//! With a `lead_ms` above zero (live pushes), a frame may also go out when the other track
//! has already reached its timestamp minus `lead_ms`: AAC comes out of its encoder about
//! 60 ms after capture, and video need not wait all of that.

use std::collections::VecDeque;

use onair_shared::flv::TagFrame;
use onair_shared::MediaKind;

pub struct Interleaver {
    audio: VecDeque<TagFrame>,
    video: VecDeque<TagFrame>,
    audio_open: bool,
    video_open: bool,
    max_per_track: usize,
    lead_ms: u64,
    last_audio: Option<u64>,
    last_video: Option<u64>,
}

impl Interleaver {
    /// `audio`/`video`: whether that track exists (and so is worth waiting for).
    pub fn new(audio: bool, video: bool, max_per_track: usize) -> Self {
        Self::with_lead(audio, video, max_per_track, 0)
    }

    /// As `new`, letting a track run up to `lead_ms` ahead of the other's newest frame.
    pub fn with_lead(audio: bool, video: bool, max_per_track: usize, lead_ms: u64) -> Self {
        Self {
            audio: VecDeque::new(),
            video: VecDeque::new(),
            audio_open: audio,
            video_open: video,
            max_per_track: max_per_track.max(1),
            lead_ms,
            last_audio: None,
            last_video: None,
        }
    }

    pub fn push(&mut self, f: TagFrame) {
        match f.kind {
            MediaKind::Audio => {
                self.last_audio = Some(self.last_audio.map_or(f.dts, |a| a.max(f.dts)));
                self.audio.push_back(f)
            }
            MediaKind::Video => {
                self.last_video = Some(self.last_video.map_or(f.dts, |v| v.max(f.dts)));
                self.video.push_back(f)
            }
            // Script data (a video frame's `onFrameTime` clock) keeps its place right
            // after the video frame it follows.
            MediaKind::Data => self.video.push_back(f),
        }
    }

    /// The track will send nothing more.
    pub fn close(&mut self, kind: MediaKind) {
        match kind {
            MediaKind::Audio => self.audio_open = false,
            MediaKind::Video => self.video_open = false,
            MediaKind::Data => {}
        }
    }

    /// The next frame in timestamp order, if it can be known yet.
    pub fn pop(&mut self) -> Option<TagFrame> {
        match (self.audio.front(), self.video.front()) {
            (Some(a), Some(v)) => {
                if a.dts <= v.dts {
                    self.audio.pop_front()
                } else {
                    self.video.pop_front()
                }
            }
            (Some(a), None)
                if !self.video_open
                    || self.audio.len() > self.max_per_track
                    || self.within_lead(a.dts, self.last_video) =>
            {
                self.audio.pop_front()
            }
            (None, Some(v))
                if !self.audio_open
                    || self.video.len() > self.max_per_track
                    || self.within_lead(v.dts, self.last_audio) =>
            {
                self.video.pop_front()
            }
            _ => None,
        }
    }

    /// The other track has reached `dts - lead_ms` (its newest frame is that recent).
    fn within_lead(&self, dts: u64, other_newest: Option<u64>) -> bool {
        self.lead_ms > 0 && other_newest.is_some_and(|o| dts <= o + self.lead_ms)
    }

    /// The open track with nothing queued, which `pop` is waiting for (video first).
    pub fn waiting_for(&self) -> Option<MediaKind> {
        if self.video_open && self.video.is_empty() {
            Some(MediaKind::Video)
        } else if self.audio_open && self.audio.is_empty() {
            Some(MediaKind::Audio)
        } else {
            None
        }
    }

    pub fn is_empty(&self) -> bool {
        self.audio.is_empty() && self.video.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn a(dts: u64) -> TagFrame {
        TagFrame::audio(dts, Bytes::from_static(&[0xaf, 1, 0])).unwrap()
    }
    fn v(dts: u64) -> TagFrame {
        TagFrame::video(dts, Bytes::from_static(&[0x27, 1, 0, 0, 0])).unwrap()
    }

    fn drain(i: &mut Interleaver) -> Vec<(MediaKind, u64)> {
        std::iter::from_fn(|| i.pop())
            .map(|f| (f.kind, f.dts))
            .collect()
    }

    #[test]
    fn orders_by_timestamp_and_waits_for_the_other_track() {
        let mut i = Interleaver::new(true, true, 10);
        for t in [0, 21, 42, 64] {
            i.push(a(t));
        }
        assert!(i.pop().is_none(), "must wait for video");
        i.push(v(0));
        i.push(v(33));
        use MediaKind::*;
        assert_eq!(
            drain(&mut i),
            vec![(Audio, 0), (Video, 0), (Audio, 21), (Video, 33)]
        );
        i.close(Video);
        assert_eq!(drain(&mut i), vec![(Audio, 42), (Audio, 64)]);
    }

    #[test]
    fn a_frame_clock_stays_right_after_its_video_frame() {
        let clock = |dts| crate::encode::video::clock_tag(Default::default(), dts);
        let mut i = Interleaver::new(true, true, 10);
        i.push(v(0));
        i.push(clock(0));
        i.push(v(33));
        i.push(clock(33));
        assert!(
            i.pop().is_none(),
            "the clock waits with its frame for audio"
        );
        for t in [0, 21, 42] {
            i.push(a(t));
        }
        use MediaKind::*;
        assert_eq!(
            drain(&mut i),
            vec![
                (Audio, 0),
                (Video, 0),
                (Data, 0),
                (Audio, 21),
                (Video, 33),
                (Data, 33)
            ]
        );
    }

    #[test]
    fn with_a_lead_video_goes_once_audio_is_close_enough() {
        let mut i = Interleaver::with_lead(true, true, 100, 40);
        i.push(v(0));
        assert!(i.pop().is_none(), "no audio yet: wait");
        i.push(a(0));
        i.push(v(33));
        i.push(v(66));
        use MediaKind::*;
        // Audio reached 0: video up to 40 goes; 66 waits for audio past 26.
        assert_eq!(drain(&mut i), vec![(Audio, 0), (Video, 0), (Video, 33)]);
        i.push(a(21));
        assert!(i.pop().is_some_and(|f| f.dts == 21));
        assert!(i.pop().is_none(), "66 > 21 + 40");
        i.push(a(42));
        assert_eq!(drain(&mut i), vec![(Audio, 42), (Video, 66)]);
        // Without a lead the same input waits for the next audio frame before any video.
        let mut strict = Interleaver::new(true, true, 100);
        strict.push(a(0));
        strict.push(v(0));
        strict.push(v(33));
        assert_eq!(drain(&mut strict), vec![(Audio, 0)]);
    }

    #[test]
    fn a_stalled_track_does_not_hold_the_other_forever() {
        let mut i = Interleaver::new(true, true, 3);
        for t in 0..5 {
            i.push(v(t * 33));
        }
        let out = drain(&mut i);
        assert_eq!(out.len(), 2, "released down to the bound");
        assert!(!i.is_empty());
    }
}
