"""Regression tests for what the fuzzers in ``fuzz/`` found, and a replay of their corpus.

These run in the normal suite without atheris: the corpus goes through the same
``one_input`` functions the fuzzers drive (see ``fuzz/README.md``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import tether  # noqa: E402
from fuzz import runner  # noqa: E402
from tether.exceptions import NegotiationError, PayloadTooBig  # noqa: E402
from tether.protocol import DeflateOptions, Headers, Request, server_accept  # noqa: E402
from tether.protocol.deflate import PerMessageDeflate, client_accept_response  # noqa: E402

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


@pytest.mark.parametrize("target", [t for t in runner.TARGETS if t != "frames_pure"])
def test_corpus_replays_clean(target: str) -> None:
    """Every seed and every past crash of a target is handled: no undocumented exception,
    no broken invariant."""
    files = sorted(runner.corpus_dir(target).glob("*"))
    assert files, f"no corpus for {target}"
    assert runner.replay(target) == 0


def test_frames_corpus_pure_python_twin() -> None:
    """The frame parser corpus through the pure-Python twins (set before tether imports)."""
    env = {**os.environ, "TETHER_PURE_PYTHON": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "fuzz.runner", "frames_pure", "--replay"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "0 failed" in proc.stdout


def _upgrade(extensions: str) -> Request:
    return Request(
        "GET",
        "/",
        Headers(
            [
                ("Host", "127.0.0.1"),
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", KEY),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Extensions", extensions),
            ]
        ),
    )


# Found by fuzz_http_request: str.isdigit() is true for "²" (U+00B2, a latin-1 header
# byte), int() then raised ValueError out of server_accept.
SUPERSCRIPT = 'permessage-deflate; server_max_window_bits="\xb24"'


def test_window_bits_superscript_digit_declines_offer() -> None:
    """RFC 7692 5: an invalid offer is declined, the upgrade still succeeds."""
    accepted = server_accept(_upgrade(SUPERSCRIPT), deflate=DeflateOptions())
    assert accepted.response.status == 101
    assert accepted.deflate is None


def test_window_bits_superscript_digit_client_side() -> None:
    """The client refuses such an answer with NegotiationError, not ValueError."""
    with pytest.raises(NegotiationError, match="window bits"):
        client_accept_response(
            ["permessage-deflate; client_max_window_bits=\xb9\xb2"], DeflateOptions()
        )


async def test_window_bits_superscript_digit_real_server() -> None:
    """Over a real socket: the server answers 101 without the extension (before the fix,
    the handshake task died and the client got no answer at all)."""

    async def handler(ws: object) -> None:
        await asyncio.sleep(0)

    async with tether.serve(handler, "127.0.0.1", 0) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(_upgrade(SUPERSCRIPT).serialize())
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        finally:
            writer.close()
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"sec-websocket-extensions" not in head.lower()


def test_deflate_bomb_stops_at_limit_without_allocating() -> None:
    """64 MiB of zeros in ~64 KiB: inflating with a 1 MiB limit raises PayloadTooBig and
    never holds much more than the limit."""
    encoder = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = encoder.compress(b"\x00" * 2**26) + encoder.flush(zlib.Z_SYNC_FLUSH)
    codec = PerMessageDeflate(
        local_no_context_takeover=False,
        remote_no_context_takeover=False,
        local_max_window_bits=15,
        options=DeflateOptions(),
    )
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooBig):
            for start in range(0, len(bomb), 4096):
                codec.decompress(bomb[start : start + 4096], 2**20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, peak
