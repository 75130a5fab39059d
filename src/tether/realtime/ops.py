"""Operations endpoints of a hub: Prometheus metrics and a health check, opt-in.

``hub.expose()`` serves, on the hub's own port (in front of its other HTTP routes):

- ``GET /metrics``: every counter and gauge of ``hub.metrics`` (connections, sessions,
  refusals by reason, slow-consumer drops by policy, forwarded polling requests, drains)
  plus the broker's (``tether_broker_*``: published, received, dropped, buffered,
  reconnects, requests), in the Prometheus text format, written by ``prometheus-client``
  (``pip install 'tether[metrics]'``).
- ``GET /healthz``: JSON ``{"status", "broker", "sessions", "draining"}``, 200 while the
  hub serves and its broker is connected, 503 (with ``Retry-After``) while it drains or the
  broker is reconnecting, so a load balancer stops sending new clients.

Neither says anything secret, but both say how busy the node is: on an open port, put them
behind the proxy's access rules (or pass other paths).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..metrics import Metrics
from ..protocol.handshake import Request, Response

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["expose", "prometheus_text"]

HTTPFallback = Callable[[Request], Awaitable[Response]]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ImportError(
            "metrics exposition needs prometheus-client: pip install 'tether[metrics]'"
        ) from exc
    return prometheus_client


def _broker_samples(hub: Hub) -> Iterator[tuple[str, float]]:
    for name, value in hub.broker.stats.snapshot().items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        yield f"tether_broker_{name}", float(value)


def prometheus_text(metrics: Metrics, extra: Iterable[tuple[str, float]] = ()) -> bytes:
    """``metrics`` (and ``extra`` gauges) in the Prometheus text format.

    Raises:
        ImportError: prometheus-client is not installed.
    """
    prometheus_client = _prometheus()
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    families: dict[str, Any] = {}
    by_name: dict[str, list[Any]] = {}
    for sample in metrics.samples():
        by_name.setdefault(sample.name, []).append(sample)
    for name, samples in by_name.items():
        label_names = sorted({k for s in samples for k, _ in s.labels})
        help_text = samples[0].help or name
        family: CounterMetricFamily | GaugeMetricFamily
        if samples[0].kind == "counter":
            base = name.removesuffix("_total")
            family = CounterMetricFamily(base, help_text, labels=label_names)
        else:
            family = GaugeMetricFamily(name, help_text, labels=label_names)
        for s in samples:
            labels = dict(s.labels)
            family.add_metric([labels.get(k, "") for k in label_names], s.value)
        families[name] = family
    for name, value in extra:
        gauge = GaugeMetricFamily(name, f"broker: {name.removeprefix('tether_broker_')}")
        gauge.add_metric([], value)
        families[name] = gauge

    class _Collector:
        def collect(self) -> Iterator[Any]:
            yield from families.values()

    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return bytes(prometheus_client.generate_latest(registry))


def health(hub: Hub) -> tuple[int, dict[str, Any]]:
    """The hub's health: (HTTP status, body)."""
    broker = hub.broker.state
    draining = hub.draining
    ok = broker == "connected" and not draining
    status = "ok" if ok else ("draining" if draining else "degraded")
    body = {
        "status": status,
        "broker": broker,
        "sessions": len(hub.engine._sessions),
        "draining": draining,
    }
    return (200 if ok else 503), body


def expose(hub: Hub, *, metrics: str | None = "/metrics", healthz: str | None = "/healthz") -> None:
    """Serve ``metrics`` and ``healthz`` (None: not that one) on the hub's HTTP port, in
    front of its fallback.

    Raises:
        ImportError: ``metrics`` is set and prometheus-client is not installed (at once).
    """
    if metrics is not None:
        _prometheus()
    fallback = hub.engine.fallback

    async def handle(request: Request) -> Response:
        if request.method in ("GET", "HEAD"):
            if metrics is not None and request.path == metrics:
                text = prometheus_text(hub.metrics, _broker_samples(hub))
                return Response(200, [("Content-Type", CONTENT_TYPE)], text)
            if healthz is not None and request.path == healthz:
                status, body = health(hub)
                headers = [("Content-Type", "application/json")]
                if status != 200:
                    headers.append(("Retry-After", "5"))
                return Response(status, headers, json.dumps(body).encode())
        if fallback is not None:
            return await fallback(request)
        return Response.text(404, "not found")

    hub.engine.fallback = handle
