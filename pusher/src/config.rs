//! `onair push` options: the clap definition (so `--help` lives next to what it explains)
//! and their parsing into a checked `PushConfig`. Parsing is pure and tested.

use std::path::PathBuf;

use clap::Args;

use crate::encode::video::VideoCodecChoice;
use crate::guest::pull::GuestUrl;
use crate::process::compose::Layout;
use crate::process::logo::parse_logo_arg;
use crate::process::overlay::Overlay;
use crate::publish::rtmp::RtmpUrl;
use crate::PushError;

#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// Where to push: `rtmp://HOST[:PORT]/APP/STREAM`, `rtmps://HOST[:PORT]/APP/STREAM`
    /// (TLS, port 443 by default), or a path ending in `.flv` to write a file.
    pub target: String,
    /// With rtmps://, accept any server certificate (self-signed, local tests). Without it
    /// the certificate must chain to a public root (webpki-roots) and name the host.
    #[arg(long)]
    pub insecure: bool,
    /// Video source: `test` (moving pattern with burned-in wall clock and frame counter),
    /// `file:PATH` (MP4 with H.264, HEVC or AV1 video, or FLV with H.264; AAC audio; pushed
    /// without re-encoding, HEVC/AV1 as Enhanced RTMP, paced by its timestamps), `y4m:PATH`
    /// (raw YUV4MPEG2, encoded by us), `camera:N` (V4L2 device N, needs the `capture` feature)
    /// or `screen[:DISPLAY]` (X11 screen, needs the `screen` feature).
    #[arg(long, default_value = "test", verbatim_doc_comment)]
    pub video: String,
    /// Audio source: `tone` (1 kHz with a beep each second), `wav:PATH` (16-bit PCM WAV),
    /// `mic[:NAME]` (default or named input device, needs the `capture` feature) or `none`.
    /// With `--video file:` the file's own audio is used unless this is `none`.
    #[arg(long, default_value = "tone", verbatim_doc_comment)]
    pub audio: String,
    /// Picture size WxH for the test pattern, camera and screen (even numbers).
    #[arg(long, default_value = "1280x720")]
    pub size: String,
    /// Frames per second (Y4M files default to their own rate).
    #[arg(long)]
    pub fps: Option<f64>,
    /// Video bitrate in bit/s; `k` and `M` suffixes work (e.g. 2500k).
    #[arg(long, default_value = "2500k")]
    pub bitrate: String,
    /// Seconds between keyframes.
    #[arg(long, default_value_t = 2.0)]
    pub keyint: f64,
    /// Audio bitrate in bit/s (`k` suffix works).
    #[arg(long, default_value = "128k")]
    pub audio_bitrate: String,
    /// Audio codec for the audio we encode: `aac` (legacy FLV) or `opus` (libopus, 48 kHz,
    /// 20 ms frames, sent as Enhanced RTMP v2 with the FourCC `Opus`). A file's audio
    /// (`--video file:`) is pushed as it is.
    #[arg(long, default_value = "aac", verbatim_doc_comment)]
    pub audio_codec: String,
    /// Video codec for the video we encode: `h264` (openh264, legacy FLV), `vp9` (libvpx,
    /// real-time mode) or `av1` (rav1e, fastest preset, low latency), the last two sent as
    /// Enhanced RTMP (FourCC `vp09`, `av01`). A file's video (`--video file:`) is pushed as
    /// it is.
    #[arg(long, default_value = "h264", verbatim_doc_comment)]
    pub video_codec: String,
    /// Audio sample rate: 44100 or 48000.
    #[arg(long, default_value_t = 48_000)]
    pub sample_rate: u32,
    /// Audio channels: 1 or 2.
    #[arg(long, default_value_t = 2)]
    pub channels: u8,
    /// Burn text into the bottom-left corner: `clock` (capture wall clock, UTC) or any text.
    #[arg(long)]
    pub overlay: Option<String>,
    /// Blend a PNG watermark (with its alpha) at x,y from the top-left corner [default: 16,16].
    #[arg(long, value_name = "PNG[@X,Y]")]
    pub logo: Option<String>,
    /// Skin smoothing (edge-preserving, on skin-toned areas), strength 0 to 1.
    #[arg(long, value_name = "STRENGTH")]
    pub beauty: Option<f32>,
    /// Colour-grade every frame with a 3D LUT (`.cube`, as grading tools export).
    #[arg(long, value_name = "FILE.cube")]
    pub lut: Option<PathBuf>,
    /// Audio gain in dB (negative to attenuate).
    #[arg(long, allow_negative_numbers = true)]
    pub gain: Option<f32>,
    /// Mix a WAV file (looped) into the audio.
    #[arg(long, value_name = "WAV")]
    pub mix: Option<PathBuf>,
    /// Noise suppression (RNNoise via nnnoiseless); needs --sample-rate 48000.
    #[arg(long)]
    pub denoise: bool,
    /// Voice activity detection (RNNoise's voice probability): the status line says
    /// voice=speaking|silent. Needs --sample-rate 48000.
    #[arg(long, verbatim_doc_comment)]
    pub vad: bool,
    /// Echo cancellation (WebRTC audio processing) of what the host's speakers play: the
    /// guest's audio with --guest, else the WAV of --aec-ref. Needs --sample-rate 48000.
    #[arg(long, verbatim_doc_comment)]
    pub aec: bool,
    /// The far-end reference for --aec without a guest: the WAV being played (looped).
    #[arg(long, value_name = "WAV")]
    pub aec_ref: Option<PathBuf>,
    /// With --vad: send digital silence while no one speaks (the encoder then needs a
    /// fraction of the bytes).
    #[arg(long, verbatim_doc_comment)]
    pub vad_gate: bool,
    /// A voice effect on the host's audio: `echo[:DELAY_MS[:DECAY_MS]]` (default 250 and
    /// 1500), `reverb[:DECAY_MS]` (default 1200: the time to fall by 60 dB) or
    /// `pitch:SEMITONES` (-12 to 12).
    #[arg(long, value_name = "EFFECT", verbatim_doc_comment)]
    pub voice: Option<String>,
    /// Co-host a guest: pull its live stream (`rtmp://HOST/APP/STREAM` or
    /// `http://HOST/PATH.flv`, H.264 + AAC), put its picture on ours and mix its audio in.
    #[arg(long, value_name = "URL", verbatim_doc_comment)]
    pub guest: Option<String>,
    /// Where the guest goes: `pip:POS:SCALE` (POS tl, tr, bl or br; SCALE 0.1 to 0.5 of the
    /// frame) or `side-by-side`.
    #[arg(long, default_value = "pip:br:0.3", verbatim_doc_comment)]
    pub guest_layout: String,
    /// Stop after this many seconds of media.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Loop file sources (`file:`, `y4m:`, `wav:`) forever, timestamps continuing.
    #[arg(long = "loop")]
    pub looped: bool,
    /// Do not wait for real time: encode as fast as possible (for writing files). Timestamps
    /// still follow the frame and sample counts.
    #[arg(long)]
    pub fast: bool,
    /// H.264 encoder threads (1 = one thread; 0 = openh264 decides).
    #[arg(long, default_value_t = 1)]
    pub threads: u16,
    /// Send-queue bound in ms of media: past it the pusher drops disposable frames, then
    /// whole GOPs, instead of falling further behind.
    #[arg(long, default_value_t = 2000)]
    pub queue_ms: u64,
    /// No status line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VideoInput {
    Test,
    File(PathBuf),
    Y4m(PathBuf),
    Camera(u32),
    Screen(Option<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum AudioInput {
    Tone,
    Wav(PathBuf),
    Mic(Option<String>),
    None,
}

/// What the pusher encodes raw audio to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    Aac,
    Opus,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Rtmp(RtmpUrl),
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PushConfig {
    pub output: Output,
    pub video: VideoInput,
    pub audio: AudioInput,
    pub width: usize,
    pub height: usize,
    /// `None`: the source's own rate, else 30.
    pub fps: Option<f64>,
    pub bitrate: u32,
    pub keyint_s: f64,
    pub audio_bitrate: u32,
    pub audio_codec: AudioCodec,
    pub video_codec: VideoCodecChoice,
    pub sample_rate: u32,
    pub channels: u8,
    pub overlay: Option<Overlay>,
    pub logo: Option<(PathBuf, usize, usize)>,
    pub beauty: Option<f32>,
    pub lut: Option<PathBuf>,
    pub gain_db: Option<f32>,
    pub mix: Option<PathBuf>,
    pub denoise: bool,
    /// `Some(gate)` with --vad.
    pub vad: Option<bool>,
    pub aec: bool,
    pub aec_ref: Option<PathBuf>,
    pub voice: Option<crate::process::voice::VoiceEffect>,
    pub guest: Option<(GuestUrl, Layout)>,
    pub duration_ms: Option<u64>,
    pub looped: bool,
    pub realtime: bool,
    pub threads: u16,
    pub queue_ms: u64,
    pub status: bool,
}

/// `2500k`, `2.5M`, `800000`.
pub fn parse_rate(s: &str) -> Option<u32> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1e3),
        'm' | 'M' => (&s[..s.len() - 1], 1e6),
        _ => (s, 1.0),
    };
    let v = num.parse::<f64>().ok()? * mult;
    (v >= 1.0 && v <= u32::MAX as f64).then_some(v as u32)
}

