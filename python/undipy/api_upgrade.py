"""``upgrade()`` and ``connect()``: a request whose answer hands over the
socket (101 Switching Protocols, or a 2xx to CONNECT). Any other answer
fails with SocketError("bad upgrade: <status> <reason> ...") / ("bad connect:
..."), which keeps the status and headers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._api_common import (
    Callback,
    Headers,
    abort_reason,
    bind_signal,
    check_signal,
    deliver,
    parse_headers,
)
from ._socket import UpgradedSocket
from .errors import InvalidArgumentError, RequestAbortedError, SocketError

if TYPE_CHECKING:
    from ._options import RequestHeaders, Signal
    from .dispatcher import Dispatcher


@dataclass(frozen=True, slots=True)
class UpgradeData:
    headers: Headers
    socket: UpgradedSocket
    opaque: Any


@dataclass(frozen=True, slots=True)
class ConnectData:
    status_code: int
    headers: Headers
    socket: UpgradedSocket
    opaque: Any


def upgrade(
    d: Dispatcher,
    callback: Callback | None,
    *,
    path: str = "/",
    method: str = "GET",
    protocol: str = "Websocket",
    headers: RequestHeaders | None = None,
    signal: Signal | None = None,
    opaque: Any = None,
    **opts: Any,
) -> Coroutine[Any, Any, UpgradeData] | None:
    coro = _run(
        d,
        "bad upgrade",
        signal,
        opaque,
        dict(opts, path=path, method=method, upgrade=protocol, headers=headers),
    )
    return deliver(coro, callback)  # type: ignore[return-value]


def connect(
    d: Dispatcher,
    callback: Callback | None,
    *,
    path: str,
    headers: RequestHeaders | None = None,
    signal: Signal | None = None,
    opaque: Any = None,
    **opts: Any,
) -> Coroutine[Any, Any, ConnectData] | None:
    invalid = next((k for k in ("method", "upgrade") if k in opts), None)
    coro = _run(
        d,
        "bad connect",
        signal,
        opaque,
        dict(opts, path=path, method="CONNECT", headers=headers),
        invalid=invalid,
    )
    return deliver(coro, callback)  # type: ignore[return-value]


async def _run(
    d: Dispatcher,
    bad: str,
    signal: Any,
    opaque: Any,
    opts: dict[str, Any],
    invalid: str | None = None,
) -> Any:
    if invalid is not None:
        raise InvalidArgumentError(f"invalid {invalid}: connect() sets it")
    check_signal(signal)
    if (reason := abort_reason(signal)) is not None:
        raise reason
    loop = asyncio.get_running_loop()
    handler = _Handler(loop, bad, opaque)
    d.dispatch(handler, **opts)
    unbind = bind_signal(signal, handler.abort)
    try:
        return await handler.future
    except asyncio.CancelledError:
        handler.abort(RequestAbortedError())
        raise
    finally:
        unbind()


class _Handler:
    """The dispatch handler of one upgrade / CONNECT request."""

    def __init__(self, loop: asyncio.AbstractEventLoop, bad: str, opaque: Any) -> None:
        self.future: asyncio.Future[Any] = loop.create_future()
        self._bad = bad
        self._opaque = opaque
        self._abort: Callable[..., None] | None = None
        self._settled = False

    def abort(self, reason: BaseException | None = None) -> None:
        """Aborts the request unless it already ended (a late signal does nothing)."""
        if self._abort is not None and not self._settled:
            self._abort(reason)

    def on_connect(self, abort: Callable[..., None], context: dict[str, Any]) -> None:
        self._abort = abort

    def on_headers(
        self, status_code: int, headers: list[bytes], resume: Callable[[], None], text: str
    ) -> bool:
        # Not switched: the request fails (the engine drops the connection).
        expected = "101 Switching Protocols" if self._bad == "bad upgrade" else "a 2xx"
        raise SocketError(
            f"{self._bad}: the server answered {status_code} {text} (expected {expected})",
            status_code,
            parse_headers(headers),
        )

    def on_data(self, chunk: bytes) -> bool:
        return True

    def on_complete(self, trailers: list[bytes]) -> None:
        pass

    def on_error(self, error: BaseException) -> None:
        self._settled = True
        if not self.future.done():
            self.future.set_exception(error)

    def on_upgrade(self, status_code: int, headers: list[bytes], socket: UpgradedSocket) -> None:
        self._settled = True
        if self.future.done():  # nobody waits any more: let go of the socket
            socket.close_now()
            return
        parsed = parse_headers(headers)
        if self._bad == "bad connect":
            self.future.set_result(ConnectData(status_code, parsed, socket, self._opaque))
        else:
            self.future.set_result(UpgradeData(parsed, socket, self._opaque))
