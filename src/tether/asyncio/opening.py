"""What :func:`tether.serve`, :func:`tether.connect` and ``Hub.serve`` return: a thing
that is awaited for the running object, or entered as an async context manager that
closes it on exit (the shape of ``websockets.serve``/``connect``)."""

from __future__ import annotations

import abc
from collections.abc import Generator
from types import TracebackType
from typing import Any, Generic, TypeVar

__all__ = ["Opening"]

T = TypeVar("T")


class Opening(abc.ABC, Generic[T]):
    """``value = await opening`` or ``async with opening as value:``.

    Subclasses say how the value is made (:meth:`_create`) and how it is closed when the
    ``async with`` block ends (:meth:`_dispose`).
    """

    _value: T | None = None

    @abc.abstractmethod
    async def _create(self) -> T:
        """Make the running object (listen, connect...)."""

    @abc.abstractmethod
    async def _dispose(self, value: T, exc: BaseException | None) -> None:
        """Close ``value`` at the end of an ``async with`` block (``exc``: what ended it)."""

    def __await__(self) -> Generator[Any, None, T]:
        return self._create().__await__()

    async def __aenter__(self) -> T:
        self._value = await self._create()
        return self._value

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        value, self._value = self._value, None
        if value is not None:
            await self._dispose(value, exc)
