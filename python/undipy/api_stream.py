"""``stream()``: the response body goes straight into a writable the
factory returns, with backpressure (a slow writer pauses the socket).

The handler is native (``Core.stream``): a chunk goes from the socket's
event to ``write(chunk)`` with no Python frame in between. This module holds
the API function and the two pieces the native handler calls back into:
``open_writable`` once per response, ``finish_write`` for a write that must
be awaited."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ._api_common import Callback, Headers, abort_reason, bind_signal, check_signal, deliver
from .errors import InvalidArgumentError, InvalidReturnValueError, RequestAbortedError

if TYPE_CHECKING:
    from ._options import StreamOptions
    from .dispatcher import Dispatcher


# Not frozen: a frozen dataclass costs three times as much to build, and one
# of each is built per request on the fastest path there is.
@dataclass(slots=True)
class StreamFactoryData:
    status_code: int
    headers: Headers
    opaque: Any
    context: dict[str, Any]


@dataclass(slots=True)
class StreamData:
    opaque: Any
    trailers: Headers
    context: dict[str, Any]


class Writable(Protocol):
    """What a ``stream()`` factory returns: anything with ``write(chunk)``
    (a file, ``io.BytesIO``, an ``asyncio.StreamWriter``, ...). An awaitable
    that ``write`` returns is awaited, and so is an optional ``drain()``."""

    def write(self, chunk: bytes, /) -> object: ...


Factory = Callable[[StreamFactoryData], Writable]


def stream(
    d: Dispatcher, factory: Factory, callback: Callback | None, opts: StreamOptions
) -> Coroutine[Any, Any, StreamData] | None:
    coro = _stream(d, factory, opts)  # opts is the caller's fresh **kwargs dict
    return deliver(coro, callback)  # type: ignore[return-value]


async def _stream(d: Dispatcher, factory: Factory, opts: StreamOptions) -> StreamData:
    if not callable(factory):
        raise InvalidArgumentError("invalid factory")
    signal = opts.pop("signal", None)
    check_signal(signal)
    if (reason := abort_reason(signal)) is not None:
        raise reason
    loop = asyncio.get_running_loop()
    future: asyncio.Future[StreamData] = loop.create_future()
    request = d._stream(loop, future, factory, opts)  # type: ignore[arg-type]
    unbind = bind_signal(signal, request.abort)
    try:
        return await future
    except asyncio.CancelledError:
        request.abort(RequestAbortedError())
        raise
    finally:
        unbind()


def open_writable(
    factory: Factory, status: int, headers: Headers, opaque: Any, context: dict[str, Any]
) -> tuple[Callable[[bytes], Any], Callable[[], Any] | None]:
    """Calls the factory; returns the writable's ``write`` and ``drain``."""
    w = factory(StreamFactoryData(status, headers, opaque, context))
    write = getattr(w, "write", None)
    if not callable(write):
        if inspect.iscoroutine(w):
            w.close()
        raise InvalidReturnValueError("expected Writable")
    drain = getattr(w, "drain", None)
    return write, drain if callable(drain) else None


class _Resumable(Protocol):
    def resume(self) -> None: ...
    def abort(self, error: BaseException | None = None) -> None: ...


def finish_write(
    result: Any, drain: Callable[[], Any] | None, control: _Resumable
) -> asyncio.Future[None]:
    """Awaits a write's result (then ``drain()``) while reading is paused;
    resumes reading after, or fails the request with the writable's error."""
    task = asyncio.ensure_future(_finish_write(result, drain, control))
    if inspect.iscoroutine(result):
        # Cancelled before it ran (the request failed): never "never awaited".
        task.add_done_callback(lambda _: result.close())
    return task


async def _finish_write(result: Any, drain: Callable[[], Any] | None, control: _Resumable) -> None:
    try:
        if inspect.isawaitable(result):
            await result
        if drain is not None:
            d: Awaitable[Any] | None = drain()
            if inspect.isawaitable(d):
                await d
    except Exception as exc:  # the writable failed: so does the request
        control.abort(exc)
        return
    control.resume()
