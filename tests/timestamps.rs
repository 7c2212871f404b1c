//! Pitfall: "the stream dies after 4.6 hours" (24-bit RTMP timestamps end at 16 777 215 ms)
//! and the 32-bit wrap after 49.7 days. A publisher crossing both, with extended timestamps
//! on the wire, must reach its viewers with timestamps that only go forward.

use crate::common;

use std::time::Duration;

use common::raw_rtmp::RawRtmp;
use common::viewers::flv_media;
use common::*;

const SPS: [u8; 26] = [
    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
    0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
];
const PPS: [u8; 6] = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

fn frame(key: bool) -> Vec<u8> {
    let mut b = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0, 0, 0, 3];
    b.extend_from_slice(&[if key { 0x65 } else { 0x41 }, 0x88, 0x84]);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_cross_24_and_32_bits_and_stay_monotonic() {
    let server = ServerProc::start("");
    let rtmp = server.rtmp;
    // Two stretches of 30 fps: across 0xFFFFFF, then across 2^32.
    let starts = [0x00ff_ff00u32, 0xffff_ff00];
    let publisher = std::thread::spawn(move || {
        let mut c = RawRtmp::connect(rtmp);
        c.handshake();
        c.connect_app("live");
        c.publish("wrap");
        let mut seq = vec![0x17, 0, 0, 0, 0];
        seq.extend(
            onair_shared::avc::AvcDecoderConfig::from_parameter_sets(&SPS, &PPS)
                .unwrap()
                .to_bytes(),
        );
        c.message(6, 9, 1, 0, &seq);
        for start in starts {
            for i in 0..60u32 {
                // Spread over real time so the viewer below is connected for most of it.
                std::thread::sleep(Duration::from_millis(20));
                c.message(6, 9, 1, start.wrapping_add(i * 33), &frame(i % 30 == 0));
            }
        }
        c
    });
    wait_until("stream listed", Duration::from_secs(10), || {
        server.stream("live", "wrap").is_some()
    });
    let media = flv_media(server.http, "/live/wrap.flv", 100, Duration::from_secs(30))
        .await
        .expect("viewer");
    let publisher = publisher.join().unwrap();
    let ts: Vec<u32> = media
        .iter()
        .filter(|m| m.body.get(1) == Some(&1))
        .map(|m| m.timestamp)
        .collect();
    assert!(ts.len() >= 95, "got {} frames", ts.len());
    for w in ts.windows(2) {
        assert!(
            w[1] > w[0],
            "timestamps went back or stalled: {} then {}",
            w[0],
            w[1]
        );
        assert!(
            w[1] - w[0] <= 100,
            "a jump of {} ms where frames are 33 ms apart",
            w[1] - w[0]
        );
    }
    drop(publisher);
}
