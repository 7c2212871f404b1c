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
# two-core machine from starving them. A failure does not stop the rest, so one run
# shows every failing test; the script still fails at the end.
failed=()
cargo test --workspace --all-features --no-fail-fast -- --test-threads=1 || failed+=("cargo test")
# The browser player (player-web/) against the binary the tests above built.
scripts/test-player.sh || failed+=("player tests")
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
