//! Encoded media to FLV tag bodies, wrapped as `onair_shared::flv::TagFrame`s (the FLV the
//! server ingests): AVC sequence header from SPS/PPS, length-prefixed NAL units, AAC
//! AudioSpecificConfig and raw frames, `onMetaData`. Pure.

use bytes::{BufMut, Bytes, BytesMut};
use onair_shared::aac::{AAC_RAW, AAC_SEQUENCE_HEADER, FLV_AAC_TAG_BYTE};
use onair_shared::avc::{
    nal_type, split_length_prefixed, AvcDecoderConfig, AVC_NALU, AVC_SEQUENCE_HEADER,
    FRAME_TYPE_INTER, FRAME_TYPE_KEY, NAL_IDR, VIDEO_CODEC_AVC,
};
use onair_shared::flv::TagFrame;
use onair_shared::MediaKind;

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
    if frame.kind != MediaKind::Video || frame.keyframe || frame.sequence_header {
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
