#!/usr/bin/env bash
# Fan-out comparison: onair vs nginx-rtmp on loopback, with onair-bench.
#
#   bench/compare.sh [--viewers "100 500"] [--duration 20] [--warmup 5]
#                    [--protocols "rtmp flv hls whep"] [--hls-probe-ms MS]
#                    [--only onair|nginx] [--out DIR] [--no-build]
#
# Builds onair and onair-bench (release), runs onair (RTMP, HTTP-FLV, HLS and, when asked
# for, WHEP viewers: WebRTC on a loopback UDP port, with the transcode thread's CPU) and
# nginx with the RTMP module (RTMP viewers only: it has no HTTP-FLV, and its HLS, which
# needs an http block and `hls on`, is out of scope), each server started and stopped by
# this script on free 127.0.0.1 ports, then prints a side-by-side table.
# Every run is bounded by `timeout`; started processes are stopped on exit.
# onair's paths are ONAIR_FLV_PATH and ONAIR_HLS_PATH (printf patterns, default
# /live/%s.flv and /live/%s.m3u8). --hls-probe-ms adds onair-bench's fast-polling probe to
# the HLS runs (its requests then count in the server's CPU).
# Needs: python3 (table), and for the nginx part: apt-get install nginx libnginx-mod-rtmp.
set -euo pipefail

VIEWERS="100 500"
DURATION=20
WARMUP=5
ONLY=""
OUT=""
BUILD=1
FLV_PATH="${ONAIR_FLV_PATH:-/live/%s.flv}"
HLS_PATH="${ONAIR_HLS_PATH:-/live/%s.m3u8}"
PROTOCOLS="rtmp flv hls"
HLS_PROBE_MS=""

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --viewers) VIEWERS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --only) ONLY="$2"; shift 2 ;;
        --protocols) PROTOCOLS="$2"; shift 2 ;;
        --hls-probe-ms) HLS_PROBE_MS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
case "$ONLY" in ""|onair|nginx) ;; *) echo "compare.sh: --only onair|nginx" >&2; exit 2 ;; esac
for proto in $PROTOCOLS; do
    case "$proto" in rtmp|flv|hls|whep) ;; *) echo "compare.sh: --protocols takes rtmp, flv, hls, whep" >&2; exit 2 ;; esac
done
has_proto() { case " $PROTOCOLS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}/release"
WORK="$(mktemp -d -t onair-compare.XXXXXX)"
SERVER_PID=""
BENCH_PID=""
FAILED=0

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

free_udp_port() {
    python3 -c 'import socket; s=socket.socket(type=socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

max_viewers=0
for n in $VIEWERS; do
    if [ "$n" -gt "$max_viewers" ]; then max_viewers=$n; fi
done
need_fds=$((max_viewers * 2 + 256))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need_fds" ]; then
    ulimit -n "$need_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
fi
echo "compare: open-file limit $(ulimit -n); viewers: $VIEWERS; protocols: $PROTOCOLS; ${DURATION}s window after ${WARMUP}s warmup"

BENCH="$TARGET/onair-bench"
HAVE_ONAIR=1
if [ "$BUILD" = 1 ]; then
    if ! (cd "$ROOT" && cargo build --release -p onair -p onair-bench); then
        echo "compare: building onair failed; building onair-bench alone and skipping onair" >&2
        (cd "$ROOT" && cargo build --release -p onair-bench)
        HAVE_ONAIR=0
    fi
fi
[ -x "$BENCH" ] || { echo "compare: $BENCH missing" >&2; exit 1; }
if [ ! -x "$TARGET/onair" ] || ! "$TARGET/onair" serve --help >/dev/null 2>&1; then
    HAVE_ONAIR=0
fi

# bench SERVER PROTO N PUBLISH_URL PLAY_URL: one bounded run, JSON into $WORK.
bench() {
    local server=$1 proto=$2 n=$3 publish=$4 play=$5
    local limit
    # HLS waits up to two segments after the window for its last frames.
    limit=$(python3 -c "print(int(2*$WARMUP + $DURATION + $n*0.004 + 60 + ('$proto' == 'hls') * 30))")
    local extra=()
    if [ "$proto" = hls ] && [ -n "$HLS_PROBE_MS" ]; then extra=(--hls-probe-ms "$HLS_PROBE_MS"); fi
    # onair's AAC -> Opus transcode runs on its own thread per stream: its CPU on its own.
    if [ "$proto" = whep ] && [ "$server" = onair ]; then extra=(--server-thread onair-opus); fi
    echo "compare: $server $proto N=$n (at most ${limit}s)"
    # In the background with `wait`, so a signal to this script is acted on at once.
    timeout --kill-after=5 "$limit" "$BENCH" --publish "$publish" --play-url "$play" \
        --protocol "$proto" --viewers "$n" --duration "$DURATION" --warmup "$WARMUP" \
        --server-pid "$SERVER_PID" --server-name "$server" --json "${extra[@]}" \
        >"$WORK/$server-$proto-$n.json" 2>"$WORK/$server-$proto-$n.log" &
    BENCH_PID=$!
    local rc=0
    wait "$BENCH_PID" || rc=$?
    BENCH_PID=""
    case "$rc" in
        0) return 0 ;;
        2) echo "compare: $server $proto N=$n: no viewer received a frame" >&2 ;;
        *) echo "compare: $server $proto N=$n failed: $(tail -n 3 "$WORK/$server-$proto-$n.log")" >&2
           rm -f "$WORK/$server-$proto-$n.json" ;;
    esac
    FAILED=$((FAILED + 1))
}

