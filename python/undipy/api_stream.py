"""``stream()``: the response body goes straight into a writable the
factory returns, with backpressure (a slow writer pauses the socket)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._api_common import (
    ERROR_BODY_LIMIT,
    Callback,
    Headers,
    abort_reason,
    bind_signal,
    call_info,
    parse_headers,
    pop_common,
    pop_throw_on_error,
    status_error,
    with_callback,
)
from .errors import InvalidArgumentError, InvalidReturnValueError, RequestAbortedError

if TYPE_CHECKING:
    from .dispatcher import Dispatcher


@dataclass(frozen=True, slots=True)
class StreamFactoryData:
    status_code: int
    headers: Headers
    opaque: Any
    context: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamData:
    opaque: Any
    trailers: Headers
    context: dict[str, Any]


Factory = Callable[[StreamFactoryData], Any]


def stream(d: Dispatcher, factory: Factory, callback: Callback | None, opts: dict[str, Any]) -> Any:
    coro = _stream(d, factory, dict(opts))
    if callback is None:
        return coro
    with_callback(coro, callback)
    return None


async def _stream(d: Dispatcher, factory: Factory, opts: dict[str, Any]) -> StreamData:
    if not callable(factory):
        raise InvalidArgumentError("invalid factory")
    signal, opaque, on_info = pop_common(opts)
    throw_on_error = pop_throw_on_error(opts)
    if opts.get("method") == "CONNECT":
        raise InvalidArgumentError("invalid method: use connect()")
    if opts.get("upgrade") is not None:
        raise InvalidArgumentError("invalid upgrade: use upgrade() or dispatch()")
    if (reason := abort_reason(signal)) is not None:
        raise reason
    h = _StreamHandler(asyncio.get_running_loop(), factory, opaque, on_info, throw_on_error)
    d.dispatch(h, **opts)
    unbind = bind_signal(signal, h.abort)
    try:
        return await h.future
    except asyncio.CancelledError:
        h.abort(RequestAbortedError())
        raise
    finally:
        unbind()


class _StreamHandler:
    """Writes each chunk into the writable; while a write (or drain) is
    pending, reading is paused and resumed once it finished."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        factory: Factory,
        opaque: Any,
        on_info: Callable[..., Any] | None,
        throw_on_error: bool,
    ) -> None:
        self.future: asyncio.Future[StreamData] = loop.create_future()
        self._factory = factory
        self._opaque = opaque
        self._on_info = on_info
        self._throw = throw_on_error
        self._abort: Callable[..., None] | None = None
        self._context: dict[str, Any] = {}
        self._resume: Callable[[], None] | None = None
        self._write: Callable[[bytes], Any] | None = None
        self._drain: Callable[[], Any] | None = None
        self._pending: asyncio.Future[None] | None = None
        self._paused = False
        self._trailers: Headers | None = None  # set once the body ended
        self._settled = False
        # throw_on_error: (status, text, headers) and the body read so far
        self._failed_head: tuple[int, str, Headers] | None = None
        self._failed_body = bytearray()

    # -- control ---------------------------------------------------------------

    def abort(self, reason: BaseException | None = None) -> None:
        """Aborts the request unless it already ended."""
        if self._abort is not None and not self._settled:
            self._abort(reason)
            if self._paused and self._resume is not None:
                # The engine holds a paused request's on_error until resume().
                self._paused = False
                self._resume()

    def _finish(self) -> None:
        self._settled = True
        if not self.future.done():
            assert self._trailers is not None
            self.future.set_result(StreamData(self._opaque, self._trailers, self._context))

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
        parsed = parse_headers(headers)
        if self._throw and status_code >= 400:
            self._failed_head = (status_code, text, parsed)
            return True
        w = self._factory(StreamFactoryData(status_code, parsed, self._opaque, self._context))
        write = getattr(w, "write", None)
        if not callable(write):
            if inspect.iscoroutine(w):
                w.close()
            raise InvalidReturnValueError("expected Writable")
        drain = getattr(w, "drain", None)
        self._write = write
        self._drain = drain if callable(drain) else None
        self._resume = resume
        return True

    def on_data(self, chunk: bytes) -> bool:
        if self._failed_head is not None:
            room = ERROR_BODY_LIMIT - len(self._failed_body)
            if room > 0:
                self._failed_body += chunk[:room]
            return True
        write = self._write
        if write is None:
            return True
        r = write(chunk)
        if self._drain is None and not inspect.isawaitable(r):
            return True
        self._pending = asyncio.ensure_future(self._complete_write(r))
        if inspect.iscoroutine(r):
            # Cancelled before it ran (the request failed): never "never awaited".
            self._pending.add_done_callback(lambda _: r.close())
        self._paused = True
        return False

    async def _complete_write(self, r: Any) -> None:
        try:
            if inspect.isawaitable(r):
                await r
            if self._drain is not None:
                d = self._drain()
                if inspect.isawaitable(d):
                    await d
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the writable failed: so does the request
            self._pending = None
            self.abort(exc)
            return
        self._pending = None
        if self._trailers is not None:
            self._finish()
        elif self._resume is not None and self._paused:
            self._paused = False
            self._resume()

    def on_complete(self, trailers: list[bytes]) -> None:
        if self._failed_head is not None:
            self._settled = True
            status, text, headers = self._failed_head
            if not self.future.done():
                err = status_error(status, text, headers, bytes(self._failed_body))
                self.future.set_exception(err)
            return
        self._trailers = parse_headers(trailers)
        if self._pending is None:
            self._finish()

    def on_error(self, error: BaseException) -> None:
        self._settled = True
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
        if not self.future.done():
            self.future.set_exception(error)
