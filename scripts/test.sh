#!/usr/bin/env bash
# Every test of the project: formatting, lints, unit tests, end-to-end tests against
# real ffmpeg, and the browser player's tests in headless Chromium. Installs missing
# system packages first (see scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
# End-to-end tests run real-time ffmpeg encoders; one test at a time keeps a
# two-core machine from starving them.
cargo test --workspace --all-features -- --test-threads=1
# The browser player (player-web/) against the binary the tests above built.
scripts/test-player.sh
