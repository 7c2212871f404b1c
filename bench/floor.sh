#!/usr/bin/env bash
# Fan-out at the kernel's floor: onair, nginx-rtmp and onair-floor (one blocking write per
# viewer per video frame, on one thread) in one run, each figure with its ratio to
# nginx-rtmp and to the floor.
#
#   bench/floor.sh [--viewers "200 500"] [--protocols "rtmp flv"] [--duration 10]
#                  [--warmup 3] [--sample 720p|360p] [--connect-batch B]
#                  [--servers "onair nginx floor"] [--rounds R] [--onair-extra FILE] [--out DIR]
#                  [--no-build]
#   bench/floor.sh --kcore "1 2" [--p99-ms 50] [--start N] [--limit N] [--sample 360p] ...
#
# Compare mode: for each protocol and viewer count, a fresh server of each kind on free
# 127.0.0.1 ports, one onair-bench run against it, then a table. nginx-rtmp has no HTTP-FLV.
# --rounds R repeats each protocol and viewer count R times, the servers in turn (reversed
# every other round, so a drift of the machine's load falls on all of them alike), and
# gives each ratio per round and its median: the machine is noisy, and a ratio of two runs
# taken side by side is steadier than either run's figure.
# --onair-extra appends a TOML file to onair's config (sections other than [rtmp], [http]
# and [hub]), e.g. "[hls]\nenabled = false" to measure the fan-out without HLS muxing; keys
# before FILE's first section header land in [hub] (e.g. "fanout_loops = 1").
# K-core mode (--kcore): each server pinned to cores 0..K-1 with taskset (the bench to the
# other cores when there are any), and onair-bench's --find-max-p99-ms search: the largest
# N whose run has p99 <= --p99-ms, every viewer receiving and >= 0.999 of the frames.
# The server and the bench each need `ulimit -n` above the viewers: this script raises its
# soft limit to the hard one for both (raise the hard limit, e.g. in limits.conf, if lower).
# Needs python3; for nginx: apt-get install nginx libnginx-mod-rtmp.
set -euo pipefail

VIEWERS="200 500"
PROTOCOLS="rtmp flv"
DURATION=10
WARMUP=3
SAMPLE=720p
BATCH=0
SERVERS="onair nginx floor"
KCORE=""
P99_MS=50
START=500
LIMIT=20000
OUT=""
BUILD=1
ONAIR_EXTRA=""
ROUNDS=1

usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --viewers) VIEWERS="$2"; shift 2 ;;
        --protocols) PROTOCOLS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --sample) SAMPLE="$2"; shift 2 ;;
        --connect-batch) BATCH="$2"; shift 2 ;;
        --servers) SERVERS="$2"; shift 2 ;;
        --kcore) KCORE="$2"; shift 2 ;;
        --p99-ms) P99_MS="$2"; shift 2 ;;
        --start) START="$2"; shift 2 ;;
        --limit) LIMIT="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --onair-extra) ONAIR_EXTRA="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "floor.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
for s in $SERVERS; do
    case "$s" in onair|nginx|floor) ;; *) echo "floor.sh: --servers takes onair, nginx, floor" >&2; exit 2 ;; esac
done
for p in $PROTOCOLS; do
    case "$p" in rtmp|flv) ;; *) echo "floor.sh: --protocols takes rtmp, flv" >&2; exit 2 ;; esac
done
case "$ROUNDS" in ''|*[!0-9]*|0) echo "floor.sh: --rounds takes a whole number from 1" >&2; exit 2 ;; esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}/release"
WORK="$(mktemp -d -t onair-floor.XXXXXX)"
SERVER_PID=""
BENCH_PID=""
FAILED=0
CORES=$(nproc)

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

