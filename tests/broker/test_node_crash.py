"""A node in another process is killed (SIGKILL) in the middle of a request."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import textwrap
import uuid

import pytest

from conftest import FAST, SHARED_REDIS, redis_up
from tether.broker import RedisBroker
from tether.testing.broker import WAIT, wait_until_async

NODE = textwrap.dedent(
    """
    import asyncio, sys
    from tether.broker import RedisBroker

    async def main(prefix):
        node = RedisBroker("{url}", prefix=prefix, **{fast!r})

        async def answer(request):
            if request.kind == "hang":
                print("HANGING", flush=True)
                await asyncio.Event().wait()
            return "pong"

        node.set_handlers(on_request=answer)
        await node.start()
        print("READY", node.node_id, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_killed_node_is_reported_missing_within_its_ttl() -> None:
    if not redis_up():
        pytest.skip("no Redis at 127.0.0.1:6379")
    prefix = f"crash{uuid.uuid4().hex[:8]}"
    code = NODE.format(url=SHARED_REDIS, fast=FAST)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, prefix, stdout=asyncio.subprocess.PIPE
    )
    a = RedisBroker(SHARED_REDIS, prefix=prefix, **FAST)
    try:
        assert proc.stdout is not None
        ready = (await asyncio.wait_for(proc.stdout.readline(), WAIT)).decode().split()
        assert ready[0] == "READY", ready
        other = ready[1]
        a.set_handlers(on_request=lambda request: "pong")
        await a.start()
        await wait_until_async(a.live_nodes, sorted([a.node_id, other]))
        ok = await a.request("/", "ping", timeout=WAIT)
        assert ok.replies == {a.node_id: "pong", other: "pong"}, ok
        pending = asyncio.ensure_future(a.request("/", "hang", timeout=60.0))
        line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
        assert line.strip() == b"HANGING"
        os.kill(proc.pid, signal.SIGKILL)
        result = await asyncio.wait_for(pending, WAIT)
        assert not result.timed_out and result.missing == {other}, result
        assert result.replies == {a.node_id: "pong"}
        assert a.pending_requests == 0
        assert await a.live_nodes() == [a.node_id]
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), WAIT)
        await a.close()
