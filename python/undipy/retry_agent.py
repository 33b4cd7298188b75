"""``RetryAgent``: a dispatcher whose every request goes through the
``retry`` interceptor."""

from __future__ import annotations

from typing import Unpack

from .dispatcher import ComposedDispatcher, Dispatcher
from .interceptors.retry import RetryOptions, retry


class RetryAgent(ComposedDispatcher):
    """``dispatcher.compose(interceptors.retry(**retry_opts))`` as a class:
    failed idempotent requests are sent again with backoff (the options are
    ``retry()``'s; per request, ``retry_options=``). Closing, destroying and
    the events are ``dispatcher``'s."""

    def __init__(self, dispatcher: Dispatcher, **retry_opts: Unpack[RetryOptions]) -> None:
        super().__init__(dispatcher, retry(**retry_opts)(dispatcher.dispatch))

    @property
    def dispatcher(self) -> Dispatcher:
        """The dispatcher the requests are sent through."""
        return self._dispatcher
