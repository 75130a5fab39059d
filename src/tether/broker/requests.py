"""Requests between nodes: the ones this node waits on, and the ones it answers.

Asking: :meth:`~tether.broker.cluster.ClusterBroker.request` opens a
:class:`PendingRequest` for the nodes it asks, replies from the transport are routed to
it by request id, and nodes found dead are given up; what it gathered becomes the
:class:`RequestResult`.

Answering: :class:`Answers` runs the ``on_request`` handler for every request that
comes in, each as a task of its own and at most ``max_concurrent`` at a time; a request
past that limit is answered with an error at once.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import BufferFull
from .messages import NodeRequest, Reply, RequestHandler, RequestResult
from .stats import BrokerStats

__all__ = ["Answers", "PendingRequest", "PendingRequests"]

logger = logging.getLogger("tether.broker")


@dataclass
class PendingRequest:
    """A request of ours waiting for replies.

    Attributes:
        waiting: the nodes that have not answered yet.
        replies: the return values of the nodes that answered, by node id.
        errors: the failures of the nodes that answered with an error, by node id.
        missing: the nodes given up (not alive, or unreachable).
        unsent: the nodes of ``missing`` the request was never sent to.
        done: set when the last node waited for has answered (or the broker closed).
    """

    waiting: set[str]
    replies: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    unsent: set[str] = field(default_factory=set)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, reply: Reply) -> None:
        """Record ``reply`` (ignored when its node is not waited for)."""
        if reply.node_id not in self.waiting:
            return
        self.waiting.discard(reply.node_id)
        if reply.ok:
            self.replies[reply.node_id] = reply.data
        else:
            self.errors[reply.node_id] = reply.error
        if not self.waiting:
            self.done.set()

    def give_up(self, nodes: Iterable[str], *, sent: bool = True) -> None:
        """Stop waiting for ``nodes`` and report them missing (and, with ``sent``
        false, as never sent the request)."""
        for node in nodes:
            self.waiting.discard(node)
            self.missing.add(node)
            if not sent:
                self.unsent.add(node)

    def result(self, *, timed_out: bool) -> RequestResult:
        """What was gathered; the nodes still waited for are reported missing."""
        return RequestResult(
            replies=dict(self.replies),
            errors=dict(self.errors),
            missing=frozenset(self.missing | self.waiting),
            timed_out=timed_out,
            unsent=frozenset(self.unsent),
        )


class PendingRequests:
    """This node's requests waiting for replies, by request id, at most ``limit``.

    Args:
        limit: how many requests may wait at once.
        stats: the broker's counters (``late_replies`` is counted here).
    """

    def __init__(self, limit: int, stats: BrokerStats) -> None:
        self._limit = limit
        self._stats = stats
        self._pending: dict[str, PendingRequest] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def check_room(self) -> None:
        """Raise unless one more request may wait.

        Raises:
            BufferFull: ``limit`` requests are already waiting.
        """
        if len(self._pending) >= self._limit:
            raise BufferFull(f"{len(self._pending)} requests are already waiting")

    def open(self, request_id: str, targets: Iterable[str]) -> PendingRequest:
        """Start waiting for the replies of ``targets`` to ``request_id``."""
        pending = PendingRequest(waiting=set(targets))
        self._pending[request_id] = pending
        return pending

    def close(self, request_id: str) -> None:
        """Stop waiting for ``request_id``; replies that come later are counted late."""
        del self._pending[request_id]

    def reply(self, reply: Reply) -> None:
        """Route ``reply`` to its request (a reply to one that returned is counted)."""
        pending = self._pending.get(reply.request_id)
        if pending is None:
            self._stats.late_replies += 1
            return
        pending.add(reply)

    def wake_all(self) -> None:
        """Wake every request (the broker is closing: they return what they have)."""
        for pending in self._pending.values():
            pending.done.set()


class Answers:
    """Answers the requests of the cluster with the ``on_request`` handler.

    Args:
        node_id: this node's id (the sender of the replies).
        max_concurrent: requests of other nodes handled at once.
        stats: the broker's counters.
        send: sends a reply to a node (the broker's ``_transport_reply``).
    """

    def __init__(
        self,
        node_id: str,
        max_concurrent: int,
        stats: BrokerStats,
        send: Callable[[str, Reply], Awaitable[None]],
    ) -> None:
        self._node_id = node_id
        self._max_concurrent = max_concurrent
        self._stats = stats
        self._send = send
        self.handler: RequestHandler | None = None
        """The ``on_request`` handler (without one a node answers ``None``)."""
        self.tasks: set[asyncio.Task[None]] = set()
        """The requests being handled (the broker cancels them when it closes)."""
        self.kind_limits: dict[str, int] = {}
        """Kinds with a budget of their own instead of ``max_concurrent``: requests that
        legitimately wait long (a forwarded long-poll) and are bounded by their sender."""
        self._by_kind: dict[str, set[asyncio.Task[None]]] = {}

    async def answer(self, request: NodeRequest) -> Reply:
        """Run the handler on ``request``; a handler that raises makes an error reply."""
        self._stats.requests_handled += 1
        try:
            result = self.handler(request) if self.handler is not None else None
            if inspect.isawaitable(result):
                result = await result
            return Reply(request.request_id, self._node_id, True, result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._stats.handler_errors += 1
            logger.exception("request handler failed on %s %s", request.namespace, request.kind)
            return Reply(request.request_id, self._node_id, False, error=repr(exc))

    def incoming(self, request: NodeRequest) -> None:
        """Answer a request of another node in a task of its own (refuse it when busy)."""
        loop = asyncio.get_running_loop()
        limit = self.kind_limits.get(request.kind)
        if limit is not None:
            running = self._by_kind.setdefault(request.kind, set())
            busy = len(running) >= limit
        else:
            running = None
            special = sum(len(tasks) for tasks in self._by_kind.values())
            busy = len(self.tasks) - special >= self._max_concurrent
        if busy:
            self._stats.requests_refused += 1
            reply = Reply(request.request_id, self._node_id, False, error="busy")
            task = loop.create_task(self._reply(request.origin, reply))
        else:
            task = loop.create_task(self._handle(request))
            if running is not None:
                running.add(task)
                task.add_done_callback(running.discard)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, request: NodeRequest) -> None:
        await self._reply(request.origin, await self.answer(request))

    async def _reply(self, node: str, reply: Reply) -> None:
        try:
            await self._send(node, reply)
        except Exception:
            logger.warning("reply to %s not sent", node, exc_info=True)
