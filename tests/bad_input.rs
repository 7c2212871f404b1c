//! Done-when 5: each kind of bad input gets its error and a closed connection, while a
//! live stream keeps flowing to its viewer and the server keeps running.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::raw_rtmp::{s, RawRtmp};
use common::*;
use rml_amf0::Amf0Value;

const CLOSE_LIMIT: Duration = Duration::from_secs(5);

fn closed(c: &mut RawRtmp, what: &str) {
    if let Err(e) = c.read_until_closed(CLOSE_LIMIT) {
        panic!("{what}: {e}");
    }
}

#[test]
fn bad_inputs_are_refused_and_the_live_stream_is_untouched() {
    let mut server = ServerProc::start(
        "[rtmp]\nhandshake_timeout_ms = 1500\nidle_timeout_ms = 3000\nmax_message_size = 1048576\n",
    );
    let _push = ffmpeg_push(&server.rtmp_url("live/t"));
    server.wait_live("live", "t");
    let viewer = Watcher::start(&server, "/live/t.flv");
    viewer.assert_flowing(0, "start");

    let check = |what: &str, f: &mut dyn FnMut()| viewer.across(what, f);

    check("garbage instead of a handshake", &mut || {
        let mut c = RawRtmp::connect(server.rtmp);
        let mut junk = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        junk.resize(1537, b'x');
        c.write(&junk).unwrap();
        closed(&mut c, "garbage handshake");
    });

    check("a truncated handshake", &mut || {
        let mut c = RawRtmp::connect(server.rtmp);
        c.write(&[3u8; 700]).unwrap();
        closed(&mut c, "truncated handshake");
    });

    check("a client that sends nothing", &mut || {
        let mut c = RawRtmp::connect(server.rtmp);
        closed(&mut c, "silent client");
    });

    check("a client that handshakes then idles", &mut || {
        let mut c = RawRtmp::connect(server.rtmp);
        c.handshake();
        closed(&mut c, "idle after handshake");
    });

    check("an oversized chunk size", &mut || {
        let mut c = RawRtmp::connect(server.rtmp);
        c.handshake();
        c.message(2, 1, 0, 0, &0x7fff_ffffu32.to_be_bytes());
        closed(&mut c, "oversized chunk size");
    });

    check("an oversized message", &mut || {
        let mut c = RawRtmp::connect(server.rtmp);
        c.handshake();
        // fmt 0 header on csid 4 announcing a 16 MiB video message, then a little payload.
        let mut h = vec![0x04, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0];
        h.extend_from_slice(&[0u8; 128]);
        c.write(&h).unwrap();
        closed(&mut c, "oversized message");
    });

    check("an unknown command", &mut || {
        let mut c = RawRtmp::connect(server.rtmp);
        c.handshake();
        c.connect_app("live");
        c.command(
            0,
            vec![s("launchMissiles"), Amf0Value::Number(7.0), Amf0Value::Null],
        );
        closed(&mut c, "unknown command");
        assert!(c.saw("_error"), "unknown command answered with _error");
    });

    check("a malformed AMF command", &mut || {
        let mut c = RawRtmp::connect(server.rtmp);
        c.handshake();
        c.message(3, 20, 0, 0, &[0x02, 0xff, 0xff, b'a']);
        closed(&mut c, "malformed AMF");
    });

    check("deeply nested AMF", &mut || {
        let mut c = RawRtmp::connect(server.rtmp);
        c.handshake();
        let mut p = rml_amf0::serialize(&vec![s("connect"), Amf0Value::Number(1.0)]).unwrap();
        for _ in 0..5000 {
            p.extend_from_slice(&[0x03, 0, 1, b'a']);
        }
        c.message(3, 20, 0, 0, &p);
        closed(&mut c, "deep AMF");
    });

    check("publishing a name already live", &mut || {
        let mut c = RawRtmp::connect(server.rtmp);
        c.handshake();
        c.connect_app("live");
        c.publish("t");
        closed(&mut c, "duplicate publish");
        assert!(
            c.saw("NetStream.Publish.BadName"),
            "duplicate publish gets BadName"
        );
        assert!(
            !c.saw("NetStream.Publish.Start"),
            "no Publish.Start before refusing"
        );
    });

    check("an empty stream key", &mut || {
        let mut c = RawRtmp::connect(server.rtmp);
        c.handshake();
        c.connect_app("live");
        c.publish("");
        closed(&mut c, "empty key");
        assert!(c.saw("NetStream.Publish.BadName"));
    });

    check("playing an unknown stream", &mut || {
        let mut c = RawRtmp::connect(server.rtmp);
        c.handshake();
        c.connect_app("live");
        c.play("nope");
        closed(&mut c, "unknown stream");
        assert!(c.saw("NetStream.Play.StreamNotFound"));
    });

    check("an AC-3 publisher", &mut || {
        let mut c = RawRtmp::connect(server.rtmp);
        c.handshake();
        c.connect_app("live");
        c.publish("ac3");
        // Enhanced RTMP audio: SoundFormat 9, sequence start, FourCC ac-3.
        c.message(6, 8, 1, 0, &[0x90, b'a', b'c', b'-', b'3', 1, 2, 3, 4]);
        closed(&mut c, "ac-3 publisher");
        assert!(c.saw("NetStream.Publish.Start"));
        assert!(
            c.saw("unsupported audio codec ac3"),
            "refusal names the codec"
        );
    });

    check("random bytes to the HTTP port", &mut || {
        let mut h = TcpStream::connect(server.http).unwrap();
        h.write_all(&[0xde, 0xad, 0xbe, 0xef, b'\r', b'\n', b'\r', b'\n'])
            .unwrap();
        h.set_read_timeout(Some(CLOSE_LIMIT)).unwrap();
        let mut resp = Vec::new();
        let _ = h.read_to_end(&mut resp);
        assert!(
            resp.starts_with(b"HTTP/1.1 400"),
            "got {:?}",
            String::from_utf8_lossy(&resp)
        );
    });

    check("an unknown HTTP method", &mut || {
        let mut h = TcpStream::connect(server.http).unwrap();
        h.write_all(b"DELETE /live/t.flv HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        h.set_read_timeout(Some(CLOSE_LIMIT)).unwrap();
        let mut resp = Vec::new();
        let _ = h.read_to_end(&mut resp);
        assert!(
            resp.starts_with(b"HTTP/1.1 405"),
            "got {:?}",
            String::from_utf8_lossy(&resp)
        );
    });

    assert!(server.is_running(), "server survived every bad input");
    let live = server.stream("live", "t").expect("stream listed");
    assert_eq!(live["live"], true);
    assert_eq!(live["viewers"]["flv"], 1);
}

/// The FFmpeg 8 report: a refused publisher saw a connection reset instead of the
/// status, because the server closed with the client's media unread. The client here
/// keeps sending, as an encoder does, and reads only afterwards: it must find the status
/// and then an orderly end of stream.
#[test]
fn a_refused_publisher_reads_the_status_then_an_orderly_close_not_a_reset() {
    let server = ServerProc::start("");
    let mut c = RawRtmp::connect(server.rtmp);
    c.handshake();
    c.connect_app("live");
    c.publish("hevc");
    // Enhanced RTMP HEVC with an unreadable hvcC, then 300 KB of coded frames sent
    // without reading.
    c.message(6, 9, 1, 0, &[0x90, b'h', b'v', b'c', b'1', 1, 2, 3, 4]);
    let mut frame = vec![0x91, b'h', b'v', b'c', b'1', 0, 0, 0];
    frame.resize(4096, 0x42);
    for i in 0..75 {
        c.message(6, 9, 1, i * 33, &frame);
    }
    c.s.set_read_timeout(Some(CLOSE_LIMIT)).unwrap();
    let mut buf = [0u8; 65536];
    let end = loop {
        match c.s.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => c.received.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
    };
    assert!(
        c.saw("NetStream.Publish.Failed") && c.saw("malformed hevc configuration"),
        "the status naming the codec arrives"
    );
    if let Err(e) = end {
        panic!(
            "the connection ended with {e} ({:?}), not an orderly close",
            e.kind()
        );
    }
}

/// Issue 10, done-when 6: bad Enhanced RTMP input. Each publisher is refused with
/// `NetStream.Publish.Failed` saying what was wrong, the server logs it, and another
/// stream's viewer keeps receiving.
#[test]
fn bad_enhanced_rtmp_closes_with_a_status_and_a_log_line() {
    let mut server = ServerProc::start_logged("", "warn");
    let _push = ffmpeg_push(&server.rtmp_url("live/t"));
    server.wait_live("live", "t");
    let viewer = Watcher::start(&server, "/live/t.flv");
    viewer.assert_flowing(0, "start");

    // A real hvcC (FFmpeg 8's, from the eflv test vectors), for the codec change.
    let hvcc = {
        let mut d = onair_shared::flv::FlvDemuxer::new(1 << 20);
        d.push(include_bytes!("../shared/src/eflv/testdata/hevc.flv"));
        let mut r = onair_shared::ingest::TagReader::new();
        let mut found = None;
        while let Ok(Some(ev)) = d.next_event() {
            if let onair_shared::flv::FlvEvent::Tag(t) = ev {
                if t.tag_type == 9 {
                    if let Ok(got) = r.video_tag(0, &t.body) {
                        if let Some(c) = got.config {
                            found = Some(c.record);
                            break;
                        }
                    }
                }
            }
        }
        found.expect("hvcC in the test vector")
    };
    let mut hevc_start = b"\x90hvc1".to_vec();
    hevc_start.extend_from_slice(&hvcc);
    // Legacy H.264 sequence header (avcC with one SPS and PPS).
    let avc_start: &[u8] = &[
        0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 26, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9,
        0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03,
        0xc0, 0xf1, 0x83, 0x19, 0x60, 1, 0, 6, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0,
    ];
    // ManyTracks CodedFrames of hvc1: track 0 declares 64 KiB, 3 bytes follow.
    let truncated_tracks: &[u8] = &[0x96, 0x11, b'h', b'v', b'c', b'1', 0, 0x01, 0, 0, 1, 2, 3];
    // ModEx entries (unknown type 1) chained past the limit.
    let mut modex_loop = vec![0x97];
    for _ in 0..40 {
        modex_loop.extend_from_slice(&[2, 0, 0, 0, 0x17]);
    }
    let cases: Vec<(&str, Vec<Vec<u8>>, &str)> = vec![
        (
            "malformed ex-header",
            vec![vec![0x90, b'h', b'v']],
            "FourCC truncated",
        ),
        (
            "unknown FourCC",
            vec![vec![0x90, b'x', b'v', b'i', b'd', 1, 2]],
            "\"xvid\" is not a codec onair knows",
        ),
        (
            "truncated multitrack sizes",
            vec![truncated_tracks.to_vec()],
            "declares 65536 bytes",
        ),
        (
            "ModEx size loop",
            vec![modex_loop],
            "ModEx entries in one message",
        ),
        (
            "codec change mid-stream",
            vec![avc_start.to_vec(), hevc_start],
            "codec change on Video track 0 from h264 to hevc",
        ),
    ];
    for (i, (what, messages, says)) in cases.into_iter().enumerate() {
        viewer.across(what, &mut || {
            let mut c = RawRtmp::connect(server.rtmp);
            c.handshake();
            c.connect_app("live");
            c.publish(&format!("bad{i}"));
            for (n, m) in messages.iter().enumerate() {
                c.message(6, 9, 1, n as u32 * 33, m);
            }
            closed(&mut c, what);
            assert!(c.saw("NetStream.Publish.Failed"), "{what}: a status");
            assert!(c.saw(says), "{what}: the status says {says:?}");
            wait_until(&format!("{what} in the log"), CLOSE_LIMIT, || {
                server.log().contains(says)
            });
        });
    }
    assert!(server.is_running(), "no panic");
    assert!(!server.log().contains("panicked"), "no panic in the log");
    let live = server.stream("live", "t").expect("stream listed");
    assert_eq!(live["live"], true);
    assert_eq!(live["viewers"]["flv"], 1);
}
