//! The codec configuration and framing parsers that see publisher bytes: FLV video and
//! audio tag headers, the AVCDecoderConfigurationRecord and its SPS, the
//! AudioSpecificConfig and the ADTS header built from it, and NAL unit splitting.
//! Beyond not panicking, a parsed record must survive a write/parse round trip.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use onair_shared::aac::{AudioSpecificConfig, AudioTagHeader};
use onair_shared::avc::{
    split_annexb, split_length_prefixed, AvcDecoderConfig, SpsInfo, VideoTagHeader,
};
use onair_shared::flv::TagFrame;
use onair_shared::ingest::TagReader;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = VideoTagHeader::parse(data) {
        assert!(h.header_len <= data.len() || h.header_len == 1);
    }
    let _ = AudioTagHeader::parse(data);
    let body = Bytes::copy_from_slice(data);
    let _ = TagFrame::video(0, body.clone());
    let _ = TagFrame::audio(0, body.clone());
    // What the server runs on every media message.
    let mut tags = TagReader::new();
    let _ = tags.video_tag(0, &body);
    let _ = tags.audio_tag(0, &body);

    if let Ok(cfg) = AvcDecoderConfig::parse(data) {
        let again = AvcDecoderConfig::parse(&cfg.to_bytes()).expect("a record we wrote parses");
        assert_eq!(again, cfg, "record round trip");
        let _ = cfg.sps_info();
    }
    if let Ok(sps) = SpsInfo::parse(data) {
        if let Some(fps) = sps.fps {
            assert!(fps >= 0.0);
        }
    }
    if let Ok(asc) = AudioSpecificConfig::parse(data) {
        for len in [0, 1, 400, 0x1fff - 7, 0x1fff - 6, usize::MAX - 7] {
            if let Ok(h) = asc.adts_header(len) {
                assert_eq!(&h[..2], &[0xff, 0xf1]);
                let frame_len =
                    ((h[3] as usize & 3) << 11) | ((h[4] as usize) << 3) | (h[5] as usize >> 5);
                assert_eq!(frame_len, len + 7, "ADTS frame length");
            }
        }
        if asc.object_type < 31 && asc.frequency_index < 13 && asc.channel_config < 16 {
            let again = AudioSpecificConfig::parse(&asc.to_bytes()).expect("two-byte form");
            assert_eq!(again, asc, "config round trip");
        }
    }
    for n in 1..=4u8 {
        if let Ok(nals) = split_length_prefixed(data, n) {
            let total: usize = nals.iter().map(|x| x.len() + n as usize).sum();
            assert_eq!(total, data.len(), "length-prefixed units cover the input");
        }
    }
    for nal in split_annexb(data) {
        assert!(!nal.is_empty());
        let at = nal.as_ptr() as usize - data.as_ptr() as usize;
        assert!(at + nal.len() <= data.len());
    }
});