# start_onair: a fresh onair on new free ports; sets SERVER_PID, RTMP_PORT, HTTP_PORT.
# WebRTC listens on a loopback UDP port, so its candidates name loopback only.
start_onair() {
    RTMP_PORT=$(free_port)
    HTTP_PORT=$(free_port)
    printf '[webrtc]\nudp_addr = "127.0.0.1:%s"\nmax_viewers = %s\n' "$(free_udp_port)" \
        "$((max_viewers + 16))" >"$WORK/onair.toml"
    "$TARGET/onair" serve --rtmp-addr "127.0.0.1:$RTMP_PORT" --http-addr "127.0.0.1:$HTTP_PORT" \
        --config "$WORK/onair.toml" >>"$WORK/onair-server.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$RTMP_PORT" && wait_port "$HTTP_PORT" && return 0
    echo "compare: onair did not start; log:" >&2
    tail -n 20 "$WORK/onair-server.log" >&2 || true
    stop_server
    return 1
}

# start_nginx: a fresh nginx-rtmp from a config in $WORK/nginx; sets SERVER_PID, RTMP_PORT.
start_nginx() {
    local ndir="$WORK/nginx"
    RTMP_PORT=$(free_port)
    mkdir -p "$ndir"
    cat >"$ndir/nginx.conf" <<EOF
load_module $NGINX_MODULE;
daemon off;
worker_processes 1;
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
    nginx -p "$ndir" -e "$ndir/error.log" -c "$ndir/nginx.conf" >>"$WORK/nginx-server.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$RTMP_PORT" && return 0
    echo "compare: nginx did not start; log:" >&2
    tail -n 20 "$ndir/error.log" "$WORK/nginx-server.log" >&2 || true
    stop_server
    return 1
}

# Each run gets a freshly started server, so CPU and peak RSS belong to that run alone.
if [ "$ONLY" != nginx ]; then
    if [ "$HAVE_ONAIR" = 1 ]; then
        for proto in $PROTOCOLS; do
            for n in $VIEWERS; do
                start_onair || { FAILED=$((FAILED + 1)); break 2; }
                publish="rtmp://127.0.0.1:$RTMP_PORT/live/bench"
                # shellcheck disable=SC2059
                case "$proto" in
                    rtmp) play=$publish ;;
                    flv) play="http://127.0.0.1:$HTTP_PORT$(printf "$FLV_PATH" bench)" ;;
                    hls) play="http://127.0.0.1:$HTTP_PORT$(printf "$HLS_PATH" bench)" ;;
                    whep) play="http://127.0.0.1:$HTTP_PORT/live/bench/whep" ;;
                esac
                bench onair "$proto" "$n" "$publish" "$play"
                kill -0 "$SERVER_PID" 2>/dev/null || echo "compare: onair died during the run" >&2
                stop_server
            done
        done
    else
        echo "compare: target/release/onair has no 'serve' command yet; onair skipped" >&2
    fi
