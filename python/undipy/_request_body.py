"""Streaming request bodies: pulled one chunk at a time, only when the
socket has taken the previous one (the runtime asks with a pull)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

CHUNK = 64 * 1024


class _Control(Protocol):
    def write(self, chunk: Any) -> None: ...
    def end(self) -> None: ...
    def abort(self, error: BaseException | None = None) -> None: ...


class _Puller(Protocol):
    def pull(self) -> None: ...


def start(source: Any, control: _Control) -> _Puller:
    """A puller for ``source``: an async iterable, a file object or an iterable."""
    if hasattr(source, "__aiter__"):
        return _AsyncPuller(source.__aiter__(), control)
    if hasattr(source, "read"):
        return _SyncPuller(_read_file(source), control)
    return _SyncPuller(iter(source), control)


def _read_file(f: Any) -> Iterator[Any]:
    while chunk := f.read(CHUNK):
        yield chunk


class _SyncPuller:
    __slots__ = ("_it", "_control")

    def __init__(self, it: Iterator[Any], control: _Control) -> None:
        self._it = it
        self._control = control

    def pull(self) -> None:
        try:
            chunk = next(self._it)
        except StopIteration:
            self._control.end()
            return
        except Exception as exc:
            self._control.abort(exc)
            return
        try:
            self._control.write(chunk)
        except TypeError as exc:
            self._control.abort(exc)


class _AsyncPuller:
    __slots__ = ("_it", "_control", "_task")

    def __init__(self, it: AsyncIterator[Any], control: _Control) -> None:
        self._it = it
        self._control = control
        self._task: asyncio.Future[None] | None = None

    def pull(self) -> None:
        self._task = asyncio.ensure_future(self._next())

    async def _next(self) -> None:
        try:
            chunk = await self._it.__anext__()
        except StopAsyncIteration:
            self._control.end()
            return
        except Exception as exc:
            self._control.abort(exc)
            return
        try:
            self._control.write(chunk)
        except TypeError as exc:
            self._control.abort(exc)
