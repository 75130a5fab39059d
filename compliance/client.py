"""tether's WebSocket client as the testee of ``wstest -m fuzzingserver``.

Asks the fuzzing server how many cases it has, runs each one by echoing every
message until the connection closes, then asks it to write its reports.

Usage::

    python compliance/client.py --url ws://127.0.0.1:9002 --agent tether
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Coroutine
from typing import Any
from urllib.parse import quote

import tether

MAX_SIZE = 16 * 2**20


async def get_case_count(url: str) -> int:
    async with tether.connect(f"{url}/getCaseCount") as ws:
        return int(await ws.recv())


async def run_case(url: str, case: int, agent: str) -> None:
    uri = f"{url}/runCase?case={case}&agent={quote(agent)}"
    try:
        async with tether.connect(uri, compression="deflate", max_size=MAX_SIZE) as ws:
            async for message in ws:
                await ws.send(message)
    except tether.ConnectionClosed:
        # Many cases end with the fuzzer (or us) failing the connection on purpose;
        # the verdict is Autobahn's to give, from what it saw on the wire.
        pass


async def update_reports(url: str, agent: str) -> None:
    async with tether.connect(f"{url}/updateReports?agent={quote(agent)}") as ws:
        try:
            async for _ in ws:
                pass
        except tether.ConnectionClosed:
            pass


async def main(url: str, agent: str, case_timeout: float) -> int:
    url = url.rstrip("/")
    count = await get_case_count(url)
    print(f"{count} cases from {url}", flush=True)
    errors = 0
    for case in range(1, count + 1):
        start = time.monotonic()
        try:
            async with asyncio.timeout(case_timeout):
                await run_case(url, case, agent)
        except Exception as exc:
            # Keep going: Autobahn records the case as failed, and the summary says why.
            errors += 1
            print(f"case {case}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        elapsed = time.monotonic() - start
        if elapsed > 5:
            print(f"case {case}: took {elapsed:.1f}s", flush=True)
    await update_reports(url, agent)
    print(f"ran {count} cases, {errors} raised an unexpected exception", flush=True)
    return 0


def run(coro: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed, else on the default asyncio loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="tether client testee for Autobahn")
    parser.add_argument("--url", required=True, help="fuzzing server URL, ws://host:port")
    parser.add_argument("--agent", default="tether", help="agent name in the reports")
    parser.add_argument(
        "--case-timeout", type=float, default=120.0, help="seconds before a case is abandoned"
    )
    args = parser.parse_args()
    sys.exit(run(main(args.url, args.agent, args.case_timeout)))
