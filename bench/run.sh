#!/usr/bin/env bash
# Side-by-side benchmarks: tether against websockets, aiohttp, picows (all on uvloop) and
# Node ws, driven by a C load generator; tether's Socket.IO hub against python-socketio and
# the Node socket.io server, driven by a Node socket.io-client generator.
#
#   bash bench/run.sh              full run (median of 3), writes bench/RESULTS.md
#   bash bench/run.sh --smoke      ~1 minute, tiny counts, one run, writes bench/out/
#   bash bench/run.sh --profile    py-spy on the tether server under the echo-100 load
#   bash bench/run.sh --scenarios echo-1,broadcast --servers tether,websockets
#   bash bench/run.sh --scenarios sio-echo-1,sio-echo-100,sio-broadcast,sio-idle
#   bash bench/run.sh --cluster    ~2 minutes: a room broadcast through Redis, 1 vs 3 nodes,
#                                  tether / python-socketio / Node socket.io; bench/CLUSTER.md
#
# Sets up (idempotent, quick when already done): bench/.venv with the peers and tether
# (editable), bench/node/node_modules with ws and socket.io, bench/sio/node_modules with
# socket.io-client (from its lockfile), bench/out/loadgen, a self-signed certificate.
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
OUT="$BENCH/out"
VENV="$BENCH/.venv"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"

log() { echo "bench: $*" >&2; }

pipq() {
    local rc=0
    "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" >"$OUT/pip.log" 2>&1 || rc=$?
    # quiet on success (build backends are chatty); the log says why on failure
    if [ "$rc" != 0 ]; then grep -v '^WARNING: Location' "$OUT/pip.log" | tail -20 >&2 || true; fi
    return "$rc"
}

# --- Python: peers + tether in bench/.venv -------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    log "creating bench/.venv"
    "$PY" -m venv "$VENV"
fi
want="$(cat "$BENCH/requirements.txt" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$VENV/.bench-stamp" 2>/dev/null || true)" != "$want" ]; then
    log "installing peers and tether into bench/.venv"
    pipq install -U pip || true
    all_ok=1
    while read -r req; do
        case "$req" in ''|'#'*) continue ;; esac
        # one at a time: a peer that fails to install is skipped later, not fatal here
        pipq install "$req" || { all_ok=0; log "could not install $req (its results will say skipped)"; }
    done <"$BENCH/requirements.txt"
    pipq install -e "$ROOT"
    if [ "$all_ok" = 1 ]; then echo "$want" >"$VENV/.bench-stamp"; fi
fi
for arg in "$@"; do
    if [ "$arg" = "--profile" ] && [ ! -x "$VENV/bin/py-spy" ]; then
        pipq install py-spy
    fi
done

# --- Node: ws and socket.io (servers), socket.io-client (the Socket.IO generator) ------
if command -v npm >/dev/null 2>&1; then
    node_want="$(sha256sum "$BENCH/node/package.json" | cut -d' ' -f1)"
    if [ "$(cat "$BENCH/node/node_modules/.bench-stamp" 2>/dev/null || true)" != "$node_want" ]; then
        log "installing ws and socket.io into bench/node"
        # the servers are pinned exactly in package.json; no lockfile (see node/.npmrc)
        if (cd "$BENCH/node" && npm install --no-audit --no-fund --silent); then
            echo "$node_want" >"$BENCH/node/node_modules/.bench-stamp"
        else
            log "npm install failed: ws (Node) and socket.io (Node) will be skipped"
        fi
    fi
    sio_want="$(cat "$BENCH/sio/package.json" "$BENCH/sio/package-lock.json" | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$BENCH/sio/node_modules/.bench-stamp" 2>/dev/null || true)" != "$sio_want" ]; then
        log "installing socket.io-client into bench/sio"
        if (cd "$BENCH/sio" && npm ci --no-audit --no-fund --silent); then
            echo "$sio_want" >"$BENCH/sio/node_modules/.bench-stamp"
        else
            log "npm ci failed in bench/sio: the Socket.IO scenarios will be skipped"
        fi
    fi
else
    log "npm not found: ws (Node), socket.io (Node) and the Socket.IO scenarios will be skipped"
fi

# --- the load generator -----------------------------------------------------------------
SRC="$BENCH/loadgen/loadgen.c"
if [ ! -x "$OUT/loadgen" ] || [ "$SRC" -nt "$OUT/loadgen" ]; then
    log "building bench/out/loadgen"
    if ! gcc -O2 -Wall -Wextra -o "$OUT/loadgen" "$SRC" -lssl -lcrypto 2>"$OUT/gcc.log"; then
        log "building without TLS (OpenSSL headers missing? apt-get install libssl-dev)"
        gcc -O2 -Wall -Wextra -DLOADGEN_NO_TLS -o "$OUT/loadgen" "$SRC"
    fi
fi

# --- a self-signed certificate for the wss:// scenario -----------------------------------
if [ ! -s "$OUT/cert.pem" ] || [ ! -s "$OUT/key.pem" ]; then
    if command -v openssl >/dev/null 2>&1; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
            -keyout "$OUT/key.pem" -out "$OUT/cert.pem" >/dev/null 2>&1 ||
            log "openssl req failed: wss:// will be skipped"
    else
        log "openssl not found: wss:// will be skipped"
    fi
fi

# --- descriptors for 5,000 idle connections (both ends) ----------------------------------
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --cluster: the cluster broadcast benchmark (bench/cluster.py, needs Redis on 127.0.0.1:6379)
for arg in "$@"; do
    if [ "$arg" = "--cluster" ]; then exec "$VENV/bin/python" "$BENCH/cluster.py" "$@"; fi
done

exec "$VENV/bin/python" "$BENCH/run.py" "$@"
