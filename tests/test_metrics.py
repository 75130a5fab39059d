"""The counters every layer shares (tether.metrics)."""

from __future__ import annotations

import asyncio

from tether.metrics import Metrics
from tether.realtime import Hub


def test_counters_labels_and_gauges() -> None:
    m = Metrics()
    m.describe("tether_things_total", "things seen")
    m.inc("tether_things_total")
    m.inc("tether_things_total", 2, kind="a")
    m.inc("tether_things_total", kind="b")
    depth = [5]
    m.gauge("tether_depth", lambda: depth[0])
    depth[0] = 7
    assert m.get("tether_things_total") == 1
    assert m.get("tether_things_total", kind="a") == 2
    assert m.get("tether_things_total", kind="missing") == 0
    assert m.total("tether_things_total") == 4
    assert m.get("tether_depth") == 7
    snap = m.snapshot()
    assert snap['tether_things_total{kind="a"}'] == 2
    assert snap["tether_depth"] == 7
    kinds = {s.name: (s.kind, s.help) for s in m.samples()}
    assert kinds["tether_things_total"] == ("counter", "things seen")
    assert kinds["tether_depth"][0] == "gauge"


def test_hub_shares_one_metrics_with_engine_and_servers() -> None:
    async def main() -> None:
        hub = Hub()
        assert hub.engine.metrics is hub.metrics
        async with hub.serve("127.0.0.1", 0) as server:
            assert server.metrics is hub.metrics

    asyncio.run(main())
