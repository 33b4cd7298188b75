"""The ``response_error`` interceptor: 4xx and 5xx answers as ``ResponseError``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._api_common import parse_headers
from .._response import error_body
from ..dispatcher import DispatchFn, Interceptor
from ..errors import ResponseError
from ..handler import DecoratorHandler, Handler


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
