//! MP4 files (H.264, HEVC or AV1 video + AAC) as a source, without re-encoding, read with
//! the `mp4` crate. Samples are already what an FLV video tag carries (length-prefixed NAL
//! units for H.264/HEVC, a temporal unit of OBUs for AV1), so video payloads go out
//! bit-identical: H.264 in legacy FLV, HEVC and AV1 as Enhanced RTMP with the `hvcC`/`av1C`
//! record of the sample entry (read by `mp4_check`, as the crate does not keep it). The two
//! tracks are merged by decode time. Edit lists are not applied (timestamps start at each track's zero). The mp4
//! crate is trusted with bounds but guarded: a panic inside it becomes an error.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use mp4::{MediaType, Mp4Reader, Mp4Sample, TrackType};
use onair_shared::aac::{AudioSpecificConfig, SAMPLE_RATES};
use onair_shared::av1::Av1Config;
use onair_shared::avc::AvcDecoderConfig;
use onair_shared::flv::TagFrame;
use onair_shared::hevc::HevcDecoderConfig;
use onair_shared::Codec;

use super::{EncodedInfo, EncodedSource};
use crate::mux::flv;
use crate::PushError;

struct Track {
    id: u32,
    timescale: u64,
    count: u32,
    next: u32,
    /// The next sample, read ahead for merging.
    pending: Option<Mp4Sample>,
}

pub struct Mp4Source {
    reader: Mp4Reader<BufReader<File>>,
    path: PathBuf,
    info: EncodedInfo,
    video: Option<Track>,
    audio: Option<Track>,
    headers: Vec<TagFrame>,
}

impl Mp4Source {
    pub fn open(path: &Path) -> Result<Self, PushError> {
        let bad = |r: String| PushError::format(format!("MP4 {}", path.display()), r);
        let file = File::open(path).map_err(|e| PushError::io(path, e))?;
        let size = file.metadata().map_err(|e| PushError::io(path, e))?.len();
        let mut file = file;
        let moov = super::mp4_check::check_file(&mut file, size).map_err(|e| bad(e.to_string()))?;
        let entries = super::mp4_check::sample_entries(&moov);
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0))
            .map_err(|e| PushError::io(path, e))?;
        let reader = guarded(|| Mp4Reader::read_header(BufReader::new(file), size))
            .map_err(|e| bad(e.to_string()))?
            .map_err(|e| bad(e.to_string()))?;
        let mut info = EncodedInfo::default();
        let mut headers = Vec::new();
        let (mut video, mut audio) = (None, None);
        let mut ids: Vec<u32> = reader.tracks().keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(t) = reader.tracks().get(&id) else {
                continue;
            };
            let track = |t: &mp4::Mp4Track| Track {
                id,
                timescale: t.timescale().max(1) as u64,
                count: t.sample_count(),
                next: 1,
                pending: None,
            };
            let entry = entries.iter().find(|e| e.track_id == id);
            let enhanced = entry.and_then(|e| match &e.format {
                b"hvc1" | b"hev1" => Some((Codec::Hevc, *b"hvcC")),
                b"av01" => Some((Codec::Av1, *b"av1C")),
                _ => None,
            });
            if let (Some((codec, config_box)), Some(e), true) = (enhanced, entry, video.is_none()) {
                let record = match &e.config {
                    Some((kind, record)) if *kind == config_box => record,
                    _ => {
                        return Err(bad(format!(
                            "{} track {id} has no {} box",
                            codec.name(),
                            String::from_utf8_lossy(&config_box)
                        )))
                    }
                };
                let coded_size = match codec {
                    Codec::Hevc => HevcDecoderConfig::parse(record)
                        .map_err(|e| bad(format!("hvcC: {e}")))?
                        .sps_info()
                        .ok()
                        .map(|s| (s.width, s.height)),
                    _ => Av1Config::parse(record)
                        .map_err(|e| bad(format!("av1C: {e}")))?
                        .sequence_header()
                        .ok()
                        .map(|s| (s.max_frame_width, s.max_frame_height)),
                };
                let body = flv::ex_video_sequence_start(codec, record)
                    .ok_or_else(|| bad(format!("{} sequence start", codec.name())))?;
                headers.push(
                    flv::video(0, body).ok_or_else(|| bad(format!("{} header", codec.name())))?,
                );
                let fps = t.frame_rate();
                info.fps = (fps.is_finite() && fps > 0.0).then_some(fps);
                info.video_codec = codec;
                // hev1 may keep its SPS in band only: the sample entry's size then.
                info.video_size = coded_size.or(e.size.map(|(w, h)| (w as u32, h as u32)));
                video = Some(track(t));
                continue;
            }
            match (t.track_type(), t.media_type()) {
                (Ok(TrackType::Video), Ok(MediaType::H264)) if video.is_none() => {
                    let sps = t.sequence_parameter_set().map_err(|e| bad(e.to_string()))?;
                    let pps = t.picture_parameter_set().map_err(|e| bad(e.to_string()))?;
                    let cfg = AvcDecoderConfig::from_parameter_sets(sps, pps)
                        .map_err(|e| bad(e.to_string()))?;
                    headers.push(
                        flv::video(0, flv::avc_sequence_header(&cfg))
                            .ok_or_else(|| bad("AVC header".into()))?,
                    );
                    let fps = t.frame_rate();
                    info.fps = (fps.is_finite() && fps > 0.0).then_some(fps);
                    info.video = Some(cfg);
                    video = Some(track(t));
                }
                (Ok(TrackType::Audio), Ok(MediaType::AAC)) if audio.is_none() => {
                    let object_type = t.audio_profile().map_err(|e| bad(e.to_string()))? as u8;
                    let freq = t.sample_freq_index().map_err(|e| bad(e.to_string()))?;
                    let sample_rate = freq.freq();
                    let frequency_index = SAMPLE_RATES
                        .iter()
                        .position(|&r| r == sample_rate)
                        .unwrap_or(15) as u8;
                    let channel_config = t.channel_config().map_err(|e| bad(e.to_string()))? as u8;
                    let asc = AudioSpecificConfig {
                        object_type,
                        frequency_index,
                        sample_rate,
                        channel_config,
                    }
                    .to_bytes()
                    .to_vec();
                    headers.push(
                        flv::audio(0, flv::aac_sequence_header(&asc))
                            .ok_or_else(|| bad("AAC header".into()))?,
                    );
                    info.audio = Some(asc);
                    audio = Some(track(t));
                }
                (Ok(TrackType::Video), Ok(other)) => {
                    return Err(bad(format!(
                        "video codec {other} (H.264, HEVC and AV1 are pushed)"
                    )));
                }
                (Ok(TrackType::Video), Err(_)) if video.is_none() => {
                    let format = entry.map_or("none".into(), |e| {
                        String::from_utf8_lossy(&e.format).into_owned()
                    });
                    return Err(bad(format!(
                        "video sample entry {format:?} (H.264, HEVC and AV1 are pushed)"
                    )));
                }
                _ => {}
            }
        }
        if video.is_none() && audio.is_none() {
            return Err(bad("no H.264, HEVC, AV1 or AAC track".into()));
        }
        Ok(Self {
            reader,
            path: path.to_path_buf(),
            info,
            video,
            audio,
            headers,
        })
    }

    fn fill(
        reader: &mut Mp4Reader<BufReader<File>>,
        t: &mut Option<Track>,
        path: &Path,
    ) -> Result<(), PushError> {
        let Some(t) = t else { return Ok(()) };
        // A sample the table lists but the reader cannot find ends the track (a damaged
        // table can claim billions of samples: never walk them one by one).
        if t.pending.is_none() && t.next <= t.count {
            let bad = |r: String| PushError::format(format!("MP4 {}", path.display()), r);
            let s = guarded(|| reader.read_sample(t.id, t.next))
                .map_err(|e| bad(e.to_string()))?
                .map_err(|e| bad(e.to_string()))?;
            t.next = if s.is_some() { t.next + 1 } else { t.count + 1 };
            t.pending = s;
        }
        Ok(())
    }
}

