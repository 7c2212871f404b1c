//! The push pipeline: each stage on its own thread, joined by bounded channels.
//!
//! ```text
//! video: capture ─[4]─► process ─[4]─► encode ─[64]─┐
//!                                                     ├─► mux ─► FLV file
//! audio: capture ─[16]─► process ─[16]─► encode ─[64]─┘    └──► SendQueue ─► RTMP (tokio)
//! file:  reader (paced by timestamps) ─[64 + 64]──────┘
//! ```
//!
//! Full-channel policy: a real-time capture stage drops the raw frame (counted as
//! `capture_dropped`) rather than wait, like a camera whose consumer is late; every later
//! stage, and every stage of a free-running (`--fast`) push, blocks, so nothing is lost
//! there and backpressure reaches the capture. The send queue has its own drop policy
//! (see `publish::queue`). One `CaptureClock` stamps audio and video.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use onair_shared::flv::TagFrame;
use onair_shared::metadata::Metadata;
use onair_shared::{Codec, MediaKind};
use rml_rtmp::sessions::StreamMetadata;

use crate::clock::CaptureClock;
use crate::config::{AudioCodec, AudioInput, Output, PushConfig, VideoInput};
use crate::encode::aac::{AacEncoder, AacSettings};
use crate::encode::opus::{OpusEncoder, OpusSettings};
use crate::encode::video::{VideoEncoder, VideoSettings};
use crate::encode::AudioEncoder;
use crate::guest::jitter::Fade;
use crate::media::{AudioBlock, VideoFrame};
use crate::mux::interleave::Interleaver;
use crate::process::aec::EchoCanceller;
use crate::process::audio::{apply_gain, LoopMixer};
use crate::process::beauty::Beauty;
use crate::process::compose::compose;
use crate::process::denoise::Denoiser;
use crate::process::filter::VideoFilter;
use crate::process::logo::Logo;
use crate::process::lut::Lut3d;
use crate::process::vad::{gate as vad_gate, VoiceDetector};
use crate::process::voice::Voice;
use crate::publish::file::FlvWriter;
use crate::publish::queue::SendQueue;
use crate::publish::rate::BitrateController;
use crate::publish::rtmp::{run_publisher, Shared};
use crate::source::raw::{RawAudio, RawVideo, TestVideo, ToneAudio, WavAudio, Y4mVideo};
use crate::source::test_pattern::TestPattern;
use crate::source::tone::Tone;
use crate::source::{open_file, EncodedSource};
use crate::status::{status_line, Stats};
use crate::PushError;

/// The encoders' (or the file reader's) outputs: one channel per track, closed at its end.
#[derive(Clone)]
struct Tracks {
    video: Sender<TagFrame>,
    audio: Sender<TagFrame>,
}

/// Totals at the end of a push.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub video_frames: u64,
    pub bytes: u64,
    pub dropped: u64,
    pub reconnects: u64,
}

/// Longest `--mix` file read into memory.
const MAX_MIX_SECONDS: u32 = 600;
/// Largest send queue in bytes, whatever `--queue-ms` says.
const MAX_QUEUE_BYTES: usize = 32 << 20;

/// Stream description for metadata.
#[derive(Debug, Clone)]
struct Described {
    video_codec: Codec,
    width: u32,
    height: u32,
    fps: f64,
    video_kbps: Option<u32>,
    audio_codec: Codec,
    /// Rate (as decoded: 48 kHz for Opus) and channels.
    audio: Option<(u32, u8)>,
    audio_kbps: Option<u32>,
}

impl Default for Described {
    fn default() -> Self {
        Self {
            video_codec: Codec::H264,
            width: 0,
            height: 0,
            fps: 0.0,
            video_kbps: None,
            audio_codec: Codec::Aac,
            audio: None,
            audio_kbps: None,
        }
    }
}

/// `videocodecid`/`audiocodecid` of `onMetaData`: the legacy FLV id (7 for H.264, 10 for
/// AAC), else the FourCC as a big-endian number, as Enhanced RTMP says.
fn codec_id(codec: Codec) -> Option<u32> {
    match codec {
        Codec::H264 => Some(7),
        Codec::Aac => Some(10),
        other => other.fourcc().map(u32::from_be_bytes),
    }
}