# Summed VmRSS (KiB) of the server and its children: the baseline before viewers join.
server_rss_kib() {
    local total=0 p
    for p in "$SERVER_PID" $(pgrep -P "$SERVER_PID" 2>/dev/null || true); do
        total=$((total + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

max_viewers=$LIMIT
if [ -z "$KCORE" ]; then
    max_viewers=0
    for n in $VIEWERS; do [ "$n" -gt "$max_viewers" ] && max_viewers=$n; done
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# Each process (server, bench) needs one descriptor per viewer and some.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((max_viewers + 256)) ]; then
    echo "floor.sh: open-file limit $(ulimit -n) is below the $((max_viewers + 256)) a server needs: raise the hard limit" >&2
fi

if [ "$BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release -p onair -p onair-bench)
fi
BENCH="$TARGET/onair-bench"
[ -x "$BENCH" ] && [ -x "$TARGET/onair-floor" ] || { echo "floor.sh: build onair-bench first" >&2; exit 1; }

NGINX_MODULE=$(dpkg -L libnginx-mod-rtmp 2>/dev/null | grep 'ngx_rtmp_module\.so$' | head -n 1 || true)
NGINX_MODULE=${NGINX_MODULE:-/usr/lib/nginx/modules/ngx_rtmp_module.so}

# start SERVER PIN: a fresh server (PIN: a taskset prefix or nothing); sets SERVER_PID,
# RTMP_PORT, HTTP_PORT (empty when it has no HTTP-FLV).
start() {
    local server=$1
    shift
    RTMP_PORT=$(free_port)
    HTTP_PORT=$(free_port)
    case "$server" in
        onair)
            # Room for every viewer: they all come from 127.0.0.1.
            local room=$((max_viewers + 64))
            printf '[rtmp]\nmax_connections = %s\nmax_connections_per_ip = %s\n[http]\nmax_connections = %s\nmax_connections_per_ip = %s\n[hub]\nmax_viewers_per_stream = %s\n' \
                "$room" "$room" "$room" "$room" "$room" >"$WORK/onair.toml"
            if [ -n "$ONAIR_EXTRA" ]; then cat "$ONAIR_EXTRA" >>"$WORK/onair.toml"; fi
            "$@" "$TARGET/onair" serve --rtmp-addr "127.0.0.1:$RTMP_PORT" \
                --http-addr "127.0.0.1:$HTTP_PORT" --config "$WORK/onair.toml" \
                >>"$WORK/onair-server.log" 2>&1 &
            ;;
        floor)
            "$@" "$TARGET/onair-floor" --rtmp-addr "127.0.0.1:$RTMP_PORT" \
                --http-addr "127.0.0.1:$HTTP_PORT" --max-viewers $((max_viewers + 16)) \
                >>"$WORK/floor-server.log" 2>&1 &
            ;;
        nginx)
            HTTP_PORT=""
            local ndir="$WORK/nginx"
            mkdir -p "$ndir"
            cat >"$ndir/nginx.conf" <<EOF
load_module $NGINX_MODULE;
daemon off;
worker_processes 1;
worker_rlimit_nofile $((max_viewers * 2 + 256));
pid $ndir/nginx.pid;
error_log $ndir/error.log warn;
events { worker_connections $((max_viewers + 256)); }
rtmp {
    server {
        listen 127.0.0.1:$RTMP_PORT;
        chunk_size 4096;
        application live { live on; }
    }
}
EOF
            "$@" nginx -p "$ndir" -e "$ndir/error.log" -c "$ndir/nginx.conf" \
                >>"$WORK/nginx-server.log" 2>&1 &
            ;;
    esac
    SERVER_PID=$!
    wait_port "$RTMP_PORT" && { [ -z "$HTTP_PORT" ] || wait_port "$HTTP_PORT"; } && return 0
    echo "floor.sh: $server did not start" >&2
    tail -n 20 "$WORK/$server-server.log" >&2 2>/dev/null || true
    stop_server
    return 1
}

# bench NAME PROTO N PIN... -- ARGS...: one bounded onair-bench run, JSON into $WORK/NAME.json.
bench() {
    local name=$1 proto=$2 n=$3 limit=$4
    shift 4
    local publish="rtmp://127.0.0.1:$RTMP_PORT/live/bench" play
    case "$proto" in
        rtmp) play=$publish ;;
        flv) play="http://127.0.0.1:$HTTP_PORT/live/bench.flv" ;;
    esac
    local extra=(--sample "$SAMPLE")
    [ "$BATCH" != 0 ] && extra+=(--connect-batch "$BATCH")
    echo "floor.sh: $name (at most ${limit}s)"
    timeout --kill-after=5 "$limit" "$@" "$BENCH" --publish "$publish" --play-url "$play" \
        --protocol "$proto" --viewers "$n" --duration "$DURATION" --warmup "$WARMUP" \
        --server-pid "$SERVER_PID" --json "${extra[@]}" "${BENCH_ARGS[@]}" \
        >"$WORK/$name.json" 2>"$WORK/$name.log" &
    BENCH_PID=$!
    local rc=0
    wait "$BENCH_PID" || rc=$?
    BENCH_PID=""
    if [ "$rc" != 0 ]; then
        echo "floor.sh: $name failed (rc $rc): $(tail -n 3 "$WORK/$name.log")" >&2
        rm -f "$WORK/$name.json"
        FAILED=$((FAILED + 1))
    fi
}

