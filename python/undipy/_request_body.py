"""Streaming request bodies: pulled one chunk at a time, only when the
socket has taken the previous one (the runtime asks with a pull)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

CHUNK = 64 * 1024


class _Control(Protocol):
    def write(self, chunk: Any, end: bool = False) -> None: ...
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


_END = object()
_NOT_YET = object()


class _Failed:
    """What reading the next chunk raised, kept until that chunk's turn."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class _SyncPuller:
    """Reads one chunk ahead, so that the last one goes out with the end in
    one step: a server that answers as soon as it has a body of known length
    must not find the request unfinished (that costs the connection)."""

    __slots__ = ("_it", "_control", "_ahead")

    def __init__(self, it: Iterator[Any], control: _Control) -> None:
        self._it = it
        self._control = control
        self._ahead: Any = _NOT_YET  # the next chunk, once read

    def _read(self) -> Any:
        try:
            return next(self._it)
        except StopIteration:
            return _END
        except Exception as exc:
            return _Failed(exc)

    def pull(self) -> None:
        chunk = self._read() if self._ahead is _NOT_YET else self._ahead
        if chunk is _END:
            self._control.end()
            return
        if isinstance(chunk, _Failed):
            self._control.abort(chunk.error)
            return
        self._ahead = self._read()
        try:
            self._control.write(chunk, self._ahead is _END)
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
