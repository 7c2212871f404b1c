# Shared by bench/compare.sh and bench/floor.sh (sourced, never run): stopping the server
# under test, the exit cleanup (copying $WORK's reports to $OUT), free loopback ports.
# The caller sets WORK, OUT, SERVER_PID and BENCH_PID.

stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}

cleanup() {
    if [ -n "$BENCH_PID" ]; then
        kill -TERM "$BENCH_PID" 2>/dev/null || true
        wait "$BENCH_PID" 2>/dev/null || true
    fi
    stop_server
    if [ -n "$OUT" ]; then
        mkdir -p "$OUT"
        cp "$WORK"/*.json "$WORK"/*.log "$OUT"/ 2>/dev/null || true
    fi
    rm -rf "$WORK"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits (at most 10 s) until 127.0.0.1:$1 accepts connections and the server is alive.
wait_port() {
    for _ in $(seq 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}
