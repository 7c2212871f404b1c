//! The video encoder a push uses, whatever the codec, with its output already as FLV tags:
//! H.264 (openh264) in legacy FLV with the clock SEI in each frame, VP9 (libvpx) and AV1
//! (rav1e) in Enhanced RTMP v1 tags (FourCC `vp09`, `av01`) after their sequence start,
//! each frame followed by its clock as an `onFrameTime` script tag (no SEI in those codecs).
//! Only encoding and tag building here: no channel, no clock.

use std::collections::VecDeque;

use onair_shared::flv::TagFrame;
use onair_shared::frame_time::{self, FrameTime};
use onair_shared::{Codec, MediaKind};

use crate::encode::av1::{Av1Encoder, Av1Settings};
use crate::encode::h264::{H264Encoder, H264Settings};
use crate::encode::vp9::{Vp9Encoder, Vp9Settings};
use crate::media::VideoFrame;
use crate::mux::{flv, sei};
use crate::PushError;

/// What `--video-codec` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodecChoice {
    H264,
    Vp9,
    Av1,
}

impl VideoCodecChoice {
    pub fn codec(self) -> Codec {
        match self {
            VideoCodecChoice::H264 => Codec::H264,
            VideoCodecChoice::Vp9 => Codec::Vp9,
            VideoCodecChoice::Av1 => Codec::Av1,
        }
    }
}

/// Settings every codec shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoSettings {
    pub codec: VideoCodecChoice,
    pub width: usize,
    pub height: usize,
    pub fps: f64,
    pub bitrate: u32,
    pub keyint_frames: u32,
    pub threads: u16,
}

pub enum VideoEncoder {
    H264(Box<H264Encoder>),
    Vp9 {
        enc: Box<Vp9Encoder>,
        started: bool,
        clocks: Clocks,
    },
    Av1 {
        enc: Box<Av1Encoder>,
        started: bool,
        clocks: Clocks,
    },
}

/// The capture clocks of the pictures inside an encoder (rav1e holds several), by
/// presentation time, so each frame that comes out gets its own. Bounded: at most
/// `Clocks::MAX` pictures, the oldest forgotten first (their frames go without a clock).
#[derive(Debug, Default)]
pub struct Clocks(VecDeque<FrameTime>);

impl Clocks {
    pub const MAX: usize = 256;

    pub fn captured(&mut self, f: &VideoFrame) {
        if self.0.len() >= Self::MAX {
            self.0.pop_front();
        }
        self.0.push_back(FrameTime {
            wallclock_us: f.wallclock_us,
            frame: f.index as u32,
            pts_ms: f.pts_ms,
        });
    }

    /// The clock of the picture at `pts_ms`; older ones are forgotten (frames come out
    /// in presentation order: no B-frames in these encoders' settings).
    pub fn take(&mut self, pts_ms: u64) -> Option<FrameTime> {
        while let Some(c) = self.0.front() {
            if c.pts_ms > pts_ms {
                return None;
            }
            let c = self.0.pop_front()?;
            if c.pts_ms == pts_ms {
                return Some(c);
            }
        }
        None
    }
}

/// The `onFrameTime` script tag that follows a VP9 or AV1 frame, at its timestamp.
pub fn clock_tag(clock: FrameTime, dts: u64) -> TagFrame {
    TagFrame {
        kind: MediaKind::Data,
        codec: Codec::Script,
        dts,
        cts: 0,
        keyframe: false,
        sequence_header: false,
        payload: frame_time::encode(clock),
    }
}

fn tag(dts: u64, body: Option<bytes::Bytes>) -> Result<TagFrame, PushError> {
    body.and_then(|b| flv::video(dts, b))
        .ok_or_else(|| PushError::Video("bad video tag".into()))
}

impl VideoEncoder {
    pub fn new(s: VideoSettings) -> Result<Self, PushError> {
        Ok(match s.codec {
            VideoCodecChoice::H264 => {
                VideoEncoder::H264(Box::new(H264Encoder::new(H264Settings {
                    fps: s.fps,
                    bitrate: s.bitrate,
                    keyint_frames: s.keyint_frames,
                    threads: s.threads,
                })?))
            }
            VideoCodecChoice::Vp9 => VideoEncoder::Vp9 {
                enc: Box::new(Vp9Encoder::new(Vp9Settings {
                    width: s.width,
                    height: s.height,
                    fps: s.fps,
                    bitrate: s.bitrate,
                    keyint_frames: s.keyint_frames,
                    threads: s.threads,
                    speed: 8,
                })?),
                started: false,
                clocks: Clocks::default(),
            },
            VideoCodecChoice::Av1 => VideoEncoder::Av1 {
                enc: Box::new(Av1Encoder::new(Av1Settings {
                    width: s.width,
                    height: s.height,
                    fps: s.fps,
                    bitrate: s.bitrate,
                    keyint_frames: s.keyint_frames,
                    threads: s.threads,
                    speed: 10,
                })?),
                started: false,
                clocks: Clocks::default(),
            },
        })
    }

    pub fn codec(&self) -> Codec {
        match self {
            VideoEncoder::H264(_) => Codec::H264,
            VideoEncoder::Vp9 { .. } => Codec::Vp9,
            VideoEncoder::Av1 { .. } => Codec::Av1,
        }
    }