impl Described {
    fn script_body(&self) -> bytes::Bytes {
        Metadata {
            width: Some(self.width as f64),
            height: Some(self.height as f64),
            framerate: Some(self.fps),
            video_data_rate: self.video_kbps.map(|k| k as f64),
            audio_data_rate: self.audio_kbps.map(|k| k as f64),
            video_codec: Some(self.video_codec.name().into()),
            audio_codec: self.audio.map(|_| self.audio_codec.name().into()),
            audio_sample_rate: self.audio.map(|(r, _)| r as f64),
            audio_channels: self.audio.map(|(_, c)| c as f64),
            encoder: Some(encoder_name()),
        }
        .to_script_body()
    }

    fn rtmp(&self) -> StreamMetadata {
        let mut m = StreamMetadata::new();
        m.video_width = Some(self.width);
        m.video_height = Some(self.height);
        m.video_codec_id = codec_id(self.video_codec);
        m.video_frame_rate = Some(self.fps as f32);
        m.video_bitrate_kbps = self.video_kbps;
        if let Some((rate, ch)) = self.audio {
            m.audio_codec_id = codec_id(self.audio_codec);
            m.audio_sample_rate = Some(rate);
            m.audio_channels = Some(ch as u32);
            m.audio_is_stereo = Some(ch == 2);
            m.audio_bitrate_kbps = self.audio_kbps;
        }
        m.encoder = Some(encoder_name());
        m
    }
}

fn encoder_name() -> String {
    format!("onair push {}", env!("CARGO_PKG_VERSION"))
}

/// Runs a push to the end (duration, end of file, or `stop`). Blocks the calling thread.
pub fn run(cfg: PushConfig, stop: Arc<AtomicBool>) -> Result<Summary, PushError> {
    run_with_filters(cfg, stop, Vec::new())
}

