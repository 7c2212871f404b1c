//! Done-when 1: `onair push` writes FLV files that ffprobe reads and ffmpeg decodes without
//! error: H.264 at the asked size, frame rate and keyframe interval, AAC at the asked rate
//! and channels, audio and video timestamps within 50 ms of each other over 60 s. Also the
//! raw file sources (Y4M, WAV) encoded by us, and the processing options end to end.

use crate::common;
use crate::pusher_util;

use common::{decode_mono_48k, require, TempDir};
use pusher_util::*;

#[test]
fn sixty_seconds_of_test_source_to_flv() {
    let dir = TempDir::new("onair-push-file");
    let out = dir.path.join("a.flv");
    let out = out.to_str().expect("utf-8 temp path");
    push_to_end(&[
        out,
        "--fast",
        "--duration",
        "60",
        "--size",
        "640x360",
        "--fps",
        "30",
        "--keyint",
        "2",
        "--sample-rate",
        "44100",
        "--channels",
        "2",
    ]);
    let pk = check_media(
        out,
        Expect {
            width: 640,
            height: 360,
            fps: 30.0,
            keyint_s: 2.0,
            sample_rate: 44_100,
            channels: 2,
            min_seconds: 59.9,
        },
    );
    assert_eq!(pk.iter().filter(|p| p.video).count(), 1800);
    assert_eq!(pk.iter().filter(|p| p.video && p.key).count(), 30);
}

#[test]
fn other_size_rate_and_channels_with_processing() {
    let dir = TempDir::new("onair-push-file");
    let out = dir.path.join("b.flv");
    let out = out.to_str().expect("utf-8 temp path");
    push_to_end(&[
        out,
        "--fast",
        "--duration",
        "6",
        "--size",
        "320x240",
        "--fps",
        "25",
        "--keyint",
        "1",
        "--sample-rate",
        "48000",
        "--channels",
        "1",
        "--overlay",
        "clock",
        "--gain",
        "-6",
        "--denoise",
    ]);
    check_media(
        out,
        Expect {
            width: 320,
            height: 240,
            fps: 25.0,
            keyint_s: 1.0,
            sample_rate: 48_000,
            channels: 1,
            min_seconds: 5.9,
        },
    );
}

#[test]
fn y4m_and_wav_sources_are_encoded() {
    require("ffmpeg");
    let dir = TempDir::new("onair-push-file");
    let y4m = dir.path.join("in.y4m");
    let wav = dir.path.join("in.wav");
    let out = dir.path.join("c.flv");
    let ok = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=352x288:rate=25:duration=4",
        ])
        .args(["-pix_fmt", "yuv420p"])
        .arg(&y4m)
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100:duration=4",
        ])
        .args(["-ac", "2", "-c:a", "pcm_s16le"])
        .arg(&wav)
        .status()
        .expect("run ffmpeg");
    assert!(ok.success());
    let video = format!("y4m:{}", y4m.display());
    let audio = format!("wav:{}", wav.display());
    let out = out.to_str().expect("utf-8 temp path");
    // The WAV (44.1 kHz stereo) is converted to 48 kHz mono; the Y4M's 25 fps is kept.
    push_to_end(&[
        out,
        "--fast",
        "--video",
        &video,
        "--audio",
        &audio,
        "--sample-rate",
        "48000",
        "--channels",
        "1",
        "--keyint",
        "2",
    ]);
    check_media(
        out,
        Expect {
            width: 352,
            height: 288,
            fps: 25.0,
            keyint_s: 2.0,
            sample_rate: 48_000,
            channels: 1,
            min_seconds: 3.9,
        },
    );
}

/// Issue 18: the pusher's H.264 says in its SPS how its pixels are to be read (BT.601,
/// SMPTE 170M, limited range: what its RGB to YUV conversion writes), so ffprobe, and a
/// browser, need not guess; and the stream still decodes cleanly.
#[test]
fn h264_signals_bt601_limited_range() {
    let dir = TempDir::new("onair-push-file");
    let out = dir.path.join("colour.flv");
    let out = out.to_str().expect("utf-8 temp path");
    push_to_end(&[out, "--fast", "--duration", "2", "--size", "640x360"]);
    let st = common::streams(out);
    let v = st
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap_or_else(|| panic!("no video stream in {out}: {st:?}"));
    for (field, want) in [
        ("color_range", "tv"),
        ("color_space", "smpte170m"),
        ("color_primaries", "smpte170m"),
        ("color_transfer", "smpte170m"),
    ] {
        assert_eq!(v[field], want, "{field} of the pusher's H.264: {v}");
    }
    let errors = decode_errors(out);
    assert!(errors.is_empty(), "decode errors: {errors}");
}

/// Issue 16, done-when 5 end to end: `--voice pitch:12` on the test source's 1 kHz tone,
/// read back by ffmpeg, peaks at 2 kHz (±2 %).
#[test]
fn voice_pitch_up_an_octave_doubles_the_test_tone() {
    use onair_pusher::process::audio::tone_power;
    let dir = TempDir::new("onair-push-voice");
    let out = dir.path.join("v.flv");
    let out = out.to_str().expect("utf-8 temp path");
    push_to_end(&[
        out,
        "--fast",
        "--duration",
        "3",
        "--size",
        "160x120",
        "--channels",
        "1",
        "--voice",
        "pitch:12",
    ]);
    let samples = decode_mono_48k(out);
    // The last 2 s: past the encoder's start and the shifter's first window.
    let steady = &samples[samples.len().saturating_sub(96_000)..];
    let (mut best, mut best_power) = (0.0, 0.0);
    let mut f = 300.0;
    while f <= 3000.0 {
        let p = tone_power(steady, 48_000, f);
        if p > best_power {
            (best, best_power) = (f, p);
        }
        f += 2.0;
    }
    assert!(
        (best - 2000.0f64).abs() <= 40.0,
        "the pitched tone peaks at {best} Hz, expected 2000"
    );
    assert!(best_power > 10.0 * tone_power(steady, 48_000, 1000.0));
}
