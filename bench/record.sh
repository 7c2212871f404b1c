#!/usr/bin/env bash
# Recording cost: N publishers of a 2.5 Mbit/s 720p30 H.264 + AAC stream into onair, once
# with [record] on and once off, on free 127.0.0.1 ports.
#
#   bench/record.sh [--streams 20] [--duration 20] [--warmup 5] [--dir DIR] [--no-build]
#
# Reports per run: onair's CPU seconds over the window (utime+stime from /proc), CPU per
# stream (CPU-s per second of wall time, per stream), bytes received from publishers, bytes
# written to recordings, write amplification (written / received) and fsyncs per second,
# from onair's /metrics. The source (10 s, 2.5 Mbit/s) is encoded once into the recording
# folder's parent and looped by `ffmpeg -re -stream_loop -1 -c copy`. ONAIR_BIN picks the
# binary (default target/release/onair). Needs ffmpeg and curl.
set -euo pipefail

STREAMS=20
DURATION=20
WARMUP=5
DIR=""
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --streams) STREAMS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --dir) DIR="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${ONAIR_BIN:-$ROOT/target/release/onair}"
if [ "$BUILD" = 1 ] && [ -z "${ONAIR_BIN:-}" ]; then
    cargo build --release --manifest-path "$ROOT/Cargo.toml" --bin onair >&2
fi
WORK="${DIR:-$(mktemp -d /tmp/onair-record-bench.XXXXXX)}"
mkdir -p "$WORK"
SRC="$WORK/src-2500k.flv"
if [ ! -s "$SRC" ]; then
    ffmpeg -hide_banner -loglevel error -y \
        -f lavfi -i testsrc2=size=1280x720:rate=30:duration=10 \
        -f lavfi -i sine=frequency=1000:sample_rate=44100:duration=10 \
        -c:v libx264 -preset ultrafast -b:v 2400k -maxrate 2400k -bufsize 4800k -g 60 \
        -pix_fmt yuv420p -c:a aac -b:a 96k -f flv "$SRC"
fi

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

metric() { curl -s "http://$HTTP/metrics" | awk -v m="$1" '$1 == m { s += $2 } END { print s + 0 }'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

run() {
    local record="$1" rec_dir="$WORK/recordings"
    rm -rf "$rec_dir"
    cat > "$WORK/onair.toml" <<TOML
[hub]
max_streams = $((STREAMS + 4))
[hls]
enabled = false
[record]
enabled = $record
dir = "$rec_dir"
TOML
    local out="$WORK/onair.out"
    RUST_LOG=warn "$BIN" serve --config "$WORK/onair.toml" --rtmp-addr 127.0.0.1:0 \
        --http-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 > "$out" &
    local server=$!
    PIDS+=("$server")
    for _ in $(seq 100); do grep -q "http=" "$out" 2>/dev/null && break; sleep 0.1; done
    RTMP=$(grep -o 'rtmp=[^ ]*' "$out" | head -1 | cut -d= -f2)
    HTTP=$(grep -o 'http=[^ ]*' "$out" | head -1 | cut -d= -f2)
    local pushers=()
    for i in $(seq "$STREAMS"); do
        ffmpeg -hide_banner -loglevel error -re -stream_loop -1 -i "$SRC" -c copy -f flv \
            "rtmp://$RTMP/live/s$i" < /dev/null > /dev/null 2>&1 &
        pushers+=("$!")
        PIDS+=("$!")
    done
    sleep "$WARMUP"
    local hz; hz=$(getconf CLK_TCK)
    local c0 b0 w0 f0 t0 c1 b1 w1 f1 t1
    c0=$(cpu_ticks "$server"); b0=$(metric onair_bytes_in_total)
    w0=$(metric onair_record_bytes_total); f0=$(metric onair_record_fsyncs_total); t0=$(date +%s.%N)
    sleep "$DURATION"
    c1=$(cpu_ticks "$server"); b1=$(metric onair_bytes_in_total)
    w1=$(metric onair_record_bytes_total); f1=$(metric onair_record_fsyncs_total); t1=$(date +%s.%N)
    local live; live=$(curl -s "http://$HTTP/api/streams" | grep -o '"live": *true' | wc -l)
    for p in "${pushers[@]}"; do kill "$p" 2>/dev/null || true; done
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    awk -v rec="$record" -v n="$STREAMS" -v live="$live" -v hz="$hz" \
        -v c="$((c1 - c0))" -v b0="$b0" -v b1="$b1" -v w0="$w0" -v w1="$w1" \
        -v f0="$f0" -v f1="$f1" -v t0="$t0" -v t1="$t1" 'BEGIN {
        b = b1 - b0; w = w1 - w0; f = f1 - f0; t = t1 - t0
        cpu = c / hz
        printf "record=%-5s streams=%d live=%d window_s=%.1f cpu_s=%.2f cpu_per_stream=%.4f mbit_in_per_stream=%.2f written_mib=%.1f write_amplification=%s fsyncs_per_s=%.1f\n",
            rec, n, live, t, cpu, cpu / t / n, b * 8 / t / n / 1e6, w / 1048576,
            (b > 0 ? sprintf("%.3f", w / b) : "n/a"), f / t
    }'
}

run false
run true
echo "recordings and source in $WORK (delete when done)" >&2
