"""The engine's dispatchers: ``Client`` (one connection) and ``Pool``
(many), over the native connection pool. They resolve ``request()`` and
``stream()`` natively; everything else they inherit from ``Dispatcher``."""

from __future__ import annotations

import asyncio
import ipaddress
import math
import sys
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Unpack, overload
from urllib.parse import urlsplit

from . import _tls, diagnostics
from ._api_common import check_callback, deliver
from ._bridge import bridge_for
from ._options import ClientOptions, DispatchOptions, ResultCallback
from ._undipy import Core, LoopBridge
from .dispatcher import Dispatcher
from .errors import ClientDestroyedError, InvalidArgumentError
from .handler import Handler

_DEFAULTS: dict[str, Any] = {
    "pipelining": 1,
    "connect_timeout": 10.0,
    "headers_timeout": 300.0,
    "body_timeout": 300.0,
    "keep_alive_timeout": 4.0,
    "keep_alive_max_timeout": 600.0,
    "keep_alive_timeout_threshold": 2.0,
    "max_header_size": 16384,
    "max_response_size": -1,
    "max_requests_per_client": None,
    "socket_path": None,
    "strict_content_length": True,
    "local_address": None,
    "tls": None,
}

# The engine counts pipelined requests in 32 bits.
_MAX_PIPELINING = 2**32 - 1

_TIMEOUTS = (
    "connect_timeout",
    "headers_timeout",
    "body_timeout",
    "keep_alive_timeout",
    "keep_alive_max_timeout",
    "keep_alive_timeout_threshold",
)


@dataclass(frozen=True)
class ClientStats:
    connected: int
    pending: int
    running: int
    size: int


@dataclass(frozen=True)
class PoolStats:
    connected: int
    free: int
    pending: int
    queued: int
    running: int
    size: int


def _is_int(v: Any, low: int = 0, high: int = 2**63 - 1) -> bool:
    """An int (not a bool) from ``low`` to ``high``: the engine's integers are
    64-bit, so a larger one is an invalid argument, not an overflow later."""
    return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _is_ip(v: Any) -> bool:
    try:
        ipaddress.ip_address(v)
    except ValueError:
        return False
    return isinstance(v, str)  # ip_address() also takes ints


def _options(opts: Mapping[str, Any]) -> dict[str, Any]:
    """Validates constructor options: unknown or ill-typed ones raise."""
    for name in opts:
        if name not in _DEFAULTS:
            raise InvalidArgumentError(f"unknown option {name!r}")
    o = {**_DEFAULTS, **opts}
    for name in _TIMEOUTS:
        v = o[name]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise InvalidArgumentError(f"invalid {name}")
    if not _is_int(o["pipelining"], 0, _MAX_PIPELINING):
        raise InvalidArgumentError("invalid pipelining")
    if not _is_int(o["max_header_size"], 1):
        raise InvalidArgumentError("invalid max_header_size")
    if not _is_int(o["max_response_size"], -1):
        raise InvalidArgumentError("invalid max_response_size")
    mr = o["max_requests_per_client"]
    if mr is not None and not _is_int(mr, 1):
        raise InvalidArgumentError("invalid max_requests_per_client")
    if o["socket_path"] is not None:
        if not isinstance(o["socket_path"], str):
            raise InvalidArgumentError("invalid socket_path")
        if sys.platform == "win32":
            raise InvalidArgumentError("socket_path: Unix sockets are not supported on Windows")
    if not isinstance(o["strict_content_length"], bool):
        raise InvalidArgumentError("invalid strict_content_length")
    la = o["local_address"]
    if la is not None and not _is_ip(la):
        raise InvalidArgumentError("invalid local_address")
    o["tls"] = _tls.normalise(o["tls"])
    return o


def _origin(origin: Any) -> tuple[str, str, int, str]:
    """(origin, host, port, host header) of an ``http(s)://host:port`` origin."""
    if not isinstance(origin, str):
        raise InvalidArgumentError("invalid url: origin must be a string")

    def bad(why: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"invalid origin {origin!r}: {why}")

    if "://" not in origin:
        raise bad("it needs a scheme, as in 'http://host:port'")
    u = urlsplit(origin)
    if u.scheme not in ("http", "https"):
        raise bad(f"the scheme must be http or https, not {u.scheme!r}")
    if not u.hostname:
        raise bad("it has no host")
    try:
        port = u.port
    except ValueError:
        raise bad("the port must be a whole number from 0 to 65535") from None
    if u.path not in ("", "/") or u.query or u.fragment:
        raise bad("an origin has no path, query or fragment (give path= to each request)")
    host = u.hostname
    default = 443 if u.scheme == "https" else 80
    port = port if port is not None else default
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    return f"{u.scheme}://{host_header}", host, port, host_header


