//! Encoded media to FLV tag bodies, wrapped as `onair_shared::flv::TagFrame`s (the FLV the
//! server ingests): AVC sequence header from SPS/PPS, length-prefixed NAL units, AAC
//! AudioSpecificConfig and raw frames, `onMetaData`; and Enhanced RTMP (veovera v2)
//! ex-header tags for what legacy FLV cannot name (Opus audio, HEVC and AV1 video). Pure.

use bytes::{BufMut, Bytes, BytesMut};
use onair_shared::aac::{AAC_RAW, AAC_SEQUENCE_HEADER, FLV_AAC_TAG_BYTE};
use onair_shared::avc::{
    nal_type, split_length_prefixed, AvcDecoderConfig, AVC_NALU, AVC_SEQUENCE_HEADER,
    FRAME_TYPE_INTER, FRAME_TYPE_KEY, NAL_IDR, VIDEO_CODEC_AVC,
};
use onair_shared::flv::TagFrame;
use onair_shared::{Codec, MediaKind};

fn video_first_byte(keyframe: bool) -> u8 {
    (if keyframe {
        FRAME_TYPE_KEY
    } else {
        FRAME_TYPE_INTER
    } << 4)
        | VIDEO_CODEC_AVC
}

/// The AVC sequence header tag body.
pub fn avc_sequence_header(cfg: &AvcDecoderConfig) -> Bytes {
    let rec = cfg.to_bytes();
    let mut out = BytesMut::with_capacity(5 + rec.len());
    out.put_slice(&[video_first_byte(true), AVC_SEQUENCE_HEADER, 0, 0, 0]);
    out.put_slice(&rec);
    out.freeze()
}

/// A video tag body of NAL units with 4-byte length prefixes. `cts` is PTS - DTS in ms.
pub fn avc_frame<'a>(keyframe: bool, cts: i32, nals: impl IntoIterator<Item = &'a [u8]>) -> Bytes {
    let mut out = BytesMut::new();
    let c = cts.clamp(-(1 << 23), (1 << 23) - 1) as u32;
    out.put_slice(&[
        video_first_byte(keyframe),
        AVC_NALU,
        (c >> 16) as u8,
        (c >> 8) as u8,
        c as u8,
    ]);
    for nal in nals {
        out.put_u32(nal.len() as u32);
        out.put_slice(nal);
    }
    out.freeze()
}

/// A video tag body around an already length-prefixed (4-byte) AVCC sample, as MP4 holds it.
pub fn avc_frame_avcc(keyframe: bool, cts: i32, sample: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + sample.len());
    let c = cts.clamp(-(1 << 23), (1 << 23) - 1) as u32;
    out.put_slice(&[
        video_first_byte(keyframe),
        AVC_NALU,
        (c >> 16) as u8,
        (c >> 8) as u8,
        c as u8,
    ]);
    out.put_slice(sample);
    out.freeze()
}

pub fn aac_sequence_header(asc: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(2 + asc.len());
    out.put_slice(&[FLV_AAC_TAG_BYTE, AAC_SEQUENCE_HEADER]);
    out.put_slice(asc);
    out.freeze()
}

pub fn aac_frame(au: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(2 + au.len());
    out.put_slice(&[FLV_AAC_TAG_BYTE, AAC_RAW]);
    out.put_slice(au);
    out.freeze()
}

/// Enhanced audio: SoundFormat 9 in the high nibble, the AudioPacketType in the low one.
const SOUND_FORMAT_EX_HEADER: u8 = 9;
const AUDIO_SEQUENCE_START: u8 = 0;
const AUDIO_CODED_FRAMES: u8 = 1;
/// Enhanced video: IsExHeader bit, frame type in bits 4-6, VideoPacketType in the low nibble.
const VIDEO_EX_HEADER: u8 = 0x80;
const VIDEO_SEQUENCE_START: u8 = 0;
const VIDEO_CODED_FRAMES: u8 = 1;
const VIDEO_CODED_FRAMES_X: u8 = 3;

fn ex_audio_body(packet_type: u8, codec: Codec, data: &[u8]) -> Option<Bytes> {
    let fourcc = codec.fourcc().filter(|_| !codec.is_video())?;
    let mut out = BytesMut::with_capacity(5 + data.len());
    out.put_u8(SOUND_FORMAT_EX_HEADER << 4 | packet_type);
    out.put_slice(&fourcc);
    out.put_slice(data);
    Some(out.freeze())
}

