//! AV1 encoding with rav1e, set up for live streaming: low-latency mode (no reordering, so
//! PTS = DTS), the fastest preset, one frame of RDO lookahead, a fixed keyframe interval and
//! bitrate rate control. Builds the av1C record (rav1e's header plus the sequence header
//! OBU of the first keyframe) and strips temporal delimiters, as the ISOBMFF binding that
//! Enhanced RTMP follows asks. Never blocks: frames come out as rav1e finishes them.

use std::collections::VecDeque;

use onair_shared::av1::{obus, OBU_SEQUENCE_HEADER, OBU_TEMPORAL_DELIMITER};
use rav1e::color::{
    ColorDescription, ColorPrimaries, MatrixCoefficients, PixelRange, TransferCharacteristics,
};
use rav1e::config::SpeedSettings;
use rav1e::prelude::{ChromaSampling, Config, Context, EncoderConfig, EncoderStatus, FrameType};

use crate::media::I420;
use crate::PushError;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Av1Settings {
    pub width: usize,
    pub height: usize,
    pub fps: f64,
    /// Target bitrate in bit/s.
    pub bitrate: u32,
    pub keyint_frames: u32,
    /// Encoder threads (0 = one per CPU).
    pub threads: u16,
    /// rav1e speed preset, 0 (slowest) to 10 (fastest).
    pub speed: u8,
}

/// One encoded AV1 temporal unit (without its temporal delimiter).
#[derive(Debug, Clone)]
pub struct Av1Frame {
    pub keyframe: bool,
    pub pts_ms: u64,
    pub data: Vec<u8>,
}

pub struct Av1Encoder {
    ctx: Context<u8>,
    settings: Av1Settings,
    /// Capture times of the pictures sent and not yet out, oldest first (rav1e numbers its
    /// output by input frame; without reordering they come out in this order).
    pending: VecDeque<u64>,
    /// av1C once the first keyframe has shown the sequence header.
    record: Option<Vec<u8>>,
}

fn rav1e_error(what: &str, e: impl std::fmt::Display) -> PushError {
    PushError::Video(format!("AV1 {what}: {e}"))
}

impl Av1Encoder {
    pub fn new(s: Av1Settings) -> Result<Self, PushError> {
        let mut speed = SpeedSettings::from_preset(s.speed.min(10));
        // Each frame of lookahead is a frame of latency; live needs few.
        speed.rdo_lookahead_frames = 1;
        let fps_den = 1000u64;
        let fps_num = (s.fps * fps_den as f64).round().max(1.0) as u64;
        let enc = EncoderConfig {
            width: s.width,
            height: s.height,
            bit_depth: 8,
            chroma_sampling: ChromaSampling::Cs420,
            // The time base is the frame duration (rav1e counts frames).
            time_base: rav1e::data::Rational::new(fps_den, fps_num),
            pixel_range: PixelRange::Limited,
            // What every pusher picture is (`media::I420`): BT.601, limited range.
            color_description: Some(ColorDescription {
                color_primaries: ColorPrimaries::BT601,
                transfer_characteristics: TransferCharacteristics::BT601,
                matrix_coefficients: MatrixCoefficients::BT601,
            }),
            low_latency: true,
            min_key_frame_interval: s.keyint_frames.max(1) as u64,
            max_key_frame_interval: s.keyint_frames.max(1) as u64,
            bitrate: s.bitrate.min(i32::MAX as u32) as i32,
            speed_settings: speed,
            ..Default::default()
        };
        let threads = if s.threads == 0 {
            0
        } else {
            s.threads as usize
        };
        let cfg = Config::new().with_encoder_config(enc).with_threads(threads);
        let ctx = cfg
            .new_context::<u8>()
            .map_err(|e| rav1e_error("config", e))?;
        Ok(Self {
            ctx,
            settings: s,
            pending: VecDeque::new(),
            record: None,
        })
    }