fi

if [ "$ONLY" != onair ] && has_proto hls; then
    echo "compare: nginx-rtmp HLS not run (out of scope: it needs an http block and 'hls on')" >&2
fi
if [ "$ONLY" != onair ] && has_proto rtmp; then
    NGINX_MODULE=$(dpkg -L libnginx-mod-rtmp 2>/dev/null | grep 'ngx_rtmp_module\.so$' | head -n 1 || true)
    NGINX_MODULE=${NGINX_MODULE:-/usr/lib/nginx/modules/ngx_rtmp_module.so}
    if command -v nginx >/dev/null && [ -f "$NGINX_MODULE" ]; then
        for n in $VIEWERS; do
            start_nginx || { FAILED=$((FAILED + 1)); break; }
            url="rtmp://127.0.0.1:$RTMP_PORT/live/bench"
            bench nginx-rtmp rtmp "$n" "$url" "$url"
            kill -0 "$SERVER_PID" 2>/dev/null || echo "compare: nginx died during the run" >&2
            stop_server
        done
    else
        echo "compare: nginx or its RTMP module missing (apt-get install nginx libnginx-mod-rtmp); skipped" >&2
    fi
fi

python3 - "$WORK" "$VIEWERS" "$PROTOCOLS" <<'EOF'
import json, os, sys

work, viewers = sys.argv[1], [int(n) for n in sys.argv[2].split()]
protocols = sys.argv[3].split()

