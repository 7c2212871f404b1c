//! The synthetic 720p30 H.264 + AAC stream: sequence headers, frames of realistic sizes that
//! carry a magic and a sequence number, and the parser viewers use to read that number back.

use anyhow::Result;
use bytes::{BufMut, Bytes, BytesMut};
use onair_shared::aac::{AudioSpecificConfig, FLV_AAC_TAG_BYTE};
use onair_shared::avc::AvcDecoderConfig;
use std::time::Duration;

pub const FPS: u64 = 30;
/// A keyframe every 60 frames (2 s).
pub const GOP: u64 = 60;
/// FLV video tag body sizes: 40 KB keyframes and 9.7 KB P-frames give about 2.45 Mbit/s.
pub const KEYFRAME_BYTES: usize = 40_000;
pub const PFRAME_BYTES: usize = 9_700;
pub const AUDIO_RATE: u64 = 44_100;
pub const AUDIO_SAMPLES_PER_FRAME: u64 = 1024;
/// FLV audio tag body size of one AAC frame (about 128 kbit/s).
pub const AUDIO_FRAME_BYTES: usize = 370;
pub const WIDTH: u32 = 1280;
pub const HEIGHT: u32 = 720;
pub const VIDEO_KBPS: u32 = 2500;
pub const AUDIO_KBPS: u32 = 128;

/// The stream's sizes: the 720p default, or a low-bitrate 360p one for thousands of viewers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub name: &'static str,
    pub width: u32,
    pub height: u32,
    /// FLV video tag body sizes of keyframes and P-frames.
    pub keyframe_bytes: usize,
    pub pframe_bytes: usize,
    pub video_kbps: u32,
    /// The AAC encoder's CBR rate.
    pub audio_kbps: u32,
}

/// 720p30 at about 2.6 Mbit/s (the default).
pub const SAMPLE_720P: Sample = Sample {
    name: "720p",
    width: WIDTH,
    height: HEIGHT,
    keyframe_bytes: KEYFRAME_BYTES,
    pframe_bytes: PFRAME_BYTES,
    video_kbps: VIDEO_KBPS,
    audio_kbps: AUDIO_KBPS,
};

/// 360p30 at about 500 kbit/s: 12 KB keyframes and 1.6 KB P-frames (about 425 kbit/s) and
/// 64 kbit/s AAC, so 5,000-10,000 viewers fit on one machine's loopback.
pub const SAMPLE_360P: Sample = Sample {
    name: "360p",
    width: 640,
    height: 360,
    keyframe_bytes: 12_000,
    pframe_bytes: 1_600,
    video_kbps: 425,
    audio_kbps: 64,
};

impl Sample {
    pub fn by_name(name: &str) -> Option<Sample> {
        [SAMPLE_720P, SAMPLE_360P]
            .into_iter()
            .find(|s| s.name == name)
    }

    /// Video tag body of frame `seq` at this sample's sizes (see `video_frame`).
    pub fn video_frame(&self, seq: u64, filler: &[u8]) -> Bytes {
        sized_video_frame(seq, filler, self.keyframe_bytes, self.pframe_bytes)
    }
}

/// Follows the NAL header of every measured frame, then the sequence number (u64, big endian).
pub const MAGIC: [u8; 8] = *b"ONAIRSEQ";

/// A real x264 720p High profile SPS and its PPS.
const SPS: [u8; 26] = [
    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
    0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
];
const PPS: [u8; 6] = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

/// FLV body bytes before the NAL unit: frame type/codec, packet type, composition time, NAL length.
const VIDEO_PREFIX: usize = 5 + 4;
/// Offset of the magic: prefix plus the one-byte NAL header.
const MAGIC_AT: usize = VIDEO_PREFIX + 1;
const SEQ_AT: usize = MAGIC_AT + MAGIC.len();
/// How much of a video tag's body `classify_video` reads: a viewer may keep just this.
pub const CLASSIFY_PREFIX: usize = SEQ_AT + 8;

pub fn video_interval() -> Duration {
    Duration::from_nanos(1_000_000_000 / FPS)
}

