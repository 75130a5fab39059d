#!/usr/bin/env bash
# Install Debian's headless Chromium for the browser tests, only when it is missing.
# Idempotent: does nothing (and touches no package index) when /usr/bin/chromium exists.
# The apt index is refreshed only if the package cannot be found in the current one.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "chromium present: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium.sh: $CHROMIUM is missing and apt-get is not available" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-chromium.sh: need root (or sudo) to install chromium" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive

# apt-cache knows nothing until the index has been fetched at least once.
if ! apt-cache show chromium >/dev/null 2>&1; then
    $SUDO apt-get update -q
fi

if ! $SUDO apt-get install -y -q --no-install-recommends chromium; then
    # The index may be stale (a package version gone from the mirror): refresh and retry once.
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends chromium
fi

"$CHROMIUM" --version
