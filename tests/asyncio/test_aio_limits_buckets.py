"""Token buckets (tether.asyncio.limits): rate, burst, per-key table bounded in size."""

from __future__ import annotations

import pytest

from tether.asyncio.limits import KeyedBuckets, Rate, TokenBucket
from tether.exceptions import InvalidOption


def test_bucket_allows_burst_then_rate() -> None:
    bucket = TokenBucket(Rate(2, burst=3))
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after() == pytest.approx(0.5)
    assert not bucket.take(0.25)
    assert bucket.take(0.5)
    assert bucket.take(100.0) and bucket.take(100.0) and bucket.take(100.0)
    assert not bucket.take(100.0)  # refilled to the burst, not beyond


def test_rate_forms_and_errors() -> None:
    assert Rate.of(None) is None
    assert Rate.of(5) == Rate(5, 5)
    assert Rate.of((1, 10)) == Rate(1, 10)
    assert Rate(0.5).burst == 1
    with pytest.raises(InvalidOption, match="positive"):
        Rate(0)
    with pytest.raises(InvalidOption, match="negative"):
        Rate(1, -1)


def test_keyed_buckets_are_bounded_and_independent() -> None:
    table = KeyedBuckets(Rate(1, burst=1), max_keys=100)
    assert table.take("a", 0.0) is None
    retry = table.take("a", 0.0)
    assert retry == pytest.approx(1.0)
    assert table.take("b", 0.0) is None  # another key has its own bucket
    for i in range(10_000):
        table.take(f"k{i}", 1.0)
    assert len(table) == 100
    with pytest.raises(InvalidOption):
        KeyedBuckets(Rate(1), max_keys=0)
