"""Write the Autobahn|Testsuite spec files used by compliance/run.sh.

Two modes choose which cases run:

* ``all``   -- every case of the suite (``["*"]``, nothing excluded).
* ``quick`` -- a subset that still touches every area of the protocol and runs in
  well under three minutes for both sides together (see ``QUICK_CASES``).

Usage::

    python compliance/spec.py --mode quick --side server --url ws://127.0.0.1:9001 \\
        --outdir compliance/reports/server --agent tether > fuzzingclient.json
    python compliance/spec.py --mode quick --side client --url ws://127.0.0.1:9002 \\
        --outdir compliance/reports/client > fuzzingserver.json

``--side server`` writes the spec for ``wstest -m fuzzingclient`` (Autobahn drives
our server); ``--side client`` writes the spec for ``wstest -m fuzzingserver``
(our client connects to Autobahn).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

ALL_CASES = ["*"]

# The quick subset. Case ids are Autobahn's; a trailing ".*" takes a whole group.
QUICK_CASES = [
    # Framing, pings/pongs, reserved bits, opcodes, fragmentation: all of them.
    "1.*",
    "2.*",
    "3.*",
    "4.*",
    "5.*",
    # UTF-8 handling, including the fail-fast cases of 6.4: all of them.
    "6.*",
    # Closing handshake and close codes: all of them.
    "7.*",
    # Limits and performance: all of them. Messages up to 16 MiB, whole, in 64-byte
    # to 4 MiB fragments, written in chunks, and runs of 1000 messages; each group
    # takes about a second.
    "9.*",
    # Auto-fragmentation.
    "10.*",
    # permessage-deflate: the small-message cases of the default offer (12.1)
    # and of each parameter combination of 13.x (context takeover, window bits).
    "12.1.1",
    "12.1.2",
    "12.1.3",
    "12.1.4",
    "12.1.5",
    "12.2.1",
    "12.2.2",
    "13.1.1",
    "13.1.2",
    "13.1.3",
    "13.1.4",
    "13.1.5",
    "13.2.1",
    "13.3.1",
    "13.4.1",
    "13.5.1",
    "13.6.1",
    "13.7.1",
]

MODES = {"all": ALL_CASES, "quick": QUICK_CASES}


def build_spec(mode: str, side: str, url: str, outdir: str, agent: str) -> dict[str, Any]:
    """Return the spec dict for one side of one run.

    Raises:
        KeyError: ``mode`` is not one of ``MODES``.
        ValueError: ``side`` is neither ``server`` nor ``client``.
    """
    cases = MODES[mode]
    spec: dict[str, Any] = {
        "outdir": outdir,
        "cases": list(cases),
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    if side == "server":
        spec["servers"] = [{"agent": agent, "url": url, "options": {"version": 18}}]
    elif side == "client":
        spec["url"] = url
    else:
        raise ValueError(f"side must be 'server' or 'client', not {side!r}")
    return spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=sorted(MODES), required=True)
    parser.add_argument("--side", choices=["server", "client"], required=True)
    parser.add_argument("--url", required=True, help="ws:// URL of the server under test")
    parser.add_argument("--outdir", required=True, help="where wstest writes its reports")
    parser.add_argument("--agent", default="tether", help="agent name in the reports")
    args = parser.parse_args(argv)
    spec = build_spec(args.mode, args.side, args.url, args.outdir, args.agent)
    json.dump(spec, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