has_http() { [ "$1" != nginx ]; }

if [ -z "$KCORE" ]; then
    BENCH_ARGS=()
    echo "floor.sh: viewers $VIEWERS; protocols $PROTOCOLS; sample $SAMPLE; ${DURATION}s window after ${WARMUP}s warmup; $ROUNDS round(s); open files $(ulimit -n)"
    for proto in $PROTOCOLS; do
        for n in $VIEWERS; do
            for round in $(seq 1 "$ROUNDS"); do
                order=$SERVERS
                [ $((round % 2)) = 0 ] && order=$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' ')
                for server in $order; do
                    [ "$proto" = flv ] && ! has_http "$server" && continue
                    start "$server" || { FAILED=$((FAILED + 1)); continue; }
                    name="$server-$proto-$n-$round"
                    server_rss_kib >"$WORK/$name.rss0"
                    limit=$(python3 -c "print(int(2*$WARMUP + $DURATION + $n*0.01 + 60 + ((($n + $BATCH - 1) // $BATCH) * 10 if $BATCH else 0)))")
                    bench "$name" "$proto" "$n" "$limit"
                    kill -0 "$SERVER_PID" 2>/dev/null || echo "floor.sh: $server died during the run" >&2
                    stop_server
                done
            done
        done
    done
    python3 - "$WORK" "$VIEWERS" "$PROTOCOLS" "$SERVERS" "$ROUNDS" <<'EOF'
import json, os, statistics, sys
work, viewers, protocols, servers = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4].split()
rounds = int(sys.argv[5])
def load(name):
    try:
        with open(os.path.join(work, name + ".json")) as f:
            r = json.load(f)
        with open(os.path.join(work, name + ".rss0")) as f:
            r["rss0_kib"] = int(f.read().strip() or 0)
        return r
    except (OSError, ValueError):
        return None
def rss_per_viewer_kb(r):
    if r.get("peak_rss_mib") is None:
        return None
    return (r["peak_rss_mib"] * 1024 - r["rss0_kib"]) * 1.024 / r["viewers"]
FIGURES = [
    ("CPU s / Gbit", lambda r: r.get("cpu_s_per_gbit"), 3),
    ("latency p50 ms", lambda r: r["latency_ms"]["p50"], 1),
    ("latency p99 ms", lambda r: r["latency_ms"]["p99"], 1),
    ("latency max ms", lambda r: r["latency_ms"]["max"], 1),
    ("TTFF p50 ms", lambda r: r["ttff_ms"]["p50"], 1),
    ("TTFF max ms", lambda r: r["ttff_ms"]["max"], 1),
    ("RSS / viewer KB", rss_per_viewer_kb, 1),
    ("frames delivered", lambda r: r.get("delivered_fraction"), 4),
]
NAMES = {"onair": "onair", "nginx": "nginx-rtmp", "floor": "floor"}
PAIRS = [("onair", "nginx"), ("onair", "floor"), ("nginx", "floor")]
def fmt(v, p):
    return "-" if v is None else f"{v:.{p}f}"
def ratio(vals, a, b):
    x, y = vals.get(a), vals.get(b)
    return None if x is None or y is None or y == 0 else x / y
