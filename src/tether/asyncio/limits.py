"""Rate limits: token buckets, alone or one per key (client IP, session), bounded in memory.

A :class:`TokenBucket` allows ``burst`` events at once and ``rate`` per second after
that. :class:`KeyedBuckets` keeps one bucket per key for at most ``max_keys`` keys; a
flood of distinct keys (spoofed or many clients) evicts the least recently used ones, so
the table cannot grow without bound. Time is passed in (``loop.time()``), which keeps
these testable without sleeping.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from ..exceptions import InvalidOption

__all__ = ["KeyedBuckets", "Rate", "TokenBucket"]


@dataclass(frozen=True)
class Rate:
    """``rate`` events per second with bursts of up to ``burst`` (``burst`` defaults to
    ``rate``, at least 1).

    Raises:
        InvalidOption: ``rate`` or ``burst`` is not positive.
    """

    rate: float
    burst: float = 0.0

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise InvalidOption(f"a rate must be positive, not {self.rate!r}")
        if self.burst < 0:
            raise InvalidOption(f"a burst must not be negative, not {self.burst!r}")
        if self.burst == 0:
            object.__setattr__(self, "burst", max(1.0, self.rate))

    @classmethod
    def of(cls, value: Rate | float | tuple[float, float] | None) -> Rate | None:
        """Read a limit given as a :class:`Rate`, a number (per second) or a
        ``(rate, burst)`` pair; None stays None (no limit)."""
        if value is None or isinstance(value, Rate):
            return value
        if isinstance(value, tuple):
            return cls(float(value[0]), float(value[1]))
        return cls(float(value))


@dataclass
class TokenBucket:
    """One bucket: :meth:`take` spends a token if there is one."""

    limit: Rate
    tokens: float = field(default=-1.0)
    stamp: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.limit.burst

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens at time ``now``; False (nothing spent) if too few."""
        limit = self.limit
        tokens = min(limit.burst, self.tokens + (now - self.stamp) * limit.rate)
        self.stamp = now
        if tokens >= cost:
            self.tokens = tokens - cost
            return True
        self.tokens = tokens
        return False

    def retry_after(self, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are there again (after a refused :meth:`take`)."""
        return max(0.0, (cost - self.tokens) / self.limit.rate)


class KeyedBuckets:
    """A token bucket per key, for at most ``max_keys`` keys (least recently used out)."""

    def __init__(self, limit: Rate, max_keys: int = 65536) -> None:
        if max_keys < 1:
            raise InvalidOption(f"max_keys must be at least 1, not {max_keys!r}")
        self.limit = limit
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now: float, cost: float = 1.0) -> float | None:
        """Spend ``cost`` tokens of ``key``'s bucket: None if allowed, else the seconds to
        wait before trying again (for ``Retry-After``)."""
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            if len(buckets) >= self.max_keys:
                buckets.popitem(last=False)
            bucket = buckets[key] = TokenBucket(self.limit, stamp=now)
        else:
            buckets.move_to_end(key)
        if bucket.take(now, cost):
            return None
        return bucket.retry_after(cost)
