//! VP9 encoding with libvpx (through env-libvpx-sys, crate `vpx_sys`), set up for live streaming: one pass,
//! CBR, no lag (no alt-ref frames, so one shown frame per packet and PTS = DTS), the
//! real-time deadline, a fixed keyframe interval and no dropped frames. Also builds the
//! VPCodecConfigurationRecord (vpcC) that the Enhanced RTMP sequence start carries.
//! All unsafe FFI stays in this file; it must never hand libvpx a picture of the wrong size.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_uint, c_ulong};

use vpx_sys as vpx;

use crate::media::I420;
use crate::PushError;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vp9Settings {
    pub width: usize,
    pub height: usize,
    pub fps: f64,
    /// Target bitrate in bit/s.
    pub bitrate: u32,
    pub keyint_frames: u32,
    /// Encoder threads (0 = one per CPU, up to 8).
    pub threads: u16,
    /// libvpx `cpu-used` for the real-time mode: 5 (slower, better) to 9 (fastest).
    pub speed: i32,
}

/// One encoded VP9 frame.
#[derive(Debug, Clone)]
pub struct Vp9Frame {
    pub keyframe: bool,
    /// Presentation time in ms (the capture time of the picture).
    pub pts_ms: u64,
    pub data: Vec<u8>,
}

pub struct Vp9Encoder {
    ctx: vpx::vpx_codec_ctx_t,
    cfg: vpx::vpx_codec_enc_cfg_t,
    settings: Vp9Settings,
}

// SAFETY: the libvpx context is owned by this value alone and used from one thread at a
// time (`&mut self`); libvpx keeps no thread-local state tied to the creating thread.
unsafe impl Send for Vp9Encoder {}

fn vpx_error(ctx: &mut vpx::vpx_codec_ctx_t, what: &str, rc: vpx::vpx_codec_err_t) -> PushError {
    // SAFETY: vpx_codec_error returns a static or context-owned NUL-terminated string.
    let msg = unsafe {
        let p = vpx::vpx_codec_error(ctx);
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    PushError::Video(format!("VP9 {what}: {msg} ({rc:?})"))
}

/// Threads the encoder uses for `asked` (0 = available CPUs), at most 8.
pub fn thread_count(asked: u16) -> usize {
    let n = if asked == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        asked as usize
    };
    n.clamp(1, 8)
}

impl Vp9Encoder {
    pub fn new(s: Vp9Settings) -> Result<Self, PushError> {
        if !s.width.is_multiple_of(2)
            || !s.height.is_multiple_of(2)
            || s.width < 16
            || s.height < 16
        {
            return Err(PushError::Video(format!(
                "VP9 picture {}x{}: even sizes from 16x16",
                s.width, s.height
            )));
        }
        let threads = thread_count(s.threads);
        // SAFETY: plain FFI calls on zero-initialized C structs that libvpx fills in; the
        // interface pointer is a static libvpx owns.
        unsafe {
            let iface = vpx::vpx_codec_vp9_cx();
            let mut cfg = MaybeUninit::<vpx::vpx_codec_enc_cfg_t>::zeroed().assume_init();
            let rc = vpx::vpx_codec_enc_config_default(iface, &mut cfg, 0);
            if rc != vpx::VPX_CODEC_OK {
                return Err(PushError::Video(format!("VP9 default config: {rc:?}")));
            }
            cfg.g_w = s.width as c_uint;
            cfg.g_h = s.height as c_uint;
            // Timestamps are the capture clock's milliseconds.
            cfg.g_timebase = vpx::vpx_rational { num: 1, den: 1000 };
            cfg.g_threads = threads as c_uint;
            cfg.g_pass = vpx::vpx_enc_pass::VPX_RC_ONE_PASS;
            cfg.g_lag_in_frames = 0;
            cfg.g_error_resilient = 0;
            cfg.rc_end_usage = vpx::vpx_rc_mode::VPX_CBR;
            cfg.rc_target_bitrate = (s.bitrate / 1000).max(1);
            cfg.rc_dropframe_thresh = 0;
            cfg.rc_resize_allowed = 0;
            cfg.rc_min_quantizer = 4;
            cfg.rc_max_quantizer = 56;
            cfg.rc_undershoot_pct = 50;
            cfg.rc_overshoot_pct = 50;
            cfg.rc_buf_sz = 1000;
            cfg.rc_buf_initial_sz = 500;
            cfg.rc_buf_optimal_sz = 600;
            cfg.kf_mode = vpx::vpx_kf_mode::VPX_KF_AUTO;
            cfg.kf_min_dist = s.keyint_frames.max(1);
            cfg.kf_max_dist = s.keyint_frames.max(1);
            let mut ctx = MaybeUninit::<vpx::vpx_codec_ctx_t>::zeroed().assume_init();
            let rc = vpx::vpx_codec_enc_init_ver(
                &mut ctx,
                iface,
                &cfg,
                0,
                vpx::VPX_ENCODER_ABI_VERSION as c_int,
            );
            if rc != vpx::VPX_CODEC_OK {
                return Err(vpx_error(&mut ctx, "init", rc));
            }
            let mut enc = Self {
                ctx,
                cfg,
                settings: s,
            };
            use vpx::vp8e_enc_control_id::*;
            let tile_columns = (threads as f64).log2().floor() as c_int;
            for (id, value) in [
                (VP8E_SET_CPUUSED as c_int, s.speed.clamp(5, 9)),
                (VP9E_SET_ROW_MT as c_int, 1),
                (VP9E_SET_TILE_COLUMNS as c_int, tile_columns),
                // Cyclic refresh: the real-time mode's adaptive quantization.
                (VP9E_SET_AQ_MODE as c_int, 3),
                (VP8E_SET_STATIC_THRESHOLD as c_int, 0),
                // What every pusher picture is (`media::I420`): BT.601, limited range.
                (
                    VP9E_SET_COLOR_SPACE as c_int,
                    vpx::vpx_color_space::VPX_CS_BT_601 as c_int,
                ),
                (
                    VP9E_SET_COLOR_RANGE as c_int,
                    vpx::vpx_color_range::VPX_CR_STUDIO_RANGE as c_int,
                ),
            ] {
                let rc = vpx::vpx_codec_control_(&mut enc.ctx, id, value);
                if rc != vpx::VPX_CODEC_OK {
                    return Err(vpx_error(&mut enc.ctx, "control", rc));
                }
            }
            Ok(enc)
        }
    }

