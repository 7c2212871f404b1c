//! Media fragments: moof (mfhd, a traf per track with tfhd default-base-is-moof, a 64-bit
//! tfdt and a trun with per-sample size, duration, flags and signed composition offsets)
//! followed by one mdat. `Fragmenter` queues samples per track until a part is cut; its
//! queue is bounded in bytes and refuses a sample past the bound rather than grow.

use super::boxes::BoxWriter;
use super::{Fmp4Error, Track};
use bytes::Bytes;

/// A sample as it arrives: its duration is not known yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Decode time in the track's timescale.
    pub dts: u64,
    /// PTS minus DTS in the track's timescale (0 for audio; negative is allowed).
    pub cts_offset: i32,
    /// A sync sample: a decoder can start here (IDR, IRAP, AV1 key frame; every audio frame).
    pub keyframe: bool,
    /// The access unit as the track's sample format has it (length-prefixed NALUs for
    /// H.264/HEVC, the temporal unit's OBUs for AV1, a raw audio frame).
    pub data: Bytes,
}

/// A sample whose duration is known, ready for a trun.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSample {
    pub duration: u32,
    pub cts_offset: i32,
    pub keyframe: bool,
    pub data: Bytes,
}

/// The samples of one track in one fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackRun {
    pub track_id: u32,
    /// DTS of the first sample (tfdt).
    pub base_decode_time: u64,
    pub samples: Vec<RunSample>,
}

/// What a fragment holds, per track, for the playlist and the cutter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentTrack {
    pub track_id: u32,
    pub base_decode_time: u64,
    /// Sum of the sample durations, in the track's timescale.
    pub duration: u64,
    pub samples: usize,
    pub starts_with_keyframe: bool,
}

/// One moof + mdat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub bytes: Bytes,
    /// The mfhd sequence number it carries.
    pub sequence: u32,
    /// Only tracks that have samples in this fragment.
    pub tracks: Vec<FragmentTrack>,
}

impl Fragment {
    pub fn track(&self, track_id: u32) -> Option<&FragmentTrack> {
        self.tracks.iter().find(|t| t.track_id == track_id)
    }
}

const SAMPLE_SYNC: u32 = 0x0200_0000; // sample_depends_on = 2 (no other sample)
const SAMPLE_NON_SYNC: u32 = 0x0101_0000; // sample_depends_on = 1, sample_is_non_sync_sample

const TRUN_DATA_OFFSET: u32 = 0x000001;
const TRUN_DURATION: u32 = 0x000100;
const TRUN_SIZE: u32 = 0x000200;
const TRUN_FLAGS: u32 = 0x000400;
const TRUN_CTS: u32 = 0x000800;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x020000;

/// moof + mdat with these runs (empty runs are left out), mfhd sequence `sequence`.
pub fn write_fragment(sequence: u32, runs: &[TrackRun]) -> Result<Fragment, Fmp4Error> {
    let runs: Vec<&TrackRun> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    if runs.is_empty() {
        return Err(Fmp4Error::EmptyFragment);
    }
    let data_len: u64 = runs
        .iter()
        .flat_map(|r| r.samples.iter())
        .map(|s| s.data.len() as u64)
        .sum();
    let sample_count: usize = runs.iter().map(|r| r.samples.len()).sum();
    let moof_estimate = 8 + 16 + runs.len() * 64 + sample_count * 16;
    let total = moof_estimate as u64 + 8 + data_len;
    if total > u32::MAX as u64 {
        return Err(Fmp4Error::TooLarge(total));
    }
    let mut w = BoxWriter::with_capacity(total as usize);
    let moof = w.open(b"moof");
    let mfhd = w.open_full(b"mfhd", 0, 0);
    w.u32(sequence);
    w.close(mfhd)?;
    let mut offset_fields = Vec::with_capacity(runs.len());
    let mut tracks = Vec::with_capacity(runs.len());
    for run in &runs {
        let traf = w.open(b"traf");
        let tfhd = w.open_full(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF);
        w.u32(run.track_id);
        w.close(tfhd)?;
        let tfdt = w.open_full(b"tfdt", 1, 0);
        w.u64(run.base_decode_time);
        w.close(tfdt)?;
        let with_cts = run.samples.iter().any(|s| s.cts_offset != 0);
        let mut flags = TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS;
        if with_cts {
            flags |= TRUN_CTS;
        }
        // Version 1: composition offsets are signed (B-frames with PTS before DTS).
        let trun = w.open_full(b"trun", u8::from(with_cts), flags);
        w.u32(run.samples.len() as u32);
        offset_fields.push(w.buf.len());
        w.u32(0); // data offset, patched below
        for s in &run.samples {
            w.u32(s.duration);
            w.u32(s.data.len() as u32);
            w.u32(if s.keyframe {
                SAMPLE_SYNC
            } else {
                SAMPLE_NON_SYNC
            });
            if with_cts {
                w.u32(s.cts_offset as u32);
            }
        }
        w.close(trun)?;
        w.close(traf)?;
        tracks.push(FragmentTrack {
            track_id: run.track_id,
            base_decode_time: run.base_decode_time,
            duration: run.samples.iter().map(|s| s.duration as u64).sum(),
            samples: run.samples.len(),
            starts_with_keyframe: run.samples[0].keyframe,
        });
    }
    w.close(moof)?;
    // Offsets count from the start of the moof (default-base-is-moof) to each track's
    // first byte in the mdat.
    let mut offset = (w.buf.len() - moof) as u64 + 8;
    for (run, at) in runs.iter().zip(offset_fields) {
        let v = i32::try_from(offset).map_err(|_| Fmp4Error::TooLarge(offset))?;
        w.patch_u32(at, v as u32);
        offset += run.samples.iter().map(|s| s.data.len() as u64).sum::<u64>();
    }
    let mdat = w.open(b"mdat");
    for s in runs.iter().flat_map(|r| r.samples.iter()) {
        w.bytes(&s.data);
    }
    w.close(mdat)?;
    Ok(Fragment {
        bytes: Bytes::from(w.buf),
        sequence,
        tracks,
    })
}

