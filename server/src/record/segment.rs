//! One stream's recording, pure: configurations and frames in (with the wall clock as a
//! parameter), file actions out: open a file with its first bytes, append a complete
//! fragment, close. It decides where files rotate and where fragments are cut; it never
//! touches a file, reads a clock or blocks. Memory is bounded by the fragmenter's limit.
//!
//! Files start at a video keyframe (the first audio frame in an audio-only stream) and
//! rotate at the first keyframe once `segment_duration` of media is in the file, on a
//! changed configuration and whenever the caller says the publisher changed. Fragments
//! start at keyframes at least `fragment_duration` apart, so every fragment of a file can
//! be served on its own after the init segment. Times in a file start near 0.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use onair_shared::fmp4::{init_segment, Fmp4Error, Fragmenter, Sample, Track};
pub use onair_shared::fmp4::{AUDIO_TRACK, VIDEO_TIMESCALE, VIDEO_TRACK};
use onair_shared::{flv, CodecConfig, Frame, MediaKind};

use super::RecordFormat;

/// An audio frame this much before the keyframe that opens a file goes into the file.
const CARRY_AUDIO_MS: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentConfig {
    pub format: RecordFormat,
    pub segment_duration: Duration,
    pub fragment_duration: Duration,
    /// Sample bytes one fragment may gather before it is cut without waiting for a
    /// keyframe (a stream with a very long GOP).
    pub max_fragment_bytes: usize,
}

/// What the disk side must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Close any open file and start a new one, named after `start`, with these bytes
    /// (the init segment, or the FLV header and sequence headers).
    Open { start: SystemTime, head: Bytes },
    /// Append one complete fragment (moof + mdat, or a run of FLV tags).
    Write(Bytes),
    /// Close the open file.
    Close,
}

/// Why a frame was left out of the recording (counted by the caller, never fatal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("the recording cannot hold {0}: {1}")]
    Unsupported(&'static str, Fmp4Error),
    #[error("sample refused by the fragmenter: {0}")]
    Sample(Fmp4Error),
}

struct OpenFile {
    /// Media time (ms on the stream's timeline) that is 0 in this file.
    base_ms: u64,
    /// DTS (ms) of the frame that opened the current fragment.
    fragment_start_ms: u64,
    video: Option<Arc<CodecConfig>>,
    audio: Option<Arc<CodecConfig>>,
    audio_timescale: u32,
    kind: FileKind,
}

enum FileKind {
    Fmp4(Fragmenter),
    /// Tags gathered since the last cut.
    Flv(BytesMut),
}

pub struct RecordSegmenter {
    cfg: SegmentConfig,
    video: Option<Arc<CodecConfig>>,
    audio: Option<Arc<CodecConfig>>,
    file: Option<OpenFile>,
    /// The last audio frame pushed into the open file: it waits in the fragmenter for its
    /// successor, so a rotation carries it into the next file instead of losing it.
    last_audio: Option<Frame>,
}

impl RecordSegmenter {
    pub fn new(cfg: SegmentConfig) -> Self {
        Self {
            cfg,
            video: None,
            audio: None,
            file: None,
            last_audio: None,
        }
    }

    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// A track's (new) configuration. A change of a track the open file holds, or a
    /// track it lacks, ends the file: the next one gets a new init segment.
    pub fn push_config(&mut self, config: &Arc<CodecConfig>, out: &mut Vec<Action>) {
        let slot = match config.kind {
            MediaKind::Video => &mut self.video,
            MediaKind::Audio => &mut self.audio,
            MediaKind::Data => return,
        };
        // Only the first track of each kind is recorded (the one every output serves).
        if slot.as_ref().is_some_and(|c| c.track != config.track) {
            return;
        }
        if slot.as_ref().is_some_and(|c| c.same_as(config)) {
            return;
        }
        *slot = Some(config.clone());
        if self.file.is_some() {
            self.close(out);
        }
    }

    /// The publisher left, returned, or frames were lost: the open file ends here and
    /// the next one starts at a keyframe of what comes next.
    pub fn break_file(&mut self, out: &mut Vec<Action>) {
        self.close(out);
        self.last_audio = None;
    }

    /// The publisher returned: its configuration comes again, the old one is forgotten.
    pub fn publisher_returned(&mut self, out: &mut Vec<Action>) {
        self.break_file(out);
        self.video = None;
        self.audio = None;
    }

