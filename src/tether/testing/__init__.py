"""Public helpers for testing code built on tether.

- :mod:`tether.testing.broker`: a conformance suite any
  :class:`~tether.broker.cluster.ClusterBroker` implementation can run.
"""

from __future__ import annotations

__all__ = ["broker"]

from . import broker
