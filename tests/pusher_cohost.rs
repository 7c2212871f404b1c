//! Issue 16, done-when 1 (co-hosting end to end): a guest (Debian's ffmpeg: a red picture
//! and a 440 Hz tone, H.264 + AAC) publishes to onair; `onair push --guest` (test pattern,
//! 1 kHz tone) pulls it over HTTP-FLV, puts it in a picture-in-picture tile, mixes its audio
//! and publishes the co-hosted stream to onair. ffmpeg records that stream while the guest
//! leaves and comes back. Checked in the recording: the tile is red while the guest is
//! there and the grey offline tile while it is away, then red again; both tones are in the
//! mix while the guest is there (and the 440 Hz fades out while it is away); the host's
//! video timestamps never skip more than 2 frame intervals.

use crate::common;
use crate::pusher_util;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use onair_pusher::process::audio::tone_power;
use pusher_util::*;

/// The guest tile of `pip:br:0.25` at 640x360 is 160x90 at (468, 264); the patch read back
/// is 16x8 pixels just inside its top-left corner (away from the offline text).
const PATCH: (usize, usize, usize, usize) = (16, 8, 472, 268);

fn guest(url: &str) -> Child {
    require("ffmpeg");
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "color=c=red:size=320x180:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-f",
            "flv",
            url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the guest's ffmpeg")
}

/// What the tile patch of each video frame shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tile {
    Guest,
    Offline,
    Other,
}

