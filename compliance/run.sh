#!/usr/bin/env bash
# Run Autobahn|Testsuite against tether's server and client.
#
# Usage: bash compliance/run.sh [all|quick]        (default: quick)
#
#   1. installs wstest into .venv-autobahn (compliance/setup_autobahn.sh; fast when done)
#   2. server side: starts examples/echo_server.py and runs `wstest -m fuzzingclient`
#      against it; reports in compliance/reports/server
#   3. client side: starts `wstest -m fuzzingserver` and runs compliance/client.py
#      against it; reports in compliance/reports/client
#   4. compliance/summarize.py prints the counts and exits non-zero on any case that
#      is not OK or INFORMATIONAL
#
# Every process started here is ended by its PID on exit. Works from any directory.
# Environment: AUTOBAHN_TIMEOUT (seconds per side; default 300 quick, 3600 all),
#              PYTHON (interpreter for tether programs; default $ROOT/.venv/bin/python).
set -euo pipefail

MODE="${1:-quick}"
case "$MODE" in
    all) DEFAULT_TIMEOUT=3600 ;;
    quick) DEFAULT_TIMEOUT=300 ;;
    *)
        echo "usage: $0 [all|quick]" >&2
        exit 2
        ;;
esac
TIMEOUT="${AUTOBAHN_TIMEOUT:-$DEFAULT_TIMEOUT}"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
REPORTS="$HERE/reports"
AGENT="tether"

log() { echo "conformance: $*" >&2; }

PIDS=()
WORK=""
cleanup() {
    local status=$?
    local pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "$WORK" ]]; then
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

WSTEST="$(bash "$HERE/setup_autobahn.sh")"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tether-autobahn.XXXXXX")"

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT PID NAME LOGFILE: wait until PORT accepts connections, or fail if PID died.
wait_port() {
    local port=$1 pid=$2 name=$3 logfile=$4 i
    for ((i = 0; i < 200; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited before listening; its output:"
            cat "$logfile" >&2
            exit 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    log "$name did not listen on port $port within 20s; its output:"
    cat "$logfile" >&2
    exit 1
}

# wait_pid PID NAME LOGFILE: wait for PID with the per-side timeout; fail on timeout.
wait_pid() {
    local pid=$1 name=$2 logfile=$3 deadline=$((SECONDS + TIMEOUT)) status
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "$name still running after ${TIMEOUT}s; stopping it. Last output:"
            tail -n 20 "$logfile" >&2
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            return 1
        fi
        sleep 0.2
    done
    status=0
    wait "$pid" || status=$?
    return "$status"
}

rm -rf "$REPORTS/server" "$REPORTS/client"
mkdir -p "$REPORTS/server" "$REPORTS/client"
start=$SECONDS
failed=0

# --- server side: Autobahn's fuzzing client against examples/echo_server.py --------
SERVER_PORT="$(free_port)"
"$PY" "$ROOT/examples/echo_server.py" --host 127.0.0.1 --port "$SERVER_PORT" \
    >"$WORK/echo_server.log" 2>&1 &
ECHO_PID=$!
PIDS+=("$ECHO_PID")
wait_port "$SERVER_PORT" "$ECHO_PID" "echo server" "$WORK/echo_server.log"

"$PY" "$HERE/spec.py" --mode "$MODE" --side server --url "ws://127.0.0.1:$SERVER_PORT" \
    --outdir "$REPORTS/server" --agent "$AGENT" >"$WORK/fuzzingclient.json"
log "server side ($MODE): wstest -m fuzzingclient -> ws://127.0.0.1:$SERVER_PORT"
# wstest writes stray files in its working directory; keep them out of the tree.
(cd "$WORK" && exec "$WSTEST" -m fuzzingclient -s "$WORK/fuzzingclient.json") \
    >"$WORK/fuzzingclient.log" 2>&1 &
FC_PID=$!
PIDS+=("$FC_PID")
if ! wait_pid "$FC_PID" "wstest fuzzingclient" "$WORK/fuzzingclient.log"; then
    log "wstest fuzzingclient failed; last output:"
    tail -n 20 "$WORK/fuzzingclient.log" >&2
    failed=1
fi
kill "$ECHO_PID" 2>/dev/null || true
wait "$ECHO_PID" 2>/dev/null || true
cp "$WORK/echo_server.log" "$WORK/fuzzingclient.log" "$REPORTS/server/" 2>/dev/null || true
log "server side done in $((SECONDS - start))s"

# --- client side: compliance/client.py against Autobahn's fuzzing server -------------
client_start=$SECONDS
CLIENT_PORT="$(free_port)"
"$PY" "$HERE/spec.py" --mode "$MODE" --side client --url "ws://127.0.0.1:$CLIENT_PORT" \
    --outdir "$REPORTS/client" >"$WORK/fuzzingserver.json"
(cd "$WORK" && exec "$WSTEST" -m fuzzingserver -u 0 -s "$WORK/fuzzingserver.json") \
    >"$WORK/fuzzingserver.log" 2>&1 &
FS_PID=$!
PIDS+=("$FS_PID")
wait_port "$CLIENT_PORT" "$FS_PID" "wstest fuzzingserver" "$WORK/fuzzingserver.log"

log "client side ($MODE): compliance/client.py -> ws://127.0.0.1:$CLIENT_PORT"
"$PY" "$HERE/client.py" --url "ws://127.0.0.1:$CLIENT_PORT" --agent "$AGENT" \
    >"$WORK/client.log" 2>&1 &
CLIENT_PID=$!
PIDS+=("$CLIENT_PID")
if ! wait_pid "$CLIENT_PID" "compliance/client.py" "$WORK/client.log"; then
    log "compliance/client.py failed; last output:"
    tail -n 20 "$WORK/client.log" >&2
    failed=1
fi
kill "$FS_PID" 2>/dev/null || true
wait "$FS_PID" 2>/dev/null || true
cp "$WORK/client.log" "$WORK/fuzzingserver.log" "$REPORTS/client/" 2>/dev/null || true
log "client side done in $((SECONDS - client_start))s"
log "total $((SECONDS - start))s; reports in $REPORTS/{server,client}/index.html"

# --- verdict ----------------------------------------------------------------------------
if ! "$PY" "$HERE/summarize.py" --reports "$REPORTS"; then
    failed=1
fi
exit "$failed"
