//! Done-when 3: an MP4 made by ffmpeg (x264 with B-frames, AAC) is pushed from file to our
//! server without re-encoding and read back over RTMP with every video and audio payload
//! bit-identical to the source's (ffmpeg's `framemd5` of both, stream copy). Also FLV
//! files as a source, and `--loop` continuing timestamps.

use crate::common;
use crate::pusher_util;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use pusher_util::*;

/// (stream index, size, md5) of every packet, stream copy, from ffmpeg's framemd5.
fn packet_md5s(input: &Path, stream: &str) -> Vec<String> {
    require("ffmpeg");
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(input)
        .args(["-map", stream, "-c", "copy", "-f", "framemd5", "-"])
        .output()
        .expect("run ffmpeg framemd5");
    assert!(out.status.success(), "framemd5 of {}", input.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            // stream, dts, pts, duration, size, md5
            (f.len() >= 6).then(|| format!("{}:{}", f[4], f[5]))
        })
        .collect()
}

/// Makes an MP4 with ffmpeg: testsrc2 + sine, x264 (B-frames on) with 1 s GOPs, AAC.
fn make_mp4(path: &Path, secs: u32) {
    require("ffmpeg");
    let ok = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size=640x360:rate=30:duration={secs}"),
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency=1000:sample_rate=44100:duration={secs}"),
        ])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "30", "-pix_fmt", "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "96k"])
        .arg(path)
        .status()
        .expect("run ffmpeg");
    assert!(ok.success(), "ffmpeg could not make the MP4");
}

/// `part` appears in `whole` as one contiguous run.
fn contiguous_in(part: &[String], whole: &[String]) -> bool {
    !part.is_empty() && whole.windows(part.len()).any(|w| w == part)
}

#[test]
fn mp4_pushed_from_file_reads_back_bit_identical() {
    let dir = TempDir::new("onair-push-pass");
    let src = dir.path.join("src.mp4");
    make_mp4(&src, 8);
    let src_video = packet_md5s(&src, "0:v");
    let src_audio = packet_md5s(&src, "0:a");
    assert_eq!(src_video.len(), 240);

    // Viewers are closed soon after the publisher ends, so the recording ends by itself.
    let server = ServerProc::start("[hub]\npublisher_grace_ms = 500\n");
    let url = server.rtmp_url("live/file");
    let video = format!("file:{}", src.display());
    let mut push = PushProc(
        push_cmd(&[&url, "--video", &video, "--quiet"])
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn onair push"),
    );
    server.wait_live("live", "file");
    let rec = dir.path.join("rec.flv");
    let mut ffmpeg = Proc(
        Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-v",
                "error",
                "-rw_timeout",
                "15000000",
                "-i",
                &url,
            ])
            .args(["-c", "copy", "-f", "flv", "-y"])
            .arg(&rec)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn ffmpeg"),
    );
    let mut pushed_ok = false;
    wait_until(
        "the push to end with the file",
        Duration::from_secs(30),
        || match push.0.try_wait() {
            Ok(Some(s)) => {
                pushed_ok = s.success();
                true
            }
            _ => false,
        },
    );
    assert!(pushed_ok, "onair push of the MP4 failed");
    wait_until("the recording to end", Duration::from_secs(30), || {
        matches!(ffmpeg.0.try_wait(), Ok(Some(_)))
    });

    let got_video = packet_md5s(&rec, "0:v");
    let got_audio = packet_md5s(&rec, "0:a");
    // The recording starts at a keyframe of the GOP cache and runs to the end of the file.
    assert!(
        got_video.len() >= 150,
        "only {} video packets read back",
        got_video.len()
    );
    assert!(
        contiguous_in(&got_video, &src_video),
        "video payloads differ from the source's ({} read back)",
        got_video.len()
    );
    assert_eq!(
        got_video.last(),
        src_video.last(),
        "the last frame is missing"
    );
    assert!(
        got_audio.len() >= 200,
        "only {} audio packets",
        got_audio.len()
    );
    assert!(
        contiguous_in(&got_audio, &src_audio),
        "audio payloads differ from the source's"
    );
}

#[test]
fn flv_source_and_loop_keep_payloads_and_continue_timestamps() {
    require("ffmpeg");
    let dir = TempDir::new("onair-push-pass");
    let src = dir.path.join("src.mp4");
    make_mp4(&src, 2);
    // The same media as FLV, made by ffmpeg (stream copy).
    let src_flv = dir.path.join("src.flv");
    let ok = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-y", "-i"])
        .arg(&src)
        .args(["-c", "copy"])
        .arg(&src_flv)
        .status()
        .expect("run ffmpeg");
    assert!(ok.success());
    let src_video = packet_md5s(&src, "0:v");

    for input in [&src, &src_flv] {
        let out = dir.path.join("looped.flv");
        let video = format!("file:{}", input.display());
        let out_s = out.to_str().expect("utf-8 path");
        push_to_end(&[
            out_s,
            "--video",
            &video,
            "--loop",
            "--duration",
            "5",
            "--fast",
        ]);
        let got = packet_md5s(&out, "0:v");
        // 5 s of a 2 s file: two whole passes and a half, payloads unchanged.
        let want: Vec<String> = src_video.iter().cycle().take(got.len()).cloned().collect();
        assert_eq!(got, want, "{}: looped payloads", input.display());
        assert!((148..=152).contains(&got.len()), "{} packets", got.len());
        // Timestamps continue across the loop: decode times rise by one frame each.
        let pk = packets(out_s);
        let v: Vec<f64> = pk.iter().filter(|p| p.video).map(|p| p.pts).collect();
        assert!(
            v.last().copied().unwrap_or(0.0) > 4.8,
            "{}: ends at {:?}",
            input.display(),
            v.last()
        );
        let err = decode_errors(out_s);
        assert!(err.trim().is_empty(), "{}: {err}", input.display());
    }
}

/// Damaged MP4 headers end the push with an error: never a crash, never a hang (the mp4
/// crate loops forever on a box of size 0 inside a container; `mp4_check` refuses those).
#[test]
fn malformed_mp4_is_an_error_not_a_crash() {
    use onair_pusher::source::file_mp4::Mp4Source;
    use onair_pusher::source::EncodedSource;
    require("ffmpeg");
    let dir = TempDir::new("onair-push-pass");
    let src = dir.path.join("small.mp4");
    let ok = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=160x120:rate=10:duration=1")
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=duration=1",
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
        ])
        .args(["-movflags", "+faststart"])
        .arg(&src)
        .status()
        .expect("run ffmpeg");
    assert!(ok.success());
    let good = std::fs::read(&src).expect("read mp4");
    // The boxes that describe the file come first (faststart): mutate bytes there.
    let head = good.len().min(4096);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let bad = dir.path.join("bad.mp4");
    let mut opened = 0;
    for _ in 0..300 {
        let mut m = good.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % head as u64) as usize;
            m[i] = next() as u8;
        }
        if next() % 8 == 0 {
            m.truncate((next() % m.len() as u64) as usize);
        }
        std::fs::write(&bad, &m).expect("write");
        // Must return (an error or frames), never take the process down.
        if let Ok(mut s) = Mp4Source::open(&bad) {
            opened += 1;
            for _ in 0..64 {
                if !matches!(s.next_frame(), Ok(Some(_))) {
                    break;
                }
            }
        }
    }
    assert!(
        opened > 0,
        "no mutant opened: the mutations hit only the file type?"
    );
}
