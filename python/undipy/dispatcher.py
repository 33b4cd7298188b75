"""undici's Dispatcher: ``dispatch()`` and everything built on it.

``Dispatcher`` is the base of every dispatcher. A subclass provides
``dispatch()``, ``close()``, ``destroy()``, ``closed`` and ``destroyed``, and
inherits the conveniences (``request``, ``stream``, ``pipeline``,
``upgrade``, ``connect``) with the same semantics, the events and
``async with``. The engine's dispatchers (``client.py``) resolve
``request()`` and ``stream()`` natively; any other runs them through its
``dispatch()`` (``_request_handler.py``)."""

from __future__ import annotations

import asyncio
import collections.abc
import warnings
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Self, Unpack, overload

from . import api_pipeline, api_stream, api_upgrade
from ._api_common import (
    abort_reason,
    check_signal,
    deliver,
    pop_common,
    watch_signal,
)
from ._options import (
    ConnectOptions,
    DispatchOptions,
    PipelineOptions,
    RequestOptions,
    ResultCallback,
    StreamOptions,
    UpgradeOptions,
)
from ._passthrough import Chain
from ._request_handler import RequestHandler, StreamHandler
from ._undipy import ResponseData
from .errors import InvalidArgumentError
from .handler import Handler

Listener = Callable[..., Any]
DispatchFn = Callable[..., bool]
"""``dispatch(handler, **options) -> bool``."""
Interceptor = Callable[[DispatchFn], DispatchFn]
"""``interceptor(dispatch) -> dispatch``."""


class Dispatcher:
    """undici's Dispatcher. Subclasses provide ``dispatch()``, ``close()``,
    ``destroy()``, ``closed`` and ``destroyed``; the rest is built here."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[tuple[Listener, bool]]] = {}

    # -- what each dispatcher provides ----------------------------------------

    def dispatch(self, handler: Handler, **opts: Unpack[DispatchOptions]) -> bool:
        """Sends one request and reports its response to ``handler``; False
        when busy (wait for ``"drain"``)."""
        raise NotImplementedError

    @overload
    def close(self, callback: None = None) -> asyncio.Future[None]: ...
    @overload
    def close(self, callback: ResultCallback[None]) -> None: ...
    def close(self, callback: ResultCallback[None] | None = None) -> asyncio.Future[None] | None:
        """Stops taking requests and resolves once the queued ones finished."""
        raise NotImplementedError

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
        """Fails every queued and running request now."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        raise NotImplementedError

    @property
    def destroyed(self) -> bool:
        raise NotImplementedError

    # -- the conveniences, on top of dispatch() -------------------------------

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
        return deliver(_RequestCall(self, opts), callback)  # type: ignore[return-value]

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

    def compose(self, *interceptors: Interceptor) -> Dispatcher:
        """A dispatcher that sends every request through ``interceptors``,
        then this one. An interceptor is ``interceptor(dispatch) -> dispatch``;
        the last one listed sees the request first (as undici)."""
        if Chain.possible(interceptors):
            chain = Chain(self, interceptors)
            return ComposedDispatcher(self, chain.dispatch, chain)
        dispatch: DispatchFn = self.dispatch
        for interceptor in interceptors:
            if not callable(interceptor):
                raise InvalidArgumentError("invalid interceptor: it must be callable")
            dispatch = interceptor(dispatch)
            if not callable(dispatch):
                raise InvalidArgumentError("invalid interceptor: it must return a dispatch")
        return ComposedDispatcher(self, dispatch)

    def _resolves_natively(self) -> bool:
        """Whether ``_request`` resolves its future natively (the engine's
        dispatchers, unless ``dispatch()`` is overridden or observed)."""
        return False

    def _request(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], opts: dict[str, Any]
    ) -> Any:
        """Starts ``request()``: ``future`` gets the ``ResponseData``. Returns
        what aborts it (``abort(error=None)``)."""
        _, opaque, on_info = pop_common(opts)
        handler = RequestHandler(future, opaque, on_info, bool(opts.get("throw_on_error")))
        self.dispatch(handler, **opts)
        return handler

    def _stream(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        factory: Any,
        opts: dict[str, Any],
    ) -> Any:
        """Starts ``stream()``, as ``_request`` starts ``request()``."""
        _, opaque, on_info = pop_common(opts)
        throw = bool(opts.get("throw_on_error"))
        handler = StreamHandler(future, factory, opaque, on_info, throw)
        self.dispatch(handler, **opts)
        return handler

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self.destroyed:
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
        opts = self._opts
        signal = opts.pop("signal", None)
        if signal is not None:
            check_signal(signal)
            if (reason := abort_reason(signal)) is not None:
                raise reason
        fut: asyncio.Future[ResponseData] = loop.create_future()
        request = self._d._request(loop, fut, opts)  # type: ignore[arg-type]
        if signal is not None:
            watch_signal(signal, request)
        try:
            return (yield from fut)
        except asyncio.CancelledError:
            request.abort()
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


class ComposedDispatcher(Dispatcher):
    """What ``compose()`` returns: requests go through the interceptors'
    dispatch; everything else (lifecycle, events) is the dispatcher's it
    was composed on. ``request()`` through interceptors that all come with
    a watch stays native until one of them acts (``_passthrough.py``)."""

    def __init__(
        self, dispatcher: Dispatcher, dispatch: DispatchFn, chain: Chain | None = None
    ) -> None:
        super().__init__()
        self._dispatcher = dispatcher
        self._dispatch = dispatch
        self._chain = chain

    def dispatch(self, handler: Handler, **opts: Unpack[DispatchOptions]) -> bool:
        return self._dispatch(handler, **opts)

    def _request(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], opts: dict[str, Any]
    ) -> Any:
        chain = self._chain
        if chain is None or not chain.keys.isdisjoint(opts):
            return super()._request(loop, future, opts)
        if not self._dispatcher._resolves_natively():
            return super()._request(loop, future, opts)
        return chain.request(self._dispatcher, loop, future, opts)

    def close(self, callback: Any = None) -> Any:
        return self._dispatcher.close(callback)

    def destroy(self, error: Any = None, callback: Any = None) -> Any:
        return self._dispatcher.destroy(error, callback)

    @property
    def closed(self) -> bool:
        return self._dispatcher.closed

    @property
    def destroyed(self) -> bool:
        return self._dispatcher.destroyed

    def on(self, name: str, listener: Listener) -> Self:
        self._dispatcher.on(name, listener)
        return self

    def once(self, name: str, listener: Listener) -> Self:
        self._dispatcher.once(name, listener)
        return self

    def off(self, name: str, listener: Listener) -> Self:
        self._dispatcher.off(name, listener)
        return self


_EVENTS = frozenset({"connect", "disconnect", "connection_error", "drain"})


def _check_listener(name: Any, listener: Any) -> None:
    """A misspelt event name would never fire: say so now."""
    if name not in _EVENTS:
        raise InvalidArgumentError(f"unknown event {name!r}: one of {sorted(_EVENTS)}")
    if not callable(listener):
        raise InvalidArgumentError("invalid listener: it must be callable")
