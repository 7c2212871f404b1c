#!/usr/bin/env bash
# Installs what the tests and benchmarks need beyond the Rust toolchain, gcc, Node and npm:
# ffmpeg/ffprobe (real peers for interop tests), Chromium (the player's browser tests) and
# nginx (the HLS cache's test; with the RTMP module, the benchmark's reference server), Docker's
# engine, docker-compose and debootstrap (the Docker tests), a Python venv with PyAV
# (FFmpeg 8, the Enhanced RTMP test peer) and schemathesis (PyPI) in .venv-schemathesis for
# the admin API's fuzz test. Does nothing for what is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

# FFmpeg 8 for the Enhanced RTMP tests (tests/enhanced_rtmp.rs, tests/peers/): PyAV's wheels
# bundle it; Debian's ffmpeg 5.1 cannot write Enhanced FLV. Lives in .venv-av (git-ignored).
PYAV_VERSION=18.1.0
VENV="$ROOT/.venv-av"
pyav_ok() {
  "$VENV/bin/python" -c 'import av, sys; sys.exit(0 if av.ffmpeg_version_info.startswith("8") else 1)' \
    >/dev/null 2>&1
}
install_pyav() {
  pyav_ok && return 0
  echo "installing PyAV $PYAV_VERSION (FFmpeg 8) into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "av==$PYAV_VERSION"
  pyav_ok || { echo "PyAV in $VENV does not bundle FFmpeg 8" >&2; exit 1; }
}

need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
# Debian's Chromium for the browser player's tests (playwright-core drives it; no browser download).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The pusher's capture features, which clippy and the tests build (--all-features): bindgen
# needs libclang (V4L2 bindings under nokhwa), cpal's ALSA backend libasound2-dev and pkg-config.
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
dpkg -s libasound2-dev >/dev/null 2>&1 || need+=(libasound2-dev)
# libopus for the pusher's Opus encoder (the `opus` crate links it through pkg-config).
dpkg -s libopus-dev >/dev/null 2>&1 || need+=(libopus-dev)
# libvpx for the pusher's VP9 encoder (env-libvpx-sys links it through pkg-config), and nasm
# for rav1e's (AV1) assembly.
dpkg -s libvpx-dev >/dev/null 2>&1 || need+=(libvpx-dev)
command -v nasm >/dev/null 2>&1 || need+=(nasm)
# espeak-ng: real speech for the pusher's voice-activity test (tests/pusher_vad.rs).
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
# WebRTC's audio processing (0.3) for the pusher's echo canceller (webrtc-audio-processing 0.4).
dpkg -s libwebrtc-audio-processing-dev >/dev/null 2>&1 || need+=(libwebrtc-audio-processing-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# python3 -m venv needs ensurepip (Debian's python3-venv) for the test peers' venvs below.
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
# Independent players for tests/interop_players.rs: rtmpdump (librtmp), VLC (cvlc with its
# avio access) and GStreamer (rtmp2src in plugins-bad, souphttpsrc in -good, avdec_* in -libav).
command -v rtmpdump >/dev/null 2>&1 || need+=(rtmpdump)
command -v cvlc >/dev/null 2>&1 || need+=(vlc-bin vlc-plugin-base)
command -v gst-launch-1.0 >/dev/null 2>&1 || need+=(gstreamer1.0-tools)
for pkg in gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
# A virtual X display for the screen-capture test.
command -v Xvfb >/dev/null 2>&1 || need+=(xvfb)
# Issue 14's cluster and pull tests: a real redis-server for the stream directory, and
# GStreamer's RTSP server through the system Python's GI as the simulated camera.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
for p in gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-tools gstreamer1.0-plugins-good \
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
# nginx as the HTTP cache in front of HLS (tests/hls_cache.rs, deploy/nginx-hls-cache.conf).
command -v nginx >/dev/null 2>&1 || need+=(nginx)
# The Docker tests (tests/docker.rs): an engine the test starts itself, compose 1.29 and
# debootstrap for the base image (no registry here). Debian's docker CLI is /usr/bin/docker.
[ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
# GStreamer plays the fMP4 and LL-HLS variants in tests/hls_fmp4.rs (hlsdemux2, qtdemux,
# avdec), driven by tests/peers/gst_play.py through the system Python's GI.
command -v gst-launch-1.0 >/dev/null 2>&1 || need+=(gstreamer1.0-tools)
for p in python3-gi gir1.2-gstreamer-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ "${ONAIR_BENCH_DEPS:-0}" = 1 ]; then
  [ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need+=(libnginx-mod-rtmp)
fi
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install: ${need[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
install_pyav

# Schemathesis fuzzes the admin API from its OpenAPI document (tests/admin_fuzz.rs).
venv="$ROOT/.venv-schemathesis"
schemathesis_version=4.32.5
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$schemathesis_version"; then
  echo "installing: schemathesis $schemathesis_version into .venv-schemathesis" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$schemathesis_version"
fi

# aiortc (PyPI), an independent WebRTC stack, plays WHEP in tests/webrtc.rs. Lives in
# .venv-aiortc (git-ignored).
venv="$ROOT/.venv-aiortc"
aiortc_version=1.16.0
if ! "$venv/bin/python" -c "import aiortc, sys; sys.exit(aiortc.__version__ != '$aiortc_version')" 2>/dev/null; then
  echo "installing: aiortc $aiortc_version into .venv-aiortc" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "aiortc==$aiortc_version"
fi
