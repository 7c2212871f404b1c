#!/usr/bin/env bash
# HLS with and without the nginx cache, in one run against one onair: N TS clients of
# onair-bench straight at onair, then N through nginx running deploy/nginx-hls-cache.conf
# (addresses and paths rewritten, as tests/hls_cache.rs does), each on a fresh stream name.
# Reports onair's CPU for both (and nginx's), and from nginx's log what reached the origin:
# requests per segment and playlist requests per second.
#
#   bench/hls-cache.sh [--clients 300] [--duration 20] [--warmup 5] [--out DIR]
#
# Uses target/release/onair and onair-bench (ONAIR_BIN, ONAIR_BENCH override them);
# needs nginx (scripts/install-deps.sh) and python3.
set -euo pipefail
CLIENTS=300
DURATION=20
WARMUP=5
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --clients) CLIENTS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        *) echo "hls-cache.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ONAIR="${ONAIR_BIN:-$ROOT/target/release/onair}"
BENCH="${ONAIR_BENCH:-$ROOT/target/release/onair-bench}"
WORK="$(mktemp -d -t onair-hls-cache.XXXXXX)"
chmod 0755 "$WORK" # nginx's workers (nobody, when started as root) write the cache here
ONAIR_PID=""
NGINX_PID=""
cleanup() {
    [ -n "$NGINX_PID" ] && kill -TERM "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null || true
    [ -n "$ONAIR_PID" ] && kill -TERM "$ONAIR_PID" 2>/dev/null && wait "$ONAIR_PID" 2>/dev/null || true
    if [ -n "$OUT" ]; then mkdir -p "$OUT" && cp "$WORK"/*.json "$WORK"/*.log "$OUT"/ 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 100); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2; exit 1
}
# utime+stime in ticks of a pid and its children processes (nginx: master and workers).
cpu_ticks() {
    local total=0 p
    for p in "$@" $(pgrep -P "$1" || true); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
ulimit -n 65536 2>/dev/null || true

RTMP=$(free_port); HTTP=$(free_port); CACHE=$(free_port)
"$ONAIR" serve --rtmp-addr "127.0.0.1:$RTMP" --http-addr "127.0.0.1:$HTTP" \
    > "$WORK/onair.log" 2>&1 &
ONAIR_PID=$!
wait_port "$HTTP"

mkdir -p "$WORK/cache"
sed -e "s|worker_processes auto;|worker_processes 1;|" \
    -e "s|pid /run/nginx-onair-hls.pid;|pid $WORK/nginx.pid;|" \
    -e "s|/var/log/nginx/onair-hls-cache.log|$WORK/nginx-access.log|" \
    -e "s|/var/cache/nginx/|$WORK/cache/|g" \
    -e "s|server 127.0.0.1:8080;|server 127.0.0.1:$HTTP;|" \
    -e "s|listen 8088;|listen 127.0.0.1:$CACHE;|" \
    "$ROOT/deploy/nginx-hls-cache.conf" > "$WORK/nginx.conf"
nginx -p "$WORK" -e "$WORK/nginx-error.log" -g 'daemon off;' -c "$WORK/nginx.conf" \
    > "$WORK/nginx-error.log" 2>&1 &
NGINX_PID=$!
wait_port "$CACHE"

run() { # name play-host-port
    timeout $((2 * WARMUP + DURATION + 120)) "$BENCH" --publish "rtmp://127.0.0.1:$RTMP/live/$1" \
        --viewers "$CLIENTS" --protocol hls --play-url "http://$2/live/$1.m3u8?variant=ts" \
        --duration "$DURATION" --warmup "$WARMUP" --server-pid "$ONAIR_PID" --json \
        > "$WORK/$1.json" 2> "$WORK/$1.log"
}
run direct "127.0.0.1:$HTTP"
n0=$(cpu_ticks "$NGINX_PID"); t0=$(date +%s.%N)
run cached "127.0.0.1:$CACHE"
n1=$(cpu_ticks "$NGINX_PID"); t1=$(date +%s.%N)

python3 - "$WORK" "$CLIENTS" "$(( n1 - n0 ))" "$(getconf CLK_TCK)" "$t0" "$t1" <<'PY'
import collections, json, sys
work, clients, nginx_ticks, hz, t0, t1 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
runs = {n: json.load(open(f"{work}/{n}.json")) for n in ("direct", "cached")}
num = lambda v, f: "n/a" if v is None else format(v, f)
for name, r in runs.items():
    h = r["hls"]
    print(f"{name:7} {clients} TS clients: onair cpu {num(r['server_cpu_s'], '.2f')} s over the window, "
          f"delivered {num(r['delivered_fraction'], '.4f')}, skipped {h['skipped_segments']}, non-200 {h['non_200']}, "
          f"timeouts {h['timeouts']}, playlist req/s {num(h['playlist_requests_per_s'], '.0f')}, "
          f"segment req/s {num(h['segment_requests_per_s'], '.1f')}, glass-to-fetch p50 {r['latency_ms']['p50']} ms")
print(f"nginx cpu over the cached run (whole run, not only the window): {nginx_ticks / hz:.2f} s")
seg = collections.Counter(); playlist = []
for line in open(f"{work}/nginx-access.log"):
    f = line.split()
    if len(f) < 6 or f[3] == '"-"' or not (t0 <= float(f[0]) <= t1) or "/live/cached" not in f[4]:
        continue
    if f[4].endswith(".ts"):
        seg[f[4]] += 1
    elif ".m3u8" in f[4]:
        playlist.append(float(f[0]))
span = (max(playlist) - min(playlist)) if len(playlist) > 1 else 1.0
per_s = collections.Counter(int(t) for t in playlist)
print(f"origin behind nginx: {sum(seg.values())} segment requests for {len(seg)} segments "
      f"(most for one: {max(seg.values(), default=0)}), {len(playlist)} playlist requests in {span:.1f} s "
      f"({len(playlist) / span:.2f}/s, busiest second {max(per_s.values(), default=0)})")
PY
