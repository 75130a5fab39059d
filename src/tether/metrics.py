"""Counters and gauges: what a server, an engine or a hub counts about itself.

Counting is cheap (a dict update) so it stays on in production; exposition (Prometheus
text, an admin page) reads :meth:`Metrics.samples`. One :class:`Metrics` is shared by the
layers of one server: a :class:`~tether.realtime.Hub` hands its own to its engine and to
the servers it starts, so ``hub.metrics`` tells the whole story::

    hub.metrics.get("tether_connections_refused_total", reason="per_ip")

Names follow Prometheus conventions: ``tether_`` prefix, ``_total`` for counters, base
units (bytes, seconds). Labels are keyword arguments with string values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

__all__ = ["Metrics", "Sample"]

Kind = Literal["counter", "gauge"]
_Key = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class Sample:
    """One value: ``name{labels} value``."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float
    kind: Kind
    help: str


class Metrics:
    """A set of named counters and gauges, optionally labelled.

    Counters only go up (:meth:`inc`); gauges are set (:meth:`set`) or read from a
    function at sampling time (:meth:`gauge`), so a queue depth costs nothing until read.
    """

    def __init__(self) -> None:
        self._values: dict[_Key, float] = {}
        self._kinds: dict[str, Kind] = {}
        self._help: dict[str, str] = {}
        self._functions: dict[_Key, Callable[[], float]] = {}

    def describe(self, name: str, help: str, kind: Kind = "counter") -> None:
        """Declare ``name`` (its help text and kind) before or after first use."""
        self._help[name] = help
        self._kinds[name] = kind

    @staticmethod
    def _key(name: str, labels: dict[str, str]) -> _Key:
        if not labels:
            return (name, ())
        return (name, tuple(sorted((k, str(v)) for k, v in labels.items())))

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        """Add ``amount`` to the counter ``name{labels}``."""
        key = self._key(name, labels)
        self._values[key] = self._values.get(key, 0) + amount
        self._kinds.setdefault(name, "counter")

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set the gauge ``name{labels}`` to ``value``."""
        self._values[self._key(name, labels)] = value
        self._kinds[name] = "gauge"

    def gauge(self, name: str, function: Callable[[], float], **labels: str) -> None:
        """Make ``name{labels}`` a gauge read from ``function()`` whenever it is sampled."""
        self._functions[self._key(name, labels)] = function
        self._kinds[name] = "gauge"

    def counter_from(self, name: str, function: Callable[[], float], **labels: str) -> None:
        """Make ``name{labels}`` a counter read from ``function()`` when sampled (for a
        count kept as a plain attribute on a hot path, where a dict update per event
        would cost)."""
        self._functions[self._key(name, labels)] = function
        self._kinds[name] = "counter"

    def get(self, name: str, **labels: str) -> float:
        """The current value of ``name{labels}`` (0 if never counted)."""
        key = self._key(name, labels)
        function = self._functions.get(key)
        if function is not None:
            return float(function())
        return self._values.get(key, 0)

    def total(self, name: str) -> float:
        """The sum of ``name`` over all its label values."""
        values = sum(v for (n, _), v in self._values.items() if n == name)
        return values + sum(float(f()) for (n, _), f in self._functions.items() if n == name)

    def samples(self) -> Iterator[Sample]:
        """Every value, sorted by name then labels."""
        keys = sorted(set(self._values) | set(self._functions))
        for key in keys:
            name, labels = key
            function = self._functions.get(key)
            value = float(function()) if function is not None else self._values[key]
            yield Sample(
                name, labels, value, self._kinds.get(name, "counter"), self._help.get(name, "")
            )

    def snapshot(self) -> dict[str, float]:
        """Every value keyed ``name`` or ``name{k="v",...}`` (for logs and tests)."""
        out: dict[str, float] = {}
        for sample in self.samples():
            if sample.labels:
                inner = ",".join(f'{k}="{v}"' for k, v in sample.labels)
                out[f"{sample.name}{{{inner}}}"] = sample.value
            else:
                out[sample.name] = sample.value
        return out