    /// Encodes one picture; returns the temporal units that are ready (rav1e may hold a
    /// picture or two before its first output).
    pub fn encode(&mut self, pic: &I420, pts_ms: u64) -> Result<Vec<Av1Frame>, PushError> {
        if pic.width != self.settings.width || pic.height != self.settings.height {
            return Err(PushError::Video(format!(
                "AV1 picture {}x{}, encoder set up for {}x{}",
                pic.width, pic.height, self.settings.width, self.settings.height
            )));
        }
        let mut f = self.ctx.new_frame();
        let (w, cw) = (pic.width, pic.chroma_width());
        f.planes[0].copy_from_raw_u8(pic.y(), w, 1);
        f.planes[1].copy_from_raw_u8(pic.u(), cw, 1);
        f.planes[2].copy_from_raw_u8(pic.v(), cw, 1);
        self.ctx
            .send_frame(f)
            .map_err(|e| rav1e_error("send frame", e))?;
        self.pending.push_back(pts_ms);
        self.receive()
    }

    /// Flushes the pictures still inside the encoder.
    pub fn flush(&mut self) -> Result<Vec<Av1Frame>, PushError> {
        self.ctx.flush();
        self.receive()
    }

    fn receive(&mut self) -> Result<Vec<Av1Frame>, PushError> {
        let mut out = Vec::new();
        loop {
            match self.ctx.receive_packet() {
                Ok(pkt) => {
                    let keyframe = pkt.frame_type == FrameType::KEY;
                    let pts_ms = self.pending.pop_front().unwrap_or_default();
                    let mut data = Vec::with_capacity(pkt.data.len());
                    // Each OBU runs from the end of the one before to the end of its payload.
                    let mut start = 0;
                    for obu in obus(&pkt.data) {
                        let obu = obu.map_err(|e| rav1e_error("output", e))?;
                        let end = obu.payload.as_ptr() as usize - pkt.data.as_ptr() as usize
                            + obu.payload.len();
                        let raw = &pkt.data[start..end];
                        start = end;
                        if obu.obu_type == OBU_TEMPORAL_DELIMITER {
                            continue;
                        }
                        if obu.obu_type == OBU_SEQUENCE_HEADER && self.record.is_none() {
                            let mut rec = self.ctx.container_sequence_header();
                            rec.extend_from_slice(raw);
                            self.record = Some(rec);
                        }
                        data.extend_from_slice(raw);
                    }
                    out.push(Av1Frame {
                        keyframe,
                        pts_ms,
                        data,
                    });
                }
                Err(EncoderStatus::Encoded) => continue,
                Err(EncoderStatus::NeedMoreData | EncoderStatus::LimitReached) => break,
                Err(e) => return Err(rav1e_error("encode", e)),
            }
        }
        Ok(out)
    }

    /// The av1C record, known once the first keyframe is out.
    pub fn config_record(&self) -> Option<&[u8]> {
        self.record.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_pattern::TestPattern;
    use onair_shared::av1::Av1Config;

    #[test]
    fn temporal_units_in_order_with_keyframes_and_a_record_that_parses() {
        let mut enc = Av1Encoder::new(Av1Settings {
            width: 160,
            height: 96,
            fps: 30.0,
            bitrate: 300_000,
            keyint_frames: 10,
            threads: 1,
            speed: 10,
        })
        .unwrap();
        let pattern = TestPattern::new(160, 96);
        let mut frames = Vec::new();
        for i in 0..25u64 {
            frames.extend(enc.encode(&pattern.render(i, i * 33_333), i * 33).unwrap());
        }
        frames.extend(enc.flush().unwrap());
        assert_eq!(frames.len(), 25);
        let pts: Vec<u64> = frames.iter().map(|f| f.pts_ms).collect();
        assert_eq!(pts, (0..25).map(|i| i * 33).collect::<Vec<_>>());
        let keys: Vec<usize> = (0..25).filter(|&i| frames[i].keyframe).collect();
        assert_eq!(keys, vec![0, 10, 20]);
        for f in &frames {
            assert!(obus(&f.data).all(|o| o.unwrap().obu_type != OBU_TEMPORAL_DELIMITER));
        }
        let rec = Av1Config::parse(enc.config_record().unwrap()).unwrap();
        let seq = rec.sequence_header().unwrap();
        assert_eq!(rec.bit_depth(), 8);
        assert_eq!((seq.max_frame_width, seq.max_frame_height), (160, 96));
    }
}