/// `run`, with custom video filters run on every raw picture after the built-in ones
/// (see `process::filter`). Ignored for `--video file:` (pushed without re-encoding).
pub fn run_with_filters(
    cfg: PushConfig,
    stop: Arc<AtomicBool>,
    filters: Vec<Box<dyn VideoFilter>>,
) -> Result<Summary, PushError> {
    let clock = Arc::new(CaptureClock::new(cfg.realtime));
    let stats = Arc::new(Stats::default());
    stats.target_bitrate.store(cfg.bitrate as u64, Relaxed);
    let (video_tx, video_rx) = bounded::<TagFrame>(64);
    let (audio_tx, audio_rx) = bounded::<TagFrame>(64);
    let mux_tx = Tracks {
        video: video_tx,
        audio: audio_tx,
    };
    let mut workers: Vec<(&'static str, JoinHandle<Result<(), PushError>>)> = Vec::new();

    let described = match &cfg.video {
        VideoInput::File(path) => {
            let src = open_file(path)?;
            let info = src.info().clone();
            let sps = info.video.as_ref().and_then(|v| v.sps_info().ok());
            let audio = info
                .audio
                .as_ref()
                .and_then(|a| onair_shared::aac::AudioSpecificConfig::parse(a).ok());
            let with_audio = cfg.audio != AudioInput::None && audio.is_some();
            let (width, height) = info
                .video_size
                .or(sps.as_ref().map(|s| (s.width, s.height)))
                .unwrap_or((0, 0));
            let d = Described {
                video_codec: info.video_codec,
                width,
                height,
                fps: info.fps.or(sps.and_then(|s| s.fps)).unwrap_or(30.0),
                audio: audio
                    .filter(|_| with_audio)
                    .map(|a| (a.sample_rate, a.channel_config)),
                ..Default::default()
            };
            let (clock, stop, path) = (clock.clone(), stop.clone(), path.clone());
            let (looped, duration) = (cfg.looped, cfg.duration_ms);
            let tx = mux_tx.clone();
            workers.push((
                "file reader",
                spawn("file reader", move || {
                    file_stage(src, &path, looped, duration, with_audio, &clock, &stop, tx)
                })?,
            ));
            d
        }
        _ => start_raw(&cfg, &clock, &stats, &stop, &mux_tx, &mut workers, filters)?,
    };
    drop(mux_tx);
    let has_audio = described.audio.is_some();

    // Status line.
    let done = Arc::new(AtomicBool::new(false));
    let status = cfg
        .status
        .then(|| {
            let (stats, done) = (stats.clone(), done.clone());
            let network = matches!(cfg.output, Output::Rtmp(_));
            spawn("status", move || {
                status_stage(&stats, &done, network);
                Ok(())
            })
        })
        .transpose()?;

    let result = match &cfg.output {
        Output::File(path) => mux_to_file(
            path,
            &described,
            has_audio,
            &video_rx,
            &audio_rx,
            !cfg.realtime,
            &stats,
        ),
        Output::Rtmp(url) => {
            let queue = SendQueue::new(cfg.queue_ms, MAX_QUEUE_BYTES);
            let shared = Arc::new(Shared::new(queue, stats.clone()));
            let publisher = {
                let (url, shared, stop, meta) =
                    (url.clone(), shared.clone(), stop.clone(), described.rtmp());
                spawn("rtmp", move || run_publisher(url, shared, meta, stop))?
            };
            // Bitrate adaptation (raw sources only: a file's bitrate is what it is).
            let rate = (!matches!(cfg.video, VideoInput::File(_)))
                .then(|| {
                    let (stats, done) = (stats.clone(), done.clone());
                    let (queue_ms, asked) = (cfg.queue_ms, cfg.bitrate);
                    spawn("rate", move || {
                        rate_stage(&stats, &done, queue_ms, asked);
                        Ok(())
                    })
                })
                .transpose()?;
            let r = merge(&video_rx, &audio_rx, has_audio, false, 128, |f| {
                shared.push(f);
                Ok(())
            });
            shared.finish();
            let published = join("rtmp", publisher);
            done.store(true, Relaxed);
            if let Some(h) = rate {
                let _ = h.join();
            }
            r.and(published)
        }
    };
    // The muxer is done (or failed): stop the sources and collect the stages.
    stop.store(true, Relaxed);
    drop(video_rx);
    drop(audio_rx);
    let mut first_err = result.err();
    for (name, h) in workers {
        if let Err(e) = join(name, h) {
            first_err.get_or_insert(e);
        }
    }
    done.store(true, Relaxed);
    if let Some(h) = status {
        let _ = h.join();
    }
    let s = stats.snapshot();
    if cfg.status {
        eprintln!();
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(Summary {
            video_frames: s.video_frames,
            bytes: s.bytes,
            dropped: s.dropped,
            reconnects: s.reconnects,
        }),
    }
}

fn spawn<F>(name: &'static str, f: F) -> Result<JoinHandle<Result<(), PushError>>, PushError>
where
    F: FnOnce() -> Result<(), PushError> + Send + 'static,
{
    std::thread::Builder::new()
        .name(format!("push-{name}"))
        .spawn(f)
        .map_err(|e| PushError::Thread(name, e.to_string()))
}

fn join(name: &'static str, h: JoinHandle<Result<(), PushError>>) -> Result<(), PushError> {
    h.join().map_err(|_| PushError::Stage(name))?
}

/// Merges the two tracks in timestamp order into `sink`. `strict` (free-running pushes)
/// waits for whichever open track is behind, so the order is exact and backpressure holds
/// the faster encoder; otherwise frames are taken as they come and a track is waited for
/// at most `max_wait` frames of the other (a stalled microphone must not stop the video).
fn merge(
    video: &Receiver<TagFrame>,
    audio: &Receiver<TagFrame>,
    has_audio: bool,
    strict: bool,
    max_wait: usize,
    mut sink: impl FnMut(TagFrame) -> Result<(), PushError>,
) -> Result<(), PushError> {
    // Live pushes let a track lead the other by up to 40 ms (less waiting for AAC, and
    // still within the 50 ms that players tolerate); files are in exact order.
    let lead_ms = if strict { 0 } else { 40 };
    let mut il = Interleaver::with_lead(has_audio, true, max_wait, lead_ms);
    let (mut v_open, mut a_open) = (true, has_audio);
    loop {
        while let Some(f) = il.pop() {
            sink(f)?;
        }
        if !v_open && !a_open {
            return Ok(());
        }
        let (kind, r) = if strict {
            match il.waiting_for() {
                Some(MediaKind::Audio) => (MediaKind::Audio, audio.recv()),
                _ => (MediaKind::Video, video.recv()),
            }
        } else {
            let never = crossbeam_channel::never();
            let (vr, ar) = (
                if v_open { video } else { &never },
                if a_open { audio } else { &never },
            );
            crossbeam_channel::select! {
                recv(vr) -> r => (MediaKind::Video, r),
                recv(ar) -> r => (MediaKind::Audio, r),
            }
        };
        match r {
            Ok(f) => il.push(f),
            Err(_) => {
                il.close(kind);
                match kind {
                    MediaKind::Video => v_open = false,
                    _ => a_open = false,
                }
            }
        }
    }
}

fn mux_to_file(
    path: &Path,
    d: &Described,
    has_audio: bool,
    video: &Receiver<TagFrame>,
    audio: &Receiver<TagFrame>,
    strict: bool,
    stats: &Stats,
) -> Result<(), PushError> {
    let file = std::fs::File::create(path).map_err(|e| PushError::io(path, e))?;
    let io = |e| PushError::io(path, e);
    let mut w = FlvWriter::new(
        std::io::BufWriter::new(file),
        has_audio,
        true,
        &d.script_body(),
    )
    .map_err(io)?;
    merge(video, audio, has_audio, strict, 1024, |f| {
        w.write(&f).map_err(io)?;
        if f.kind == MediaKind::Video && !f.sequence_header {
            stats.video_frames.fetch_add(1, Relaxed);
        }
        stats.bytes.fetch_add(f.payload.len() as u64, Relaxed);
        Ok(())
    })?;
    w.finish().map_err(io)?;
    Ok(())
}

/// Once a second, the bitrate controller reads the send queue and sets the encoder's target.
fn rate_stage(stats: &Stats, done: &AtomicBool, queue_ms: u64, asked: u32) {
    let mut ctl = BitrateController::new(asked);
    while !done.load(Relaxed) {
        for _ in 0..10 {
            if done.load(Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !stats.connected.load(Relaxed) {
            // A queue that fills while there is no connection says nothing about the link.
            ctl.hold(stats.dropped.load(Relaxed));
            continue;
        }
        let fill = stats.queue_ms.load(Relaxed) as f64 / queue_ms.max(1) as f64;
        if let Some(bps) = ctl.tick(stats.dropped.load(Relaxed), fill) {
            tracing::info!(bitrate = bps, "video bitrate target");
            stats.target_bitrate.store(bps as u64, Relaxed);
        }
    }
}

fn status_stage(stats: &Stats, done: &AtomicBool, network: bool) {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let mut prev = stats.snapshot();
    let mut at = Instant::now();
    while !done.load(Relaxed) {
        // Wake often to notice the end, print once a second.
        for _ in 0..10 {
            if done.load(Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let now = stats.snapshot();
        let line = status_line(&prev, &now, at.elapsed().as_secs_f64(), network);
        if tty {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
        prev = now;
        at = Instant::now();
    }
}

/// Sends to the next stage: drop when full for real-time capture, wait otherwise.
/// Returns false when the next stage is gone.
fn hand_on<T>(tx: &Sender<T>, v: T, drop_when_full: bool, stats: &Stats) -> bool {
    if drop_when_full {
        match tx.try_send(v) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                stats.capture_dropped.fetch_add(1, Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    } else {
        tx.send(v).is_ok()
    }
}

#[allow(clippy::too_many_arguments)]
fn file_stage(
    first: Box<dyn EncodedSource>,
    path: &Path,
    looped: bool,
    duration_ms: Option<u64>,
    with_audio: bool,
    clock: &CaptureClock,
    stop: &AtomicBool,
    tx: Tracks,
) -> Result<(), PushError> {
    let mut src = first;
    // Timestamps continue across loops: each pass is offset past the last frame of the previous.
    let mut offset = 0u64;
    let mut base: Option<u64> = None;
    let mut video_end = 0u64;
    let mut last_video: Option<u64> = None;
    let mut last_audio: Option<u64> = None;
    let mut step = 33u64;
    let mut pass = 0u32;
    'passes: loop {
        pass += 1;
        let mut got_media = false;
        while let Some(mut f) = src.next_frame()? {
            if stop.load(Relaxed) {
                break 'passes;
            }
            if f.kind == MediaKind::Audio && !with_audio {
                continue;
            }
            if f.sequence_header && pass > 1 {
                continue;
            }
            got_media |= !f.sequence_header;
            let b = *base.get_or_insert(f.dts);
            f.dts = f.dts.saturating_sub(b) + offset;
            if duration_ms.is_some_and(|d| f.dts >= d) {
                break 'passes;
            }
            if !f.sequence_header {
                match f.kind {
                    MediaKind::Video => {
                        if let Some(prev) = last_video {
                            step = f.dts.saturating_sub(prev).clamp(1, 1000);
                        }
                        last_video = Some(f.dts);
                        video_end = video_end.max(f.dts);
                    }
                    _ => {
                        // After a loop, audio that overlaps the previous pass's (a file's
                        // audio often runs a little past its video) is skipped: monotonic.
                        if last_audio.is_some_and(|a| f.dts <= a) {
                            continue;
                        }
                        last_audio = Some(f.dts);
                    }
                }
                clock.wait_until(f.dts, stop);
            }
            let sent = match f.kind {
                MediaKind::Audio => tx.audio.send(f),
                _ => tx.video.send(f),
            };
            if sent.is_err() {
                break 'passes;
            }
        }
        if !looped || !got_media {
            break;
        }
        // The next pass starts one frame (the file's own step) after the last video frame.
        offset = match last_video {
            Some(_) => video_end + step,
            None => last_audio.map_or(0, |a| a + 23),
        };
        last_video = None;
        base = None;
        src = open_file(path)?;
    }
    Ok(())
}

fn start_raw(
    cfg: &PushConfig,
    clock: &Arc<CaptureClock>,
    stats: &Arc<Stats>,
    stop: &Arc<AtomicBool>,
    mux_tx: &Tracks,
    workers: &mut Vec<(&'static str, JoinHandle<Result<(), PushError>>)>,
    custom_filters: Vec<Box<dyn VideoFilter>>,
) -> Result<Described, PushError> {
    let mut filters: Vec<Box<dyn VideoFilter>> = Vec::new();
    if let Some(s) = cfg.beauty {
        filters.push(Box::new(Beauty::new(s)));
    }
    if let Some(path) = &cfg.lut {
        filters.push(Box::new(Lut3d::load(path)?));
    }
    filters.extend(custom_filters);
    // Video source.
    let (video, fps, width, height): (Box<dyn RawVideo>, f64, usize, usize) = match &cfg.video {
        VideoInput::Test => (
            Box::new(TestVideo(TestPattern::new(cfg.width, cfg.height))),
            cfg.fps.unwrap_or(30.0),
            cfg.width,
            cfg.height,
        ),
        VideoInput::Y4m(path) => {
            let y = Y4mVideo::open(path, cfg.looped)?;
            let h = y.header().clone();
            (
                Box::new(y),
                cfg.fps.or(h.fps).unwrap_or(30.0),
                h.width,
                h.height,
            )
        }
        VideoInput::Camera(index) => open_camera(*index, cfg)?,
        VideoInput::Screen(display) => open_screen(display.as_deref(), cfg)?,
        VideoInput::File(_) => return Err(PushError::Stage("raw video for a file source")),
    };
    // Audio source.
    let audio: Option<Box<dyn RawAudio>> = match &cfg.audio {
        AudioInput::Tone => Some(Box::new(ToneAudio(Tone::new(
            cfg.sample_rate,
            cfg.channels,
        )))),
        AudioInput::Wav(path) => Some(Box::new(WavAudio::open(
            path,
            cfg.looped,
            cfg.sample_rate,
            cfg.channels,
        )?)),
        AudioInput::Mic(name) => Some(open_mic(name.as_deref(), cfg)?),
        AudioInput::None => None,
    };
    let logo = cfg
        .logo
        .as_ref()
        .map(|(p, x, y)| Logo::load(p).map(|l| (l, *x, *y)))
        .transpose()?;
    let mixer = cfg
        .mix
        .as_ref()
        .map(|p| {
            WavAudio::read_all(p, cfg.sample_rate, cfg.channels, MAX_MIX_SECONDS)
                .map(LoopMixer::new)
        })
        .transpose()?;
    let mut encoder = VideoEncoder::new(VideoSettings {
        codec: cfg.video_codec,
        width,
        height,
        fps,
        bitrate: cfg.bitrate,
        keyint_frames: (cfg.keyint_s * fps).round().max(1.0) as u32,
        threads: cfg.threads,
    })?;
    let video_codec = encoder.codec();
    let audio_encoder = audio
        .as_ref()
        .map(|_| -> Result<AudioEncoder, PushError> {
            Ok(match cfg.audio_codec {
                AudioCodec::Aac => AudioEncoder::Aac(AacEncoder::new(AacSettings {
                    sample_rate: cfg.sample_rate,
                    channels: cfg.channels,
                    bitrate: cfg.audio_bitrate,
                })?),
                AudioCodec::Opus => AudioEncoder::Opus(OpusEncoder::new(OpusSettings {
                    sample_rate: cfg.sample_rate,
                    channels: cfg.channels,
                    bitrate: cfg.audio_bitrate,
                })?),
            })
        })
        .transpose()?;
    let audio_codec = audio_encoder.as_ref().map_or(Codec::Aac, |e| e.codec());

    let realtime = cfg.realtime;
    let duration = cfg.duration_ms;

    // Co-hosting: the guest's puller runs until `stop`; the process stages read from it.
    let guest = match &cfg.guest {
        Some((url, layout)) => {
            let (g, handle) =
                crate::guest::start(url.clone(), cfg.sample_rate, cfg.channels, stop.clone())
                    .map_err(|e| PushError::Thread("guest", e.to_string()))?;
            stats.guest.store(2, Relaxed);
            workers.push((
                "guest",
                spawn("guest join", move || {
                    handle.join().map_err(|_| PushError::Stage("guest"))
                })?,
            ));
            Some((g, *layout))
        }
        None => None,
    };

    // Video: capture -> process -> encode.
    let (raw_tx, raw_rx) = bounded::<VideoFrame>(4);
    let (proc_tx, proc_rx) = bounded::<VideoFrame>(4);
    {
        let (clock, stats, stop) = (clock.clone(), stats.clone(), stop.clone());
        let mut video = video;
        workers.push((
            "video capture",
            spawn("video capture", move || {
                let self_paced = video.self_paced();
                for index in 0u64.. {
                    if stop.load(Relaxed) {
                        break;
                    }
                    let pts = if self_paced {
                        clock.now_ms()
                    } else {
                        (index as f64 * 1000.0 / fps).round() as u64
                    };
                    if duration.is_some_and(|d| pts >= d) {
                        break;
                    }
                    if !self_paced {
                        clock.wait_until(pts, &stop);
                    }
                    let wall = clock.wallclock_us(pts);
                    let Some(picture) = video.next(index, wall)? else {
                        break;
                    };
                    let frame = VideoFrame {
                        picture,
                        pts_ms: pts,
                        wallclock_us: wall,
                        index,
                    };
                    if !hand_on(&raw_tx, frame, realtime, &stats) {
                        break;
                    }
                }
                Ok(())
            })?,
        ));
    }
    {
        let overlay = cfg.overlay.clone();
        let guest = guest.clone();
        let stats = stats.clone();
        let mut filters = filters;
        workers.push((
            "video process",
            spawn("video process", move || {
                for mut f in raw_rx.iter() {
                    if let Some((g, layout)) = &guest {
                        // The latest guest picture, whatever its age: never wait for it.
                        let pic = g.picture();
                        compose(&mut f.picture, pic.as_deref(), *layout);
                        let s = g.status();
                        stats.guest.store(if s.online { 1 } else { 2 }, Relaxed);
                        stats.guest_delay_ms.store(s.delay_ms, Relaxed);
                    }
                    for filter in filters.iter_mut() {
                        filter.apply(&mut f.picture, f.wallclock_us);
                    }
                    if let Some((logo, x, y)) = &logo {
                        logo.blend(&mut f.picture, *x, *y);
                    }
                    if let Some(o) = &overlay {
                        o.apply(&mut f.picture, f.wallclock_us);
                    }
                    if proc_tx.send(f).is_err() {
                        break;
                    }
                }
                Ok(())
            })?,
        ));
    }
    {
        let tx = mux_tx.video.clone();
        let stats = stats.clone();
        let mut applied = cfg.bitrate as u64;
        workers.push((
            "video encode",
            spawn("video encode", move || {
                let r = (|| {
                    let send = |tags: Vec<TagFrame>| tags.into_iter().all(|t| tx.send(t).is_ok());
                    for f in proc_rx.iter() {
                        let target = stats.target_bitrate.load(Relaxed);
                        if target != applied && target > 0 {
                            if !encoder.set_bitrate(target as u32)? {
                                tracing::info!(
                                    codec = encoder.codec().name(),
                                    "this encoder keeps its bitrate"
                                );
                            }
                            applied = target;
                        }
                        if !send(encoder.encode(&f)?) {
                            return Ok(());
                        }
                    }
                    send(encoder.flush()?);
                    Ok(())
                })();
                r
            })?,
        ));
    }

    // Audio: capture -> process -> encode, in 10 ms blocks.
    if let (Some(mut audio), Some(mut encoder)) = (audio, audio_encoder) {
        let (raw_tx, raw_rx) = bounded::<AudioBlock>(16);
        let (proc_tx, proc_rx) = bounded::<AudioBlock>(16);
        let (rate, channels) = (cfg.sample_rate, cfg.channels);
        let block = (rate / 100) as usize;
        {
            let (clock, stats, stop) = (clock.clone(), stats.clone(), stop.clone());
            workers.push((
                "audio capture",
                spawn("audio capture", move || {
                    let self_paced = audio.self_paced();
                    for k in 0u64.. {
                        if stop.load(Relaxed) {
                            break;
                        }
                        let pts = k * 10;
                        if duration.is_some_and(|d| pts >= d) {
                            break;
                        }
                        if !self_paced {
                            clock.wait_until(pts, &stop);
                        }
                        let Some(samples) = audio.next(block)? else {
                            break;
                        };
                        let b = AudioBlock {
                            sample_rate: rate,
                            channels,
                            samples,
                            pts_ms: pts,
                        };
                        if !hand_on(&raw_tx, b, realtime, &stats) {
                            break;
                        }
                    }
                    Ok(())
                })?,
            ));
        }
        {
            let gain = cfg.gain_db;
            let mut mixer = mixer;
            let mut denoiser = cfg.denoise.then(|| Denoiser::new(channels));
            let guest = guest.map(|(g, _)| (g, Fade::new(rate, crate::guest::FADE_MS)));
            let mut vad = cfg.vad.map(|gate| (VoiceDetector::new(channels), gate));
            let mut voice = cfg.voice.map(|e| Voice::new(e, rate, channels));
            let stats = stats.clone();
            let mut aec = cfg.aec.then(|| EchoCanceller::new(channels)).transpose()?;
            let mut aec_ref = match (&cfg.aec_ref, cfg.aec && cfg.guest.is_none()) {
                (Some(p), true) => Some(LoopMixer::new(WavAudio::read_all(
                    p,
                    cfg.sample_rate,
                    cfg.channels,
                    MAX_MIX_SECONDS,
                )?)),
                _ => None,
            };
            let mut far = Vec::new();
            workers.push((
                "audio process",
                spawn("audio process", move || {
                    let mut guest = guest;
                    let mut guest_pcm = Vec::new();
                    for mut b in raw_rx.iter() {
                        if let Some(d) = &mut denoiser {
                            b.samples = d.process(&b.samples);
                        }
                        // What the host's speakers play now: the guest, or the --aec-ref WAV.
                        let mut guest_real = 0;
                        if let Some((g, _)) = &guest {
                            guest_pcm.resize(b.samples.len(), 0);
                            guest_real = g.pull_audio(&mut guest_pcm);
                        }
                        if let Some(aec) = &mut aec {
                            let reference = match &mut aec_ref {
                                Some(wav) => {
                                    far.clear();
                                    far.resize(b.samples.len(), 0);
                                    wav.mix_into(&mut far);
                                    &far
                                }
                                None => &guest_pcm,
                            };
                            aec.process(reference, &mut b.samples)?;
                        }
                        if let Some((detector, gate)) = &mut vad {
                            // The host's own voice (before the guest is mixed in).
                            let speaking = detector.process(&b.samples);
                            stats.voice.store(if speaking { 2 } else { 1 }, Relaxed);
                            if *gate {
                                vad_gate(&mut b.samples, speaking);
                            }
                        }
                        if let Some(v) = &mut voice {
                            // On the host's voice only, after the detector heard it plain.
                            v.process(&mut b.samples);
                        }
                        if let Some((_, fade)) = &mut guest {
                            // Guest audio after the host's denoiser (it is not the host's
                            // room), faded in and out as it comes and goes.
                            fade.mix(&mut b.samples, &guest_pcm, channels as usize, guest_real);
                        }
                        if let Some(m) = &mut mixer {
                            m.mix_into(&mut b.samples);
                        }
                        if let Some(g) = gain {
                            apply_gain(&mut b.samples, g);
                        }
                        if proc_tx.send(b).is_err() {
                            break;
                        }
                    }
                    Ok(())
                })?,
            ));
        }
        {
            let tx = mux_tx.audio.clone();
            workers.push((
                "audio encode",
                spawn("audio encode", move || {
                    let r = (|| {
                        if tx.send(encoder.sequence_header()?).is_err() {
                            return Ok(());
                        }
                        let send =
                            |tags: Vec<TagFrame>| tags.into_iter().all(|f| tx.send(f).is_ok());
                        for b in proc_rx.iter() {
                            if !send(encoder.encode(&b)?) {
                                return Ok(());
                            }
                        }
                        send(encoder.flush()?);
                        Ok(())
                    })();
                    r
                })?,
            ));
        }
    }

    // Opus decodes at 48 kHz whatever its input was.
    let decoded_rate = match audio_codec {
        Codec::Opus => crate::encode::opus::SAMPLE_RATE,
        _ => cfg.sample_rate,
    };
    Ok(Described {
        video_codec,
        width: width as u32,
        height: height as u32,
        fps,
        video_kbps: Some(cfg.bitrate / 1000),
        audio_codec,
        audio: (cfg.audio != AudioInput::None).then_some((decoded_rate, cfg.channels)),
        audio_kbps: (cfg.audio != AudioInput::None).then_some(cfg.audio_bitrate / 1000),
    })
}

#[cfg(feature = "capture")]
fn open_camera(
    index: u32,
    cfg: &PushConfig,
) -> Result<(Box<dyn RawVideo>, f64, usize, usize), PushError> {
    let fps = cfg.fps.unwrap_or(30.0);
    let cam = crate::source::camera::Camera::open(index, cfg.width, cfg.height, fps)?;
    let (w, h) = cam.size();
    Ok((Box::new(cam), fps, w, h))
}

#[cfg(not(feature = "capture"))]
fn open_camera(
    _index: u32,
    _cfg: &PushConfig,
) -> Result<(Box<dyn RawVideo>, f64, usize, usize), PushError> {
    Err(PushError::FeatureMissing("camera capture", "capture"))
}

#[cfg(feature = "capture")]
fn open_mic(name: Option<&str>, cfg: &PushConfig) -> Result<Box<dyn RawAudio>, PushError> {
    Ok(Box::new(crate::source::mic::Mic::open(
        name,
        cfg.sample_rate,
        cfg.channels,
    )?))
}

#[cfg(not(feature = "capture"))]
fn open_mic(_name: Option<&str>, _cfg: &PushConfig) -> Result<Box<dyn RawAudio>, PushError> {
    Err(PushError::FeatureMissing("microphone capture", "capture"))
}

#[cfg(feature = "screen")]
fn open_screen(
    display: Option<&str>,
    cfg: &PushConfig,
) -> Result<(Box<dyn RawVideo>, f64, usize, usize), PushError> {
    let s = crate::source::screen::Screen::open(display, cfg.width, cfg.height)?;
    Ok((Box::new(s), cfg.fps.unwrap_or(30.0), cfg.width, cfg.height))
}

#[cfg(not(feature = "screen"))]
fn open_screen(
    _display: Option<&str>,
    _cfg: &PushConfig,
) -> Result<(Box<dyn RawVideo>, f64, usize, usize), PushError> {
    Err(PushError::FeatureMissing("screen capture", "screen"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_codec_ids_are_legacy_ids_or_fourcc_numbers() {
        assert_eq!(codec_id(Codec::H264), Some(7));
        assert_eq!(codec_id(Codec::Aac), Some(10));
        // The spec's own examples: "Opus" == 1332770163, "av01" == 1635135537.
        assert_eq!(codec_id(Codec::Opus), Some(1_332_770_163));
        assert_eq!(codec_id(Codec::Av1), Some(1_635_135_537));
        assert_eq!(codec_id(Codec::Hevc), Some(u32::from_be_bytes(*b"hvc1")));
        let d = Described {
            video_codec: Codec::Hevc,
            audio_codec: Codec::Opus,
            audio: Some((48_000, 2)),
            ..Default::default()
        };
        let m = d.rtmp();
        assert_eq!(m.video_codec_id, Some(u32::from_be_bytes(*b"hvc1")));
        assert_eq!(m.audio_codec_id, Some(1_332_770_163));
    }
}