class _EngineDispatcher(Dispatcher):
    """What ``Client`` and ``Pool`` share: the engine handle, its events,
    ``dispatch``, ``close`` and ``destroy``."""

    origin: str
    """The normalised ``scheme://host[:port]`` requests go to."""
    _connections: int | None = 1

    def __init__(self, origin: str, **opts: Unpack[ClientOptions]) -> None:
        """``origin``: ``"http://host[:port]"``. The options (keyword) are
        listed in ``help(Client)``; unknown or ill-typed ones raise
        ``InvalidArgumentError``."""
        super().__init__()
        self.origin, host, port, host_header = _origin(origin)
        o = _options(opts)
        https = self.origin.startswith("https:")
        engine = {**o, "connections": self._connections, "https": https, **self._engine_extras()}
        self._core = Core(host, port, host_header, engine)
        # The loop that used this dispatcher last and its bridge, as one
        # tuple: threads that share a dispatcher read both at once.
        self._binding: tuple[asyncio.AbstractEventLoop | None, LoopBridge | None] = (None, None)
        self._close_waiters: list[asyncio.Future[None]] = []
        self._destroyed = False

    def _engine_extras(self) -> dict[str, Any]:
        """Engine options no user passes: those of the dispatchers built on
        this one (``ProxyAgent``'s tunnel)."""
        return {}

    # -- the loop ------------------------------------------------------------

    def _bridge_for(self, loop: asyncio.AbstractEventLoop) -> LoopBridge:
        """The bridge of ``loop``; dispatcher events follow the loop that used
        the dispatcher last (``close()`` resolves on the loop awaiting it)."""
        bound, bridge = self._binding
        if bound is loop and bridge is not None:
            return bridge
        bridge = bridge_for(loop)
        self._core.bind(bridge, weakref.ref(self))
        self._binding = (loop, bridge)
        return bridge

    # -- dispatch ------------------------------------------------------------

    def dispatch(self, handler: Handler, **opts: Unpack[DispatchOptions]) -> bool:
        """undici's ``dispatch``: sends one request and reports its response
        to ``handler`` (see ``undipy.DispatchHandler``). False when busy (wait
        for ``"drain"``).

        Options (keyword): ``path`` and ``method`` (required), ``headers``,
        ``query``, ``body``, ``idempotent``, ``blocking``, ``reset``,
        ``upgrade``, ``headers_timeout``, ``body_timeout``,
        ``expect_continue``, ``throw_on_error`` (ignored), ``origin``
        (ignored)."""
        bridge = self._bridge_for(asyncio.get_running_loop())
        if diagnostics.observing:
            handler = diagnostics.observe(self.origin, handler, opts)  # type: ignore[arg-type]
        return self._core.dispatch(bridge, handler, opts)

    # -- request() and stream(), natively unless dispatch() is overridden ----

    def _resolves_natively(self) -> bool:
        # (Observed by the diagnostics channels: through dispatch(), which
        # reports every step of the request.)
        return type(self).dispatch is _EngineDispatcher.dispatch and not diagnostics.observing

    def _request(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], opts: dict[str, Any]
    ) -> Any:
        if not self._resolves_natively():
            return super()._request(loop, future, opts)
        return self._core.request(self._bridge_for(loop), future, opts)  # type: ignore[arg-type]

    def _stream(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        factory: Any,
        opts: dict[str, Any],
    ) -> Any:
        if not self._resolves_natively():
            return super()._stream(loop, future, factory, opts)
        return self._core.stream(self._bridge_for(loop), future, factory, opts)  # type: ignore[arg-type]

    # -- lifecycle -----------------------------------------------------------

    @overload
    def close(self, callback: None = None) -> asyncio.Future[None]: ...
    @overload
    def close(self, callback: ResultCallback[None]) -> None: ...
    def close(self, callback: ResultCallback[None] | None = None) -> asyncio.Future[None] | None:
        """Stops taking requests and resolves once the queued ones finished."""
        check_callback(callback)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        if self._destroyed:
            fut.set_exception(ClientDestroyedError())
        else:
            self._close_waiters.append(fut)
            self._bridge_for(loop)
            self._core.close()
        return deliver(fut, callback)  # type: ignore[return-value]

    @overload
    def destroy(
        self, error: BaseException | None = None, callback: None = None
    ) -> asyncio.Future[None]: ...
    @overload
    def destroy(self, error: BaseException | None, callback: ResultCallback[None]) -> None: ...
    @overload
    def destroy(self, *, callback: ResultCallback[None]) -> None: ...
    @overload
    def destroy(self, error: ResultCallback[None], /) -> None: ...
    def destroy(
        self,
        error: BaseException | ResultCallback[None] | None = None,
        callback: ResultCallback[None] | None = None,
    ) -> asyncio.Future[None] | None:
        """Fails every queued and running request now (with ``error``, or
        ``ClientDestroyedError``) and resolves once the sockets are closed.
        ``destroy(callback)`` is ``destroy(None, callback)``."""
        if callable(error) and not isinstance(error, BaseException):
            error, callback = None, error
        if not isinstance(error, BaseException | None):
            raise InvalidArgumentError("invalid error: destroy() takes an exception or None")
        check_callback(callback)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._close_waiters.append(fut)
        self._bridge_for(loop)
        self._destroyed = True
        self._core.destroy(error)
        return deliver(fut, callback)  # type: ignore[return-value]

    @property
    def closed(self) -> bool:
        return bool(self._core.closed)

    @property
    def destroyed(self) -> bool:
        return bool(self._core.destroyed)

    @property
    def pipelining(self) -> int:
        return int(self._core.pipelining)

    @pipelining.setter
    def pipelining(self, n: int) -> None:
        if not _is_int(n, 0, _MAX_PIPELINING):
            raise InvalidArgumentError("invalid pipelining")
        self._core.pipelining = n

    def _on_event(self, name: str, detail: Any) -> None:
        """Called by the bridge for the engine's dispatcher events: ``detail``
        is the error of "disconnect" and "connection_error", and what a new
        connection reached for "connect" (see ``client:connected``)."""
        if name == "closed":
            waiters, self._close_waiters = self._close_waiters, []
            for w in waiters:
                _resolve_threadsafe(w)
        elif name == "drain":
            self.emit("drain", self.origin)
        elif name == "connect":
            if diagnostics.has_subscribers("client:connected"):
                # (None for a connection made before the first subscriber.)
                message = {"origin": self.origin, "dispatcher": self, **(detail or {})}
                diagnostics.publish("client:connected", message)
            self.emit("connect", self.origin, [self])
        else:
            if name == "connection_error" and diagnostics.has_subscribers("client:connect_error"):
                message = {"origin": self.origin, "dispatcher": self, "error": detail}
                diagnostics.publish("client:connect_error", message)
            self.emit(name, self.origin, [self], detail)