    /// Forgets the open file without closing it (the disk side dropped it); the next
    /// keyframe opens a new one.
    pub fn abandon(&mut self) {
        self.file = None;
        self.last_audio = None;
    }

    pub fn push_frame(
        &mut self,
        frame: &Frame,
        now: SystemTime,
        out: &mut Vec<Action>,
    ) -> Result<(), SkipReason> {
        let config = match frame.kind {
            MediaKind::Video => self.video.as_ref(),
            MediaKind::Audio => self.audio.as_ref(),
            MediaKind::Data => return Ok(()),
        };
        let Some(config) = config else { return Ok(()) };
        if config.track != frame.track || frame.data.is_empty() {
            return Ok(());
        }
        let drives = frame.is_video() || self.video.is_none();
        let sync = frame.keyframe || !frame.is_video();
        if self.file.is_none() {
            if !(drives && sync) {
                if frame.is_audio() {
                    // It may go with the keyframe that comes next (an audio frame sent just
                    // before the video frame of the same time).
                    self.last_audio = Some(frame.clone());
                }
                return Ok(());
            }
            return self.open(frame, now, out);
        }
        if drives && sync {
            let (in_file, in_fragment) = match &self.file {
                Some(f) => (
                    frame.dts.saturating_sub(f.base_ms),
                    frame.dts.saturating_sub(f.fragment_start_ms),
                ),
                None => (0, 0),
            };
            if in_file >= self.cfg.segment_duration.as_millis() as u64 {
                // The keyframe gives the previous frame its duration, then opens the next file.
                let _ = self.append(frame);
                self.cut(out);
                self.close_after_cut(out);
                return self.open(frame, now, out);
            }
            if in_fragment >= self.cfg.fragment_duration.as_millis() as u64 {
                self.append(frame)?;
                self.cut(out);
                if let Some(f) = &mut self.file {
                    f.fragment_start_ms = frame.dts;
                }
                return Ok(());
            }
        }
        match self.append(frame) {
            Err(SkipReason::Sample(Fmp4Error::PendingFull { .. })) => {
                // No keyframe for too long: cut here rather than grow.
                self.cut(out);
                if let Some(f) = &mut self.file {
                    f.fragment_start_ms = frame.dts;
                }
                self.append(frame)
            }
            r => r,
        }
    }

    /// The end of the stream: the rest goes out and the file closes.
    pub fn finish(&mut self, out: &mut Vec<Action>) {
        self.close(out);
    }

    fn open(
        &mut self,
        frame: &Frame,
        now: SystemTime,
        out: &mut Vec<Action>,
    ) -> Result<(), SkipReason> {
        let carried = self.last_audio.take().filter(|a| {
            self.cfg.format == RecordFormat::Fmp4
                && frame.is_video()
                && a.dts <= frame.dts
                && frame.dts - a.dts <= CARRY_AUDIO_MS
        });
        let base_ms = carried.as_ref().map_or(frame.dts, |a| a.dts.min(frame.dts));
        let audio_timescale = self.audio.as_deref().map_or(1000, audio_timescale);
        let (head, kind) = match self.cfg.format {
            RecordFormat::Fmp4 => {
                let tracks = self.tracks();
                let head =
                    init_segment(&tracks).map_err(|e| SkipReason::Unsupported("this stream", e))?;
                (
                    head,
                    FileKind::Fmp4(Fragmenter::new(&tracks, self.cfg.max_fragment_bytes)),
                )
            }
            RecordFormat::Flv => {
                let mut head = BytesMut::new();
                head.extend_from_slice(&flv::header(self.audio.is_some(), self.video.is_some()));
                for c in [&self.video, &self.audio].into_iter().flatten() {
                    if let Some(tag) = flv::encode_config_tag(c, 0)
                        .or_else(|| flv::encode_enhanced_config_tag(c, 0))
                    {
                        head.extend_from_slice(&tag);
                    }
                }
                (head.freeze(), FileKind::Flv(BytesMut::new()))
            }
        };
        self.file = Some(OpenFile {
            base_ms,
            fragment_start_ms: frame.dts,
            video: self.video.clone(),
            audio: self.audio.clone(),
            audio_timescale,
            kind,
        });
        out.push(Action::Open { start: now, head });
        if let Some(a) = carried {
            let _ = self.append(&a);
        }
        self.append(frame)
    }

