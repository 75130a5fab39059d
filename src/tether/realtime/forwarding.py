"""Long-polling without sticky sessions: a polling request that reaches a node which does
not own its session is served by the owner, through the cluster's broker.

Behind a plain round-robin load balancer, the GETs and POSTs of one polling client land
on every node in turn. Every sid starts with the id of the node that owns the session
(``<node id, URL-quoted>.<random>``), so the node that receives a request for a session it
does not hold knows where to send it: it asks the owner (a broker request addressed to
that node alone), which serves it as if it came in directly (the long-poll GET waits
there) and replies with the response. When the owner is gone (it does not answer, or its
heartbeat has expired and is still expired one beat later: a late beat is not a death)
the request gets ``400 Session ID unknown``, so the client reconnects (and, with
connection-state recovery, recovers on a live node).

A WebSocket upgrade that lands on another node is refused (400), and the official clients
then stay on polling: the session goes on, forwarded. Counted in the hub's metrics:
``tether_polling_forwarded_total`` (by method, on the node that forwarded),
``tether_polling_forward_failed_total`` (owner gone) and
``tether_polling_served_for_others_total`` (on the owner).
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import TYPE_CHECKING, Any

from ..protocol.handshake import Headers, Request, Response

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["KIND", "owner_of", "sid_prefix"]

logger = logging.getLogger("tether.realtime")

#: The broker request kind that carries a forwarded polling request.
KIND = "engine_http"


def sid_prefix(node_id: str) -> str:
    """What every sid of the node ``node_id`` starts with."""
    return urllib.parse.quote(node_id, safe="") + "."


def owner_of(sid: str) -> str | None:
    """The id of the node that owns ``sid`` (None for a sid without one)."""
    node, dot, _ = sid.rpartition(".")
    return urllib.parse.unquote(node) if dot and node else None


def describe_metrics(hub: Hub) -> None:
    metrics = hub.metrics
    metrics.describe(
        "tether_polling_forwarded_total", "polling requests served by the session's owner node"
    )
    metrics.describe(
        "tether_polling_forward_failed_total", "polling requests for a session whose node is gone"
    )
    metrics.describe(
        "tether_polling_served_for_others_total", "polling requests this node served for others"
    )


async def forward(hub: Hub, request: Request, sid: str) -> Response | None:
    """Have the owner of ``sid`` serve ``request``; None if there is no live owner (the
    engine then answers 400, Session ID unknown)."""
    owner = owner_of(sid)
    broker = hub.broker
    if owner is None or owner == broker.node_id:
        return None
    engine = hub.engine
    payload = {
        "method": request.method,
        "target": request.target,
        "headers": [list(pair) for pair in request.headers],
        "body": request.body,
        "remote": list(request.remote_address) if request.remote_address else None,
    }
    # A GET waits at the owner until it has packets (at most pingInterval): allow for it.
    timeout = engine.ping_interval + engine.ping_timeout + 5.0
    result = await broker.request("/", KIND, payload, nodes=[owner], timeout=timeout)
    if owner in result.unsent:
        # Its heartbeat has expired, but it may only be late (its process paused, or a
        # loaded machine): look once more a beat later before giving the session up.
        # The request was not sent, so asking again cannot run it twice.
        await asyncio.sleep(broker.liveness_grace)
        result = await broker.request("/", KIND, payload, nodes=[owner], timeout=timeout)
    reply = result.replies.get(owner)
    if not isinstance(reply, dict) or "status" not in reply:
        hub.metrics.inc("tether_polling_forward_failed_total", method=request.method)
        logger.info(
            "polling %s for session %s: its node %s did not serve it (%s)",
            request.method,
            sid,
            owner,
            "gone" if owner in result.missing else result.errors.get(owner, "no reply"),
        )
        return None
    hub.metrics.inc("tether_polling_forwarded_total", method=request.method)
    headers = [(str(name), str(value)) for name, value in reply["headers"]]
    return Response(int(reply["status"]), headers, bytes(reply["body"]))


async def serve(hub: Hub, payload: Any) -> dict[str, Any]:
    """Serve a polling request another node forwarded (the broker handler of ``KIND``)."""
    remote = payload.get("remote")
    request = Request(
        method=str(payload["method"]),
        target=str(payload["target"]),
        headers=Headers((str(n), str(v)) for n, v in payload["headers"]),
        body=bytes(payload["body"]),
        remote_address=tuple(remote) if remote else None,
    )
    hub.metrics.inc("tether_polling_served_for_others_total", method=request.method)
    response = await hub.engine.handle_http(request)
    return {
        "status": response.status,
        "headers": [list(pair) for pair in response.headers],
        "body": response.body,
    }