class Client(_EngineDispatcher):
    """One origin, one connection at a time, keep-alive and pipelining.

    ``Client(origin, **options)``; the options (keyword, durations in
    seconds): ``pipelining=1``, ``connect_timeout=10.0``,
    ``headers_timeout=300.0``, ``body_timeout=300.0``,
    ``keep_alive_timeout=4.0``, ``keep_alive_max_timeout=600.0``,
    ``keep_alive_timeout_threshold=2.0``, ``max_header_size=16384``,
    ``max_response_size=-1``, ``max_requests_per_client=None``,
    ``socket_path=None``, ``strict_content_length=True``,
    ``local_address=None``, ``tls=None``."""

    @property
    def stats(self) -> ClientStats:
        connected, _free, pending, _queued, running, size = self._core.stats()
        return ClientStats(connected, pending, running, size)


class Pool(_EngineDispatcher):
    """Many connections to one origin (``connections=None``: no limit).

    ``Pool(origin, connections=None, **options)``, with the options of
    ``Client``."""

    def __init__(
        self, origin: str, connections: int | None = None, **opts: Unpack[ClientOptions]
    ) -> None:
        """``connections``: the most sockets the pool opens (``None``: no
        limit). The other options are ``Client``'s (``help(Client)``)."""
        if connections is not None and not _is_int(connections, 1):
            raise InvalidArgumentError("invalid connections")
        self._connections = connections
        super().__init__(origin, **opts)

    @property
    def stats(self) -> PoolStats:
        return PoolStats(*self._core.stats())


def _resolve_threadsafe(fut: asyncio.Future[None]) -> None:
    """Resolves ``fut`` from whichever loop this runs on (close() may be
    awaited on another loop than the one that last used the dispatcher)."""

    def resolve() -> None:
        if not fut.done():
            fut.set_result(None)

    loop = fut.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is running:
        resolve()
    elif not loop.is_closed():
        loop.call_soon_threadsafe(resolve)
