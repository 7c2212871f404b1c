//! H.264 encoding with openh264 (Constrained Baseline, no B-frames, so PTS = DTS): fixed
//! frame rate and keyframe interval, bitrate rate control, no frame skipping (a live stream
//! keeps its frame rate). Output is split into NAL units; SPS and PPS go into the
//! AVCDecoderConfigurationRecord (reported whenever they change), not into frames.
//! The SPS says how to read the pixels back (VUI colour description): what
//! `process::convert` writes, BT.601 (SMPTE 170M) limited range, so no decoder guesses.

use onair_shared::avc::{nal_type, split_annexb, AvcDecoderConfig, NAL_PPS, NAL_SPS};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod,
    RateControlMode, UsageType, VuiConfig,
};
use openh264::formats::YUVSlices;
use openh264::OpenH264API;

use crate::media::I420;
use crate::PushError;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct H264Settings {
    pub fps: f64,
    /// Target bitrate in bit/s.
    pub bitrate: u32,
    /// Frames between keyframes (IDR).
    pub keyint_frames: u32,
    /// Encoder threads (1 = single-threaded; 0 = openh264 decides).
    pub threads: u16,
}

/// One encoded picture: its NAL units (no start codes, no SPS/PPS) and whether it is an IDR.
#[derive(Debug, Clone)]
pub struct EncodedPicture {
    pub keyframe: bool,
    pub nals: Vec<Vec<u8>>,
    /// Set when SPS/PPS are new or changed: send a new sequence header before this picture.
    pub new_config: Option<AvcDecoderConfig>,
}

pub struct H264Encoder {
    enc: Encoder,
    config: Option<AvcDecoderConfig>,
    sps: Vec<u8>,
    pps: Vec<u8>,
    initialized: bool,
    pending_bitrate: Option<u32>,
}

