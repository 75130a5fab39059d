"""The counters of one broker."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["BrokerStats"]


@dataclass
class BrokerStats:
    """Counters of one broker (monotonic unless said otherwise).

    Attributes:
        published: messages handed to the transport (one per channel copy).
        received: messages read from the transport (every kind, before filtering).
        received_by_kind: ``received`` split by channel kind (room, namespace, ...).
        delivered: messages handed to ``on_message`` or to envelope subscribers.
        own: own broadcasts read back and skipped.
        duplicates: copies skipped by the recent-id set.
        irrelevant: broadcasts for rooms this node has no interest in (should stay 0
            with room channels; emitter multi-room broadcasts can raise it).
        dropped: messages dropped because the incoming queue was full.
        decode_errors: messages that could not be decoded.
        handler_errors: handler calls that raised.
        slow_handlers: handler calls that outlived ``handler_timeout``.
        requests_sent: requests sent (one per call of ``request``).
        requests_handled: incoming requests handed to ``on_request``.
        requests_refused: incoming requests refused (too many running).
        late_replies: replies for a request that had already returned.
        subscribe_commands: SUBSCRIBE/UNSUBSCRIBE commands sent (on a Redis Cluster, one
            per hash slot).
        subscribe_batches: interest changes handed to the transport at once (the
            changes of one loop turn are one batch).
        reconnects: times the pub/sub connection was re-established.
        resubscribed: channels subscribed again after a reconnect.
        buffered: messages in the outage buffer now (a gauge).
        buffered_bytes: bytes in the outage buffer now (a gauge).
        buffered_total: messages that went through the outage buffer.
        buffer_rejected: publishes refused with BufferFull.
        sessions_saved: session records written for connection-state recovery.
        sessions_recovered: sessions recovered here from a record of the cluster.
        sessions_not_recovered: recovery attempts that found no usable record or log.
        caught_up: durable broadcasts read back from the recovery log after the pub/sub
            connection came back (those published while this node was not listening).
    """

    published: int = 0
    received: int = 0
    received_by_kind: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    own: int = 0
    duplicates: int = 0
    irrelevant: int = 0
    dropped: int = 0
    decode_errors: int = 0
    handler_errors: int = 0
    slow_handlers: int = 0
    requests_sent: int = 0
    requests_handled: int = 0
    requests_refused: int = 0
    late_replies: int = 0
    subscribe_commands: int = 0
    subscribe_batches: int = 0
    reconnects: int = 0
    resubscribed: int = 0
    buffered: int = 0
    buffered_bytes: int = 0
    buffered_total: int = 0
    buffer_rejected: int = 0
    sessions_saved: int = 0
    sessions_recovered: int = 0
    sessions_not_recovered: int = 0
    caught_up: int = 0

    def snapshot(self) -> dict[str, Any]:
        """A plain-dict copy of the counters (for metrics and logs)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = dict(value) if isinstance(value, dict) else value
        return out