    /// Changes the target bitrate from the next frame on.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), PushError> {
        self.cfg.rc_target_bitrate = (bps / 1000).max(1);
        // SAFETY: the context is initialized; libvpx copies the config.
        let rc = unsafe { vpx::vpx_codec_enc_config_set(&mut self.ctx, &self.cfg) };
        if rc != vpx::VPX_CODEC_OK {
            return Err(vpx_error(&mut self.ctx, "set bitrate", rc));
        }
        Ok(())
    }

    /// Encodes one picture; returns the frames libvpx produced for it (one, without lag).
    pub fn encode(&mut self, pic: &I420, pts_ms: u64) -> Result<Vec<Vp9Frame>, PushError> {
        if pic.width != self.settings.width || pic.height != self.settings.height {
            return Err(PushError::Video(format!(
                "VP9 picture {}x{}, encoder set up for {}x{}",
                pic.width, pic.height, self.settings.width, self.settings.height
            )));
        }
        let duration = (1000.0 / self.settings.fps).round().max(1.0) as c_ulong;
        // SAFETY: the image wraps `pic.data`, which is exactly width*height*3/2 bytes of
        // I420 (checked above and by `I420`'s constructor) and outlives the call; libvpx
        // only reads it during vpx_codec_encode.
        unsafe {
            let mut img = MaybeUninit::<vpx::vpx_image_t>::zeroed().assume_init();
            let wrapped = vpx::vpx_img_wrap(
                &mut img,
                vpx::vpx_img_fmt::VPX_IMG_FMT_I420,
                pic.width as c_uint,
                pic.height as c_uint,
                1,
                pic.data.as_ptr() as *mut u8,
            );
            if wrapped.is_null() {
                return Err(PushError::Video("VP9 wrap picture".into()));
            }
            let rc = vpx::vpx_codec_encode(
                &mut self.ctx,
                &img,
                pts_ms as i64,
                duration,
                0,
                vpx::VPX_DL_REALTIME as c_ulong,
            );
            if rc != vpx::VPX_CODEC_OK {
                return Err(vpx_error(&mut self.ctx, "encode", rc));
            }
        }
        Ok(self.packets())
    }

    fn packets(&mut self) -> Vec<Vp9Frame> {
        let mut out = Vec::new();
        let mut iter: vpx::vpx_codec_iter_t = std::ptr::null();
        loop {
            // SAFETY: the iterator is libvpx's own; each packet stays valid until the next
            // call, and its frame buffer is copied out before that.
            unsafe {
                let pkt = vpx::vpx_codec_get_cx_data(&mut self.ctx, &mut iter);
                if pkt.is_null() {
                    break;
                }
                if (*pkt).kind != vpx::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                    continue;
                }
                let f = (*pkt).data.frame;
                if f.buf.is_null() || f.sz == 0 {
                    continue;
                }
                let data = std::slice::from_raw_parts(f.buf as *const u8, f.sz as usize).to_vec();
                out.push(Vp9Frame {
                    keyframe: f.flags & vpx::VPX_FRAME_IS_KEY != 0,
                    pts_ms: f.pts.max(0) as u64,
                    data,
                });
            }
        }
        out
    }

    /// The vpcC record for this encoder's output: profile 0, 8-bit 4:2:0, BT.601 limited.
    pub fn config_record(&self) -> Vec<u8> {
        vpcc_record(
            level_for(self.settings.width, self.settings.height, self.settings.fps),
            6,
        )
    }
}

