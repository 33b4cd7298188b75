"""The dispatchers: ``Client`` (one connection) and ``Pool`` (many), both
driving the native engine, plus the ``request()`` convenience on top of
``dispatch()``'s machinery."""

from __future__ import annotations

import asyncio
import collections.abc
import ipaddress
import math
import warnings
import weakref
from collections.abc import Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, Unpack, overload
from urllib.parse import urlsplit

from . import _tls, api_pipeline, api_stream, api_upgrade
from ._api_common import Callback, abort_reason, check_signal, watch_signal, with_callback
from ._bridge import bridge_for
from ._options import (
    ClientOptions,
    ConnectOptions,
    DispatchOptions,
    PipelineOptions,
    RequestOptions,
    ResultCallback,
    StreamOptions,
    UpgradeOptions,
)
from ._undipy import Core, LoopBridge, ResponseData
from .errors import ClientDestroyedError, InvalidArgumentError
from .handler import Handler

Listener = Callable[..., Any]

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
    if o["socket_path"] is not None and not isinstance(o["socket_path"], str):
        raise InvalidArgumentError("invalid socket_path")
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


class Dispatcher:
    """What ``Client`` and ``Pool`` share: the engine handle, events,
    ``dispatch``, ``request``, ``close`` and ``destroy``."""

    _connections: int | None = 1

    def __init__(self, origin: str, **opts: Unpack[ClientOptions]) -> None:
        """``origin``: ``"http://host[:port]"``. The options (keyword) are
        listed in ``help(Client)``; unknown or ill-typed ones raise
        ``InvalidArgumentError``."""
        self.origin, host, port, host_header = _origin(origin)
        o = _options(opts)
        https = self.origin.startswith("https:")
        self._core = Core(
            host, port, host_header, {**o, "connections": self._connections, "https": https}
        )
        # The loop that used this dispatcher last and its bridge, as one
        # tuple: threads that share a dispatcher read both at once.
        self._binding: tuple[asyncio.AbstractEventLoop | None, LoopBridge | None] = (None, None)
        self._listeners: dict[str, list[tuple[Listener, bool]]] = {}
        self._close_waiters: list[asyncio.Future[None]] = []
        self._destroyed = False

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
        return self._core.dispatch(bridge, handler, opts)

    @overload
    def request(self, callback: None = None, **opts: Unpack[RequestOptions]) -> _RequestCall: ...
    @overload
    def request(
        self, callback: ResultCallback[ResponseData], **opts: Unpack[RequestOptions]
    ) -> None: ...
    def request(
        self,
        callback: ResultCallback[ResponseData] | None = None,
        **opts: Unpack[RequestOptions],
    ) -> _RequestCall | None:
        """Sends a request; await the result (or ``async with`` it) for a
        ``ResponseData``. With ``callback=`` it returns None and calls
        ``callback(error, data)`` later.

        Options (keyword): ``path`` and ``method`` (required), ``headers``,
        ``query``, ``body``, ``idempotent``, ``blocking``, ``reset``,
        ``headers_timeout``, ``body_timeout``, ``expect_continue``,
        ``throw_on_error``, ``origin``, ``opaque``, ``signal``, ``on_info``."""
        call = _RequestCall(self, opts)
        if callback is not None:
            with_callback(call, callback)
            return None
        return call

    @overload
    def stream(
        self,
        factory: api_stream.Factory,
        callback: None = None,
        **opts: Unpack[StreamOptions],
    ) -> Coroutine[Any, Any, api_stream.StreamData]: ...
    @overload
    def stream(
        self,
        factory: api_stream.Factory,
        callback: ResultCallback[api_stream.StreamData],
        **opts: Unpack[StreamOptions],
    ) -> None: ...
    def stream(
        self,
        factory: api_stream.Factory,
        callback: ResultCallback[api_stream.StreamData] | None = None,
        **opts: Unpack[StreamOptions],
    ) -> Coroutine[Any, Any, api_stream.StreamData] | None:
        """The response body goes into the writable ``factory(data)`` returns;
        await the result for a ``StreamData`` (or pass ``callback=``).

        Options: those of ``request()``."""
        return api_stream.stream(self, factory, callback, opts)

    def pipeline(
        self, handler: api_pipeline.Handler, **opts: Unpack[PipelineOptions]
    ) -> api_pipeline.PipelineDuplex:
        """A duplex: writes make the request body, reads yield what
        ``handler(data)``'s async iterable yields.

        Options (keyword): those of ``request()`` but ``body``, plus
        ``object_mode``."""
        return api_pipeline.pipeline(self, handler, opts)

    @overload
    def upgrade(
        self, callback: None = None, **opts: Unpack[UpgradeOptions]
    ) -> Coroutine[Any, Any, api_upgrade.UpgradeData]: ...
    @overload
    def upgrade(
        self, callback: ResultCallback[api_upgrade.UpgradeData], **opts: Unpack[UpgradeOptions]
    ) -> None: ...
    def upgrade(
        self,
        callback: ResultCallback[api_upgrade.UpgradeData] | None = None,
        **opts: Unpack[UpgradeOptions],
    ) -> Coroutine[Any, Any, api_upgrade.UpgradeData] | None:
        """Switches protocols (default ``protocol="Websocket"``); await the
        result for an ``UpgradeData`` (or pass ``callback=``).

        Options (keyword): ``path="/"``, ``method="GET"``,
        ``protocol="Websocket"``, ``headers``, ``signal``, ``opaque``, and the
        other request options (``body``, ``query``, ``headers_timeout``,
        ...)."""
        return api_upgrade.upgrade(self, callback, **opts)

    @overload
    def connect(
        self, callback: None = None, **opts: Unpack[ConnectOptions]
    ) -> Coroutine[Any, Any, api_upgrade.ConnectData]: ...
    @overload
    def connect(
        self, callback: ResultCallback[api_upgrade.ConnectData], **opts: Unpack[ConnectOptions]
    ) -> None: ...
    def connect(
        self,
        callback: ResultCallback[api_upgrade.ConnectData] | None = None,
        **opts: Unpack[ConnectOptions],
    ) -> Coroutine[Any, Any, api_upgrade.ConnectData] | None:
        """HTTP CONNECT to ``path`` (an authority); await the result for a
        ``ConnectData`` (or pass ``callback=``).

        Options (keyword): ``path`` (required), ``headers``, ``signal``,
        ``opaque``, and the other request options but ``method`` and
        ``upgrade``."""
        return api_upgrade.connect(self, callback, **opts)

    # -- lifecycle -----------------------------------------------------------

    @overload
    def close(self, callback: None = None) -> asyncio.Future[None]: ...
    @overload
    def close(self, callback: ResultCallback[None]) -> None: ...
    def close(self, callback: ResultCallback[None] | None = None) -> asyncio.Future[None] | None:
        """Stops taking requests and resolves once the queued ones finished."""
        _check_callback(callback)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        if self._destroyed:
            fut.set_exception(ClientDestroyedError())
        else:
            self._close_waiters.append(fut)
            self._bridge_for(loop)
            self._core.close()
        return _maybe_callback(fut, callback)

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
        _check_callback(callback)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._close_waiters.append(fut)
        self._bridge_for(loop)
        self._destroyed = True
        self._core.destroy(error)
        return _maybe_callback(fut, callback)

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

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self._destroyed:
            await self.close()

    # -- events --------------------------------------------------------------

    def on(self, name: str, listener: Listener) -> Self:
        _check_listener(name, listener)
        self._listeners.setdefault(name, []).append((listener, False))
        return self

    def once(self, name: str, listener: Listener) -> Self:
        _check_listener(name, listener)
        self._listeners.setdefault(name, []).append((listener, True))
        return self

    def off(self, name: str, listener: Listener) -> Self:
        entries = self._listeners.get(name, [])
        for i, (fn, _) in enumerate(entries):
            if fn is listener:
                del entries[i]
                break
        return self

    def emit(self, name: str, *args: Any) -> None:
        entries = self._listeners.get(name)
        if not entries:
            return
        self._listeners[name] = [e for e in entries if not e[1]]
        # One listener raising must not silence the others; what they raised
        # is reported afterwards, where the emitter reports errors.
        errors: list[Exception] = []
        for fn, _ in entries:
            try:
                fn(*args)
            except Exception as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ExceptionGroup(f"{name!r} listeners raised", errors)

    def _on_event(self, name: str, error: BaseException | None) -> None:
        """Called by the bridge for the engine's dispatcher events."""
        if name == "closed":
            waiters, self._close_waiters = self._close_waiters, []
            for w in waiters:
                _resolve_threadsafe(w)
        elif name == "drain":
            self.emit("drain", self.origin)
        elif name == "connect":
            self.emit("connect", self.origin, [self])
        else:
            self.emit(name, self.origin, [self], error)


