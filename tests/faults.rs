//! Issue 6 fault tests: resets mid-frame, floods of silent connections, random bytes on
//! both ports. The server must shed each without harm to a live stream and its viewer.

use crate::common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::raw_rtmp::RawRtmp;
use common::*;
use socket2::SockRef;

/// Closes with RST instead of FIN.
fn reset(s: TcpStream) {
    SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
    drop(s);
}

fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn resets_floods_and_noise_leave_the_stream_flowing() {
    let mut server = ServerProc::start(
        "[rtmp]\nhandshake_timeout_ms = 2000\n[http]\nheader_read_timeout_ms = 2000\n",
    );
    let _push = ffmpeg_push(&server.rtmp_url("live/f"));
    server.wait_live("live", "f");
    let viewer = Watcher::start(&server, "/live/f.flv");
    viewer.assert_flowing(0, "start");
    let check = |what: &str, f: &mut dyn FnMut()| viewer.across(what, f);

    check("a publisher reset in the middle of a frame", &mut || {
        let mut c = RawRtmp::connect(server.rtmp);
        c.handshake();
        c.connect_app("live");
        c.publish("r");
        // AVC sequence header, then the first 1000 bytes of a 50 kB keyframe.
        let mut seq = vec![
            0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 2,
            0x68, 0xeb,
        ];
        seq.truncate(22);
        c.message(6, 9, 1, 0, &seq);
        wait_until("r is live", Duration::from_secs(5), || {
            server.stream("live", "r").is_some()
        });
        let mut key = vec![0x17, 1, 0, 0, 0];
        key.resize(50_000, 0xab);
        let mut chunks = bytes::BytesMut::new();
        onair_server::rtmp::chunk::encode_message(&mut chunks, 6, 9, 1, 40, &key, 128);
        c.write(&chunks[..1000]).unwrap();
        reset(c.s);
        wait_until("reset publisher noticed", Duration::from_secs(10), || {
            server
                .stream("live", "r")
                .is_none_or(|s| s["live"] == false)
        });
    });

    check("viewers reset mid-stream", &mut || {
        for _ in 0..5 {
            let mut s = TcpStream::connect(server.http).unwrap();
            s.write_all(b"GET /live/f.flv HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            std::thread::sleep(Duration::from_millis(100));
            reset(s);
            let mut r = RawRtmp::connect(server.rtmp);
            r.handshake();
            r.connect_app("live");
            r.play("f");
            std::thread::sleep(Duration::from_millis(100));
            reset(r.s);
        }
        wait_until("reset viewers dropped", Duration::from_secs(10), || {
            server
                .stream("live", "f")
                .is_some_and(|s| s["viewers"]["total"] == 1)
        });
    });

    check("a flood of connections that never handshake", &mut || {
        let flood: Vec<TcpStream> = (0..300)
            .filter_map(|i| {
                TcpStream::connect(if i % 2 == 0 { server.rtmp } else { server.http }).ok()
            })
            .collect();
        assert!(flood.len() >= 290, "flood connected {}", flood.len());
        // New viewers still get in while the flood holds its sockets.
        let during = Watcher::start(&server, "/live/f.flv");
        during.assert_flowing(0, "joining during the flood");
        // The server closes every silent socket after its timeout.
        for s in &flood {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        }
        let open = flood
            .into_iter()
            .filter(|s| {
                let mut b = [0u8; 16];
                !matches!(std::io::Read::read(&mut &*s, &mut b), Ok(0) | Err(_))
            })
            .count();
        assert_eq!(open, 0, "silent connections left open");
    });

    check("random bytes on both ports", &mut || {
        let mut handles = Vec::new();
        for i in 0..40u64 {
            let addr = if i % 2 == 0 { server.rtmp } else { server.http };
            handles.push(std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                // The server may close before all is sent: a failed write is fine.
                let _ = s.write_all(&random_bytes(i + 1, 64 * 1024));
                let mut sink = Vec::new();
                let _ = std::io::Read::read_to_end(&mut s, &mut sink);
            }));
        }
        for h in handles {
            h.join().expect("noise client finished (server closed it)");
        }
    });

    assert!(server.is_running(), "server survived every fault");
    assert_eq!(server.stream("live", "f").unwrap()["live"], true);
}