pub fn audio_interval() -> Duration {
    Duration::from_nanos(1_000_000_000 * AUDIO_SAMPLES_PER_FRAME / AUDIO_RATE)
}

pub fn is_keyframe(seq: u64) -> bool {
    seq.is_multiple_of(GOP)
}

/// Presentation time of video frame `seq` in ms (RTMP timestamps wrap at 2^32).
pub fn video_ms(seq: u64) -> u32 {
    (seq * 1000 / FPS) as u32
}

/// Presentation time of audio frame `n` in ms.
pub fn audio_ms(n: u64) -> u32 {
    (n * AUDIO_SAMPLES_PER_FRAME * 1000 / AUDIO_RATE) as u32
}

/// The AVC sequence header tag body: `[0x17, 0, 0, 0, 0]` + AVCDecoderConfigurationRecord.
pub fn video_sequence_header() -> Result<Bytes> {
    let record = AvcDecoderConfig::from_parameter_sets(&SPS, &PPS)?;
    let mut body = vec![0x17, 0, 0, 0, 0];
    body.extend_from_slice(&record.to_bytes());
    Ok(body.into())
}

/// The AAC sequence header tag body: `[0xaf, 0]` + AudioSpecificConfig (AAC-LC, 44.1 kHz, stereo).
pub fn audio_sequence_header() -> Result<Bytes> {
    let asc = AudioSpecificConfig::aac_lc(AUDIO_RATE as u32, 2)
        .ok_or_else(|| anyhow::anyhow!("44100 Hz is not in the AAC sample rate table"))?;
    let mut body = vec![FLV_AAC_TAG_BYTE, 0];
    body.extend_from_slice(&asc.to_bytes());
    Ok(body.into())
}

/// Deterministic incompressible-looking filler (xorshift64), long enough for a keyframe.
pub fn filler() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..KEYFRAME_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Video tag body of frame `seq`: one length-prefixed NAL (IDR or non-IDR slice) whose first
/// payload bytes are the magic and the sequence number, padded with `filler` to the frame size.
pub fn video_frame(seq: u64, filler: &[u8]) -> Bytes {
    sized_video_frame(seq, filler, KEYFRAME_BYTES, PFRAME_BYTES)
}

fn sized_video_frame(seq: u64, filler: &[u8], keyframe_bytes: usize, pframe_bytes: usize) -> Bytes {
    let key = is_keyframe(seq);
    let total = if key { keyframe_bytes } else { pframe_bytes };
    let mut b = BytesMut::with_capacity(total);
    b.put_slice(&[if key { 0x17 } else { 0x27 }, 1, 0, 0, 0]);
    b.put_u32((total - VIDEO_PREFIX) as u32);
    b.put_u8(if key { 0x65 } else { 0x41 });
    b.put_slice(&MAGIC);
    b.put_u64(seq);
    let pad = total - b.len();
    b.put_slice(&filler[..pad.min(filler.len())]);
    b.resize(total, 0);
    b.freeze()
}

/// Audio tag body of one raw AAC frame of filler.
pub fn audio_frame(filler: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(AUDIO_FRAME_BYTES);
    b.put_slice(&[FLV_AAC_TAG_BYTE, 1]);
    let pad = AUDIO_FRAME_BYTES - 2;
    b.put_slice(&filler[..pad.min(filler.len())]);
    b.resize(AUDIO_FRAME_BYTES, 0);
    b.freeze()
}

/// Frequency of the tone the real AAC track carries.
pub const TONE_HZ: u32 = 1000;
/// AAC frames in one cycle of the tone track: 441 × 1024 samples hold exactly 10 240
/// periods of 1 kHz at 44.1 kHz, so the cycle repeats without a click.
const TONE_CYCLE_FRAMES: usize = 441;

/// Audio tag bodies of real AAC-LC (44.1 kHz stereo, 128 kbit/s CBR, the sequence header's
/// configuration): one cycle of a 1 kHz tone at -20 dBFS, to be sent round and round. A
/// server that decodes the audio (onair's AAC -> Opus for WebRTC) does real work on it,
/// which filler bytes would not give it.
pub fn aac_tone_frames() -> Result<Vec<Bytes>> {
    aac_tone_frames_at(AUDIO_KBPS)
}

