//! Issue 16, done-when 2 (echo cancellation): far-end speech (espeak-ng) reaches the
//! near-end capture through a simulated echo path (60 ms delay, -6 dB), with near-end speech
//! (another espeak-ng voice) over part of it. The canceller (`process::aec`, WebRTC's audio
//! processing) must take the echo down by at least 20 dB where only the far end talks
//! (after 2 s to converge), and keep the near-end speech (within 10 dB while both talk).

use crate::common;

use std::process::Command;

use onair_pusher::process::aec::{EchoCanceller, FRAME};

const RATE: usize = 48_000;

fn speech(text: &str, voice: &str) -> Vec<i16> {
    let out = Command::new("espeak-ng")
        .args(["-v", voice, "--stdout", text])
        .output()
        .expect("espeak-ng is required: run scripts/install-deps.sh");
    assert!(out.status.success(), "espeak-ng failed");
    let dir = common::TempDir::new("onair-aec");
    let wav = dir.path.join("s.wav");
    std::fs::write(&wav, &out.stdout).unwrap();
    let pcm = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(&wav)
        .args(["-ac", "1", "-ar", "48000", "-f", "s16le", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(pcm.status.success());
    pcm.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn power(s: &[i16]) -> f64 {
    s.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / s.len().max(1) as f64
}

#[test]
fn echo_is_cancelled_by_20_db_and_near_end_speech_kept() {
    // Far end: speech for the whole 9 s, looped. Near end: one sentence from 6.5 s.
    let mut far = Vec::new();
    let sentence = speech(
        "The guest is talking now, and the host hears every word on speakers.",
        "en",
    );
    while far.len() < 9 * RATE {
        far.extend_from_slice(&sentence);
    }
    far.truncate(9 * RATE);
    let near_speech = speech("Host here, answering.", "en+f3");
    let near_at = 6 * RATE + RATE / 2;
    let delay = RATE * 60 / 1000;
    let mut echo = vec![0i16; far.len()];
    for i in delay..far.len() {
        echo[i] = far[i - delay] / 2;
    }
    let mut mic = echo.clone();
    for (i, &s) in near_speech.iter().enumerate() {
        if let Some(m) = mic.get_mut(near_at + i) {
            *m = m.saturating_add(s / 2);
        }
    }
    let mut aec = EchoCanceller::new(1).unwrap();
    let mut out = mic.clone();
    for (f, n) in far.chunks(FRAME).zip(out.chunks_mut(FRAME)) {
        if f.len() == FRAME {
            aec.process(f, n).unwrap();
        }
    }
    // Echo only: 2.5 s to 6.5 s.
    let (a, b) = (5 * RATE / 2, near_at);
    let erle = 10.0 * (power(&echo[a..b]) / power(&out[a..b]).max(1e-9)).log10();
    eprintln!("ERLE over 2.5-6.5 s: {erle:.1} dB");
    assert!(erle >= 20.0, "echo reduced by only {erle:.1} dB");
    // Near end talking (over the far end's echo): its level is kept within 6 dB.
    let n = near_speech.len().min(far.len() - near_at);
    let near_alone: Vec<i16> = near_speech[..n].iter().map(|&s| s / 2).collect();
    let kept = 10.0 * (power(&out[near_at..near_at + n]) / power(&near_alone)).log10();
    eprintln!("near-end speech level after the canceller: {kept:+.1} dB");
    assert!(kept > -10.0, "near-end speech lost: {kept:+.1} dB");
}