impl Drop for Vp9Encoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialized in `new` and is destroyed once.
        unsafe {
            vpx::vpx_codec_destroy(&mut self.ctx);
        }
    }
}

/// VPCodecConfigurationRecord (VP codec ISOBMFF binding), the bare record without the
/// FullBox prefix: profile 0, `level` (10 x level), 8 bits, 4:2:0 with vertically sited
/// chroma (0), limited range, then colour primaries, transfer and matrix all `colour`
/// (6 = SMPTE 170M / BT.601), and no codec initialization data.
pub fn vpcc_record(level: u8, colour: u8) -> Vec<u8> {
    vec![0, level, 8 << 4, colour, colour, colour, 0, 0]
}

/// The lowest VP9 level (10 x level) whose picture size and luma sample rate hold this
/// stream (VP9 levels table).
pub fn level_for(width: usize, height: usize, fps: f64) -> u8 {
    const LEVELS: [(u8, u64, u64); 12] = [
        (10, 36_864, 829_440),
        (11, 73_728, 2_764_800),
        (20, 122_880, 4_608_000),
        (21, 245_760, 9_216_000),
        (30, 552_960, 20_736_000),
        (31, 983_040, 36_864_000),
        (40, 2_228_224, 83_558_400),
        (41, 2_228_224, 160_432_128),
        (50, 8_912_896, 311_951_360),
        (51, 8_912_896, 588_251_136),
        (52, 8_912_896, 1_176_502_272),
        (60, 35_651_584, 1_176_502_272),
    ];
    let samples = (width * height) as u64;
    let rate = (samples as f64 * fps) as u64;
    LEVELS
        .iter()
        .find(|(_, s, r)| samples <= *s && rate <= *r)
        .map_or(62, |l| l.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_pattern::TestPattern;
    use onair_shared::vp9::{Vp9FrameHeader, VpcConfig};

    #[test]
    fn keyframes_at_the_interval_and_the_size_in_the_keyframe_header() {
        let mut enc = Vp9Encoder::new(Vp9Settings {
            width: 160,
            height: 96,
            fps: 30.0,
            bitrate: 300_000,
            keyint_frames: 10,
            threads: 1,
            speed: 9,
        })
        .unwrap();
        let pattern = TestPattern::new(160, 96);
        let mut keys = Vec::new();
        for i in 0..25u64 {
            let frames = enc.encode(&pattern.render(i, i * 33_333), i * 33).unwrap();
            assert_eq!(frames.len(), 1, "one frame per picture without lag");
            let f = &frames[0];
            assert_eq!(f.pts_ms, i * 33);
            if f.keyframe {
                keys.push(i);
                let h = Vp9FrameHeader::parse(&f.data).unwrap();
                assert_eq!((h.width, h.height), (Some(160), Some(96)), "{h:?}");
                assert_eq!(h.color_space, Some(1), "BT.601");
            }
        }
        assert_eq!(keys, vec![0, 10, 20]);
        let rec = VpcConfig::parse(&enc.config_record()).unwrap();
        assert_eq!((rec.profile, rec.bit_depth, rec.level), (0, 8, 10));
        assert_eq!(rec.codec_string(), "vp09.00.10.08");
        enc.set_bitrate(200_000).unwrap();
        assert!(enc
            .encode(&TestPattern::new(64, 64).render(0, 0), 900)
            .is_err());
    }

    #[test]
    fn levels_follow_the_table() {
        assert_eq!(level_for(640, 360, 30.0), 21);
        assert_eq!(level_for(854, 480, 30.0), 30);
        assert_eq!(level_for(1280, 720, 30.0), 31);
        assert_eq!(level_for(1920, 1080, 30.0), 40);
        assert_eq!(level_for(1920, 1080, 60.0), 41);
    }
}
