"""Run one fuzz target under atheris, or replay its corpus without it.

Usage (from the repository root)::

    python -m fuzz.runner frames --time 60        # fuzz for 60 s (libFuzzer)
    python -m fuzz.runner frames --replay         # run the corpus once, no atheris needed
    python -m fuzz.runner --list

A fuzzing run reads ``fuzz/corpus/<target>/`` as its seeds and writes what it learns to
``build/fuzz/corpus/<target>/`` (git ignores ``build/``), so the committed corpus stays
small. A crash is written to ``build/fuzz/crash-<target>-<sha1>``; the run then exits
non-zero. Memory is bounded by ``-rss_limit_mb`` and ``-max_len``, one input's time by
``-timeout``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from pathlib import Path

__all__ = ["CORPUS", "TARGETS", "corpus_dir", "load", "main", "replay"]

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
WORK = ROOT / "build" / "fuzz"

#: Target name -> module in this package that defines ``TARGET``.
TARGETS = {
    "frames": "fuzz.fuzz_frames",
    "frames_pure": "fuzz.fuzz_frames_pure",
    "http_request": "fuzz.fuzz_http_request",
    "http_response": "fuzz.fuzz_http_response",
    "deflate": "fuzz.fuzz_deflate",
    "engine": "fuzz.fuzz_engine",
    "socketio": "fuzz.fuzz_socketio",
}

# Set before tether is imported (the module picks its accelerator at import time).
_ENV = {"frames_pure": {"TETHER_PURE_PYTHON": "1"}}
# The pure-Python twin parses the same bytes: one corpus for both.
_SEEDS = {"frames_pure": "frames"}


def corpus_dir(name: str) -> Path:
    """The committed seed corpus of target ``name``."""
    return CORPUS / _SEEDS.get(name, name)


def load(name: str):  # type: ignore[no-untyped-def]
    """Import a target module and return its ``TARGET``."""
    os.environ.update(_ENV.get(name, {}))
    return importlib.import_module(TARGETS[name]).TARGET


def replay(name: str, paths: list[Path] | None = None) -> int:
    """Run every corpus file of ``name`` (or ``paths``) once; return how many failed."""
    target = load(name)
    files = paths if paths is not None else sorted(corpus_dir(name).glob("*"))
    failed = 0
    for path in files:
        try:
            target.one_input(path.read_bytes())
        except Exception:
            failed += 1
            print(f"{name}: {path} failed", file=sys.stderr)
            traceback.print_exc()
    print(f"{name}: replayed {len(files)} inputs, {failed} failed")
    return failed


def _fuzz(name: str, seconds: int, rss_limit_mb: int, extra: list[str]) -> None:
    import atheris  # the fuzz extra: pip install -e '.[fuzz]'

    os.environ.update(_ENV.get(name, {}))
    # Coverage feedback from tether's own code only: the fuzzer steers by its branches.
    with atheris.instrument_imports(include=["tether"]):
        target = importlib.import_module(TARGETS[name]).TARGET
    work = WORK / "corpus" / name
    work.mkdir(parents=True, exist_ok=True)
    seeds = corpus_dir(name)
    argv = [
        sys.argv[0],
        str(work),
        *([str(seeds)] if seeds.is_dir() else []),
        f"-max_total_time={seconds}",
        f"-max_len={target.max_len}",
        f"-rss_limit_mb={rss_limit_mb}",
        "-timeout=10",
        f"-artifact_prefix={WORK}/{name}-",
        "-print_final_stats=1",
        *extra,
    ]
    atheris.Setup(argv, target.one_input)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m fuzz.runner", description=__doc__)
    parser.add_argument("target", nargs="?", choices=sorted(TARGETS))
    parser.add_argument("--time", type=int, default=60, help="seconds of fuzzing (default 60)")
    parser.add_argument("--rss-limit-mb", type=int, default=1024)
    parser.add_argument("--replay", action="store_true", help="run the corpus once and stop")
    parser.add_argument("--list", action="store_true", help="print the target names")
    parser.add_argument("inputs", nargs="*", type=Path, help="with --replay: these files only")
    args, extra = parser.parse_known_args(argv)
    if args.list:
        print("\n".join(TARGETS))
        return 0
    if args.target is None:
        parser.error("a target is required")
    if args.replay:
        return 1 if replay(args.target, args.inputs or None) else 0
    WORK.mkdir(parents=True, exist_ok=True)
    _fuzz(args.target, args.time, args.rss_limit_mb, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
