"""``pipeline()``: a duplex whose writes are the request body and whose
reads are what the handler makes of the response.

Three small parts: ``_Source`` (the request body the engine pulls, fed by
``dup.write()``), ``PipelineBody`` (the response body the handler gets, with
backpressure on the socket) and ``_Pipeline`` (the dispatch handler that
ties them together). ``PipelineDuplex`` is the user's face of it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from ._api_common import (
    Headers,
    abort_reason,
    bind_signal,
    call_info,
    parse_headers,
    pop_common,
)
from .errors import InvalidArgumentError, InvalidReturnValueError, RequestAbortedError

if TYPE_CHECKING:
    from .dispatcher import Dispatcher

HWM = 64 * 1024
"""Bytes buffered on either side before the producer is made to wait."""


@dataclass(frozen=True, slots=True)
class PipelineHandlerData:
    status_code: int
    headers: Headers
    opaque: Any
    body: PipelineBody
    context: dict[str, Any]


Handler = Callable[[PipelineHandlerData], AsyncIterable[Any]]
"""A pipeline handler: returns an async iterable (usually ``data.body``, or
an async generator over it)."""


def pipeline(d: Dispatcher, handler: Handler, opts: Mapping[str, Any]) -> PipelineDuplex:
    if not callable(handler):
        raise InvalidArgumentError("invalid handler")
    opts = dict(opts)
    signal, opaque, on_info = pop_common(opts)
    object_mode = opts.pop("object_mode", False)
    if not isinstance(object_mode, bool):
        raise InvalidArgumentError("invalid object_mode")
    if opts.get("method") == "CONNECT":
        raise InvalidArgumentError("invalid method: use connect()")
    if opts.get("upgrade") is not None:
        raise InvalidArgumentError("invalid upgrade: use upgrade() or dispatch()")
    if "body" in opts:
        raise InvalidArgumentError("invalid body: pipeline() writes the duplex as the body")
    loop = asyncio.get_running_loop()
    p = _Pipeline(loop, handler, opaque, on_info, object_mode)
    if (reason := abort_reason(signal)) is not None:
        p.fail(reason)
        return PipelineDuplex(p)
    d.dispatch(p, body=p.source, **opts)
    p.unbind = bind_signal(signal, p.abort)
    return PipelineDuplex(p)


def _as_bytes(chunk: Any) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, bytearray | memoryview):
        return bytes(chunk)
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    raise TypeError(f"expected bytes or str, not {type(chunk).__name__}")


class _Waiter:
    """One future to wake whoever waits for a state change."""

    __slots__ = ("_loop", "_fut")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._fut: asyncio.Future[None] | None = None

    async def wait(self) -> None:
        if self._fut is None or self._fut.done():
            self._fut = self._loop.create_future()
        await asyncio.shield(self._fut)

    def wake(self) -> None:
        if self._fut is not None and not self._fut.done():
            self._fut.set_result(None)


class _Source:
    """The request body: chunks from ``dup.write()``, pulled by the engine
    as the socket takes them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._ended = False  # dup.end(): no more writes
        self._done = False  # the request ended: writes are dropped
        self._error: BaseException | None = None
        self._data = _Waiter(loop)
        self._room = _Waiter(loop)

    async def write(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        if self._ended:
            raise InvalidArgumentError("write after end()")
        if self._done or not chunk:
            return
        self._chunks.append(chunk)
        self._size += len(chunk)
        self._data.wake()
        while self._size > HWM and not self._done and self._error is None:
            await self._room.wait()
        if self._error is not None:
            raise self._error

    def end(self) -> None:
        self._ended = True
        self._data.wake()

    def finish(self) -> None:
        """The request ended: whatever is still written is not needed."""
        self._done = True
        self._chunks.clear()
        self._size = 0
        self._data.wake()
        self._room.wake()

    def fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self.finish()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        while not self._chunks:
            if self._done or self._ended:
                raise StopAsyncIteration
            await self._data.wait()
        chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._size <= HWM:
            self._room.wake()
        return chunk


class PipelineBody:
    """The response body a pipeline handler gets: an async iterable of
    ``bytes``. Reading it is what lets the socket go on."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        resume: Callable[[], None],
        abandon: Callable[[BaseException], None],
    ) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._ended = False
        self._error: BaseException | None = None
        self._paused = False
        self._resume = resume
        self._abandon = abandon
        self._data = _Waiter(loop)

    def _push(self, chunk: bytes) -> bool:
        self._chunks.append(chunk)
        self._size += len(chunk)
        self._data.wake()
        if self._size >= HWM:
            self._paused = True
            return False
        return True

    def _unpause(self) -> None:
        if self._paused:
            self._paused = False
            self._resume()

    def _end(self) -> None:
        self._ended = True
        self._data.wake()

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._chunks.clear()
        self._data.wake()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._ended:
                raise StopAsyncIteration
            await self._data.wait()
        chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._paused and self._size < HWM:
            self._paused = False
            self._resume()
        return chunk

    async def aclose(self) -> None:
        """Stops reading: a body not read to its end aborts the request."""
        if not self._ended and self._error is None:
            err = RequestAbortedError()
            self._fail(err)
            self._abandon(err)


class _Pipeline:
    """The dispatch handler behind a PipelineDuplex."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        handler: Handler,
        opaque: Any,
        on_info: Callable[..., Any] | None,
        object_mode: bool,
    ) -> None:
        self.loop = loop
        self.source: _Source = _Source(loop)
        self.object_mode = object_mode
        self.unbind: Callable[[], None] = _nothing
        self._handler: Handler | None = handler
        self._opaque = opaque
        self._on_info = on_info
        self._abort: Callable[..., None] | None = None
        self._context: dict[str, Any] = {}
        self.settled: bool = False  # the request ended (complete or failed)
        self.error: BaseException | None = None
        self.body: PipelineBody | None = None
        self.output: AsyncIterator[Any] | None = None
        self.ready: _Waiter = _Waiter(loop)  # the output is known, or failed
        self.pull: asyncio.Future[Any] | None = None

    def abort(self, reason: BaseException | None = None) -> None:
        """Aborts the request unless it already ended."""
        if not self.settled and self._abort is not None:
            self._abort(reason)
            if self.body is not None:
                # The engine holds a paused request's on_error until resume().
                self.body._unpause()

    def fail(self, error: BaseException) -> None:
        """Ends both sides with ``error`` (the request is aborted elsewhere)."""
        if self.error is None:
            self.error = error
        self.source.fail(error)
        if self.body is not None:
            self.body._fail(error)
        self.ready.wake()
        pull, self.pull = self.pull, None
        if pull is not None:
            pull.cancel()

    def _abandon(self, error: BaseException) -> None:
        self.abort(error)

    # -- the handler -----------------------------------------------------------

    def on_connect(self, abort: Callable[..., None], context: dict[str, Any]) -> None:
        self._abort = abort
        self._context = context

    def on_headers(
        self, status_code: int, headers: list[bytes], resume: Callable[[], None], text: str
    ) -> bool:
        if status_code < 200:
            call_info(self._on_info, status_code, headers)
            return True
        handler, self._handler = self._handler, None
        if handler is None:
            return True
        body = self.body = PipelineBody(self.loop, resume, self._abandon)
        data = PipelineHandlerData(
            status_code, parse_headers(headers), self._opaque, body, self._context
        )
        out = handler(data)
        if not hasattr(out, "__aiter__"):
            if inspect.iscoroutine(out):
                out.close()
            raise InvalidReturnValueError("expected Readable")
        self.output = out.__aiter__()
        self.ready.wake()
        return True

    def on_data(self, chunk: bytes) -> bool:
        if self.body is None:
            return True
        return self.body._push(chunk)

    def on_complete(self, trailers: list[bytes]) -> None:
        self.settled = True
        self.unbind()
        self.source.finish()
        if self.body is not None:
            self.body._end()

    def on_error(self, error: BaseException) -> None:
        self.settled = True
        self.unbind()
        self.fail(error)