/// Runs an mp4-crate call, turning a panic on a malformed file into an error: a bad file
/// must end the push with a message, not abort it.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, ReaderPanicked> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| ReaderPanicked)
}

/// The mp4 crate panicked on the file.
#[derive(Debug, thiserror::Error)]
#[error("malformed file (the MP4 reader gave up)")]
struct ReaderPanicked;

fn ms(t: u64, timescale: u64) -> u64 {
    t * 1000 / timescale
}

impl EncodedSource for Mp4Source {
    fn info(&self) -> &EncodedInfo {
        &self.info
    }

    fn next_frame(&mut self) -> Result<Option<TagFrame>, PushError> {
        if !self.headers.is_empty() {
            return Ok(Some(self.headers.remove(0)));
        }
        Self::fill(&mut self.reader, &mut self.video, &self.path)?;
        Self::fill(&mut self.reader, &mut self.audio, &self.path)?;
        let vt = self
            .video
            .as_ref()
            .and_then(|t| t.pending.as_ref().map(|s| ms(s.start_time, t.timescale)));
        let at = self
            .audio
            .as_ref()
            .and_then(|t| t.pending.as_ref().map(|s| ms(s.start_time, t.timescale)));
        let take_video = match (vt, at) {
            (Some(v), Some(a)) => v <= a,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return Ok(None),
        };
        let bad =
            |r: &str| PushError::format(format!("MP4 {}", self.path.display()), r.to_string());
        if take_video {
            let t = self.video.as_mut().ok_or_else(|| bad("no video track"))?;
            let s = t.pending.take().ok_or_else(|| bad("no sample"))?;
            let dts = ms(s.start_time, t.timescale);
            let cts = (s.rendering_offset as i64 * 1000 / t.timescale as i64) as i32;
            let body = match self.info.video_codec {
                Codec::H264 => flv::avc_frame_avcc(s.is_sync, cts, &s.bytes),
                codec => flv::ex_video_frame(codec, s.is_sync, cts, &s.bytes)
                    .ok_or_else(|| bad("no FourCC for the video codec"))?,
            };
            Ok(flv::video(dts, body))
        } else {
            let t = self.audio.as_mut().ok_or_else(|| bad("no audio track"))?;
            let s = t.pending.take().ok_or_else(|| bad("no sample"))?;
            Ok(flv::audio(
                ms(s.start_time, t.timescale),
                flv::aac_frame(&s.bytes),
            ))
        }
    }
}
