"""The handler protocol of ``dispatch()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._socket import UpgradedSocket


class Handler(Protocol):
    """What ``dispatch()`` takes: an object with these five methods (their
    return values other than ``on_headers``'s and ``on_data``'s are ignored).
    ``on_upgrade(status_code, headers, socket)`` is also required for a
    request with ``upgrade=`` or ``method="CONNECT"``, and
    ``on_body_sent(chunk)`` is optional. Subclass ``DispatchHandler`` for
    no-op defaults of all but ``on_body_sent``."""

    def on_connect(self, abort: Callable[..., None], context: dict[str, Any], /) -> object: ...

    def on_headers(
        self,
        status_code: int,
        headers: list[bytes],
        resume: Callable[[], None],
        status_text: str,
        /,
    ) -> object: ...

    def on_data(self, chunk: bytes, /) -> object: ...

    def on_complete(self, trailers: list[bytes], /) -> object: ...

    def on_error(self, error: BaseException, /) -> object: ...


class DispatchHandler:
    """A base class for ``dispatch()`` handlers with no-op defaults.

    The methods are called on the event loop thread that called
    ``dispatch``, in order, never concurrently. Exactly one of
    ``on_complete``, ``on_error`` and ``on_upgrade`` ends every request.
    """

    def on_connect(self, abort: Callable[..., None], context: dict[str, Any]) -> None:
        """Called before the request goes on a socket (again on a retry)."""

    def on_headers(
        self,
        status_code: int,
        headers: list[bytes],
        resume: Callable[[], None],
        status_text: str,
    ) -> bool:
        """Status and raw headers; return False to pause reading until ``resume()``."""
        return True

    def on_data(self, chunk: bytes) -> bool:
        """A body chunk; return False to pause reading until ``resume()``."""
        return True

    def on_complete(self, trailers: list[bytes]) -> None:
        """The response ended."""

    def on_error(self, error: BaseException) -> None:
        """The request failed; nothing is called after this."""

    def on_upgrade(self, status_code: int, headers: list[bytes], socket: UpgradedSocket) -> None:
        """The connection was upgraded (``upgrade=`` requests and CONNECT);
        ``socket`` is yours now."""


class DecoratorHandler:
    """A handler that wraps another and forwards every call to it: subclass
    it and override what your interceptor changes. ``on_body_sent`` is
    forwarded only when the wrapped handler has one (the engine reports
    written chunks only to handlers that ask)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    def __getattr__(self, name: str) -> Any:
        if name == "on_body_sent":
            return getattr(self.handler, name)
        raise AttributeError(name)

    def on_connect(self, abort: Callable[..., None], context: dict[str, Any]) -> object:
        return self.handler.on_connect(abort, context)

    def on_headers(
        self,
        status_code: int,
        headers: list[bytes],
        resume: Callable[[], None],
        status_text: str,
    ) -> object:
        return self.handler.on_headers(status_code, headers, resume, status_text)

    def on_data(self, chunk: bytes) -> object:
        return self.handler.on_data(chunk)

    def on_complete(self, trailers: list[bytes]) -> object:
        return self.handler.on_complete(trailers)

    def on_error(self, error: BaseException) -> object:
        return self.handler.on_error(error)

    def on_upgrade(self, status_code: int, headers: list[bytes], socket: UpgradedSocket) -> object:
        return self.handler.on_upgrade(status_code, headers, socket)  # type: ignore[attr-defined]
