"""Summarize Autobahn|Testsuite reports and fail on any non-passing case.

Reads ``index.json`` under ``compliance/reports/server`` (tether's server, driven by
``wstest -m fuzzingclient``) and ``compliance/reports/client`` (tether's client,
driven by ``wstest -m fuzzingserver``), prints how many cases got each
``behavior`` and each ``behaviorClose`` per side, then lists every failing case.

A case passes when both its ``behavior`` and its ``behaviorClose`` are ``OK`` or
``INFORMATIONAL``. Anything else -- ``FAILED``, ``NON-STRICT``, ``WRONG CODE``,
``UNCLEAN``, ``UNIMPLEMENTED`` -- fails the run. So does a missing report, and so
does a case that one side ran and the other did not (both sides use the same case
list, so this means a testee crashed or stopped early).

Usage::

    python compliance/summarize.py [--reports DIR] [--side server] [--side client]

Exit status: 0 when every case passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

PASSING = frozenset({"OK", "INFORMATIONAL"})
SIDES = ("server", "client")
DEFAULT_REPORTS = Path(__file__).resolve().parent / "reports"


def case_key(case_id: str) -> tuple[int, ...]:
    """Sort key for Autobahn case ids such as ``"6.4.10"``."""
    return tuple(int(part) for part in case_id.split(".") if part.isdigit())


def load_index(side_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Load ``index.json`` of one side: ``{agent: {case_id: result}}``.

    Raises:
        FileNotFoundError: the side has no report.
        ValueError: the report is not valid JSON.
    """
    with open(side_dir / "index.json", encoding="utf-8") as f:
        data: dict[str, dict[str, dict[str, Any]]] = json.load(f)
    return data


def case_detail(side_dir: Path, result: dict[str, Any]) -> str:
    """One line of what went wrong, taken from the per-case JSON report."""
    report = result.get("reportfile")
    if not report:
        return ""
    path = side_dir / Path(report).with_suffix(".json")
    try:
        with open(path, encoding="utf-8") as f:
            case = json.load(f)
    except (OSError, ValueError):
        return ""
    parts = []
    for key in ("result", "resultClose"):
        text = case.get(key)
        if text:
            parts.append(" ".join(str(text).split()))
    if case.get("behavior") not in PASSING:
        # Autobahn's "result" is often generic ("Actual events match at least one
        # expected"); what was expected for OK versus what arrived says more.
        expected = case.get("expected") or {}
        if isinstance(expected, dict) and "OK" in expected:
            parts.append(f"expected(OK)={shorten(expected['OK'])}")
        parts.append(f"received={shorten(case.get('received'))}")
    return " | ".join(parts)


def shorten(value: Any, limit: int = 120) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summarize_side(side: str, side_dir: Path) -> tuple[set[str], list[str]]:
    """Print the counts of one side; return its case ids and its failure lines."""
    print(f"== {side} ({side_dir})")
    try:
        index = load_index(side_dir)
    except FileNotFoundError:
        print("   no index.json: this side did not run or did not finish")
        return set(), [f"{side}: no report in {side_dir}"]
    except ValueError as exc:
        print(f"   unreadable index.json: {exc}")
        return set(), [f"{side}: unreadable report in {side_dir}: {exc}"]
    if not index:
        print("   index.json lists no agent")
        return set(), [f"{side}: empty report in {side_dir}"]

    all_ids: set[str] = set()
    failures: list[str] = []
    for agent in sorted(index):
        cases = index[agent]
        all_ids.update(cases)
        behavior = Counter(r.get("behavior", "?") for r in cases.values())
        behavior_close = Counter(r.get("behaviorClose", "?") for r in cases.values())
        print(f"   agent {agent}: {len(cases)} cases")
        print("   behavior:      " + format_counts(behavior))
        print("   behaviorClose: " + format_counts(behavior_close))
        for case_id in sorted(cases, key=case_key):
            r = cases[case_id]
            b, bc = r.get("behavior", "?"), r.get("behaviorClose", "?")
            if b in PASSING and bc in PASSING:
                continue
            line = (
                f"{side} {agent} {case_id}: behavior={b} behaviorClose={bc} "
                f"remoteCloseCode={r.get('remoteCloseCode')}"
            )
            detail = case_detail(side_dir, r)
            if detail:
                line += f"\n      {detail}"
            failures.append(line)
    return all_ids, failures


def format_counts(counts: Counter[str]) -> str:
    return ", ".join(f"{name}={n}" for name, n in sorted(counts.items())) or "(none)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reports", type=Path, default=DEFAULT_REPORTS, help="reports root directory"
    )
    parser.add_argument(
        "--side",
        action="append",
        choices=SIDES,
        help="side to check (repeatable; default: both)",
    )
    args = parser.parse_args(argv)
    sides = args.side or list(SIDES)

    failures: list[str] = []
    ids_by_side: dict[str, set[str]] = {}
    for side in sides:
        ids, side_failures = summarize_side(side, args.reports / side)
        ids_by_side[side] = ids
        failures.extend(side_failures)

    if len(sides) == 2 and all(ids_by_side.values()):
        a, b = sides
        for x, y in ((a, b), (b, a)):
            missing = ids_by_side[x] - ids_by_side[y]
            if missing:
                listed = ", ".join(sorted(missing, key=case_key))
                failures.append(f"{y}: {len(missing)} case(s) ran on {x} but not here: {listed}")

    print()
    if failures:
        print(f"FAILED: {len(failures)} problem(s)")
        for line in failures:
            print("  " + line)
        return 1
    total = sum(len(ids) for ids in ids_by_side.values())
    print(f"PASSED: all {total} case results are OK or INFORMATIONAL")
    return 0


if __name__ == "__main__":
    sys.exit(main())