impl H264Encoder {
    pub fn new(s: H264Settings) -> Result<Self, PushError> {
        let cfg = EncoderConfig::new()
            .bitrate(BitRate::from_bps(s.bitrate))
            .max_frame_rate(FrameRate::from_hz(s.fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(false)
            .usage_type(UsageType::CameraVideoRealTime)
            .complexity(Complexity::Low)
            .scene_change_detect(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(s.keyint_frames.max(1)))
            .num_threads(s.threads)
            // Every picture the pusher encodes is BT.601 limited range (`media::I420`, made
            // by `process::convert` and the test pattern): say so in the SPS, since browsers
            // otherwise guess (BT.709 for HD sizes) and shift every colour.
            .vui(VuiConfig::bt601());
        let enc = Encoder::with_api_config(OpenH264API::from_source(), cfg)
            .map_err(|e| PushError::H264(e.to_string()))?;
        Ok(Self {
            enc,
            config: None,
            sps: Vec::new(),
            pps: Vec::new(),
            initialized: false,
            pending_bitrate: None,
        })
    }

    /// Changes the target bitrate from the next picture on (adaptation to the link). Before
    /// the first picture the encoder is not initialized yet: the new rate is kept for it.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), PushError> {
        if !self.initialized {
            self.pending_bitrate = Some(bps);
            return Ok(());
        }
        let mut info = openh264_sys2::SBitrateInfo {
            iLayer: openh264_sys2::SPATIAL_LAYER_ALL,
            iBitrate: bps.min(i32::MAX as u32) as i32,
        };
        // SAFETY: the encoder is initialized (a picture was encoded), and the option gets a
        // pointer to a live SBitrateInfo, the type ENCODER_OPTION_BITRATE reads.
        let rc = unsafe {
            self.enc.raw_api().set_option(
                openh264_sys2::ENCODER_OPTION_BITRATE,
                (&raw mut info).cast::<std::ffi::c_void>(),
            )
        };
        if rc != 0 {
            return Err(PushError::H264(format!("set bitrate {bps}: error {rc}")));
        }
        Ok(())
    }

    /// Asks for the next picture to be an IDR (after a drop, a reconnect).
    pub fn force_keyframe(&mut self) {
        self.enc.force_intra_frame();
    }

    /// Encodes one picture. `None` when the encoder produced nothing for it.
    pub fn encode(&mut self, pic: &I420, pts_ms: u64) -> Result<Option<EncodedPicture>, PushError> {
        let (w, cw) = (pic.width, pic.chroma_width());
        let src = YUVSlices::new(
            (pic.y(), pic.u(), pic.v()),
            (pic.width, pic.height),
            (w, cw, cw),
        );
        let bs = self
            .enc
            .encode_at(&src, openh264::Timestamp::from_millis(pts_ms))
            .map_err(|e| PushError::H264(e.to_string()))?;
        let frame_type = bs.frame_type();
        let annexb = bs.to_vec();
        if !self.initialized {
            self.initialized = true;
            if let Some(bps) = self.pending_bitrate.take() {
                self.set_bitrate(bps)?;
            }
        }
        let keyframe = match frame_type {
            FrameType::Skip | FrameType::Invalid => return Ok(None),
            FrameType::IDR => true,
            _ => false,
        };
        let mut nals = Vec::new();
        let (mut sps, mut pps) = (None, None);
        for nal in split_annexb(&annexb) {
            match nal_type(nal) {
                NAL_SPS => sps = Some(nal.to_vec()),
                NAL_PPS => pps = Some(nal.to_vec()),
                _ => nals.push(nal.to_vec()),
            }
        }
        if let Some(s) = sps {
            self.sps = s;
        }
        if let Some(p) = pps {
            self.pps = p;
        }
        let mut new_config = None;
        if !self.sps.is_empty() && !self.pps.is_empty() {
            let cfg = AvcDecoderConfig::from_parameter_sets(&self.sps, &self.pps)
                .map_err(|e| PushError::H264(format!("bad SPS from the encoder: {e}")))?;
            if self.config.as_ref() != Some(&cfg) {
                self.config = Some(cfg.clone());
                new_config = Some(cfg);
            }
        }
        if self.config.is_none() {
            return Err(PushError::H264("first picture came without SPS/PPS".into()));
        }
        Ok(Some(EncodedPicture {
            keyframe,
            nals,
            new_config,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_pattern::TestPattern;

    #[test]
    fn keyframes_at_the_interval_and_config_once() {
        let mut enc = H264Encoder::new(H264Settings {
            fps: 30.0,
            bitrate: 500_000,
            keyint_frames: 10,
            threads: 1,
        })
        .unwrap();
        let pattern = TestPattern::new(160, 96);
        let mut keys = Vec::new();
        let mut configs = 0;
        for i in 0..25u64 {
            let pic = pattern.render(i, i * 33_333);
            let out = enc
                .encode(&pic, i * 33)
                .unwrap()
                .expect("a picture per frame");
            if out.keyframe {
                keys.push(i);
            }
            if let Some(cfg) = out.new_config {
                configs += 1;
                let sps = cfg.sps_info().unwrap();
                assert_eq!((sps.width, sps.height), (160, 96));
            }
            assert!(!out.nals.is_empty());
            assert!(out
                .nals
                .iter()
                .all(|n| !matches!(nal_type(n), NAL_SPS | NAL_PPS)));
        }
        assert_eq!(keys, vec![0, 10, 20]);
        assert_eq!(configs, 1);
    }

    /// The VUI colour description of a Baseline/Main SPS (header byte and emulation
    /// prevention included): (video_full_range_flag, colour_primaries,
    /// transfer_characteristics, matrix_coefficients), `None` where the SPS has none.
    fn sps_colour(nal: &[u8]) -> Option<(u32, u32, u32, u32)> {
        let rbsp = onair_shared::bits::nal_to_rbsp(nal);
        let mut r = onair_shared::bits::BitReader::new(&rbsp);
        r.skip(8).ok()?;
        let profile = r.bits(8).ok()?;
        assert!(
            matches!(profile, 66 | 77),
            "only Baseline/Main here, got {profile}"
        );
        r.skip(16).ok()?; // constraints, level
        r.ue().ok()?; // seq_parameter_set_id
        r.ue().ok()?; // log2_max_frame_num_minus4
        match r.ue().ok()? {
            0 => {
                r.ue().ok()?;
            }
            1 => {
                r.bit().ok()?;
                r.se().ok()?;
                r.se().ok()?;
                for _ in 0..r.ue().ok()? {
                    r.se().ok()?;
                }
            }
            _ => {}
        }
        r.ue().ok()?; // max_num_ref_frames
        r.bit().ok()?; // gaps_in_frame_num_value_allowed
        r.ue().ok()?; // width in MBs
        r.ue().ok()?; // height in map units
        if r.bit().ok()? == 0 {
            r.bit().ok()?; // mb_adaptive_frame_field
        }
        r.bit().ok()?; // direct_8x8_inference
        if r.bit().ok()? == 1 {
            for _ in 0..4 {
                r.ue().ok()?; // cropping
            }
        }
        if r.bit().ok()? == 0 {
            return None; // no VUI
        }
        if r.bit().ok()? == 1 && r.bits(8).ok()? == 255 {
            r.skip(32).ok()?; // sar
        }
        if r.bit().ok()? == 1 {
            r.bit().ok()?; // overscan_appropriate
        }
        if r.bit().ok()? == 0 {
            return None; // no video_signal_type
        }
        r.skip(3).ok()?; // video_format
        let full_range = r.bit().ok()?;
        if r.bit().ok()? == 0 {
            return None; // no colour description
        }
        Some((
            full_range,
            r.bits(8).ok()?,
            r.bits(8).ok()?,
            r.bits(8).ok()?,
        ))
    }

    #[test]
    fn colour_reader_reads_a_reference_sps() {
        // x264 Baseline SPS of a 64x64 stream tagged BT.709 limited range
        // (ffmpeg -colorspace bt709 -color_primaries bt709 -color_trc bt709 -color_range tv),
        // with an emulation prevention byte (00 00 03) in it.
        let sps = [
            0x67, 0x42, 0xc0, 0x0a, 0xd9, 0x04, 0x26, 0xc0, 0x5a, 0x80, 0x80, 0x80, 0xa0, 0x00,
            0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x06, 0x41, 0xe2, 0x44, 0xc9,
        ];
        assert_eq!(sps_colour(&sps), Some((0, 1, 1, 1)));
    }

    #[test]
    fn sps_signals_bt601_limited_range() {
        let mut enc = H264Encoder::new(H264Settings {
            fps: 30.0,
            bitrate: 500_000,
            keyint_frames: 30,
            threads: 1,
        })
        .unwrap();
        let pic = TestPattern::new(160, 96).render(0, 0);
        let cfg = enc.encode(&pic, 0).unwrap().unwrap().new_config.unwrap();
        // What process::convert writes: limited range, SMPTE 170M primaries, transfer and
        // matrix (6, 6, 6).
        assert_eq!(sps_colour(&cfg.sps[0]), Some((0, 6, 6, 6)));
        // The rest of the SPS still reads as before.
        let info = cfg.sps_info().unwrap();
        assert_eq!((info.width, info.height), (160, 96));
    }

    #[test]
    fn lowering_the_bitrate_makes_smaller_frames() {
        let pattern = TestPattern::new(640, 360);
        let mut enc = H264Encoder::new(H264Settings {
            fps: 30.0,
            bitrate: 3_000_000,
            keyint_frames: 1000,
            threads: 1,
        })
        .unwrap();
        let mut sizes = Vec::new();
        for i in 0..120u64 {
            if i == 60 {
                enc.set_bitrate(300_000).unwrap();
            }
            let out = enc.encode(&pattern.render(i, 0), i * 33).unwrap().unwrap();
            sizes.push(out.nals.iter().map(Vec::len).sum::<usize>());
        }
        let before: usize = sizes[30..60].iter().sum();
        let after: usize = sizes[90..120].iter().sum();
        assert!(after * 3 < before, "bytes per second {before} -> {after}");
    }
}