class PipelineDuplex:
    """``await dup.write(chunk)`` and ``await dup.end()`` make the request
    body; ``async for item in dup`` yields what the handler's iterable
    yields. An error on either side ends both (and the request).
    ``async with`` closes it on exit."""

    def __init__(self, p: _Pipeline) -> None:
        self._p = p
        self._done = False  # the output ended

    # -- writable side ---------------------------------------------------------

    async def write(self, chunk: bytes | bytearray | memoryview | str) -> None:
        """Adds ``chunk`` to the request body; waits while much is buffered."""
        await self._p.source.write(_as_bytes(chunk))

    async def end(self, chunk: bytes | bytearray | memoryview | str | None = None) -> None:
        """Ends the request body (after ``chunk``, if given)."""
        if chunk is not None:
            await self.write(chunk)
        if self._p.error is not None:
            raise self._p.error
        self._p.source.end()

    # -- readable side ---------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        p = self._p
        while True:
            if p.error is not None:
                raise p.error
            if self._done:
                raise StopAsyncIteration
            if p.output is not None:
                break
            await p.ready.wait()
        try:
            item = await self._next(p, p.output)
        except StopAsyncIteration:
            self._done = True
            raise
        except asyncio.CancelledError:
            if p.error is not None and not _cancelling():
                raise p.error from None
            raise
        except Exception as exc:
            self._fail(exc)
            raise
        if not p.object_mode:
            try:
                item = _as_bytes(item)
            except TypeError as exc:
                self._fail(exc)
                raise
        return item

    async def _next(self, p: _Pipeline, out: AsyncIterator[Any]) -> Any:
        if out is p.body:  # the usual case: no task needed
            return await out.__anext__()
        # Anything else may not notice the request failing: race it.
        pull = p.pull = asyncio.ensure_future(out.__anext__())
        try:
            return await pull
        finally:
            if p.pull is pull:
                p.pull = None

    def _fail(self, exc: BaseException) -> None:
        p = self._p
        p.abort(exc)
        p.fail(exc)

    # -- ending ----------------------------------------------------------------

    def destroy(self, error: BaseException | None = None) -> None:
        """Ends both sides now: with ``error``, or RequestAbortedError when
        the output did not end yet; aborts the request if it is running."""
        p = self._p
        if error is None:
            if self._done and p.settled:
                return
            error = RequestAbortedError()
        p.abort(error)
        p.fail(error)

    async def aclose(self) -> None:
        """``destroy()`` unless everything ended."""
        p = self._p
        if p.error is None and not (self._done and p.settled):
            self.destroy()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def destroyed(self) -> bool:
        return self._p.error is not None


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _nothing() -> None:
    pass
