"""Interceptors for ``Dispatcher.compose()``: each is
``interceptor(dispatch) -> dispatch``, wrapping the request's handler in a
``DecoratorHandler`` that changes what it needs to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._api_common import parse_headers
from ._response import error_body
from .dispatcher import DispatchFn, Interceptor
from .errors import InvalidArgumentError, RequestAbortedError, ResponseError
from .handler import DecoratorHandler, Handler

__all__ = ["dump", "response_error"]


def _is_size(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


# -- dump ------------------------------------------------------------------


class _DumpHandler(DecoratorHandler):
    """Passes the head and the end on; reads the body and drops it, and
    aborts the request past ``max_size`` bytes."""

    def __init__(self, handler: Handler, max_size: int) -> None:
        super().__init__(handler)
        self._max_size = max_size
        self._size = 0
        self._abort: Callable[..., None] | None = None

    def on_connect(self, abort: Callable[..., None], context: dict[str, Any]) -> object:
        self._abort = abort
        self._size = 0
        return super().on_connect(abort, context)

    def on_headers(
        self,
        status_code: int,
        headers: list[bytes],
        resume: Callable[[], None],
        status_text: str,
    ) -> object:
        length = parse_headers(headers).get("content-length")
        if status_code >= 200 and isinstance(length, str) and length.isdigit():
            if int(length) > self._max_size:
                self._too_big(int(length))
                return True
        return super().on_headers(status_code, headers, resume, status_text)

    def on_data(self, chunk: bytes) -> object:
        self._size += len(chunk)
        if self._size > self._max_size:
            self._too_big(self._size)
        return True  # never paused: nobody reads what is dropped

    def _too_big(self, size: int) -> None:
        if self._abort is not None:
            msg = f"Response size ({size}) larger than max_size ({self._max_size})"
            self._abort(RequestAbortedError(msg))


def dump(max_size: int = 1048576) -> Interceptor:
    """Reads and discards response bodies (so their connections are freed
    at once); a body over ``max_size`` bytes aborts its request. Per
    request: ``dump_max_size=``."""
    if not _is_size(max_size):
        raise InvalidArgumentError("invalid max_size: an int, 0 or more")

    def interceptor(dispatch: DispatchFn) -> DispatchFn:
        def dump_dispatch(handler: Handler, **opts: Any) -> bool:
            size = opts.pop("dump_max_size", None)
            if size is not None and not _is_size(size):
                raise InvalidArgumentError("invalid dump_max_size: an int, 0 or more")
            limit = max_size if size is None else size
            return dispatch(_DumpHandler(handler, limit), **opts)

        return dump_dispatch

    return interceptor


# -- response_error ------------------------------------------------------------


class _ResponseErrorHandler(DecoratorHandler):
    """A final status of 400 or more: the body is read here and the request
    fails with ``ResponseError`` carrying it, instead of a response."""

    def __init__(self, handler: Handler) -> None:
        super().__init__(handler)
        self._error: tuple[int, str, dict[str, Any]] | None = None
        self._body = bytearray()

    def on_connect(self, abort: Callable[..., None], context: dict[str, Any]) -> object:
        self._error = None  # again on a retry
        self._body.clear()
        return super().on_connect(abort, context)

    def on_headers(
        self,
        status_code: int,
        headers: list[bytes],
        resume: Callable[[], None],
        status_text: str,
    ) -> object:
        if status_code < 400:
            return super().on_headers(status_code, headers, resume, status_text)
        self._error = (status_code, status_text, parse_headers(headers))
        return True

    def on_data(self, chunk: bytes) -> object:
        if self._error is None:
            return super().on_data(chunk)
        self._body += chunk
        return True

    def on_complete(self, trailers: list[bytes]) -> object:
        if self._error is None:
            return super().on_complete(trailers)
        status, text, headers = self._error
        body = error_body(bytes(self._body), headers)
        msg = f"Response Error: {status}" + (f" {text}" if text else "")
        return super().on_error(ResponseError(msg, status, headers, body))


def response_error() -> Interceptor:
    """A final status of 400 or more fails the request with
    ``ResponseError`` (``status_code``, ``headers``, ``body``: parsed JSON for
    ``application/json``, else text)."""

    def interceptor(dispatch: DispatchFn) -> DispatchFn:
        def response_error_dispatch(handler: Handler, **opts: Any) -> bool:
            return dispatch(_ResponseErrorHandler(handler), **opts)

        return response_error_dispatch

    return interceptor
