#!/usr/bin/env bash
# Install the Debian packages the tests drive: headless Chromium (browser tests) and
# nginx-light (a real reverse proxy doing round robin). Only what is missing; idempotent:
# does nothing (and touches no package index) when both are there. The apt index is
# refreshed only if a package cannot be found in the current one.
set -euo pipefail

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)

if [ "${#missing[@]}" -eq 0 ]; then
    echo "chromium present: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    echo "nginx present: $( (nginx -v || /usr/sbin/nginx -v) 2>&1 | head -1)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-packages.sh: ${missing[*]} missing and apt-get is not available" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-system-packages.sh: need root (or sudo) to install ${missing[*]}" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive

# apt-cache knows nothing until the index has been fetched at least once.
for pkg in "${missing[@]}"; do
    if ! apt-cache show "$pkg" >/dev/null 2>&1; then
        $SUDO apt-get update -q
        break
    fi
done

if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    # The index may be stale (a package version gone from the mirror): refresh and retry once.
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The package starts a system nginx on port 80; the tests run their own, on their ports.
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now nginx 2>/dev/null || true; fi
/usr/bin/chromium --version
(nginx -v || /usr/sbin/nginx -v) 2>&1 | head -1
