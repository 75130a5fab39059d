"""The public conformance suite, on MemoryBroker and on RedisBroker with a real Redis."""

from __future__ import annotations

from typing import Any

import pytest

from tether.testing.broker import CHECKS


@pytest.mark.parametrize("check", sorted(CHECKS))
async def test_conformance(check: str, make_node: Any) -> None:
    await CHECKS[check](make_node)
