"""``AbortController``: the ``signal=`` option's usual source."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import RequestAbortedError


class AbortSignal:
    """Fires its listeners once, when its controller aborts."""

    __slots__ = ("aborted", "reason", "_listeners")

    def __init__(self) -> None:
        self.aborted: bool = False
        self.reason: BaseException | None = None
        self._listeners: list[Callable[[BaseException], None]] = []

    def add_listener(self, fn: Callable[[BaseException], None]) -> None:
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[BaseException], None]) -> None:
        try:
            self._listeners.remove(fn)
        except ValueError:
            pass

    def _fire(self, reason: BaseException) -> None:
        self.aborted = True
        self.reason = reason
        listeners, self._listeners = self._listeners, []
        for fn in listeners:
            fn(reason)


class AbortController:
    def __init__(self) -> None:
        self.signal: AbortSignal = AbortSignal()

    def abort(self, reason: Any = None) -> None:
        if self.signal.aborted:
            return
        if reason is None:
            reason = RequestAbortedError()
        elif not isinstance(reason, BaseException):
            reason = RequestAbortedError(str(reason))
        self.signal._fire(reason)
