//! Issue 16, done-when 3 (voice activity): real speech from espeak-ng (a Debian package,
//! installed by `scripts/install-deps.sh`) placed between known stretches of silence. The
//! pusher's detector (RNNoise's voice probability with hysteresis) matches the known
//! segments in at least 90 % of 10 ms frames; and `onair push --vad-gate` (digital silence
//! while no one speaks) sends far fewer Opus bytes during the silences than the same push
//! without it. (fdk-aac runs at a constant bitrate, so with AAC the gate saves nothing: the
//! test uses Opus, whose VBR shrinks silent frames.)

use crate::common;
use crate::pusher_util;

use std::path::Path;
use std::process::Command;

use common::*;
use onair_pusher::process::vad::VoiceDetector;
use onair_shared::flv::{FlvDemuxer, FlvEvent, TAG_AUDIO};
use pusher_util::*;

const RATE: usize = 48_000;
const FRAME: usize = RATE / 100;

/// espeak-ng's `text`, as 48 kHz mono PCM (resampled by ffmpeg).
fn speech(dir: &Path, name: &str, text: &str) -> Vec<i16> {
    // espeak-ng knows `--version`, not the `-version` that `require` asks.
    let found = Command::new("espeak-ng")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "espeak-ng is required: run scripts/install-deps.sh");
    require("ffmpeg");
    let wav = dir.join(format!("{name}.wav"));
    let st = Command::new("espeak-ng")
        .arg("-w")
        .arg(&wav)
        .arg(text)
        .status()
        .expect("run espeak-ng");
    assert!(st.success());
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(&wav)
        .args(["-ac", "1", "-ar", "48000", "-f", "s16le", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success());
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn write_wav(path: &Path, samples: &[i16]) {
    let data_len = (samples.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + samples.len() * 2);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&(RATE as u32).to_le_bytes());
    b.extend_from_slice(&(RATE as u32 * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, b).expect("write WAV");
}

/// Audio payload bytes of an FLV per 10 ms slot of its timestamps.
fn audio_bytes(path: &Path) -> Vec<(u32, usize)> {
    let data = std::fs::read(path).expect("read FLV");
    let mut d = FlvDemuxer::new(1 << 24);
    d.push(&data);
    let mut out = Vec::new();
    while let Some(ev) = d.next_event().expect("FLV") {
        if let FlvEvent::Tag(t) = ev {
            if t.tag_type == TAG_AUDIO {
                out.push((t.timestamp, t.body.len()));
            }
        }
    }
    out
}

#[test]
fn vad_matches_known_speech_segments_and_the_gate_saves_bytes_in_silence() {
    let dir = TempDir::new("onair-vad");
    let parts = [
        speech(
            &dir.path,
            "a",
            "Good evening, and welcome to the live stream.",
        ),
        speech(
            &dir.path,
            "b",
            "Today we talk about voice detection in the pusher.",
        ),
    ];
    // 1 s silence, speech, 1.5 s silence, speech, 1.5 s silence; the truth per 10 ms frame
    // is "inside an utterance" (its first to last sample above -36 dBFS).
    let mut signal = vec![0i16; RATE];
    let mut truth_spans = Vec::new();
    for p in &parts {
        let loud = |s: &&i16| s.unsigned_abs() > 512;
        let first = p.iter().position(|s| loud(&s)).expect("speech");
        let last = p.iter().rposition(|s| loud(&s)).expect("speech");
        truth_spans.push((signal.len() + first, signal.len() + last));
        signal.extend_from_slice(p);
        signal.extend(std::iter::repeat_n(0, RATE * 3 / 2));
    }
    signal.truncate(signal.len() / FRAME * FRAME);
    // A quiet room under everything (-50 dBFS white noise), so silence is not digital zero.
    let mut seed = 0x1234_5678u32;
    for s in signal.iter_mut() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        *s = s.saturating_add((seed % 201) as i16 - 100);
    }
    let frames = signal.len() / FRAME;
    let truth: Vec<bool> = (0..frames)
        .map(|f| {
            let mid = f * FRAME + FRAME / 2;
            truth_spans.iter().any(|&(a, b)| (a..=b).contains(&mid))
        })
        .collect();

    let mut vad = VoiceDetector::new(1);
    for block in signal.chunks(FRAME) {
        vad.process(block);
    }
    let got = vad.take_decisions();
    assert_eq!(got.len(), frames);
    let agree = got.iter().zip(&truth).filter(|(a, b)| a == b).count();
    let share = agree as f64 / frames as f64;
    eprintln!(
        "VAD: {agree} of {frames} frames match ({:.1} %); speech frames {} known, {} detected",
        share * 100.0,
        truth.iter().filter(|&&s| s).count(),
        got.iter().filter(|&&s| s).count()
    );
    assert!(
        share >= 0.90,
        "VAD matches {:.1} % of frames",
        share * 100.0
    );

    // The gate: the same WAV pushed with and without it; bytes in the silent frames.
    let wav = dir.path.join("speech.wav");
    write_wav(&wav, &signal);
    let secs = format!("{:.2}", frames as f64 / 100.0);
    let mut silent_bytes = Vec::new();
    for gate in [false, true] {
        let out = dir.path.join(format!("vad-{gate}.flv"));
        let wav_arg = format!("wav:{}", wav.display());
        let mut args = vec![
            out.to_str().expect("utf-8 path"),
            "--audio",
            &wav_arg,
            "--channels",
            "1",
            "--audio-codec",
            "opus",
            "--audio-bitrate",
            "64k",
            "--size",
            "160x96",
            "--duration",
            &secs,
            "--fast",
            "--vad",
        ];
        if gate {
            args.push("--vad-gate");
        }
        push_to_end(&args);
        let silent: usize = audio_bytes(&out)
            .into_iter()
            .filter(|&(ts, _)| {
                let f = ts as usize / 10;
                f < frames && !truth[f] && f > 0
            })
            .map(|(_, n)| n)
            .sum();
        silent_bytes.push(silent);
    }
    let (plain, gated) = (silent_bytes[0], silent_bytes[1]);
    eprintln!("audio bytes during silence: {plain} without the gate, {gated} with it");
    assert!(
        gated * 2 < plain,
        "the gate must at least halve the bytes in silence: {gated} vs {plain}"
    );
}
