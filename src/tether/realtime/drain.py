"""Graceful drain of a hub for deploys: refuse new sessions, close the open ones at a
spread-out pace, wait for running handlers.

Used through :meth:`tether.realtime.Hub.drain`; the ``tether demo`` command drains on
SIGTERM. What a client sees is an Engine.IO transport close (never a Socket.IO server
disconnect, after which the official client would not reconnect): tether's Python client
and the official ``socket.io-client`` then reconnect by themselves with their backoff and
jitter, and a load balancer that sees this node refuse new handshakes (HTTP 503 with
``Retry-After``, on both transports) sends them to another node.
"""

from __future__ import annotations

import asyncio
import random
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..engine.session import Session, SessionState
from ..exceptions import InvalidOption
from ..protocol.handshake import Request, Response

if TYPE_CHECKING:
    from ..asyncio.server import HTTPHandler, ProcessRequest
    from .hub import Hub

__all__ = ["DrainResult", "readiness"]

# The reason the hub's disconnect handlers get: what happened on the wire (the client's
# own reason is "transport close" too). Not a deliberate leave, so a socket's state is
# kept for connection-state recovery on this node.
REASON = "transport close"


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What :meth:`Hub.drain` did.

    Attributes:
        sessions: Engine.IO sessions open when the drain began.
        closed: sessions the drain closed (the others left by themselves).
        remaining: sessions still open when it returned (0 unless the grace ran out).
        refused: new handshakes refused while draining.
        pending_handlers: event handlers still running when it returned (they were
            given ``handler_timeout`` seconds and are cancelled by :meth:`Hub.close`).
    """

    sessions: int
    closed: int
    remaining: int
    refused: int
    pending_handlers: int


class DrainState:
    """The drain under way on one hub (``hub._drain``): what the handshake guards read."""

    __slots__ = ("refused", "retry_after")

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        self.refused = 0


def _is_handshake(request: Request) -> bool:
    # A request without a sid opens a new Engine.IO session; one with a sid belongs to
    # a session already open (polling, or its upgrade), which the drain closes itself.
    query = urllib.parse.parse_qs(request.query, keep_blank_values=True)
    return "sid" not in query


def _refusal(hub: Hub, state: DrainState, request: Request, transport: str) -> Response:
    state.refused += 1
    hub.metrics.inc("tether_drain_refused_total", transport=transport)
    body = '{"code":6,"message":"Server draining: connect to another node"}'
    return Response(
        503,
        [
            ("Content-Type", "application/json"),
            ("Retry-After", str(state.retry_after)),
            *hub.engine.http.cors(request),
        ],
        body.encode(),
    )


def guard_http(hub: Hub, handler: HTTPHandler) -> HTTPHandler:
    """``handler`` (the engine's HTTP side), answering new polling handshakes with 503
    while ``hub`` drains."""

    async def guarded(request: Request) -> Response:
        state = hub._drain
        if (
            state is not None
            and request.method == "GET"
            and hub.engine.in_path(request)
            and _is_handshake(request)
        ):
            return _refusal(hub, state, request, "polling")
        return await handler(request)

    return guarded


def guard_upgrade(hub: Hub, check: ProcessRequest) -> ProcessRequest:
    """``check`` (the server's ``process_request``), refusing a new WebSocket handshake
    with 503 (before the upgrade) while ``hub`` drains."""

    def guarded(request: Request) -> Any:
        state = hub._drain
        if state is not None and hub.engine.in_path(request) and _is_handshake(request):
            return _refusal(hub, state, request, "websocket")
        return check(request)

    return guarded


def readiness(
    hub: Hub,
    fallback: Callable[[Request], Awaitable[Response]] | None = None,
    path: str = "/health",
) -> Callable[[Request], Awaitable[Response]]:
    """An HTTP fallback answering ``GET path`` for a load balancer's readiness check:
    200 ``ok``, or 503 ``draining`` (with ``Retry-After``) once :meth:`Hub.drain` began.
    Other requests go to ``fallback`` (404 without one). Install it with
    ``hub.engine.fallback = readiness(hub, hub.engine.fallback)``."""

    async def handle(request: Request) -> Response:
        if request.path == path and request.method in ("GET", "HEAD"):
            state = hub._drain
            if state is None:
                return Response.text(200, "ok")
            return Response.text(503, "draining", [("Retry-After", str(state.retry_after))])
        if fallback is not None:
            return await fallback(request)
        return Response.text(404, "not found")

    return handle


def check_options(
    period: float, grace: float, handler_timeout: float, retry_after: int, rate: float
) -> None:
    """Validate :meth:`Hub.drain`'s options.

    Raises:
        InvalidOption: a negative duration, or a rate not above 0.
    """
    if not rate > 0:
        raise InvalidOption(f"drain: rate must be > 0, not {rate!r}")
    for name, value in (
        ("period", period),
        ("grace", grace),
        ("handler_timeout", handler_timeout),
        ("retry_after", retry_after),
    ):
        if not value >= 0:  # also refuses NaN
            raise InvalidOption(f"drain: {name} must be >= 0, not {value!r}")


async def close_session(hub: Hub, session: Session, handler_timeout: float) -> bool:
    """Stop reading ``session``, let its running handlers finish (their acknowledgements
    go out), then close its transport. Returns whether the drain closed it."""
    connection = session.data
    if session.state is not SessionState.OPEN:
        return False
    # Events not read yet stay unread: never handled here, so never acknowledged, and
    # the client sends them again after it reconnects (retries, or the app's acks).
    if connection is not None:
        connection.held = False  # so the handler bound does not resume reading
    session.hold_reading(True)
    if connection is not None:
        deadline = time.monotonic() + handler_timeout
        while connection.tasks:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await asyncio.wait(set(connection.tasks), timeout=left)
    if session.state is not SessionState.OPEN:
        return False
    session.close(REASON)
    hub.metrics.inc("tether_drain_closed_total")
    return True


async def run(
    hub: Hub,
    state: DrainState,
    period: float,
    grace: float,
    handler_timeout: float,
    rate: float,
    rng: random.Random,
) -> DrainResult:
    """The drain itself (see :meth:`Hub.drain`)."""
    loop = asyncio.get_running_loop()
    engine = hub.engine
    sessions = [s for s in engine._sessions.values() if s.state is SessionState.OPEN]
    # A few clients need no spreading: the window is only as long as it takes at
    # ``rate`` closes per second.
    period = min(period, len(sessions) / rate)
    # Each session at its own random moment of the window: the reconnections reach the
    # other nodes as a flat rate (about len/period per second), not as one spike.
    schedule = sorted(((rng.uniform(0, period), i) for i in range(len(sessions))), reverse=True)
    start = loop.time()
    closers: set[asyncio.Task[bool]] = set()
    while schedule:
        moment, index = schedule.pop()
        delay = start + moment - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        closers.add(loop.create_task(close_session(hub, sessions[index], handler_timeout)))
    closed = 0
    end = start + period + grace
    if closers:
        done, _ = await asyncio.wait(closers, timeout=max(0.0, end - loop.time()) + 0.001)
        closed = sum(1 for task in done if not task.cancelled() and task.result())
    # Sessions whose close still waits for handlers: the rest of the grace. (A closed
    # polling session lingering for its close packet is gone for the hub already.)
    while loop.time() < end and any(
        s.state is SessionState.OPEN for s in engine._sessions.values()
    ):
        await asyncio.sleep(min(0.05, max(0.0, end - loop.time())))
    if hub._tasks:
        # Handlers still running (a disconnect handler, a late event): bounded.
        await asyncio.wait(set(hub._tasks), timeout=handler_timeout)
    for task in closers:
        task.cancel()
    remaining = sum(1 for s in engine._sessions.values() if s.state is SessionState.OPEN)
    return DrainResult(
        sessions=len(sessions),
        closed=closed,
        remaining=remaining,
        refused=state.refused,
        pending_handlers=sum(1 for t in hub._tasks if not t.done()),
    )