/// `aac_tone_frames` at `kbps` kbit/s CBR.
pub fn aac_tone_frames_at(kbps: u32) -> Result<Vec<Bytes>> {
    use fdk_aac::enc::{AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport};
    let enc = Encoder::new(EncoderParams {
        bit_rate: BitRate::Cbr(kbps * 1000),
        sample_rate: AUDIO_RATE as u32,
        transport: Transport::Raw,
        channels: ChannelMode::Stereo,
        audio_object_type: AudioObjectType::Mpeg4LowComplexity,
    })
    .map_err(|e| anyhow::anyhow!("AAC encoder: {e}"))?;
    let spf = AUDIO_SAMPLES_PER_FRAME as usize;
    let amplitude = 0.1 * 32767.0;
    let mut out = vec![0u8; 8192];
    let mut units = Vec::new();
    // Two cycles: the encoder's start-up delay spoils the first frames; the last cycle's
    // worth of units is steady.
    for n in 0..2 * TONE_CYCLE_FRAMES {
        let block: Vec<i16> = (0..spf)
            .flat_map(|i| {
                let t = ((n * spf + i) % (TONE_CYCLE_FRAMES * spf)) as f64 / AUDIO_RATE as f64;
                let v =
                    (amplitude * (2.0 * std::f64::consts::PI * TONE_HZ as f64 * t).sin()) as i16;
                [v, v]
            })
            .collect();
        let mut fed = 0;
        while fed < block.len() {
            let info = enc
                .encode(&block[fed..], &mut out)
                .map_err(|e| anyhow::anyhow!("AAC encoder: {e}"))?;
            fed += info.input_consumed.max(1);
            if info.output_size > 0 {
                let mut body = BytesMut::with_capacity(2 + info.output_size);
                body.put_slice(&[FLV_AAC_TAG_BYTE, 1]);
                body.put_slice(&out[..info.output_size]);
                units.push(body.freeze());
            }
        }
    }
    if units.len() < TONE_CYCLE_FRAMES {
        anyhow::bail!(
            "the AAC encoder gave {} frames for {} blocks",
            units.len(),
            2 * TONE_CYCLE_FRAMES
        );
    }
    Ok(units.split_off(units.len() - TONE_CYCLE_FRAMES))
}

/// What a viewer reads from a video tag body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoTag {
    /// A sequence header, end-of-sequence or other non-frame tag.
    Config,
    /// A measured frame.
    Frame { seq: u64, keyframe: bool },
    /// A coded frame without our magic (another publisher on the same stream?).
    Foreign,
}

