"""Waiting for and stopping asyncio tasks within a bound (shared by the brokers)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_and_wait", "wait_event"]

logger = logging.getLogger("tether.broker")


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` at most ``timeout`` seconds; return whether it is set.

    Used instead of ``asyncio.wait_for(event.wait(), ...)``, whose cancellation
    handling on Python 3.11 left tasks stuck in "cancelling" next to redis-py's timeouts.
    """
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()
    return event.is_set()


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], bound: float = 2.0) -> None:
    """Cancel ``tasks`` and wait for them, at most about ``bound`` seconds in all.

    A task may swallow a cancellation (a handler that catches it; on Python 3.11 an
    ``asyncio.timeout`` whose deadline passes at the same moment turns it into
    TimeoutError), so the cancel is repeated and the wait bounded rather than trusted.
    """
    pending = {task for task in tasks if not task.done()}
    rounds = 4
    for _ in range(rounds):
        if not pending:
            return
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=bound / rounds)
    if pending:
        logger.warning("%d broker tasks did not stop when cancelled", len(pending))
