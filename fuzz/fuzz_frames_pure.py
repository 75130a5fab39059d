"""The frame parser target with the pure-Python twins (``TETHER_PURE_PYTHON=1``).

The runner sets the variable before tether is imported; the checks are those of
:mod:`fuzz.fuzz_frames`.
"""

from __future__ import annotations

from ._common import Target
from .fuzz_frames import one_input

__all__ = ["TARGET"]

TARGET = Target("frames_pure", one_input, max_len=8192, env={"TETHER_PURE_PYTHON": "1"})