pub fn classify_video(body: &[u8]) -> VideoTag {
    match body.get(1) {
        Some(1) => {}
        _ => return VideoTag::Config,
    }
    match (body.get(MAGIC_AT..SEQ_AT), body.get(SEQ_AT..SEQ_AT + 8)) {
        (Some(magic), Some(seq)) if magic == MAGIC => {
            let mut n = [0u8; 8];
            n.copy_from_slice(seq);
            VideoTag::Frame {
                seq: u64::from_be_bytes(n),
                keyframe: body[0] >> 4 == 1,
            }
        }
        _ => VideoTag::Foreign,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_shared::avc::{split_length_prefixed, VideoTagHeader};

    #[test]
    fn frames_round_trip_and_parse_as_avc() {
        let f = filler();
        for seq in [0u64, 1, 59, 60, 1 << 40] {
            let body = video_frame(seq, &f);
            let key = is_keyframe(seq);
            assert_eq!(body.len(), if key { KEYFRAME_BYTES } else { PFRAME_BYTES });
            assert_eq!(
                classify_video(&body),
                VideoTag::Frame { seq, keyframe: key }
            );
            let h = VideoTagHeader::parse(&body).unwrap();
            assert_eq!(h.is_keyframe(), key);
            let nals = split_length_prefixed(&body[h.header_len..], 4).unwrap();
            assert_eq!(nals.len(), 1);
        }
    }

    #[test]
    fn config_and_foreign_tags() {
        let seq_hdr = video_sequence_header().unwrap();
        assert_eq!(classify_video(&seq_hdr), VideoTag::Config);
        assert!(VideoTagHeader::parse(&seq_hdr)
            .unwrap()
            .is_sequence_header());
        assert_eq!(classify_video(&[]), VideoTag::Config);
        assert_eq!(classify_video(&[0x27, 1, 0, 0, 0]), VideoTag::Foreign);
        let mut other = video_frame(3, &filler()).to_vec();
        other[MAGIC_AT] ^= 1;
        assert_eq!(classify_video(&other), VideoTag::Foreign);
    }

    #[test]
    fn tone_track_is_real_aac_of_the_configured_rate() {
        let frames = aac_tone_frames().unwrap();
        assert_eq!(frames.len(), TONE_CYCLE_FRAMES);
        assert!(frames.iter().all(|f| f[..2] == [FLV_AAC_TAG_BYTE, 1]));
        // 128 kbit/s CBR: about 371 bytes per 1024 samples at 44.1 kHz.
        let mean = frames.iter().map(|f| f.len() - 2).sum::<usize>() as f64 / frames.len() as f64;
        assert!((340.0..400.0).contains(&mean), "{mean} bytes per frame");
        // The decoder of the sequence header's configuration plays them as a 1 kHz tone.
        let asc = &audio_sequence_header().unwrap()[2..];
        let mut dec = fdk_aac::dec::Decoder::new(fdk_aac::dec::Transport::Raw);
        dec.config_raw(asc).unwrap();
        let mut pcm = vec![0i16; 2048];
        let mut left = Vec::new();
        for f in frames.iter().take(40) {
            dec.fill(&f[2..]).unwrap();
            dec.decode_frame(&mut pcm).unwrap();
            left.extend(pcm.chunks(2).map(|s| s[0]));
        }
        // Zero crossings (rising) over the last 30 frames: 1000 Hz.
        let tail = &left[10 * 1024..];
        let rising = tail.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
        let hz = rising as f64 / (tail.len() as f64 / AUDIO_RATE as f64);
        assert!((hz - TONE_HZ as f64).abs() < 5.0, "{hz} Hz");
    }

    #[test]
    fn low_bitrate_sample_is_about_500_kbit() {
        let s = Sample::by_name("360p").unwrap();
        let gop_bytes = s.keyframe_bytes + (GOP as usize - 1) * s.pframe_bytes;
        let video_kbps = gop_bytes as f64 * 8.0 / (GOP as f64 / FPS as f64) / 1000.0;
        assert!(
            (video_kbps - s.video_kbps as f64).abs() < 5.0,
            "{video_kbps}"
        );
        let audio = aac_tone_frames_at(s.audio_kbps).unwrap();
        let audio_kbps = audio.iter().map(|f| f.len()).sum::<usize>() as f64 * 8.0
            / (audio.len() as f64 * AUDIO_SAMPLES_PER_FRAME as f64 / AUDIO_RATE as f64)
            / 1000.0;
        let total = video_kbps + audio_kbps;
        assert!((450.0..550.0).contains(&total), "{total} kbit/s");
        for seq in [0, 1, 60] {
            let body = s.video_frame(seq, &filler());
            let key = is_keyframe(seq);
            assert_eq!(body.len(), if key { 12_000 } else { 1_600 });
            assert_eq!(
                classify_video(&body),
                VideoTag::Frame { seq, keyframe: key }
            );
        }
        assert_eq!(Sample::by_name("720p"), Some(SAMPLE_720P));
        assert_eq!(Sample::by_name("4k"), None);
    }

    #[test]
    fn rates_match_720p30() {
        let gop_bytes = KEYFRAME_BYTES + (GOP as usize - 1) * PFRAME_BYTES;
        let video_kbps = gop_bytes as f64 * 8.0 / (GOP as f64 / FPS as f64) / 1000.0;
        assert!((2400.0..2600.0).contains(&video_kbps), "{video_kbps}");
        assert_eq!(audio_sequence_header().unwrap().len(), 4);
        assert_eq!(audio_frame(&filler()).len(), AUDIO_FRAME_BYTES);
        assert_eq!(video_ms(30), 1000);
        assert_eq!(audio_ms(43), 998);
    }
}
