//! Issue 16, done-when 6: `onair push --video-codec vp9|av1` encodes the test pattern with
//! libvpx or rav1e and sends it as Enhanced RTMP / Enhanced FLV. FFmpeg 8 (PyAV, `.venv-av`
//! from `scripts/install-deps.sh`) reads it back as that codec at 640x360 without a decode
//! error: from an FLV file written with `--fast`, and from onair over HTTP-FLV and RTMP
//! (announcing `vp09,av01`) while the push runs in real time.

use crate::common;
use crate::pusher_util;

use std::process::Stdio;

use common::ffmpeg8::{self, peer};
use common::*;
use pusher_util::*;
use serde_json::Value;

fn stream<'a>(v: &'a Value, kind: &str) -> &'a Value {
    v["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["type"] == kind))
        .unwrap_or_else(|| panic!("no {kind} stream in {v}"))
}

/// (`--video-codec`, the decoder FFmpeg 8 names for it).
const CODECS: [(&str, &[&str]); 2] = [
    ("vp9", &["vp9", "libvpx-vp9"]),
    ("av1", &["av1", "libdav1d", "libaom-av1"]),
];

#[test]
fn vp9_and_av1_files_read_back_in_ffmpeg8() {
    let dir = TempDir::new("onair-push-vp9-av1");
    for (codec, names) in CODECS {
        let out = dir.path.join(format!("{codec}.flv"));
        push_to_end(&[
            out.to_str().expect("utf-8 path"),
            "--video-codec",
            codec,
            "--size",
            "640x360",
            "--bitrate",
            "800k",
            "--duration",
            "3",
            "--fast",
        ]);
        let o = peer("probe_file.py")
            .arg(&out)
            .output()
            .expect("run probe_file.py");
        let p = ffmpeg8::report(&o, codec);
        assert!(p["error"].is_null(), "{codec}: {p}");
        assert_eq!(p["decode_errors"], serde_json::json!([]), "{codec}: {p}");
        let v = stream(&p, "video");
        assert!(
            names.contains(&v["codec"].as_str().unwrap_or_default()),
            "{codec}: decoder {}",
            v["codec"]
        );
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(640), Some(360)),
            "{codec}"
        );
        assert_eq!(v["packets"].as_u64(), Some(90), "{codec}: 3 s at 30 fps");
        assert_eq!(
            v["frames"].as_u64(),
            Some(90),
            "{codec}: every frame decoded"
        );
        // A keyframe every 2 s (the default --keyint): frames 0 and 60.
        assert_eq!(v["keyframes"].as_u64(), Some(2), "{codec}: keyframes");
        let a = stream(&p, "audio");
        assert_eq!(a["codec"].as_str(), Some("aac"), "{codec}");
        std::fs::remove_file(&out).ok();
    }
}

#[test]
fn vp9_and_av1_pushed_to_onair_read_back_over_http_flv_and_rtmp() {
    let server = ServerProc::start("");
    for (codec, names) in CODECS {
        let url = server.rtmp_url(&format!("live/{codec}"));
        let _push = PushProc(
            push_cmd(&[
                &url,
                "--video-codec",
                codec,
                "--size",
                "640x360",
                "--bitrate",
                "800k",
                "--threads",
                "0",
                "--duration",
                "40",
                "--quiet",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn onair push"),
        );
        server.wait_live("live", codec);
        let api = server.stream("live", codec).expect("listed");
        assert_eq!(api["video"]["codec"], codec, "{api}");
        for (read_url, fourccs) in [
            (server.http_url(&format!("live/{codec}.flv")), None),
            (url.clone(), Some("vp09,av01")),
        ] {
            let r = ffmpeg8::readback(&read_url, 5, fourccs);
            assert!(r["error"].is_null(), "{read_url}: {r}");
            assert_eq!(r["decode_errors"], serde_json::json!([]), "{read_url}: {r}");
            let v = stream(&r, "video");
            assert!(
                names.contains(&v["codec"].as_str().unwrap_or_default()),
                "{read_url}: decoder {}",
                v["codec"]
            );
            assert_eq!(
                (v["width"].as_u64(), v["height"].as_u64()),
                (Some(640), Some(360)),
                "{read_url}"
            );
            let decoded = r["frames"][v["index"].to_string()].as_u64().unwrap_or(0);
            // The target is 140 of the 150 frames in 5 s (README: measured on a quiet machine);
            // CI asserts a third of it, which only a broken or stalled encoder misses.
            assert!(
                decoded >= 47,
                "{read_url}: {decoded} frames decoded in 5 s: {r}"
            );
            eprintln!("{read_url}: {decoded} {codec} frames decoded in 5 s");
        }
    }
}