    /// Changes the target bitrate. rav1e cannot change it mid-stream: AV1 keeps its rate
    /// (said in the log once by the caller) and this returns `false`.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<bool, PushError> {
        match self {
            VideoEncoder::H264(e) => e.set_bitrate(bps).map(|_| true),
            VideoEncoder::Vp9 { enc, .. } => enc.set_bitrate(bps).map(|_| true),
            VideoEncoder::Av1 { .. } => Ok(false),
        }
    }

    /// Encodes one picture into the tags to send: a sequence header first whenever the
    /// configuration is new, then the frames ready (none while an encoder fills up).
    pub fn encode(&mut self, f: &VideoFrame) -> Result<Vec<TagFrame>, PushError> {
        let mut out = Vec::new();
        match self {
            VideoEncoder::H264(enc) => {
                let Some(pic) = enc.encode(&f.picture, f.pts_ms)? else {
                    return Ok(out);
                };
                if let Some(cfg) = &pic.new_config {
                    out.push(tag(f.pts_ms, Some(flv::avc_sequence_header(cfg)))?);
                }
                let clock_sei = sei::build(sei::ClockSei {
                    wallclock_us: f.wallclock_us,
                    frame: f.index as u32,
                });
                let nals = std::iter::once(clock_sei.as_slice())
                    .chain(pic.nals.iter().map(|n| n.as_slice()));
                out.push(tag(f.pts_ms, Some(flv::avc_frame(pic.keyframe, 0, nals)))?);
            }
            VideoEncoder::Vp9 {
                enc,
                started,
                clocks,
            } => {
                clocks.captured(f);
                for fr in enc.encode(&f.picture, f.pts_ms)? {
                    if !*started {
                        let rec = enc.config_record();
                        out.push(tag(
                            fr.pts_ms,
                            flv::ex_video_sequence_start(Codec::Vp9, &rec),
                        )?);
                        *started = true;
                    }
                    out.push(tag(
                        fr.pts_ms,
                        flv::ex_video_frame(Codec::Vp9, fr.keyframe, 0, &fr.data),
                    )?);
                    if let Some(c) = clocks.take(fr.pts_ms) {
                        out.push(clock_tag(c, fr.pts_ms));
                    }
                }
            }
            VideoEncoder::Av1 {
                enc,
                started,
                clocks,
            } => {
                clocks.captured(f);
                let frames = enc.encode(&f.picture, f.pts_ms)?;
                av1_tags(enc, started, clocks, frames, &mut out)?;
            }
        }
        Ok(out)
    }

    /// The frames still inside the encoder, at the end of the push.
    pub fn flush(&mut self) -> Result<Vec<TagFrame>, PushError> {
        let mut out = Vec::new();
        if let VideoEncoder::Av1 {
            enc,
            started,
            clocks,
        } = self
        {
            let frames = enc.flush()?;
            av1_tags(enc, started, clocks, frames, &mut out)?;
        }
        Ok(out)
    }
}

fn av1_tags(
    enc: &Av1Encoder,
    started: &mut bool,
    clocks: &mut Clocks,
    frames: Vec<crate::encode::av1::Av1Frame>,
    out: &mut Vec<TagFrame>,
) -> Result<(), PushError> {
    for fr in frames {
        if !*started {
            let rec = enc
                .config_record()
                .ok_or_else(|| PushError::Video("AV1: first frame is not a keyframe".into()))?;
            out.push(tag(
                fr.pts_ms,
                flv::ex_video_sequence_start(Codec::Av1, rec),
            )?);
            *started = true;
        }
        out.push(tag(
            fr.pts_ms,
            flv::ex_video_frame(Codec::Av1, fr.keyframe, 0, &fr.data),
        )?);
        if let Some(c) = clocks.take(fr.pts_ms) {
            out.push(clock_tag(c, fr.pts_ms));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_pattern::TestPattern;

    #[test]
    fn vp9_and_av1_start_with_their_sequence_start_then_keyframe_tags() {
        for codec in [VideoCodecChoice::Vp9, VideoCodecChoice::Av1] {
            let mut enc = VideoEncoder::new(VideoSettings {
                codec,
                width: 96,
                height: 64,
                fps: 30.0,
                bitrate: 200_000,
                keyint_frames: 30,
                threads: 1,
            })
            .unwrap();
            let pattern = TestPattern::new(96, 64);
            let mut tags = Vec::new();
            for i in 0..5u64 {
                let f = VideoFrame {
                    picture: pattern.render(i, 0),
                    pts_ms: i * 33,
                    wallclock_us: 1_000_000 + i * 33_000,
                    index: i,
                };
                tags.extend(enc.encode(&f).unwrap());
            }
            tags.extend(enc.flush().unwrap());
            // Each frame is followed by its clock, at its timestamp.
            for w in tags.windows(2) {
                if w[1].kind == MediaKind::Data {
                    assert!(w[0].kind == MediaKind::Video && w[0].dts == w[1].dts);
                }
            }
            let (clocks, tags): (Vec<_>, Vec<_>) =
                tags.into_iter().partition(|t| t.kind == MediaKind::Data);
            assert_eq!(clocks.len(), 5, "{codec:?}: one clock per frame");
            for (i, c) in clocks.iter().enumerate() {
                let i = i as u64;
                assert_eq!(c.dts, i * 33);
                assert_eq!(
                    frame_time::parse(&c.payload, 8),
                    Some(FrameTime {
                        wallclock_us: 1_000_000 + i * 33_000,
                        frame: i as u32,
                        pts_ms: i * 33
                    })
                );
            }
            assert_eq!(tags.len(), 6, "{codec:?}: sequence start + 5 frames");
            assert!(tags[0].sequence_header && tags[0].codec == codec.codec());
            assert!(tags[1].keyframe && !tags[1].sequence_header);
            assert!(tags[2..]
                .iter()
                .all(|t| !t.keyframe && t.codec == codec.codec()));
            let dts: Vec<u64> = tags[1..].iter().map(|t| t.dts).collect();
            assert_eq!(dts, vec![0, 33, 66, 99, 132]);
        }
    }
}