def load(server, proto, n):
    try:
        with open(os.path.join(work, f"{server}-{proto}-{n}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def fmt(v, prec=1):
    return "-" if v is None else f"{v:.{prec}f}"

ROWS = [
    ("viewers connected", lambda r: f"{r['connected_viewers']}/{r['viewers']}"),
    ("latency p50 ms", lambda r: fmt(r["latency_ms"]["p50"])),
    ("latency p99 ms", lambda r: fmt(r["latency_ms"]["p99"])),
    ("latency max ms", lambda r: fmt(r["latency_ms"]["max"])),
    ("first frame p50 ms", lambda r: fmt(r["ttff_ms"]["p50"], 0)),
    ("first frame p99 ms", lambda r: fmt(r["ttff_ms"]["p99"], 0)),
    ("first keyframe p99 ms", lambda r: fmt(r["ttfk_ms"]["p99"], 0)),
    ("delivered fraction", lambda r: fmt(r["delivered_fraction"], 4)),
    ("Gbit delivered", lambda r: fmt(r["gbit_delivered"], 2)),
    ("server CPU s", lambda r: fmt(r["server_cpu_s"], 2)),
    ("server CPU s / Gbit", lambda r: fmt(r["cpu_s_per_gbit"], 3)),
    ("server peak RSS MiB", lambda r: fmt(r["peak_rss_mib"])),
    ("bench CPU s", lambda r: fmt(r["bench_cpu_s"], 2)),
    ("viewer errors", lambda r: str(sum(e["viewers"] for e in r["errors"]))),
]

def thread(r, key, prec=2):
    t = r.get("server_thread") or {}
    return fmt(t.get(key), prec)

WHEP_ROWS = ROWS[:-1] + [
    ("transcode CPU s", lambda r: thread(r, "cpu_s")),
    ("transcode share", lambda r: thread(r, "share_of_server", 3)),
    ("video RTP pkts/s", lambda r: fmt((r.get("whep") or {}).get("video_packets_per_s"), 0)),
    ("audio RTP pkts/s", lambda r: fmt((r.get("whep") or {}).get("audio_packets_per_s"), 0)),
    ("incomplete frames", lambda r: str((r.get("whep") or {}).get("incomplete_frames", "-"))),
    ROWS[-1],
]

def hls(r, key, sub=None, prec=1):
    v = (r.get("hls") or {}).get(key)
    if sub is not None:
        v = (v or {}).get(sub)
    return fmt(v, prec) if not isinstance(v, int) else str(v)

HLS_ROWS = [
    ("clients receiving", lambda r: f"{r['connected_viewers']}/{r['viewers']}"),
    ("playlist requests/s", lambda r: hls(r, "playlist_requests_per_s")),
    ("segment requests/s", lambda r: hls(r, "segment_requests_per_s")),
    ("playlist req p50 ms", lambda r: hls(r, "playlist_latency_ms", "p50", 2)),
    ("playlist req p99 ms", lambda r: hls(r, "playlist_latency_ms", "p99", 2)),
    ("segment req p50 ms", lambda r: hls(r, "segment_latency_ms", "p50", 2)),
    ("segment req p99 ms", lambda r: hls(r, "segment_latency_ms", "p99", 2)),
    ("seg. available p50 ms", lambda r: hls(r, "segment_available_ms", "p50")),
    ("seg. available p99 ms", lambda r: hls(r, "segment_available_ms", "p99")),
    ("probe available p50 ms", lambda r: hls(r, "segment_available_probe_ms", "p50")),
    ("probe available p99 ms", lambda r: hls(r, "segment_available_probe_ms", "p99")),
    ("probe requests/s", lambda r: hls(r, "probe_requests_per_s")),
    ("glass-to-fetch p50 ms", lambda r: fmt(r["latency_ms"]["p50"], 0)),
    ("glass-to-fetch p99 ms", lambda r: fmt(r["latency_ms"]["p99"], 0)),
    ("delivered fraction", lambda r: fmt(r["delivered_fraction"], 4)),
    ("Gbit delivered", lambda r: fmt(r["gbit_delivered"], 2)),
    ("server CPU s", lambda r: fmt(r["server_cpu_s"], 2)),
    ("server CPU s / Gbit", lambda r: fmt(r["cpu_s_per_gbit"], 3)),
    ("CPU s / 1000 requests", lambda r: hls(r, "cpu_s_per_1000_requests", prec=3)),
    ("server peak RSS MiB", lambda r: fmt(r["peak_rss_mib"])),
    ("bench CPU s", lambda r: fmt(r["bench_cpu_s"], 2)),
    ("non-200 / timeouts", lambda r: f"{hls(r, 'non_200')} / {hls(r, 'timeouts')}"),
    ("TS parse failures", lambda r: hls(r, "ts_parse_failures")),
]

def ratio(a, b, key):
    if a is None or b is None or not a.get(key) or not b.get(key):
        return "-"
    return f"{a[key] / b[key]:.2f}"

ratios = []
printed = False
NO_NGINX = {"flv": "no HTTP-FLV", "hls": "out of scope", "whep": "no WebRTC"}
for proto in ("rtmp", "flv", "hls", "whep"):
    if proto not in protocols:
        continue
    for n in viewers:
        onair = load("onair", proto, n)
        nginx = load("nginx-rtmp", proto, n) if proto == "rtmp" else None
        if onair is None and nginx is None:
            continue
        printed = True
        cols = ["onair", "nginx-rtmp"]
        print(f"\n{proto.upper()} viewers, N={n}")
        print(f"  {'':24}{cols[0]:>14}{cols[1]:>18}")
        for name, get in {"hls": HLS_ROWS, "whep": WHEP_ROWS}.get(proto, ROWS):
            a = get(onair) if onair else ("failed/skipped")
            b = get(nginx) if nginx else NO_NGINX.get(proto, "failed/skipped")
            print(f"  {name:24}{a:>14}{b:>18}")
        if proto == "rtmp":
            r = ratio(onair, nginx, "cpu_s_per_gbit")
            print(f"  {'CPU s/Gbit onair/nginx':24}{r:>14}")
            ratios.append(f"N={n}: {r}")
        for label, r in (("onair", onair), ("nginx-rtmp", nginx)):
            for e in (r or {}).get("errors", [])[:3]:
                print(f"  {label} viewer error: {e['viewers']} x {e['reason']}")
            for e in ((r or {}).get("hls") or {}).get("errors", [])[:5]:
                print(f"  {label} HLS error: {e['count']} x {e['reason']}")
if ratios:
    print("\nserver CPU s per delivered Gbit, onair / nginx-rtmp (RTMP): " + ", ".join(ratios))
if not printed:
    print("\ncompare: no results", file=sys.stderr)
    sys.exit(1)
EOF
if [ "$FAILED" != 0 ]; then
    echo "compare: $FAILED run(s) failed" >&2
    exit 1
fi
