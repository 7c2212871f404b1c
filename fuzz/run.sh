#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 600), two at a time, then
# prints every target's executions and final coverage from libFuzzer's closing stats.
#
#   fuzz/run.sh [SECONDS] [TARGET...]        (all targets when none is named)
#
# Works on the stable toolchain: cargo-fuzz passes nightly-only rustc flags, which
# RUSTC_BOOTSTRAP=1 lets stable accept. Needs `cargo install cargo-fuzz` and a C++ compiler
# (libfuzzer-sys builds libFuzzer). No sanitizer (`-s none`): the code under test is safe
# Rust, and ASan would halve the speed; builds keep debug assertions, so integer overflow
# panics. Corpora grow in fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET, kept out of
# git), logs go to fuzz/logs/TARGET.log, crashes to fuzz/artifacts/TARGET/.
# JOBS=N runs N targets at once (default 2); each runs under `nice -n 10`.
set -euo pipefail
cd "$(dirname "$0")"

SECONDS_PER_TARGET="${1:-600}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(rtmp_ingest flv_demux avc_aac_config amf ts_mux eflv llhls_fmp4 rtmpt webrtc_input)
fi
JOBS="${JOBS:-2}"
export RUSTC_BOOTSTRAP=1

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 1; }

# Largest input per target: an RTMP or FLV capture needs room; the parsers do not.
max_len() {
    case "$1" in
        rtmp_ingest | flv_demux) echo 65536 ;;
        *) echo 4096 ;;
    esac
}

# Build everything first, then run the binaries themselves, so that every run uses this
# build even if sources change meanwhile.
for t in "${TARGETS[@]}"; do
    nice -n 10 cargo fuzz build -s none "$t"
done
BIN_DIR="target/$(rustc -vV | sed -n 's/^host: //p')/release"

mkdir -p logs
run_one() {
    local t="$1"
    mkdir -p "corpus/$t" "artifacts/$t"
    local seeds=()
    [ -d "seeds/$t" ] && seeds=("seeds/$t")
    echo "fuzzing $t for ${SECONDS_PER_TARGET}s"
    # The same as: cargo fuzz run -s none $t corpus/$t seeds/$t -- -max_total_time=...
    nice -n 10 "$BIN_DIR/$t" -artifact_prefix="artifacts/$t/" \
        -max_total_time="$SECONDS_PER_TARGET" -max_len="$(max_len "$t")" -timeout=10 \
        -print_final_stats=1 "corpus/$t" "${seeds[@]}" >"logs/$t.log" 2>&1
}

pids=()
names=()
status=0
for t in "${TARGETS[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do
        wait -n || true
    done
    run_one "$t" &
    pids+=($!)
    names+=("$t")
done
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
        echo "CRASH or error in ${names[$i]}: see fuzz/logs/${names[$i]}.log and fuzz/artifacts/${names[$i]}/" >&2
        status=1
    fi
done

printf '\n%-16s %8s %14s %10s %8s %8s\n' target seconds executions exec/s cov ft
for t in "${TARGETS[@]}"; do
    log="logs/$t.log"
    done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)"
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")"
    ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")"
    secs="$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)"
    if grep -q 'ERROR: libFuzzer\|panicked at' "$log"; then
        secs="CRASH"
    fi
    printf '%-16s %8s %14s %10s %8s %8s\n' "$t" "${secs:--}" "${execs:--}" "${rate:--}" "${cov:--}" "${ft:--}"
done
exit "$status"