class Client(Dispatcher):
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


class Pool(Dispatcher):
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


if TYPE_CHECKING:
    _CoroutineBase = Coroutine[Any, Any, ResponseData]
else:
    _CoroutineBase = object  # registered as a Coroutine below


class _RequestCall(_CoroutineBase):
    """What ``request()`` returns: awaitable, an async context manager that
    releases the body on exit, and a coroutine as far as asyncio can tell
    (``create_task()`` and ``TaskGroup.create_task()`` take it). Nothing is
    sent until it is awaited or its task runs; one never awaited warns, as a
    coroutine does."""

    __slots__ = ("_d", "_opts", "_resp", "_run")

    def __init__(self, d: Dispatcher, opts: RequestOptions) -> None:
        self._d = d
        self._opts = opts
        self._resp: ResponseData | None = None
        self._run: Generator[Any, None, ResponseData] | None = None

    def __await__(self) -> Generator[Any, None, ResponseData]:
        if self._run is not None:
            raise RuntimeError("cannot reuse already awaited request()")
        self._run = run = self._send()
        return run

    def _send(self) -> Generator[Any, None, ResponseData]:
        loop = asyncio.get_running_loop()
        d = self._d
        bound, bridge = d._binding
        if bound is not loop or bridge is None:
            bridge = d._bridge_for(loop)
        opts = self._opts
        signal = opts.pop("signal", None)
        fut: asyncio.Future[ResponseData] = loop.create_future()
        if signal is not None:
            check_signal(signal)
            if (reason := abort_reason(signal)) is not None:
                raise reason
        control = d._core.request(bridge, fut, opts)
        if signal is not None:
            watch_signal(signal, control)
        try:
            return (yield from fut)
        except asyncio.CancelledError:
            control.abort()
            raise

    # The coroutine protocol, for asyncio's tasks: all of it goes to the one
    # generator `__await__` makes (a generator thrown into or closed before
    # it started never runs, so nothing is sent).

    def _started(self) -> Generator[Any, None, ResponseData]:
        return self._run if self._run is not None else self.__await__()

    def send(self, value: Any) -> Any:
        return self._started().send(value)

    def throw(self, exc: BaseException | type[BaseException], *args: Any) -> Any:
        return self._started().throw(exc, *args)

    def close(self) -> None:
        self._started().close()

    def __del__(self) -> None:
        if self._run is None:
            warnings.warn(
                f"request() for {self._opts.get('path')!r} was never awaited: nothing was sent",
                RuntimeWarning,
                stacklevel=2,
            )

    async def __aenter__(self) -> ResponseData:
        self._resp = await self
        return self._resp

    async def __aexit__(self, *exc: object) -> None:
        if self._resp is not None:
            await self._resp.body.aclose()


collections.abc.Coroutine.register(_RequestCall)


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


_EVENTS = frozenset({"connect", "disconnect", "connection_error", "drain"})


def _check_listener(name: Any, listener: Any) -> None:
    """A misspelt event name would never fire: say so now."""
    if name not in _EVENTS:
        raise InvalidArgumentError(f"unknown event {name!r}: one of {sorted(_EVENTS)}")
    if not callable(listener):
        raise InvalidArgumentError("invalid listener: it must be callable")


def _check_callback(callback: Any) -> None:
    if callback is not None and not callable(callback):
        raise InvalidArgumentError("invalid callback")


def _maybe_callback(
    fut: asyncio.Future[None], callback: Callback | None
) -> asyncio.Future[None] | None:
    if callback is None:
        return fut

    def done(f: asyncio.Future[None]) -> None:
        exc = f.exception()
        callback(exc, None)

    fut.add_done_callback(done)
    return None
