"""``request()`` and ``stream()`` through ``dispatch()``: the handlers a
dispatcher that is not the engine's (a subclass overriding ``dispatch()``,
an agent, an interceptor, a mock) gets for them. They produce what the
engine's native paths produce: the same ``ResponseData`` and ``Body`` (fed
from here), the same ``StreamData``, the same errors."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._api_common import call_info, parse_headers
from ._response import reject_with_status
from ._undipy import Body, ResponseData
from .api_stream import StreamData, finish_write, open_writable

if TYPE_CHECKING:
    from .api_stream import Factory


class RequestHandler:
    """``request()``'s handler. The body it makes calls back ``pause()``,
    ``resume()`` and ``abort()``; it holds the body weakly, as the engine
    does, so a body its reader dropped is freed, which aborts the request."""

    __slots__ = (
        "_future",
        "_opaque",
        "_on_info",
        "_throw",
        "_abort",
        "_resume",
        "_paused",
        "_body",
        "__weakref__",
    )

    def __init__(
        self,
        future: asyncio.Future[Any] | None,
        opaque: Any,
        on_info: Callable[..., Any] | None,
        throw_on_error: bool,
    ) -> None:
        self._future: asyncio.Future[Any] | None = future
        self._opaque = opaque
        self._on_info = on_info
        self._throw = throw_on_error
        self._abort: Callable[..., None] | None = None
        self._resume: Callable[[], None] | None = None
        self._paused = False
        self._body: weakref.ref[Body] | None = None

    @classmethod
    def feeding(cls, body: Body) -> RequestHandler:
        """A handler that carries on feeding ``body``, which its caller is
        reading already (a rescued response: ``_passthrough.py``); whoever
        feeds it calls ``attach()`` first."""
        handler = cls(None, None, None, False)
        handler._body = weakref.ref(body)
        return handler

    def attach(self, abort: Callable[..., None], resume: Callable[[], None]) -> None:
        self._abort, self._resume = abort, resume

    # -- the handler ---------------------------------------------------------

    def on_connect(self, abort: Callable[..., None], context: dict[str, Any]) -> None:
        self._abort = abort

    def on_headers(
        self, status_code: int, headers: list[bytes], resume: Callable[[], None], status_text: str
    ) -> bool:
        if status_code < 200:
            call_info(self._on_info, status_code, headers)
            return True
        self._resume = resume
        # The future goes: it would hold the response, and so the body, alive
        # for as long as the request runs, and a body its reader dropped must
        # be freed to abort its request.
        future, self._future = self._future, None
        assert future is not None
        # (mypy takes a class whose __init__ is NoReturn for a callable)
        body = Body._fed(future.get_loop(), self)  # type: ignore[attr-defined]
        self._body = weakref.ref(body)
        rd = ResponseData._make(  # type: ignore[attr-defined]
            status_code, status_text, headers, body, self._opaque
        )
        if self._throw and status_code >= 400:
            reject_with_status(future, rd)
        elif future.done():  # nobody waits for it (the caller was cancelled)
            body._discard()
        else:
            future.set_result(rd)
        return True

    def on_data(self, chunk: bytes) -> bool:
        body = self._body() if self._body is not None else None
        if body is None:
            return True  # the body was dropped: its request is being aborted
        body._push(chunk)
        return not self._paused

    def on_complete(self, trailers: list[bytes]) -> None:
        body = self._body() if self._body is not None else None
        if body is not None:
            body._end(parse_headers(trailers))

    def on_error(self, error: BaseException) -> None:
        body = self._body() if self._body is not None else None
        if body is not None:
            body._fail(error)
        elif self._future is not None and not self._future.done():
            self._future.set_exception(error)

    # -- what the body (and the caller) ask of the request ---------------------

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            if self._resume is not None:
                self._resume()

    def abort(self, error: BaseException | None = None) -> None:
        if self._abort is not None:
            self._abort(error)


class StreamHandler(RequestHandler):
    """``stream()``'s handler: the body goes into the factory's writable, a
    write that must be awaited pausing the socket. With ``throw_on_error``
    an error response is read as ``request()`` reads it and fails the call."""

    __slots__ = ("_factory", "_write", "_drain", "_context")

    def __init__(
        self,
        future: asyncio.Future[Any],
        factory: Factory,
        opaque: Any,
        on_info: Callable[..., Any] | None,
        throw_on_error: bool,
    ) -> None:
        super().__init__(future, opaque, on_info, throw_on_error)
        self._factory = factory
        self._write: Callable[[bytes], Any] | None = None
        self._drain: Callable[[], Any] | None = None
        self._context: dict[str, Any] = {}

    def on_connect(self, abort: Callable[..., None], context: dict[str, Any]) -> None:
        super().on_connect(abort, context)
        self._context = context

    def on_headers(
        self, status_code: int, headers: list[bytes], resume: Callable[[], None], status_text: str
    ) -> bool:
        if status_code < 200 or (self._throw and status_code >= 400):
            return super().on_headers(status_code, headers, resume, status_text)
        self._resume = resume
        self._write, self._drain = open_writable(
            self._factory, status_code, parse_headers(headers), self._opaque, self._context
        )
        return True

    def on_data(self, chunk: bytes) -> bool:
        if self._write is None:  # an error response, read as request() would
            return super().on_data(chunk)
        result = self._write(chunk)
        if self._drain is None and not hasattr(result, "__await__"):
            return True
        self._paused = True
        finish_write(result, self._drain, self)
        return False

    def on_complete(self, trailers: list[bytes]) -> None:
        if self._write is None:
            super().on_complete(trailers)
        elif self._future is not None and not self._future.done():
            trailer = parse_headers(trailers)
            self._future.set_result(StreamData(self._opaque, trailer, self._context))

    def abort(self, error: BaseException | None = None) -> None:
        if self._write is not None:
            self._paused = False  # a failed write: nothing will resume
        super().abort(error)