pub fn parse_size(s: &str) -> Option<(usize, usize)> {
    let (w, h) = s.split_once(['x', 'X'])?;
    let (w, h): (usize, usize) = (w.trim().parse().ok()?, h.trim().parse().ok()?);
    (w >= 16 && h >= 16 && w <= 3840 && h <= 2160 && w % 2 == 0 && h % 2 == 0).then_some((w, h))
}

impl PushArgs {
    pub fn into_config(self) -> Result<PushConfig, PushError> {
        let output = if self.target.starts_with("rtmp://") || self.target.starts_with("rtmps://") {
            let mut url = RtmpUrl::parse(&self.target)?;
            url.insecure = self.insecure;
            Output::Rtmp(url)
        } else if self.target.to_ascii_lowercase().ends_with(".flv") {
            Output::File(self.target.clone().into())
        } else {
            return Err(PushError::bad(
                "TARGET",
                format!(
                    "{:?}: rtmp://HOST[:PORT]/APP/STREAM, rtmps://… or FILE.flv",
                    self.target
                ),
            ));
        };
        let video = match self.video.split_once(':').unwrap_or((&self.video, "")) {
            ("test", "") => VideoInput::Test,
            ("file", p) if !p.is_empty() => VideoInput::File(p.into()),
            ("y4m", p) if !p.is_empty() => VideoInput::Y4m(p.into()),
            ("camera", n) => VideoInput::Camera(if n.is_empty() {
                0
            } else {
                n.parse()
                    .map_err(|_| PushError::bad("--video", format!("camera index {n:?}")))?
            }),
            ("screen", d) => VideoInput::Screen((!d.is_empty()).then(|| d.to_string())),
            _ => {
                return Err(PushError::bad(
                    "--video",
                    format!("{:?}: test|file:PATH|y4m:PATH|camera:N|screen", self.video),
                ))
            }
        };
        let audio = match self.audio.split_once(':').unwrap_or((&self.audio, "")) {
            ("tone", "") => AudioInput::Tone,
            ("none", "") => AudioInput::None,
            ("wav", p) if !p.is_empty() => AudioInput::Wav(p.into()),
            ("mic", n) => AudioInput::Mic((!n.is_empty()).then(|| n.to_string())),
            _ => {
                return Err(PushError::bad(
                    "--audio",
                    format!("{:?}: tone|wav:PATH|mic[:NAME]|none", self.audio),
                ))
            }
        };
        if matches!(video, VideoInput::File(_))
            && !matches!(audio, AudioInput::Tone | AudioInput::None)
        {
            return Err(PushError::bad(
                "--audio",
                "with --video file: the file's audio is pushed (or none)",
            ));
        }
        let (width, height) = parse_size(&self.size).ok_or_else(|| {
            PushError::bad(
                "--size",
                format!("{:?}: WxH, even, from 16x16 to 3840x2160", self.size),
            )
        })?;
        if let Some(f) = self.fps {
            if !(1.0..=120.0).contains(&f) {
                return Err(PushError::bad("--fps", format!("{f}: 1 to 120")));
            }
        }
        let bitrate = parse_rate(&self.bitrate)
            .ok_or_else(|| PushError::bad("--bitrate", self.bitrate.clone()))?;
        let audio_bitrate = parse_rate(&self.audio_bitrate)
            .ok_or_else(|| PushError::bad("--audio-bitrate", self.audio_bitrate.clone()))?;
        let audio_codec = match self.audio_codec.as_str() {
            "aac" => AudioCodec::Aac,
            "opus" => AudioCodec::Opus,
            other => {
                return Err(PushError::bad(
                    "--audio-codec",
                    format!("{other:?}: aac or opus"),
                ))
            }
        };
        let video_codec = match self.video_codec.as_str() {
            "h264" => VideoCodecChoice::H264,
            "vp9" => VideoCodecChoice::Vp9,
            "av1" => VideoCodecChoice::Av1,
            other => {
                return Err(PushError::bad(
                    "--video-codec",
                    format!("{other:?}: h264, vp9 or av1"),
                ))
            }
        };
        if video_codec != VideoCodecChoice::H264 && matches!(video, VideoInput::File(_)) {
            return Err(PushError::bad(
                "--video-codec",
                "with --video file: the file's video is pushed as it is (no re-encoding)",
            ));
        }
        if audio_codec == AudioCodec::Opus {
            if matches!(video, VideoInput::File(_)) {
                return Err(PushError::bad(
                    "--audio-codec",
                    "with --video file: the file's audio is pushed as it is (no re-encoding)",
                ));
            }
            let range = crate::encode::opus::BITRATES;
            if !range.contains(&audio_bitrate) {
                return Err(PushError::bad(
                    "--audio-bitrate",
                    format!(
                        "{audio_bitrate} bit/s: Opus takes {} to {}",
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }
        if !(0.1..=60.0).contains(&self.keyint) {
            return Err(PushError::bad(
                "--keyint",
                format!("{} s: 0.1 to 60", self.keyint),
            ));
        }
        if !matches!(self.sample_rate, 44_100 | 48_000) {
            return Err(PushError::bad(
                "--sample-rate",
                format!("{}: 44100 or 48000", self.sample_rate),
            ));
        }
        if !matches!(self.channels, 1 | 2) {
            return Err(PushError::bad(
                "--channels",
                format!("{}: 1 or 2", self.channels),
            ));
        }
        if self.aec && self.sample_rate != 48_000 {
            return Err(PushError::bad("--aec", "needs --sample-rate 48000"));
        }
        if self.aec && self.guest.is_none() && self.aec_ref.is_none() {
            return Err(PushError::bad(
                "--aec",
                "needs a far end: --guest URL or --aec-ref WAV",
            ));
        }
        if (self.vad || self.vad_gate) && self.sample_rate != 48_000 {
            return Err(PushError::bad("--vad", "needs --sample-rate 48000"));
        }
        if self.denoise && self.sample_rate != 48_000 {
            return Err(PushError::bad("--denoise", "needs --sample-rate 48000"));
        }
        let logo = self
            .logo
            .as_deref()
            .map(parse_logo_arg)
            .transpose()
            .map_err(|r| PushError::bad("--logo", r.to_string()))?;
        let overlay = self.overlay.map(|o| {
            if o == "clock" {
                Overlay::Clock
            } else {
                Overlay::Text(o)
            }
        });
        let duration_ms = match self.duration {
            Some(d) if d > 0.0 && d.is_finite() => Some((d * 1000.0) as u64),
            Some(d) => return Err(PushError::bad("--duration", format!("{d}"))),
            None => None,
        };
        if let Some(s) = self.beauty {
            if !(0.0..=1.0).contains(&s) {
                return Err(PushError::bad("--beauty", format!("{s}: 0 to 1")));
            }
        }
        let realtime = !self.fast;
        let voice = self.voice.as_deref().map(str::parse).transpose()?;
        let guest = match &self.guest {
            None => None,
            Some(url) => {
                if !realtime {
                    return Err(PushError::bad(
                        "--guest",
                        "a guest is live: not with --fast",
                    ));
                }
                if matches!(video, VideoInput::File(_)) {
                    return Err(PushError::bad(
                        "--guest",
                        "not with --video file: (a file is pushed without re-encoding)",
                    ));
                }
                let url =
                    GuestUrl::parse(url).map_err(|r| PushError::bad("--guest", r.to_string()))?;
                let layout = Layout::parse(&self.guest_layout)
                    .map_err(|r| PushError::bad("--guest-layout", r.to_string()))?;
                Some((url, layout))
            }
        };
        if !realtime && matches!(output, Output::Rtmp(_)) {
            return Err(PushError::bad(
                "--fast",
                "only for writing a file; a live push is real time",
            ));
        }
        if !realtime
            && duration_ms.is_none()
            && (self.looped
                || matches!(
                    video,
                    VideoInput::Test | VideoInput::Camera(_) | VideoInput::Screen(_)
                ))
        {
            return Err(PushError::bad(
                "--fast",
                "needs --duration with an endless source",
            ));
        }
        Ok(PushConfig {
            output,
            video,
            audio,
            width,
            height,
            fps: self.fps,
            bitrate,
            keyint_s: self.keyint,
            audio_bitrate,
            audio_codec,
            video_codec,
            sample_rate: self.sample_rate,
            channels: self.channels,
            overlay,
            logo,
            beauty: self.beauty,
            lut: self.lut,
            gain_db: self.gain,
            mix: self.mix,
            denoise: self.denoise,
            vad: (self.vad || self.vad_gate).then_some(self.vad_gate),
            aec: self.aec,
            aec_ref: self.aec_ref,
            voice,
            guest,
            duration_ms,
            looped: self.looped,
            realtime,
            threads: self.threads,
            queue_ms: self.queue_ms.max(100),
            status: !self.quiet,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        push: PushArgs,
    }

    fn parse(args: &[&str]) -> Result<PushConfig, PushError> {
        let mut v = vec!["push"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).expect("clap").push.into_config()
    }

    #[test]
    fn defaults_and_values() {
        let c = parse(&["rtmp://127.0.0.1/live/t"]).unwrap();
        assert_eq!(
            (c.width, c.height, c.bitrate, c.sample_rate, c.channels),
            (1280, 720, 2_500_000, 48_000, 2)
        );
        assert_eq!((c.video, c.audio), (VideoInput::Test, AudioInput::Tone));
        assert_eq!(c.audio_codec, AudioCodec::Aac);
        assert_eq!(c.video_codec, VideoCodecChoice::H264);
        let c = parse(&["a.flv", "--video-codec", "vp9"]).unwrap();
        assert_eq!(c.video_codec, VideoCodecChoice::Vp9);
        assert!(c.realtime);
        let c = parse(&["a.flv", "--audio-codec", "opus", "--sample-rate", "44100"]).unwrap();
        assert_eq!((c.audio_codec, c.sample_rate), (AudioCodec::Opus, 44_100));
        let c = parse(&[
            "out.flv",
            "--video",
            "y4m:a.y4m",
            "--audio",
            "wav:b.wav",
            "--size",
            "640x360",
            "--bitrate",
            "1.5M",
            "--gain",
            "-6",
            "--overlay",
            "clock",
            "--logo",
            "l.png@10,20",
            "--fast",
            "--keyint",
            "1",
        ])
        .unwrap();
        assert_eq!(c.output, Output::File("out.flv".into()));
        assert_eq!(c.bitrate, 1_500_000);
        assert_eq!(c.gain_db, Some(-6.0));
        assert_eq!(c.overlay, Some(Overlay::Clock));
        assert_eq!(c.logo, Some(("l.png".into(), 10, 20)));
        assert!(!c.realtime);
    }

    #[test]
    fn bad_values_are_refused_with_the_option_named() {
        for (args, opt) in [
            (&["x.mp4"][..], "TARGET"),
            (&["a.flv", "--size", "641x360"], "--size"),
            (&["a.flv", "--sample-rate", "22050"], "--sample-rate"),
            (&["a.flv", "--channels", "6"], "--channels"),
            (&["a.flv", "--video", "vhs"], "--video"),
            (
                &["a.flv", "--denoise", "--sample-rate", "44100"],
                "--denoise",
            ),
            (&["rtmp://h/a/b", "--fast"], "--fast"),
            (&["a.flv", "--fast"], "--fast"),
            (
                &["a.flv", "--video", "file:x.mp4", "--audio", "wav:y.wav"],
                "--audio",
            ),
            (&["a.flv", "--audio-codec", "mp3"], "--audio-codec"),
            (&["a.flv", "--video-codec", "theora"], "--video-codec"),
            (&["a.flv", "--beauty", "2"], "--beauty"),
            (&["a.flv", "--aec"], "--aec"),
            (&["rtmp://h/a/b", "--guest", "srt://g"], "--guest"),
            (
                &[
                    "rtmp://h/a/b",
                    "--guest",
                    "rtmp://g/a/b",
                    "--guest-layout",
                    "grid",
                ],
                "--guest-layout",
            ),
            (
                &[
                    "a.flv",
                    "--fast",
                    "--duration",
                    "1",
                    "--guest",
                    "rtmp://g/a/b",
                ],
                "--guest",
            ),
            (
                &["a.flv", "--video", "file:x.mp4", "--video-codec", "av1"],
                "--video-codec",
            ),
            (
                &["a.flv", "--video", "file:x.mp4", "--audio-codec", "opus"],
                "--audio-codec",
            ),
            (
                &["a.flv", "--audio-codec", "opus", "--audio-bitrate", "1k"],
                "--audio-bitrate",
            ),
        ] {
            match parse(args) {
                Err(PushError::BadOption { option, .. }) => assert_eq!(option, opt, "{args:?}"),
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn rates_and_sizes() {
        assert_eq!(parse_rate("128k"), Some(128_000));
        assert_eq!(parse_rate("2M"), Some(2_000_000));
        assert_eq!(parse_rate("0"), None);
        assert_eq!(parse_rate("abc"), None);
        assert_eq!(parse_size("1920x1080"), Some((1920, 1080)));
        assert_eq!(parse_size("8x8"), None);
    }
}
