#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 60): bash fuzz/run.sh [SECONDS] [TARGET...]
# Each run's libFuzzer output goes to build/fuzz/<target>.log; a crash prints its tail and
# makes the script exit non-zero after the other targets have run.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <("$PY" -m fuzz.runner --list)
fi
# FUZZ_ARGS: extra libFuzzer flags. FUZZ_FRESH=1 starts from the committed corpus only
# (make fuzz-smoke: with a fixed -seed and -runs, what it tries is the same every time,
# so CI cannot fail by the luck of the draw).
extra=(${FUZZ_ARGS:-})
if [ "${FUZZ_FRESH:-0}" = 1 ]; then
    rm -rf build/fuzz/corpus
fi
mkdir -p build/fuzz
failed=0
for target in "${targets[@]}"; do
    log=build/fuzz/$target.log
    # The wall-clock bound covers a run that libFuzzer itself could not stop.
    if timeout $((seconds + 60)) "$PY" -m fuzz.runner "$target" --time "$seconds" "${extra[@]}" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
        echo "fuzz $target: ${runs:-?} inputs in ${seconds}s, peak RSS ${rss:-?} MB, no crash"
    else
        failed=1
        echo "fuzz $target: FAILED (see $log)"
        grep -v '^#\|^"' "$log" | tail -n 40
    fi
done
exit $failed
