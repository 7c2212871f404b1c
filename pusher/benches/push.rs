//! Pusher benchmark (Done-when 6): H.264 encode speed of openh264 on one thread at 640x360,
//! 1280x720 and 1920x1080, next to ffmpeg's libx264 on one thread as a peer measured in the
//! same run on the same frames; VP9 (libvpx) and AV1 (rav1e) at 640x360 and 1280x720 on one
//! thread and all threads; the beauty filter's cost at 720p; and the CPU share of `onair push` streaming 720p30 in real
//! time to `onair serve` on loopback.
//!
//! `cargo build --release && cargo bench -p onair-pusher --bench push`
//! (`ONAIR_BIN` overrides the `onair` binary; `PUSH_BENCH_SECS` the real-time push length.)

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use onair_pusher::encode::h264::{H264Encoder, H264Settings};
use onair_pusher::encode::video::{VideoCodecChoice, VideoEncoder, VideoSettings};
use onair_pusher::media::VideoFrame;
use onair_pusher::media::I420;
use onair_pusher::process::beauty::Beauty;
use onair_pusher::process::voice::{Voice, VoiceEffect};
use onair_pusher::source::raw::{RawVideo, Y4mVideo};

const FRAMES: u64 = 300;
const SOURCE_FRAMES: usize = 60;
const SIZES: [(usize, usize, u32); 3] = [
    (640, 360, 1_000_000),
    (1280, 720, 2_500_000),
    (1920, 1080, 5_000_000),
];

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// ffmpeg's testsrc2 as a Y4M file of `SOURCE_FRAMES` frames.
fn make_source(dir: &Path, w: usize, h: usize) -> Option<PathBuf> {
    let path = dir.join(format!("src-{w}x{h}.y4m"));
    let ok = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={w}x{h}:rate=30"))
        .args([
            "-frames:v",
            &SOURCE_FRAMES.to_string(),
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&path)
        .status()
        .ok()?
        .success();
    ok.then_some(path)
}

fn load(path: &Path) -> Vec<I420> {
    let mut y = Y4mVideo::open(path, false).expect("open y4m");
    let mut frames = Vec::new();
    while let Some(f) = y.next(0, 0).expect("read y4m") {
        frames.push(f);
    }
    frames
}

fn openh264_fps(frames: &[I420], bitrate: u32) -> f64 {
    let mut enc = H264Encoder::new(H264Settings {
        fps: 30.0,
        bitrate,
        keyint_frames: 60,
        threads: 1,
    })
    .expect("encoder");
    let start = Instant::now();
    for i in 0..FRAMES {
        let pic = &frames[i as usize % frames.len()];
        enc.encode(pic, i * 33).expect("encode");
    }
    FRAMES as f64 / start.elapsed().as_secs_f64()
}

/// Frames per second of our VP9 (libvpx) or AV1 (rav1e) encoder over `n` frames.
fn codec_fps(codec: VideoCodecChoice, frames: &[I420], bitrate: u32, threads: u16, n: u64) -> f64 {
    let (width, height) = (frames[0].width, frames[0].height);
    let mut enc = VideoEncoder::new(VideoSettings {
        codec,
        width,
        height,
        fps: 30.0,
        bitrate,
        keyint_frames: 60,
        threads,
    })
    .expect("encoder");
    let start = Instant::now();
    for i in 0..n {
        let f = VideoFrame {
            picture: frames[i as usize % frames.len()].clone(),
            pts_ms: i * 33,
            wallclock_us: 0,
            index: i,
        };
        enc.encode(&f).expect("encode");
    }
    enc.flush().expect("flush");
    n as f64 / start.elapsed().as_secs_f64()
}

/// Milliseconds per frame of the beauty filter at strength 1.
fn beauty_ms(frames: &[I420]) -> f64 {
    let mut b = Beauty::new(1.0);
    let start = Instant::now();
    for f in frames {
        let mut p = f.clone();
        b.apply(&mut p);
    }
    start.elapsed().as_secs_f64() * 1000.0 / frames.len() as f64
}

/// CPU share of one core that `effect` takes on 48 kHz stereo in real time: 20 s of a
/// tone through it, in the pipeline's 10 ms blocks.
fn voice_share(effect: VoiceEffect) -> f64 {
    let seconds = 20;
    let mut v = Voice::new(effect, 48_000, 2);
    let mut block: Vec<i16> = (0..960)
        .map(|i| ((i as f32 * 0.13).sin() * 8000.0) as i16)
        .collect();
    let t0 = Instant::now();
    for _ in 0..seconds * 100 {
        v.process(&mut block);
        std::hint::black_box(&block);
    }
    t0.elapsed().as_secs_f64() / seconds as f64
}

fn x264_fps(src: &Path, preset: &str, bitrate: u32) -> Option<f64> {
    let loops = (FRAMES as usize).div_ceil(SOURCE_FRAMES);
    let start = Instant::now();
    let ok = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-threads",
            "1",
            "-stream_loop",
            &loops.to_string(),
            "-i",
        ])
        .arg(src)
        .args([
            "-frames:v",
            &FRAMES.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            preset,
            "-tune",
            "zerolatency",
        ])
        .args([
            "-threads",
            "1",
            "-b:v",
            &bitrate.to_string(),
            "-g",
            "60",
            "-f",
            "null",
            "-",
        ])
        .status()
        .ok()?
        .success();
    ok.then(|| FRAMES as f64 / start.elapsed().as_secs_f64())
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the ")" that closes the command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn onair_bin() -> PathBuf {
    std::env::var_os("ONAIR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/onair"))
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU share (1.0 = one core) of `onair push` at 720p30 in real time, after a warm-up.
fn push_cpu_share(secs: u64) -> anyhow::Result<(f64, f64)> {
    use std::io::BufRead;
    let bin = onair_bin();
    if !bin.exists() {
        anyhow::bail!("{} not built (cargo build --release)", bin.display());
    }
    let mut serve = Command::new(&bin)
        .args([
            "serve",
            "--rtmp-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(serve.stdout.take().context("no stdout")?).read_line(&mut line)?;
    let serve = Kill(serve);
    let rtmp = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rtmp="))
        .context("no rtmp= line")?
        .to_string();
    let push = Kill(
        Command::new(&bin)
            .args([
                "push",
                &format!("rtmp://{rtmp}/live/bench"),
                "--size",
                "1280x720",
                "--fps",
                "30",
            ])
            .args([
                "--bitrate",
                "2500k",
                "--quiet",
                "--duration",
                &(secs + 10).to_string(),
            ])
            .env("RUST_LOG", "warn")
            .spawn()?,
    );
    let (pid, spid) = (push.0.id(), serve.0.id());
    std::thread::sleep(Duration::from_secs(4));
    let (c0, s0, t0) = (
        cpu_seconds(pid).context("no /proc")?,
        cpu_seconds(spid).context("no /proc")?,
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(secs));
    let (c1, s1) = (
        cpu_seconds(pid).context("push exited early")?,
        cpu_seconds(spid).context("server exited")?,
    );
    let wall = t0.elapsed().as_secs_f64();
    Ok(((c1 - c0) / wall, (s1 - s0) / wall))
}

fn main() {
    let mut report = String::new();
    let ffmpeg = have("ffmpeg");
    let dir = std::env::temp_dir().join(format!("onair-push-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    report.push_str("H.264 encode, one thread, 300 frames of testsrc2 (same frames for both)\n");
    report.push_str("size       openh264 fps  x264 veryfast fps  x264 ultrafast fps\n");
    let mut codec_rows = String::from(
        "\nVP9 (libvpx, realtime cpu-used 8) and AV1 (rav1e speed 10), fps on the same frames\n\
         size       VP9 1 thr VP9 all   AV1 1 thr AV1 all\n",
    );
    let mut beauty = None;
    for (w, h, bitrate) in SIZES {
        let src = if ffmpeg {
            make_source(&dir, w, h)
        } else {
            None
        };
        let frames = match &src {
            Some(p) => load(p),
            None => (0..SOURCE_FRAMES as u64)
                .map(|i| {
                    onair_pusher::source::test_pattern::TestPattern::new(w, h).render(i, i * 33_000)
                })
                .collect(),
        };
        let ours = openh264_fps(&frames, bitrate);
        if h <= 720 {
            // VP9 and AV1 on the same frames: one thread and all threads (0 = the encoder
            // decides); 90 frames, AV1 being slow.
            let all = |c| codec_fps(c, &frames, bitrate, 0, 90);
            let one = |c| codec_fps(c, &frames, bitrate, 1, 90);
            codec_rows.push_str(&format!(
                "{:<10} {:>9.0} {:>9.0} {:>9.0} {:>9.0}\n",
                format!("{w}x{h}"),
                one(VideoCodecChoice::Vp9),
                all(VideoCodecChoice::Vp9),
                one(VideoCodecChoice::Av1),
                all(VideoCodecChoice::Av1)
            ));
        }
        if h == 720 {
            beauty = Some(beauty_ms(&frames));
        }
        let peer = |preset| {
            src.as_ref()
                .and_then(|s| x264_fps(s, preset, bitrate))
                .map_or("n/a".to_string(), |f| format!("{f:.0}"))
        };
        report.push_str(&format!(
            "{:<10} {:>12.0}  {:>17}  {:>18}\n",
            format!("{w}x{h}"),
            ours,
            peer("veryfast"),
            peer("ultrafast")
        ));
        if let Some(p) = src {
            let _ = std::fs::remove_file(p);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    report.push_str(&codec_rows);
    if let Some(ms) = beauty {
        report.push_str(&format!(
            "\n--beauty 1 at 1280x720: {ms:.1} ms per frame ({:.0} % of one core at 30 fps)\n",
            ms * 30.0 / 10.0
        ));
    }
    report.push_str("\n--voice on 48 kHz stereo, CPU share of one core in real time\n");
    for (name, effect) in [
        (
            "echo:250:1500",
            VoiceEffect::Echo {
                delay_ms: 250,
                decay_ms: 1500,
            },
        ),
        ("reverb:1200", VoiceEffect::Reverb { decay_ms: 1200 }),
        ("pitch:12", VoiceEffect::Pitch { semitones: 12.0 }),
    ] {
        report.push_str(&format!(
            "{name:<14} {:.2} %\n",
            voice_share(effect) * 100.0
        ));
    }
    let secs = std::env::var("PUSH_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    match push_cpu_share(secs) {
        Ok((push, serve)) => report.push_str(&format!(
            "\nonair push, 720p30 2.5 Mbit/s test source to onair serve in real time, {secs} s:\n\
             CPU share of onair push {:.1}% of one core (server {:.1}%)\n",
            push * 100.0,
            serve * 100.0
        )),
        Err(e) => report.push_str(&format!("\nCPU share of onair push: not measured ({e})\n")),
    }
    print!("{report}");
}