struct TrackQueue {
    track_id: u32,
    nominal_duration: u32,
    ready: Vec<RunSample>,
    ready_base: u64,
    newest: Option<Sample>,
    last_duration: Option<u32>,
}

/// Queues samples per track and cuts them into fragments. The newest sample of each
/// track waits for its successor (which gives its duration), so a part closed when the
/// next video frame arrives holds every earlier frame, and the audio frame still waiting
/// for its successor goes into the next part.
pub struct Fragmenter {
    queues: Vec<TrackQueue>,
    sequence: u32,
    pending_bytes: usize,
    max_pending_bytes: usize,
}

impl Fragmenter {
    /// A fragmenter for these tracks, the first fragment numbered 1. `max_pending_bytes`
    /// bounds the sample bytes queued between two cuts: a `push` past it is refused.
    pub fn new(tracks: &[Track], max_pending_bytes: usize) -> Self {
        Self {
            queues: tracks
                .iter()
                .map(|t| TrackQueue {
                    track_id: t.id,
                    nominal_duration: t.nominal_sample_duration(),
                    ready: Vec::new(),
                    ready_base: 0,
                    newest: None,
                    last_duration: None,
                })
                .collect(),
            sequence: 1,
            pending_bytes: 0,
            max_pending_bytes,
        }
    }

    /// The mfhd sequence number the next fragment gets.
    pub fn next_sequence(&self) -> u32 {
        self.sequence
    }

    /// Sample bytes queued and not yet in a fragment.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Whether `push` would take this sample, without queueing it (so a caller can check
    /// before it commits other state to the sample).
    pub fn check(&self, track_id: u32, sample: &Sample) -> Result<(), Fmp4Error> {
        self.admit(track_id, sample).map(|_| ())
    }

    /// The queue and the duration the previous sample gets, or why the sample is refused.
    fn admit(&self, track_id: u32, sample: &Sample) -> Result<(usize, Option<u32>), Fmp4Error> {
        let limit = self.max_pending_bytes;
        let pending = self.pending_bytes + sample.data.len();
        let at = self
            .queues
            .iter()
            .position(|q| q.track_id == track_id)
            .ok_or(Fmp4Error::UnknownTrack(track_id))?;
        if sample.data.is_empty() {
            return Err(Fmp4Error::EmptySample(track_id));
        }
        if pending > limit {
            return Err(Fmp4Error::PendingFull {
                track_id,
                pending,
                limit,
            });
        }
        let Some(prev) = &self.queues[at].newest else {
            return Ok((at, None));
        };
        if sample.dts < prev.dts {
            return Err(Fmp4Error::DtsWentBack {
                track_id,
                dts: sample.dts,
                previous: prev.dts,
            });
        }
        let ticks = sample.dts - prev.dts;
        let duration =
            u32::try_from(ticks).map_err(|_| Fmp4Error::DurationTooLong { track_id, ticks })?;
        Ok((at, Some(duration)))
    }

    /// Queues a sample. Its DTS must not be before the previous sample's of its track and
    /// it must have bytes (an FLV end-of-sequence tag is not a sample); a refused sample
    /// changes nothing.
    pub fn push(&mut self, track_id: u32, sample: Sample) -> Result<(), Fmp4Error> {
        let (at, duration) = self.admit(track_id, &sample)?;
        self.pending_bytes += sample.data.len();
        let q = &mut self.queues[at];
        if let (Some(prev), Some(d)) = (q.newest.take(), duration) {
            q.complete(prev, d);
        }
        q.newest = Some(sample);
        Ok(())
    }

    /// A fragment of every sample whose duration is known; `None` when there is none.
    pub fn take_fragment(&mut self) -> Result<Option<Fragment>, Fmp4Error> {
        let runs: Vec<TrackRun> = self
            .queues
            .iter_mut()
            .filter(|q| !q.ready.is_empty())
            .map(|q| TrackRun {
                track_id: q.track_id,
                base_decode_time: q.ready_base,
                samples: std::mem::take(&mut q.ready),
            })
            .collect();
        if runs.is_empty() {
            return Ok(None);
        }
        let taken: usize = runs
            .iter()
            .flat_map(|r| r.samples.iter())
            .map(|s| s.data.len())
            .sum();
        self.pending_bytes = self.pending_bytes.saturating_sub(taken);
        let fragment = write_fragment(self.sequence, &runs)?;
        self.sequence = self.sequence.wrapping_add(1).max(1);
        Ok(Some(fragment))
    }

    /// The end of the stream: every queued sample goes out, the newest of each track with
    /// the duration of the one before it (or the track's nominal one).
    pub fn flush(&mut self) -> Result<Option<Fragment>, Fmp4Error> {
        for q in &mut self.queues {
            if let Some(s) = q.newest.take() {
                let d = q.last_duration.unwrap_or(q.nominal_duration);
                q.complete(s, d);
            }
        }
        self.take_fragment()
    }
}

impl TrackQueue {
    fn complete(&mut self, s: Sample, duration: u32) {
        if self.ready.is_empty() {
            self.ready_base = s.dts;
        }
        self.last_duration = Some(duration);
        self.ready.push(RunSample {
            duration,
            cts_offset: s.cts_offset,
            keyframe: s.keyframe,
            data: s.data,
        });
    }
}