fn tiles(file: &Path) -> Vec<Tile> {
    let (w, h, x, y) = PATCH;
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(file)
        .args([
            "-an",
            "-vf",
            &format!("crop={w}:{h}:{x}:{y}"),
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-f", "rawvideo", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frame = w * h * 3 / 2;
    out.stdout
        .chunks_exact(frame)
        .map(|f| {
            let mean = |p: &[u8]| p.iter().map(|&v| v as f64).sum::<f64>() / p.len() as f64;
            let (yp, rest) = f.split_at(w * h);
            let (up, vp) = rest.split_at(w * h / 4);
            let (y, u, v) = (mean(yp), mean(up), mean(vp));
            // Red in BT.601 limited range is Y 81, U 90, V 240; the tile is Y 48, neutral.
            if (y - 81.0).abs() < 15.0 && v > 210.0 && u < 110.0 {
                Tile::Guest
            } else if (y - 48.0).abs() < 10.0 && (u - 128.0).abs() < 8.0 && (v - 128.0).abs() < 8.0
            {
                Tile::Offline
            } else {
                Tile::Other
            }
        })
        .collect()
}

/// Mono 48 kHz PCM of the recording from `from` seconds for `len` seconds.
fn pcm(file: &Path, from: f64, len: f64) -> Vec<i16> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(file)
        .args([
            "-vn",
            "-ss",
            &format!("{from:.3}"),
            "-t",
            &format!("{len:.3}"),
        ])
        .args(["-ac", "1", "-ar", "48000", "-f", "s16le", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// (power at 440 Hz, at 1 kHz, at 700 Hz as the floor between them).
fn tones(samples: &[i16]) -> (f64, f64, f64) {
    (
        tone_power(samples, 48_000, 440.0),
        tone_power(samples, 48_000, 1000.0),
        tone_power(samples, 48_000, 700.0),
    )
}

/// The runs of one kind of tile: (kind, first frame, frames).
fn runs(t: &[Tile]) -> Vec<(Tile, usize, usize)> {
    let mut out: Vec<(Tile, usize, usize)> = Vec::new();
    for (i, &k) in t.iter().enumerate() {
        match out.last_mut() {
            Some((last, _, n)) if *last == k => *n += 1,
            _ => out.push((k, i, 1)),
        }
    }
    out
}

#[test]
fn cohosted_stream_has_the_guest_tile_both_tones_and_survives_the_guest_leaving() {
    let server = ServerProc::start("[hub]\npublisher_grace_ms = 0\n");
    let guest_rtmp = server.rtmp_url("live/guest");
    let mut g = Proc(guest(&guest_rtmp));
    server.wait_live("live", "guest");

    let guest_http = server.http_url("live/guest.flv");
    let host_url = server.rtmp_url("live/host");
    let mut host = push_cmd(&[
        &host_url,
        "--size",
        "640x360",
        "--bitrate",
        "1M",
        "--guest",
        &guest_http,
        "--guest-layout",
        "pip:br:0.25",
        "--duration",
        "60",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn onair push");
    let status = StatusLines::collect(&mut host);
    let _host = PushProc(host);
    server.wait_live("live", "host");
    let online = |s: &StatusLines| {
        s.0.lock()
            .unwrap()
            .last()
            .map(|l| l.contains("guest=online"))
    };
    wait_until(
        "the guest online in the host's status",
        Duration::from_secs(15),
        || online(&status) == Some(true),
    );
    assert!(
        status.last("guest_delay").is_some(),
        "the status line shows the guest's delay"
    );

    // Record the co-hosted stream while the guest stays 3 s, is away about 3 s, comes back.
    let dir = TempDir::new("onair-cohost");
    let rec = dir.path.join("host.flv");
    let mut recorder = Proc(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-y", "-i"])
            .arg(server.http_url("live/host.flv"))
            .args(["-t", "11", "-c", "copy"])
            .arg(&rec)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn the recorder"),
    );
    // The phases are the scenario's script (how long the guest stays), not synchronization:
    // every change of state below is waited for as a condition.
    std::thread::sleep(Duration::from_secs(3));
    let _ = g.0.kill();
    let _ = g.0.wait();
    wait_until(
        "the guest offline in the host's status",
        Duration::from_secs(10),
        || online(&status) == Some(false),
    );
    std::thread::sleep(Duration::from_secs(2));
    let _g = Proc(guest(&guest_rtmp));
    wait_until("the guest back online", Duration::from_secs(15), || {
        online(&status) == Some(true)
    });
    wait_until("the recording to end", Duration::from_secs(30), || {
        matches!(recorder.0.try_wait(), Ok(Some(_)))
    });

    // Pictures: guest, then offline, then guest again.
    let t = tiles(&rec);
    let r = runs(&t);
    let long = |k: Tile| {
        r.iter()
            .filter(|(kind, _, n)| *kind == k && *n >= 15)
            .collect::<Vec<_>>()
    };
    let (guests, offline) = (long(Tile::Guest), long(Tile::Offline));
    assert!(
        guests.len() >= 2 && !offline.is_empty(),
        "tile runs (kind, first frame, frames): {r:?}"
    );
    eprintln!("tile runs (kind, first frame, frames): {r:?}");
    let first = guests[0];
    assert!(
        offline[0].1 > first.1 && guests[1].1 > offline[0].1,
        "order of the runs: {r:?}"
    );

    // Timestamps: regular through the guest leaving and returning.
    let pts: Vec<f64> = packets(rec.to_str().expect("utf-8 path"))
        .into_iter()
        .filter(|p| p.video)
        .map(|p| p.pts)
        .collect();
    assert!(pts.len() >= 250, "{} video frames in 11 s", pts.len());
    let worst = pts.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(
        worst <= 2.0 / 30.0 + 0.002,
        "a gap of {worst:.3} s between host frames"
    );

    // Audio: both tones while the guest is there; its tone fades out while it is away.
    let at = |frame: usize| frame as f64 / 30.0;
    let (g440, g1k, floor) = tones(&pcm(&rec, at(first.1) + 0.3, (at(first.2) - 0.6).min(1.5)));
    assert!(
        g440 > 20.0 * floor && g1k > 20.0 * floor,
        "with the guest: 440 Hz {g440:.1}, 1 kHz {g1k:.1}, floor {floor:.1}"
    );
    eprintln!("with the guest: 440 Hz {g440:.1}, 1 kHz {g1k:.1}, 700 Hz floor {floor:.3}");
    let away = offline[0];
    let (a440, a1k, _) = tones(&pcm(&rec, at(away.1) + 0.5, (at(away.2) - 0.6).max(0.3)));
    assert!(
        a1k > 20.0 * a440,
        "guest away: 440 Hz {a440:.1} should be gone beside 1 kHz {a1k:.1}"
    );
}
