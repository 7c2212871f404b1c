//! Done-when 2: `onair push` publishes to our server; ffmpeg reads the stream back over RTMP
//! and HTTP-FLV with the same checks as the file (size, frame rate, keyframe interval, AAC
//! rate and channels, A/V timestamps within 50 ms over 60 s, clean decode), and a viewer
//! decodes the capture wall clock from the SEI of every frame to find the end-to-end
//! latency on loopback.

use crate::common;
use crate::pusher_util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use onair_bench::http::{head_end, parse_head, ChunkedDecoder};
use onair_shared::avc::split_length_prefixed;
use onair_shared::flv::{FlvDemuxer, FlvEvent, TAG_VIDEO};
use pusher_util::*;

/// Records `secs` of a live URL with ffmpeg (stream copy) into an FLV file.
fn record(url: &str, out: &std::path::Path, secs: u32) -> Proc {
    require("ffmpeg");
    let child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-rw_timeout",
            "15000000",
            "-i",
            url,
        ])
        .args(["-t", &secs.to_string(), "-c", "copy", "-f", "flv", "-y"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn ffmpeg");
    Proc(child)
}

fn wait_exit(p: &mut Proc, what: &str) {
    let mut ok = false;
    wait_until(what, Duration::from_secs(120), || match p.0.try_wait() {
        Ok(Some(s)) => {
            ok = s.success();
            true
        }
        _ => false,
    });
    assert!(ok, "{what} failed");
}

/// Reads HTTP-FLV for `secs` and returns, for each video frame carrying our SEI, how long
/// ago (ms) it was captured when its last byte arrived.
fn sei_latencies(server: &ServerProc, path: &str, secs: u64) -> Vec<f64> {
    let mut s = TcpStream::connect(server.http).expect("connect http");
    s.set_nodelay(true).ok();
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending = Vec::new();
    // None until the response head is in; then the chunked decoder, if the body is chunked.
    let mut framing: Option<Option<ChunkedDecoder>> = None;
    let mut demux = FlvDemuxer::new(8 << 20);
    let mut out = Vec::new();
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let n = s.read(&mut buf).expect("read HTTP-FLV");
        assert!(n > 0, "server closed the HTTP-FLV stream");
        let now_us = onair_pusher::clock::wall_now_us();
        let mut body = Vec::new();
        match &mut framing {
            Some(Some(d)) => d
                .feed(&buf[..n], |b| body.extend_from_slice(b))
                .expect("chunked"),
            Some(None) => body.extend_from_slice(&buf[..n]),
            None => {
                pending.extend_from_slice(&buf[..n]);
                if let Some(h) = head_end(&pending) {
                    let head = parse_head(&pending[..h]).expect("response head");
                    assert_eq!(head.status, 200);
                    if head.chunked {
                        let mut d = ChunkedDecoder::new();
                        d.feed(&pending[h..], |b| body.extend_from_slice(b))
                            .expect("chunked");
                        framing = Some(Some(d));
                    } else {
                        body.extend_from_slice(&pending[h..]);
                        framing = Some(None);
                    }
                }
            }
        }
        demux.push(&body);
        while let Some(ev) = demux.next_event().expect("FLV from the server") {
            let FlvEvent::Tag(tag) = ev else { continue };
            if tag.tag_type != TAG_VIDEO || tag.body.len() < 5 || tag.body[1] != 1 {
                continue;
            }
            let nals = split_length_prefixed(&tag.body[5..], 4).expect("length-prefixed NALs");
            let clock = nals.iter().find_map(|n| onair_pusher::mux::sei::parse(n));
            let clock = clock.expect("every video frame carries the clock SEI");
            out.push((now_us as f64 - clock.wallclock_us as f64) / 1000.0);
        }
    }
    out
}

#[test]
fn pushed_stream_reads_back_over_rtmp_and_http_flv_with_sei_latency() {
    require("ffmpeg");
    let server = ServerProc::start("");
    let url = server.rtmp_url("live/p");
    let _push = PushProc(
        push_cmd(&[
            &url,
            "--size",
            "640x360",
            "--fps",
            "30",
            "--keyint",
            "2",
            "--bitrate",
            "1200k",
            "--sample-rate",
            "44100",
            "--channels",
            "2",
            "--duration",
            "60",
            "--quiet",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn onair push"),
    );
    server.wait_live("live", "p");

    let dir = TempDir::new("onair-push-rtmp");
    let (rec_rtmp, rec_flv) = (dir.path.join("rtmp.flv"), dir.path.join("http.flv"));
    // 60 s over each protocol at once, as the file test checks 60 s.
    let mut r1 = record(&url, &rec_rtmp, 61);
    let mut r2 = record(&server.http_url("live/p.flv"), &rec_flv, 61);

    // Meanwhile: the SEI clock of every live frame a viewer gets.
    let mut lat = sei_latencies(&server, "/live/p.flv", 10);
    assert!(lat.len() > 200, "only {} frames with a clock", lat.len());
    // The first frames are the GOP cache (old by design): judge the live ones after it.
    let live = lat.split_off(lat.len() / 2);
    let mut sorted = live.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let p95 = sorted[sorted.len() * 95 / 100];
    eprintln!(
        "SEI end-to-end latency over {} frames: median {median:.1} ms, p95 {p95:.1} ms, max {:.1} ms",
        sorted.len(),
        sorted[sorted.len() - 1]
    );
    assert!(median >= 0.0, "clock from the future: {median} ms");
    assert!(median < 500.0, "median end-to-end latency {median:.1} ms");

    wait_exit(&mut r1, "ffmpeg RTMP recording");
    wait_exit(&mut r2, "ffmpeg HTTP-FLV recording");
    let expect = Expect {
        width: 640,
        height: 360,
        fps: 30.0,
        keyint_s: 2.0,
        sample_rate: 44_100,
        channels: 2,
        min_seconds: 59.0,
    };
    for rec in [&rec_rtmp, &rec_flv] {
        let pk = check_media(rec.to_str().expect("utf-8 path"), expect);
        assert!(pk[0].video || pk.iter().any(|p| p.video && p.key));
    }
}
