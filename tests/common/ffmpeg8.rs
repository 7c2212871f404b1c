//! FFmpeg 8 as a test peer: the Python of `.venv-av` (PyAV bundles FFmpeg 8; made by
//! `scripts/install-deps.sh`) running the scripts in `tests/peers/`, each of which prints one
//! JSON report line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The venv's Python, checked to carry FFmpeg 8. Fails loudly rather than skipping.
pub fn python() -> PathBuf {
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let py = Path::new(ROOT).join(".venv-av/bin/python");
            let out = Command::new(&py)
                .args(["-c", "import av; print(av.ffmpeg_version_info)"])
                .output();
            let version = match out {
                Ok(o) if o.status.success() => {
                    String::from_utf8_lossy(&o.stdout).trim().to_string()
                }
                _ => panic!(
                    "{} with PyAV is required: run scripts/install-deps.sh",
                    py.display()
                ),
            };
            assert!(
                version.starts_with('8'),
                "PyAV's FFmpeg is {version}, these tests need FFmpeg 8 (Enhanced FLV v2)"
            );
            py
        })
        .clone()
}

/// `tests/peers/SCRIPT` run by the venv's Python.
pub fn peer(script: &str) -> Command {
    let mut c = Command::new(python());
    c.arg(Path::new(ROOT).join("tests/peers").join(script));
    c
}

/// The JSON line a peer script printed last.
pub fn report(out: &Output, what: &str) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "{what}: no JSON report ({e}; {}, SIGALRM is the peer's own time bound); \
             stdout {stdout:?}, stderr {:?}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Reads `url` for `seconds` with FFmpeg 8 (readback.py), decoding; `codecs` is the
/// fourCcList to announce over RTMP. The report, unchecked.
pub fn readback(url: &str, seconds: u32, codecs: Option<&str>) -> serde_json::Value {
    let mut c = peer("readback.py");
    c.arg(url).args(["--seconds", &seconds.to_string()]);
    if let Some(codecs) = codecs {
        c.args(["--codecs", codecs]);
    }
    let out = c.stdin(Stdio::null()).output().expect("run readback.py");
    report(&out, url)
}