summary = []
for proto in protocols:
    for n in viewers:
        cpu_ratios = {pair: [] for pair in PAIRS}
        for rnd in range(1, rounds + 1):
            rs = {s: load(f"{s}-{proto}-{n}-{rnd}") for s in servers}
            if not any(rs.values()):
                continue
            cols = [NAMES[s] for s in servers]
            print(f"\n{proto.upper()}, N={n}" + (f", round {rnd} of {rounds}" if rounds > 1 else ""))
            print(f"  {'':20}" + "".join(f"{c:>12}" for c in cols) + "".join(f"{a + '/' + b:>13}" for a, b in PAIRS))
            for label, get, prec in FIGURES:
                vals = {s: (get(r) if r else None) for s, r in rs.items()}
                row = "".join(f"{fmt(vals[s], prec):>12}" for s in servers)
                print(f"  {label:20}{row}" + "".join(f"{fmt(ratio(vals, a, b), 2):>13}" for a, b in PAIRS))
                if label == "CPU s / Gbit":
                    for pair in PAIRS:
                        r = ratio(vals, *pair)
                        if r is not None:
                            cpu_ratios[pair].append(r)
            print("  connected: " + ", ".join(f"{NAMES[s]} {r['connected_viewers']}/{r['viewers']}" for s, r in rs.items() if r))
            for s, r in rs.items():
                for e in (r or {}).get("errors", [])[:3]:
                    print(f"  {NAMES[s]} viewer error: {e['viewers']} x {e['reason']}")
        def said(pair):
            got = cpu_ratios[pair]
            if not got:
                return "-"
            if len(got) == 1:
                return f"{got[0]:.2f}"
            return f"median {statistics.median(got):.2f} of " + ", ".join(f"{r:.2f}" for r in got)
        if any(cpu_ratios.values()):
            summary.append(f"{proto} N={n}: onair/floor {said(('onair', 'floor'))}, onair/nginx {said(('onair', 'nginx'))}")
print("\nCPU s per delivered Gbit:\n  " + "\n  ".join(summary))
EOF
else
    echo "floor.sh: K-core mode, K in $KCORE of $CORES cores; p99 <= ${P99_MS} ms; sample $SAMPLE; N from $START to $LIMIT"
    for k in $KCORE; do
        [ "$k" -le "$CORES" ] || { echo "floor.sh: K=$k is over the $CORES cores" >&2; continue; }
        server_pin=(taskset -c "0-$((k - 1))")
        bench_pin=()
        [ "$k" -lt "$CORES" ] && bench_pin=(taskset -c "$k-$((CORES - 1))")
        for proto in $PROTOCOLS; do
            for server in $SERVERS; do
                [ "$proto" = flv ] && ! has_http "$server" && continue
                start "$server" "${server_pin[@]}" || { FAILED=$((FAILED + 1)); continue; }
                BENCH_ARGS=(--find-max-p99-ms "$P99_MS" --find-max-limit "$LIMIT")
                bench "kcore-$k-$server-$proto" "$proto" "$START" 3600 "${bench_pin[@]}"
                stop_server
            done
        done
    done
    python3 - "$WORK" "$KCORE" "$PROTOCOLS" "$SERVERS" "$CORES" <<'EOF'
import json, os, sys
work, ks, protocols, servers, cores = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4].split(), int(sys.argv[5])
print(f"\nviewers served with p99 latency within the bound (every viewer receiving, >= 0.999 of frames), server pinned to K of {cores} cores")
for proto in protocols:
    for s in servers:
        for k in ks:
            try:
                with open(os.path.join(work, f"kcore-{k}-{s}-{proto}.json")) as f:
                    r = json.load(f)
            except (OSError, ValueError):
                continue
            steps = ", ".join(f"{t['viewers']}:{'ok' if t['passed'] else 'x'}(p99 {t['latency_ms']['p99'] or 0:.1f})" for t in r["steps"])
            print(f"  {proto:5} {s:6} K={k}: {r['max_viewers']}   [{steps}]")
EOF
fi
if [ "$FAILED" != 0 ]; then
    echo "floor.sh: $FAILED run(s) failed" >&2
    exit 1
fi
