#!/usr/bin/env bash
# Install Autobahn|Testsuite (wstest) into $ROOT/.venv-autobahn.
#
# wstest only runs on Python 2.7, so it gets its own virtualenv built from a
# Python 2.7 interpreter (pyenv's 2.7.x by default; override with PYTHON2=...).
# Every dependency is pinned in autobahn-requirements.txt. A marker file holding
# the hash of that file makes a second run return at once.
#
# Usage: bash compliance/setup_autobahn.sh        (prints the path of wstest)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
VENV="${AUTOBAHN_VENV:-$ROOT/.venv-autobahn}"
REQS="$HERE/autobahn-requirements.txt"
MARKER="$VENV/.autobahn-installed"
# Last virtualenv release that still runs on, and creates, Python 2.7 envs.
VIRTUALENV_PIN="virtualenv==20.15.1"

log() { echo "setup_autobahn: $*" >&2; }

want="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$want" && -x "$VENV/bin/wstest" ]] \
    && "$VENV/bin/python" -c 'import sys; sys.exit(0)' 2>/dev/null; then
    echo "$VENV/bin/wstest"
    exit 0
fi

find_python2() {
    if [[ -n "${PYTHON2:-}" ]]; then
        echo "$PYTHON2"
        return 0
    fi
    if command -v pyenv >/dev/null 2>&1; then
        local root candidate
        root="$(pyenv root)"
        for candidate in "$root"/versions/2.7.*/bin/python; do
            if [[ -x "$candidate" ]]; then
                echo "$candidate"
                return 0
            fi
        done
    fi
    if command -v python2.7 >/dev/null 2>&1; then
        command -v python2.7
        return 0
    fi
    return 1
}

if ! PY2="$(find_python2)"; then
    log "no Python 2.7 interpreter found (wstest needs one)."
    log "install one (e.g. 'pyenv install 2.7.18') or set PYTHON2=/path/to/python2.7"
    exit 1
fi
if ! "$PY2" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)'; then
    log "$PY2 is not Python 2.7"
    exit 1
fi
log "using $PY2"

export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_NO_PYTHON_VERSION_WARNING=1

# A venv whose interpreter vanished (e.g. pyenv was rebuilt) cannot be repaired.
if [[ -d "$VENV" ]] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    log "removing broken $VENV"
    rm -rf "$VENV"
fi

# pip on Python 2.7 is chatty (deprecation banners); keep its output in a log
# and show the tail only when a step fails.
INSTALL_LOG="$(mktemp)"
trap 'rm -f "$INSTALL_LOG"' EXIT
run_logged() {
    if ! "$@" >>"$INSTALL_LOG" 2>&1; then
        log "failed: $*"
        tail -n 40 "$INSTALL_LOG" >&2
        exit 1
    fi
}

rm -f "$MARKER"
run_logged "$PY2" -m pip install -q "$VIRTUALENV_PIN"
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV"
    run_logged "$PY2" -m virtualenv -q "$VENV"
fi
log "installing pinned Autobahn|Testsuite (about a minute on first run)"
run_logged "$VENV/bin/pip" install -q -r "$REQS"
"$VENV/bin/wstest" --help >/dev/null
echo "$want" >"$MARKER"
log "ready: $("$VENV/bin/wstest" -a 2>/dev/null | tr '\n' ' ')"
echo "$VENV/bin/wstest"
