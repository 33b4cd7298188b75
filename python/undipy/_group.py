"""What the dispatchers over other dispatchers share (``Agent``,
``BalancedPool``, the proxy agents): routing each request to a child
(``_target``), the children's events forwarded with the group first among
the targets, and ``close()``/``destroy()`` reaching every child."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, Unpack, overload

from . import diagnostics
from ._api_common import check_callback, deliver
from ._options import DispatchOptions, ResultCallback
from .dispatcher import Dispatcher
from .errors import ClientClosedError, ClientDestroyedError, InvalidArgumentError
from .handler import Handler

_FORWARDED = ("connect", "disconnect", "connection_error", "drain")


class DispatcherGroup(Dispatcher):
    """A dispatcher whose requests go to child dispatchers. Subclasses list
    their children (``_children``) and adopt each new one (``_adopt``)."""

    def __init__(self) -> None:
        super().__init__()
        self._closing: asyncio.Future[None] | None = None
        self._destroyed = False

    def _children(self) -> Iterable[Dispatcher]:
        raise NotImplementedError

    def _target(self, opts: dict[str, Any]) -> tuple[Dispatcher, dict[str, Any]]:
        """The child a request goes to, and its options as sent there."""
        raise NotImplementedError

    # -- routing: request() and stream() stay on the child's own path (the
    # engine's, for a Pool) unless a subclass overrides dispatch() ------------

    def dispatch(self, handler: Handler, **opts: Unpack[DispatchOptions]) -> bool:
        """Sends the request to the child it belongs to (see
        ``Client.dispatch``)."""
        d, sent = self._target(dict(opts))
        return d.dispatch(handler, **sent)

    def _routes_natively(self) -> bool:
        return type(self).dispatch is DispatcherGroup.dispatch

    def _resolves_natively(self) -> bool:
        return self._routes_natively() and not diagnostics.observing

    def _request(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], opts: dict[str, Any]
    ) -> Any:
        if not self._routes_natively():
            return super()._request(loop, future, opts)
        d, sent = self._target(opts)
        return d._request(loop, future, sent)

    def _stream(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        factory: Any,
        opts: dict[str, Any],
    ) -> Any:
        if not self._routes_natively():
            return super()._stream(loop, future, factory, opts)
        d, sent = self._target(opts)
        return d._stream(loop, future, factory, sent)

    def _check_open(self) -> None:
        """Raises if no new child may be made."""
        if self._destroyed:
            raise ClientDestroyedError()
        if self._closing is not None:
            raise ClientClosedError()

    def _adopt(self, child: Dispatcher, after: Callable[[str, Any], None] | None = None) -> None:
        """Forwards ``child``'s events; ``after(name, error)`` runs after each."""

        def forward(name: str) -> Callable[..., None]:
            def listener(origin: Any, targets: Any = (), *rest: Any) -> None:
                self.emit(name, origin, [self, *targets], *rest)
                if after is not None:
                    after(name, rest[0] if rest else None)

            return listener

        for name in _FORWARDED:
            child.on(name, forward(name))

    # -- lifecycle -----------------------------------------------------------

    @overload
    def close(self, callback: None = None) -> asyncio.Future[None]: ...
    @overload
    def close(self, callback: ResultCallback[None]) -> None: ...
    def close(self, callback: ResultCallback[None] | None = None) -> asyncio.Future[None] | None:
        """Stops taking requests; resolves once every child has closed."""
        check_callback(callback)
        if self._destroyed:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            fut.set_exception(ClientDestroyedError())
            return deliver(fut, callback)  # type: ignore[return-value]
        if self._closing is None:
            waits = [d.close() for d in self._children() if not d.destroyed]
            self._closing = asyncio.ensure_future(_each(waits))
        return deliver(asyncio.shield(self._closing), callback)  # type: ignore[return-value]

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
        """Fails every request of every child now; resolves once every
        socket is closed."""
        if callable(error) and not isinstance(error, BaseException):
            error, callback = None, error
        if not isinstance(error, BaseException | None):
            raise InvalidArgumentError("invalid error: destroy() takes an exception or None")
        check_callback(callback)
        self._destroyed = True
        waits = [d.destroy(error) for d in self._children() if not d.destroyed]
        return deliver(asyncio.ensure_future(_each(waits)), callback)  # type: ignore[return-value]

    @property
    def closed(self) -> bool:
        return self._closing is not None or self._destroyed

    @property
    def destroyed(self) -> bool:
        return self._destroyed


async def _each(waits: list[Any]) -> None:
    for w in waits:
        await w


def ignore(error: BaseException | None, result: Any) -> None:
    """The callback of a close nobody waits for."""