    fn tracks(&self) -> Vec<Track> {
        [&self.video, &self.audio]
            .into_iter()
            .flatten()
            .filter_map(|c| Track::from_config(c))
            .collect()
    }

    fn append(&mut self, frame: &Frame) -> Result<(), SkipReason> {
        let Some(f) = &mut self.file else {
            return Ok(());
        };
        let in_file =
            |c: &Option<Arc<CodecConfig>>| c.as_ref().is_some_and(|c| c.track == frame.track);
        let present = match frame.kind {
            MediaKind::Video => in_file(&f.video),
            MediaKind::Audio => in_file(&f.audio),
            MediaKind::Data => false,
        };
        if !present {
            return Ok(());
        }
        let rel_ms = frame.dts.saturating_sub(f.base_ms);
        match &mut f.kind {
            FileKind::Fmp4(fragmenter) => {
                let (track, sample) = if frame.is_video() {
                    let ts = VIDEO_TIMESCALE as u64;
                    (
                        VIDEO_TRACK,
                        Sample {
                            dts: rel_ms * ts / 1000 + frame.nanos as u64 * ts / 1_000_000_000,
                            cts_offset: frame.cts.saturating_mul(VIDEO_TIMESCALE as i32 / 1000),
                            keyframe: frame.keyframe,
                            data: frame.data.clone(),
                        },
                    )
                } else {
                    (
                        AUDIO_TRACK,
                        Sample {
                            dts: rel_ms * f.audio_timescale as u64 / 1000,
                            cts_offset: 0,
                            keyframe: true,
                            data: frame.data.clone(),
                        },
                    )
                };
                fragmenter.push(track, sample).map_err(SkipReason::Sample)?;
            }
            FileKind::Flv(buf) => {
                let mut rebased = frame.clone();
                rebased.dts = rel_ms;
                let config = if frame.is_video() { &f.video } else { &f.audio };
                if let Some(tag) = flv::encode_frame_tag(&rebased, config.as_deref())
                    .or_else(|| flv::encode_enhanced_frame_tag(&rebased))
                {
                    if buf.len() + tag.len() > self.cfg.max_fragment_bytes {
                        return Err(SkipReason::Sample(Fmp4Error::PendingFull {
                            track_id: 0,
                            pending: buf.len() + tag.len(),
                            limit: self.cfg.max_fragment_bytes,
                        }));
                    }
                    buf.extend_from_slice(&tag);
                }
            }
        }
        if frame.is_audio() {
            self.last_audio = Some(frame.clone());
        }
        Ok(())
    }

    /// Everything whose duration is known goes out as one fragment.
    fn cut(&mut self, out: &mut Vec<Action>) {
        let Some(f) = &mut self.file else { return };
        match &mut f.kind {
            FileKind::Fmp4(fragmenter) => {
                if let Ok(Some(frag)) = fragmenter.take_fragment() {
                    out.push(Action::Write(frag.bytes));
                }
            }
            FileKind::Flv(buf) => {
                if !buf.is_empty() {
                    out.push(Action::Write(buf.split().freeze()));
                }
            }
        }
    }

    /// Closes after `cut`: what waits in the fragmenter (the frame that starts the next
    /// file, and the audio frame carried with it) stays out of this file.
    fn close_after_cut(&mut self, out: &mut Vec<Action>) {
        if self.file.take().is_some() {
            out.push(Action::Close);
        }
    }

    /// Flushes every queued sample (the newest of each track with a nominal duration)
    /// and closes.
    fn close(&mut self, out: &mut Vec<Action>) {
        self.last_audio = None;
        let Some(mut f) = self.file.take() else {
            return;
        };
        match &mut f.kind {
            FileKind::Fmp4(fragmenter) => {
                if let Ok(Some(frag)) = fragmenter.flush() {
                    out.push(Action::Write(frag.bytes));
                }
            }
            FileKind::Flv(buf) => {
                if !buf.is_empty() {
                    out.push(Action::Write(buf.split().freeze()));
                }
            }
        }
        out.push(Action::Close);
    }
}

/// Ticks per second of a recorded audio track: its sample rate (48 kHz for Opus).
fn audio_timescale(c: &CodecConfig) -> u32 {
    Track::from_config(c).map_or(48_000, |t| t.timescale)
}
