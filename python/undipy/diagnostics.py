"""undici's diagnostics channels: what tracing needs to see of every
request, per attempt (below the retry and redirect interceptors).

``subscribe(name, callback)`` / ``unsubscribe(name, callback)`` /
``has_subscribers(name)``. Channels: ``request:create`` (in the caller's
task, before the request reaches the engine; ``message["request"]`` has
``add_header(name, value)``), ``request:headers``, ``request:trailers``
(the response is complete), ``request:error``, ``request:body_sent``,
``client:connected``, ``client:connect_error``. The messages of one request
share one ``request`` object. With nobody subscribed to a ``request:``
channel, requests take their usual path and nothing here runs."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

from ._api_common import header_pairs
from ._undipy import observe_connections
from .errors import InvalidArgumentError
from .handler import DecoratorHandler, Handler

__all__ = ["DiagnosticsRequest", "has_subscribers", "subscribe", "unsubscribe"]

Callback = Callable[[dict[str, Any]], object]

CHANNELS = frozenset(
    {
        "request:create",
        "request:headers",
        "request:trailers",
        "request:error",
        "request:body_sent",
        "client:connected",
        "client:connect_error",
    }
)

_subscribers: dict[str, list[Callback]] = {}

# Someone listens to a request channel: the engine's dispatchers then send
# their requests through `observe` (read once per request, so it stays free).
observing: bool = False


def subscribe(name: str, callback: Callback) -> None:
    """Calls ``callback(message)`` for each message on channel ``name``."""
    if name not in CHANNELS:
        raise InvalidArgumentError(f"unknown channel {name!r}: one of {sorted(CHANNELS)}")
    if not callable(callback):
        raise InvalidArgumentError("invalid callback: it must be callable")
    _subscribers.setdefault(name, []).append(callback)
    _update()


def unsubscribe(name: str, callback: Callback) -> bool:
    """Stops calling ``callback``; False if it was not subscribed."""
    callbacks = _subscribers.get(name, [])
    if callback not in callbacks:
        return False
    callbacks.remove(callback)
    _update()
    return True


def has_subscribers(name: str) -> bool:
    return bool(_subscribers.get(name))


def _update() -> None:
    global observing
    observing = any(callbacks for name, callbacks in _subscribers.items() if name[:8] == "request:")
    observe_connections(has_subscribers("client:connected"))


def publish(name: str, message: dict[str, Any]) -> None:
    """A subscriber that raises is reported to the loop's exception handler
    and disturbs neither the request nor the other subscribers."""
    for callback in list(_subscribers.get(name, ())):
        try:
            callback(message)
        except Exception as exc:
            asyncio.get_running_loop().call_exception_handler(
                {"message": f"diagnostics subscriber of {name!r} raised", "exception": exc}
            )


class DiagnosticsRequest:
    """One attempt of a request, as the channels show it."""

    __slots__ = ("origin", "method", "path", "headers", "resend_count", "__weakref__")

    def __init__(self, origin: str, method: str, path: str, headers: list[tuple[Any, Any]]):
        self.origin: str = origin
        self.method: str = method
        self.path: str = path
        self.headers: list[tuple[Any, Any]] = headers
        """The request's headers as ``(name, value)`` pairs."""
        self.resend_count: int = 0
        """Attempts of the same request before this one (retries, redirects)."""

    def add_header(self, name: str, value: str) -> None:
        """Sends one more header with this attempt (e.g. ``traceparent``)."""
        self.headers.append((name, value))


class _Observed(DecoratorHandler):
    def __init__(self, handler: Handler, request: DiagnosticsRequest) -> None:
        super().__init__(handler)
        self.request = request

    def on_headers(
        self,
        status_code: int,
        headers: list[bytes],
        resume: Callable[[], None],
        status_text: str,
    ) -> object:
        if status_code >= 200:
            publish(
                "request:headers",
                {
                    "request": self.request,
                    "status_code": status_code,
                    "status_text": status_text,
                    "headers": headers,
                },
            )
        return super().on_headers(status_code, headers, resume, status_text)

    def on_complete(self, trailers: list[bytes]) -> object:
        publish("request:trailers", {"request": self.request, "trailers": trailers})
        return super().on_complete(trailers)

    def on_error(self, error: BaseException) -> object:
        publish("request:error", {"request": self.request, "error": error})
        return super().on_error(error)


class _ObservedWithBody(_Observed):
    """Also reports each request body chunk written (only when asked: the
    engine reports them only to handlers that have ``on_body_sent``)."""

    def on_body_sent(self, chunk: bytes) -> object:
        publish("request:body_sent", {"request": self.request, "chunk": chunk})
        inner = getattr(self.handler, "on_body_sent", None)
        return inner(chunk) if inner is not None else None


def observe(origin: str, handler: Handler, opts: dict[str, Any]) -> Handler:
    """Publishes ``request:create`` for a request about to reach the engine
    (headers the subscribers add go into ``opts``) and returns the handler
    that reports the rest."""
    request = DiagnosticsRequest(
        origin,
        str(opts.get("method")),
        str(opts.get("path")),
        header_pairs(opts.get("headers")),
    )
    request.resend_count = _count_attempt(handler)
    before = len(request.headers)
    publish("request:create", {"request": request})
    if len(request.headers) != before:
        opts["headers"] = request.headers
    kind = _ObservedWithBody if has_subscribers("request:body_sent") else _Observed
    return kind(handler, request)


# The caller's own handler, under the interceptors' wrappers, is the same
# object for every attempt of one request (retry and redirect dispatch again
# with it): attempts are counted per caller's handler.
_attempts: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def _count_attempt(handler: Any) -> int:
    while isinstance(handler, DecoratorHandler):
        handler = handler.handler
    try:
        before = _attempts.get(handler, 0)
        _attempts[handler] = before + 1
    except TypeError:  # not weakly referenceable: no count
        return 0
    return before
