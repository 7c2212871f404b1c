//! Decoding the guest's stream: H.264 FLV tags with openh264's decoder into `I420`, AAC
//! tags with fdk-aac's decoder into PCM converted to the host's rate and channels. Bad
//! guest data is an error for that tag (counted and skipped by the caller), never a panic.

use fdk_aac::dec::{Decoder as AacDecoder, Transport};
use onair_shared::avc::{split_length_prefixed, AvcDecoderConfig};
use onair_shared::flv::TagFrame;
use onair_shared::{Codec, MediaKind};
use openh264::decoder::Decoder as H264Decoder;
use openh264::formats::YUVSource;

use crate::media::I420;
use crate::process::audio::{remix, Resampler};
use crate::PushError;

/// Largest guest picture we decode (anything larger is refused, not allocated).
pub const MAX_GUEST_PIXELS: usize = 1920 * 1088;

/// What one guest tag decoded to.
#[derive(Debug)]
pub enum Decoded {
    Picture(I420),
    /// Interleaved PCM at the host's rate and channels.
    Audio(Vec<i16>),
    Nothing,
}

fn bad(what: &str, e: impl std::fmt::Display) -> PushError {
    PushError::format("guest stream", format!("{what}: {e}"))
}

pub struct GuestDecoder {
    video: Option<H264Decoder>,
    nalu_length: u8,
    audio: Option<AacDecoder>,
    audio_format: Option<(u32, u8)>,
    resampler: Option<Resampler>,
    host_rate: u32,
    host_channels: u8,
    pcm: Vec<i16>,
}

impl GuestDecoder {
    pub fn new(host_rate: u32, host_channels: u8) -> Self {
        Self {
            video: None,
            nalu_length: 4,
            audio: None,
            audio_format: None,
            resampler: None,
            host_rate,
            host_channels,
            pcm: vec![0; 8 * 2048],
        }
    }

    pub fn decode(&mut self, f: &TagFrame) -> Result<Decoded, PushError> {
        match (f.kind, f.codec) {
            (MediaKind::Video, Codec::H264) => self.video(f),
            (MediaKind::Audio, Codec::Aac) => self.audio(f),
            // Other codecs (and script data) are not mixed in; the caller logs them once.
            _ => Ok(Decoded::Nothing),
        }
    }

    fn video(&mut self, f: &TagFrame) -> Result<Decoded, PushError> {
        let body = f.payload.get(5..).unwrap_or_default();
        if f.sequence_header {
            let cfg = AvcDecoderConfig::parse(body).map_err(|e| bad("avcC", e))?;
            let mut dec = H264Decoder::new().map_err(|e| bad("H.264 decoder", e))?;
            let mut annexb = Vec::new();
            for nal in cfg.sps.iter().chain(&cfg.pps) {
                annexb.extend_from_slice(&[0, 0, 0, 1]);
                annexb.extend_from_slice(nal);
            }
            dec.decode(&annexb).map_err(|e| bad("SPS/PPS", e))?;
            self.nalu_length = cfg.nalu_length_size;
            self.video = Some(dec);
            return Ok(Decoded::Nothing);
        }
        let Some(dec) = self.video.as_mut() else {
            return Ok(Decoded::Nothing);
        };
        let nals =
            split_length_prefixed(body, self.nalu_length).map_err(|e| bad("NAL units", e))?;
        let mut annexb = Vec::with_capacity(body.len() + 16);
        for nal in nals {
            annexb.extend_from_slice(&[0, 0, 0, 1]);
            annexb.extend_from_slice(nal);
        }
        let Some(yuv) = dec.decode(&annexb).map_err(|e| bad("H.264 frame", e))? else {
            return Ok(Decoded::Nothing);
        };
        let (w, h) = yuv.dimensions();
        let (w, h) = (w & !1, h & !1);
        if w == 0 || h == 0 || w * h > MAX_GUEST_PIXELS {
            return Err(bad("picture size", format!("{w}x{h}")));
        }
        let (ys, us, _) = yuv.strides();
        let mut data = Vec::with_capacity(w * h * 3 / 2);
        for row in 0..h {
            data.extend_from_slice(&yuv.y()[row * ys..row * ys + w]);
        }
        for plane in [yuv.u(), yuv.v()] {
            for row in 0..h / 2 {
                data.extend_from_slice(&plane[row * us..row * us + w / 2]);
            }
        }
        I420::from_vec(w, h, data)
            .map(Decoded::Picture)
            .ok_or_else(|| bad("picture", "planes do not match the size"))
    }

    fn audio(&mut self, f: &TagFrame) -> Result<Decoded, PushError> {
        let body = f.payload.get(2..).unwrap_or_default();
        if f.sequence_header {
            let mut dec = AacDecoder::new(Transport::Raw);
            dec.config_raw(body)
                .map_err(|e| bad("AudioSpecificConfig", e))?;
            self.audio = Some(dec);
            self.audio_format = None;
            return Ok(Decoded::Nothing);
        }
        let Some(dec) = self.audio.as_mut() else {
            return Ok(Decoded::Nothing);
        };
        dec.fill(body).map_err(|e| bad("AAC", e))?;
        dec.decode_frame(&mut self.pcm).map_err(|e| bad("AAC", e))?;
        let info = dec.stream_info();
        let (rate, channels) = (
            info.sampleRate.max(1) as u32,
            info.numChannels.clamp(1, 8) as u8,
        );
        let n = dec.decoded_frame_size().min(self.pcm.len());
        let pcm = &self.pcm[..n];
        // Down to mono or stereo first (fdk gives what the stream has).
        let pcm = if channels > 2 {
            pcm.chunks(channels as usize)
                .flat_map(|c| [c[0], c[1]])
                .collect()
        } else {
            pcm.to_vec()
        };
        let channels = channels.min(2);
        if self.audio_format != Some((rate, channels)) {
            self.audio_format = Some((rate, channels));
            self.resampler = Some(Resampler::new(rate, self.host_rate, self.host_channels));
        }
        let pcm = remix(&pcm, channels, self.host_channels);
        let out = match self.resampler.as_mut() {
            Some(r) => r.process(&pcm),
            None => pcm,
        };
        Ok(Decoded::Audio(out))
    }
}