/// An Enhanced RTMP audio SequenceStart: the codec's configuration record (the Opus ID
/// header for Opus). `None` for a codec with no audio FourCC.
pub fn ex_audio_sequence_start(codec: Codec, record: &[u8]) -> Option<Bytes> {
    ex_audio_body(AUDIO_SEQUENCE_START, codec, record)
}

/// An Enhanced RTMP audio CodedFrames body around one raw audio frame (an Opus packet).
pub fn ex_audio_frame(codec: Codec, data: &[u8]) -> Option<Bytes> {
    ex_audio_body(AUDIO_CODED_FRAMES, codec, data)
}

/// A `TagFrame` of an enhanced audio body (which the legacy classifier cannot name).
pub fn ex_audio(dts: u64, codec: Codec, sequence_header: bool, body: Bytes) -> TagFrame {
    TagFrame {
        kind: MediaKind::Audio,
        codec,
        dts,
        cts: 0,
        keyframe: false,
        sequence_header,
        payload: body,
    }
}

fn ex_video_head(out: &mut BytesMut, keyframe: bool, packet_type: u8, fourcc: [u8; 4]) {
    let frame_type = if keyframe {
        FRAME_TYPE_KEY
    } else {
        FRAME_TYPE_INTER
    };
    out.put_u8(VIDEO_EX_HEADER | frame_type << 4 | packet_type);
    out.put_slice(&fourcc);
}

/// An Enhanced RTMP video SequenceStart around the codec's configuration record (hvcC,
/// av1C). `None` for a codec with no video FourCC.
pub fn ex_video_sequence_start(codec: Codec, record: &[u8]) -> Option<Bytes> {
    let fourcc = codec.fourcc().filter(|_| codec.is_video())?;
    let mut out = BytesMut::with_capacity(5 + record.len());
    ex_video_head(&mut out, true, VIDEO_SEQUENCE_START, fourcc);
    out.put_slice(record);
    Some(out.freeze())
}

/// An Enhanced RTMP coded video frame around one access unit as MP4 holds it (length-
/// prefixed NAL units for HEVC, a temporal unit of OBUs for AV1). HEVC and H.264 carry the
/// composition offset `cts` (ms) in CodedFrames, or use CodedFramesX when it is 0; AV1 and
/// VP9 have no composition offset on the wire (their CodedFrames carry none).
pub fn ex_video_frame(codec: Codec, keyframe: bool, cts: i32, sample: &[u8]) -> Option<Bytes> {
    let fourcc = codec.fourcc().filter(|_| codec.is_video())?;
    let mut out = BytesMut::with_capacity(8 + sample.len());
    if matches!(codec, Codec::H264 | Codec::Hevc) && cts != 0 {
        ex_video_head(&mut out, keyframe, VIDEO_CODED_FRAMES, fourcc);
        let c = cts.clamp(-(1 << 23), (1 << 23) - 1) as u32;
        out.put_slice(&[(c >> 16) as u8, (c >> 8) as u8, c as u8]);
    } else if matches!(codec, Codec::H264 | Codec::Hevc) {
        ex_video_head(&mut out, keyframe, VIDEO_CODED_FRAMES_X, fourcc);
    } else {
        ex_video_head(&mut out, keyframe, VIDEO_CODED_FRAMES, fourcc);
    }
    out.put_slice(sample);
    Some(out.freeze())
}

/// Builds a `TagFrame` from a tag body we made ourselves (so classification cannot fail on
/// well-formed input; a malformed body is reported, never unwrapped).
pub fn video(dts: u64, body: Bytes) -> Option<TagFrame> {
    TagFrame::video(dts, body).ok()
}

pub fn audio(dts: u64, body: Bytes) -> Option<TagFrame> {
    TagFrame::audio(dts, body).ok()
}

