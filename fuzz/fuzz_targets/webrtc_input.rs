//! What the WebRTC output reads from peers before str0m does: the kind and STUN USERNAME
//! of every datagram on the muxed UDP port, and the WHEP offer's size, text and codecs
//! (then str0m's SDP parser, which the server runs on the same body). Also the H.264 and
//! AV1 packetizers over publisher bytes. Beyond not panicking: a found ufrag lies inside the
//! message, and packets never exceed the payload limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onair_server::webrtc::{av1, demux, h264, offer};
use onair_shared::av1::Av1Config;
use onair_shared::avc::AvcDecoderConfig;

fuzz_target!(|data: &[u8]| {
    let _ = demux::kind(data);
    if let Ok(Some(ufrag)) = demux::stun_server_ufrag(data) {
        assert!(!ufrag.is_empty());
        let at = ufrag.as_ptr() as usize - data.as_ptr() as usize;
        assert!(
            at >= 24 && at + ufrag.len() <= data.len(),
            "ufrag inside the message"
        );
    }
    if let Ok((text, codecs)) = offer::inspect(data, 32 * 1024) {
        assert!(data.len() <= 32 * 1024);
        let _ = offer::check_playable(&codecs, Some(onair_shared::Codec::H264), true);
        let _ = str0m::change::SdpOffer::from_sdp_string(text);
    }
    let config = AvcDecoderConfig {
        profile: 66,
        compatibility: 0,
        level: 30,
        nalu_length_size: 4,
        sps: vec![vec![0x67, 0x42]],
        pps: vec![vec![0x68, 0xce]],
    };
    for max in [16, 200, 1200] {
        if let Ok(p) = h264::packetize(data, &config, data.first().is_some_and(|b| b & 1 == 1), max)
        {
            assert!(p.payloads.iter().all(|x| x.len() <= max && !x.is_empty()));
        }
    }
    let av1c = Av1Config {
        seq_profile: 0,
        seq_level_idx_0: 4,
        seq_tier_0: false,
        high_bitdepth: false,
        twelve_bit: false,
        monochrome: false,
        chroma_subsampling_x: true,
        chroma_subsampling_y: true,
        chroma_sample_position: 0,
        initial_presentation_delay: None,
        config_obus: vec![0x0a, 0x02, 0, 0],
    };
    for max in [8, 200, 1200] {
        if let Ok(p) = av1::packetize(data, &av1c, data.len() % 2 == 1, max) {
            assert!(p.iter().all(|x| x.len() <= max.max(8) && !x.is_empty()));
        }
    }
});
