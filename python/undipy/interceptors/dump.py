"""The ``dump`` interceptor: response bodies read and dropped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._api_common import parse_headers
from ..dispatcher import DispatchFn, Interceptor
from ..errors import InvalidArgumentError, RequestAbortedError
from ..handler import DecoratorHandler, Handler


def _is_size(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


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
