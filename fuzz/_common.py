"""What every fuzz target shares: the target record and a byte reader.

Nothing here imports atheris: the regression tests replay the corpus through the same
``one_input`` functions in the ordinary pytest run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

__all__ = ["Reader", "Target", "chunks"]


@dataclass(frozen=True)
class Target:
    """One fuzz target.

    Attributes:
        name: the name the runner and ``fuzz/corpus/<name>/`` use.
        one_input: takes the fuzzer's bytes; returns normally for an input that was
            handled (accepted, or refused with a documented exception) and raises
            anything else: an undocumented exception or a broken invariant
            (``AssertionError``).
        max_len: the longest input the fuzzer generates; with the limits each target sets
            on the parser it drives, this bounds the memory of one run.
        env: environment variables the runner sets before tether is imported
            (``TETHER_PURE_PYTHON=1`` for the pure-Python twin).
    """

    name: str
    one_input: Callable[[bytes], None]
    max_len: int = 4096
    env: dict[str, str] = field(default_factory=dict)


class Reader:
    """Consume fuzzer bytes as small configuration values, then the rest as data.

    Reading past the end yields zeros, so every input, even empty, is a valid one.
    """

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def byte(self) -> int:
        """The next byte, 0 past the end."""
        pos = self._pos
        self._pos = pos + 1
        return self._data[pos] if pos < len(self._data) else 0

    def flag(self) -> bool:
        """The low bit of the next byte."""
        return bool(self.byte() & 1)

    def pick(self, options: tuple[object, ...]) -> object:
        """One of ``options``, chosen by the next byte."""
        return options[self.byte() % len(options)]

    def rest(self) -> bytes:
        """Everything not read yet."""
        rest = self._data[self._pos :]
        self._pos = len(self._data)
        return rest


def chunks(data: bytes, seed: int) -> Iterator[bytes]:
    """Split ``data`` in pieces whose sizes cycle through a pattern chosen by ``seed``.

    The parsers are incremental: the same bytes split differently must give the same
    outcome, and the splits find the bugs at buffer boundaries.
    """
    sizes = (1 + seed % 7, 1 + (seed >> 3) % 13, 1 + (seed >> 5) % 3)
    pos = i = 0
    while pos < len(data):
        size = sizes[i % 3]
        yield data[pos : pos + size]
        pos += size
        i += 1
