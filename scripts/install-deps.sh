#!/usr/bin/env bash
# Installs what the tests and benchmarks need beyond the Rust toolchain, gcc, Node and npm:
# ffmpeg/ffprobe (real peers for interop tests), Chromium (the player's browser tests) and
# nginx with the RTMP module (the benchmark's reference server), and schemathesis (PyPI) in
# .venv-schemathesis for the admin API's fuzz test. Does nothing for what is already there.
set -euo pipefail

need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
# Debian's Chromium for the browser player's tests (playwright-core drives it; no browser download).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The pusher's capture features, which clippy and the tests build (--all-features): bindgen
# needs libclang (V4L2 bindings under nokhwa), cpal's ALSA backend libasound2-dev and pkg-config.
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
dpkg -s libasound2-dev >/dev/null 2>&1 || need+=(libasound2-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# A virtual X display for the screen-capture test.
command -v Xvfb >/dev/null 2>&1 || need+=(xvfb)
if [ "${ONAIR_BENCH_DEPS:-0}" = 1 ]; then
  command -v nginx >/dev/null 2>&1 || need+=(nginx)
  [ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need+=(libnginx-mod-rtmp)
fi
# Python's venv module for schemathesis (Debian ships it separately).
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
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

# Schemathesis fuzzes the admin API from its OpenAPI document (tests/admin_fuzz.rs).
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv-schemathesis"
schemathesis_version=4.32.5
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$schemathesis_version"; then
  echo "installing: schemathesis $schemathesis_version into .venv-schemathesis" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$schemathesis_version"
fi
