#!/usr/bin/env bash
# The browser player's tests: vitest unit tests, then headless Chromium (Debian's, driven by
# playwright-core) against the real `onair` binary, target/debug/onair, which `cargo test`
# builds (or $ONAIR_BIN). Screenshots and measured latencies go to player-web/test-results/.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "the player needs Node 20 or newer (and npm); found: $(node --version 2>/dev/null || echo none)" >&2
  exit 1
fi
if [ -z "${ONAIR_BIN:-}" ] && [ ! -x target/debug/onair ]; then
  cargo build --bin onair
fi
cd player-web
npm ci --no-audit --no-fund
npm run build
npm test
