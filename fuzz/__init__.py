"""Coverage-guided fuzzers over every decoder of tether.

One module per target (``fuzz_<target>.py``), each exposing ``TARGET``, a
:class:`fuzz._common.Target`. :mod:`fuzz.runner` runs one under atheris (libFuzzer) or
replays a corpus without it; see ``fuzz/README.md``.
"""

from __future__ import annotations

__all__: list[str] = []