/// True for a video frame no other frame refers to: every NAL unit in it has
/// `nal_ref_idc == 0` (B-frames from x264, disposable frames). Dropping one breaks nothing.
pub fn is_disposable(frame: &TagFrame) -> bool {
    // Only legacy H.264 bodies are read here: other codecs' frames are never dropped alone.
    if frame.kind != MediaKind::Video
        || frame.codec != Codec::H264
        || frame.payload.first().is_some_and(|b| b & 0x80 != 0)
        || frame.keyframe
        || frame.sequence_header
    {
        return false;
    }
    let Some(body) = frame.payload.get(5..) else {
        return false;
    };
    let Ok(nals) = split_length_prefixed(body, 4) else {
        return false;
    };
    let mut slices = 0;
    for nal in nals {
        let t = nal_type(nal);
        if (1..=NAL_IDR).contains(&t) {
            slices += 1;
            if nal.first().is_some_and(|b| b & 0x60 != 0) {
                return false;
            }
        }
    }
    slices > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_bodies() {
        let cfg = AvcDecoderConfig::from_parameter_sets(&[0x67, 0x42, 0xc0, 0x1e], &[0x68, 0xce])
            .unwrap();
        let seq = avc_sequence_header(&cfg);
        assert_eq!(&seq[..5], &[0x17, 0, 0, 0, 0]);
        assert_eq!(AvcDecoderConfig::parse(&seq[5..]).unwrap(), cfg);
        let f = video(0, seq).unwrap();
        assert!(f.sequence_header);

        let body = avc_frame(true, 66, [&[0x65u8, 0x88][..], &[0x06, 0x05][..]]);
        assert_eq!(
            &body[..],
            &[0x17, 1, 0, 0, 66, 0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 2, 6, 5]
        );
        let f = video(40, body).unwrap();
        assert!(f.keyframe && !f.sequence_header);
        assert_eq!(f.cts, 66);
        let neg = avc_frame(false, -33, [&[0x41u8][..]]);
        assert_eq!(video(0, neg).unwrap().cts, -33);
        assert_eq!(
            avc_frame_avcc(false, 0, &[0, 0, 0, 1, 0x41])[..],
            [0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]
        );
    }

    #[test]
    fn audio_bodies() {
        let seq = audio(0, aac_sequence_header(&[0x12, 0x10])).unwrap();
        assert!(seq.sequence_header);
        assert_eq!(&seq.payload[..], &[0xaf, 0, 0x12, 0x10]);
        let raw = audio(23, aac_frame(&[0x21, 0x00])).unwrap();
        assert!(!raw.sequence_header);
        assert_eq!(raw.dts, 23);
    }

    fn limits() -> onair_shared::eflv::ParseLimits {
        onair_shared::eflv::ParseLimits::default()
    }

    #[test]
    fn opus_tags_parse_back_as_enhanced_audio() {
        use onair_shared::eflv::{parse_audio, PacketKind};
        let head = b"OpusHead\x01\x02\x38\x01\x80\xbb\0\0\0\0\0";
        let seq = ex_audio_sequence_start(Codec::Opus, head).unwrap();
        assert_eq!(&seq[..5], b"\x90Opus");
        let m = parse_audio(&seq, &limits()).unwrap();
        assert!(m.enhanced && m.legacy.is_none() && m.multitrack.is_none());
        assert_eq!(m.packets.len(), 1);
        let p = &m.packets[0];
        assert_eq!(
            (p.codec, p.kind, p.track),
            (Codec::Opus, PacketKind::Config, 0)
        );
        assert_eq!(&p.payload[..], &head[..]);
        let h = onair_shared::opus::OpusHead::parse(&p.payload).unwrap();
        assert_eq!(
            (h.channels, h.pre_skip, h.input_sample_rate),
            (2, 312, 48_000)
        );

        let packet = [0xfcu8, 0xff, 0xfe, 0x01];
        let body = ex_audio_frame(Codec::Opus, &packet).unwrap();
        assert_eq!(&body[..5], b"\x91Opus");
        let m = parse_audio(&body, &limits()).unwrap();
        assert_eq!(m.packets[0].kind, PacketKind::Frame);
        assert_eq!(&m.packets[0].payload[..], &packet);
        let f = ex_audio(40, Codec::Opus, false, body);
        assert_eq!(
            (f.kind, f.codec, f.dts, f.sequence_header),
            (MediaKind::Audio, Codec::Opus, 40, false)
        );
        // No FourCC for a video codec or an unknown one on the audio side.
        assert!(ex_audio_frame(Codec::Hevc, &packet).is_none());
        assert!(ex_audio_frame(Codec::Other(3), &packet).is_none());
    }

    #[test]
    fn hevc_and_av1_tags_parse_back_as_enhanced_video() {
        use onair_shared::eflv::{parse_video, FrameType, PacketKind};
        let hvcc = [
            1u8, 1, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0,
            0x0f, 0,
        ];
        let seq = ex_video_sequence_start(Codec::Hevc, &hvcc).unwrap();
        assert_eq!(&seq[..5], b"\x90hvc1");
        let m = parse_video(&seq, &limits()).unwrap();
        assert!(m.enhanced);
        assert_eq!(m.frame_type, FrameType::Key);
        assert_eq!(
            (m.packets[0].codec, m.packets[0].kind),
            (Codec::Hevc, PacketKind::Config)
        );
        assert_eq!(&m.packets[0].payload[..], &hvcc);
        let tf = video(0, seq).unwrap();
        assert!(tf.sequence_header && tf.codec == Codec::Hevc);

        let sample = [0u8, 0, 0, 3, 0x26, 0x01, 0xaf];
        // With a composition offset: CodedFrames and its SI24, negative ones too.
        for cts in [66, -33] {
            let body = ex_video_frame(Codec::Hevc, false, cts, &sample).unwrap();
            assert_eq!(body[0], 0x80 | 2 << 4 | 1);
            let m = parse_video(&body, &limits()).unwrap();
            assert_eq!(m.frame_type, FrameType::Inter);
            let p = &m.packets[0];
            assert_eq!((p.kind, p.composition_offset_ms), (PacketKind::Frame, cts));
            assert_eq!(&p.payload[..], &sample);
            let tf = video(40, body).unwrap();
            assert_eq!(
                (tf.cts, tf.keyframe, tf.sequence_header),
                (cts, false, false)
            );
            assert!(!is_disposable(&tf));
        }
        // Without: CodedFramesX, no offset bytes.
        let body = ex_video_frame(Codec::Hevc, true, 0, &sample).unwrap();
        assert_eq!(&body[..5], b"\x93hvc1");
        let m = parse_video(&body, &limits()).unwrap();
        assert!(m.frame_type.is_key());
        assert_eq!(&m.packets[0].payload[..], &sample);
        assert!(video(0, body).unwrap().keyframe);

        // AV1: CodedFrames without an offset, whatever the sample's cts.
        let av1c = [
            0x81u8, 0x00, 0x0c, 0x00, 0x0a, 0x0b, 0, 0, 0, 0x24, 0xcf, 0x7f, 0x0d, 0xbf, 0xff,
            0x30, 0x08,
        ];
        let seq = ex_video_sequence_start(Codec::Av1, &av1c).unwrap();
        let m = parse_video(&seq, &limits()).unwrap();
        assert_eq!(
            (m.packets[0].codec, m.packets[0].kind),
            (Codec::Av1, PacketKind::Config)
        );
        assert_eq!(&m.packets[0].payload[..], &av1c);
        let tu = [0x32u8, 0x03, 1, 2, 3];
        let body = ex_video_frame(Codec::Av1, true, 40, &tu).unwrap();
        assert_eq!(&body[..5], b"\x91av01");
        let m = parse_video(&body, &limits()).unwrap();
        let p = &m.packets[0];
        assert_eq!(
            (p.codec, p.kind, p.composition_offset_ms, p.keyframe),
            (Codec::Av1, PacketKind::Frame, 0, true)
        );
        assert_eq!(&p.payload[..], &tu);
        assert!(ex_video_frame(Codec::Opus, true, 0, &tu).is_none());
    }

    #[test]
    fn disposable_frames() {
        // nal_ref_idc 0 slice (0x01) vs reference slice (0x41).
        let b = video(0, avc_frame(false, 0, [&[0x01u8, 0x9e][..]])).unwrap();
        let p = video(0, avc_frame(false, 0, [&[0x41u8, 0x9a][..]])).unwrap();
        let k = video(0, avc_frame(true, 0, [&[0x65u8, 0x88][..]])).unwrap();
        // An SEI (ref_idc 0) alone is not a disposable picture.
        let sei = video(0, avc_frame(false, 0, [&[0x06u8, 0x05][..]])).unwrap();
        assert!(is_disposable(&b));
        assert!(!is_disposable(&p) && !is_disposable(&k) && !is_disposable(&sei));
        let a = audio(0, aac_frame(&[1])).unwrap();
        assert!(!is_disposable(&a));
    }
}
