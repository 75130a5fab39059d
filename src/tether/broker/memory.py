"""The embedded in-memory broker (the default): fan-out inside one process."""

from __future__ import annotations

import inspect
import logging

from .base import Broker, Envelope, Subscriber

__all__ = ["MemoryBroker"]

logger = logging.getLogger("tether.broker")


class MemoryBroker(Broker):
    """Delivers envelopes to the subscribers of this process, synchronously, in order."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Subscriber]] = {}

    async def publish(self, channel: str, envelope: Envelope) -> None:
        for subscriber in list(self._subscribers.get(channel, ())):
            try:
                result = subscriber(envelope)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("broker subscriber failed on %s", channel)

    async def subscribe(self, channel: str, subscriber: Subscriber) -> None:
        self._subscribers.setdefault(channel, []).append(subscriber)

    async def unsubscribe(self, channel: str, subscriber: Subscriber) -> None:
        subscribers = self._subscribers.get(channel, [])
        if subscriber in subscribers:
            subscribers.remove(subscriber)
