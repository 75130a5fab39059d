"""The demo chat in headless Chromium: two pages, one room, a message each way.

The demo app (``tether.demo``) is served in-process on a free port; ``tests/node/e2e_chat.js``
drives two pages with playwright-core and reports what their DOM showed. Screenshots go
to the test's tmp directory (and to ``$TETHER_E2E_SHOTS`` when set, to look at them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tether.demo import create_app, find_client_js

if TYPE_CHECKING:
    from tests.conftest import Node

HOST = "127.0.0.1"
TIMEOUT = 20.0


@pytest.fixture
async def demo_url() -> AsyncIterator[str]:
    if find_client_js() is None:
        pytest.fail("socket.io.min.js is missing: run `make node-deps`")
    hub = create_app()
    server = await hub.serve(HOST, 0)
    try:
        yield f"http://{HOST}:{server.port}/"
    finally:
        await hub.close()
        server.close()
        with contextlib.suppress(TimeoutError):
            import asyncio

            await asyncio.wait_for(server.wait_closed(), 10)


async def test_two_pages_chat(node: Node, chromium: Path, demo_url: str, tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    result = await node.arun(
        "e2e_chat.js",
        "--url",
        demo_url,
        "--room",
        "garden",
        "--screenshots",
        shots,
        "--timeout",
        int(TIMEOUT * 1000),
        "--executable",
        chromium,
        timeout=TIMEOUT + 20,
    )
    report: dict[str, Any] = result.json()
    keep = os.environ.get("TETHER_E2E_SHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for png in shots.glob("*.png"):
            shutil.copy(png, Path(keep) / png.name)
    assert report["ok"], f"{report['error']}\nsteps: {report['steps']}\n{result.describe()}"
    assert report["pageErrors"] == []
    assert report["steps"] == [
        "a-joined",
        "b-joined",
        "presence-2",
        "typing-shown",
        "b-received",
        "a-delivered",
        "typing-cleared",
        "a-received",
        "presence-1",
    ]
    assert report["typing"] == "alice is typing…"

    a, b = report["a"], report["b"]
    assert a["room"] == b["room"] == "#garden"
    assert b["presence"] == "2 here"
    assert a["presence"] == "1 here"  # after bob left
    assert a["status"] == b["status"] == "online"
    assert b["messages"] == [
        {"nick": "alice", "text": "hello from alice", "mine": False, "status": None},
        {"nick": "bob", "text": "hi alice, bob here", "mine": True, "status": "delivered"},
    ]
    assert a["messages"] == [
        {"nick": "alice", "text": "hello from alice", "mine": True, "status": "delivered"},
        {"nick": "bob", "text": "hi alice, bob here", "mine": False, "status": None},
    ]
    assert "bob joined" in a["system"]
    assert a["system"][-1] == "bob left"
    assert {Path(p).name for p in report["screenshots"]} >= {"alice.png", "bob.png"}


async def test_the_page_says_what_to_do_when_the_client_bundle_is_missing(
    node: Node, chromium: Path, tmp_path: Path
) -> None:
    import asyncio

    hub = create_app(client_js=tmp_path / "nowhere" / "socket.io.min.js")
    server = await hub.serve(HOST, 0)
    try:
        report = await node.abrowse(
            f"http://{HOST}:{server.port}/",
            wait="document.getElementById('client-missing')",
            result="[document.getElementById('status').textContent,"
            " document.getElementById('client-missing').textContent]",
            screenshot=tmp_path / "missing.png",
        )
    finally:
        await hub.close()
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 10)
    assert report["ok"], report
    status, help_text = report["value"]
    assert status == "client missing"
    assert "npm install socket.io-client" in help_text
    assert "--client-js" in help_text


async def test_the_live_ticker_page(
    node: Node, chromium: Path, demo_url: str, tmp_path: Path
) -> None:
    report = await node.abrowse(
        demo_url + "ticker",
        wait="window.ticker && window.ticker.updates > 200"
        " && Object.keys(window.ticker.symbols).length === 6",
        result="[window.ticker.updates, Object.keys(window.ticker.symbols).sort(),"
        " document.getElementById('status').textContent,"
        " document.querySelectorAll('#rows tr').length]",
        screenshot=tmp_path / "ticker.png",
    )
    assert report["ok"], report
    updates, symbols, status, rows = report["value"]
    assert updates > 200
    assert symbols == sorted(["TTHR", "SOCK", "POLL", "WSKT", "ACKS", "ROOM"])
    assert status == "live"
    assert rows == 6
    assert report["pageErrors"] == []
