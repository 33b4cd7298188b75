"""``request()`` natively through interceptors that do not fire.

A dispatcher composed only of interceptors that come with a ``Watch``
(``retry``, ``redirect``, ``decompress``) sends ``request()`` down the native
path of the dispatcher it was composed on and looks at the outcome once. A
response none of them would touch (``Watch.passes``) goes to the caller as
it is: no Python call per event, no handler per interceptor. Anything else
is replayed into the interceptors' handlers as ``dispatch()`` would have told
them (``on_connect``, the head, the body chunk by chunk, or the error), so
they act on it exactly as on their slow path; their further attempts go
through ``dispatch()``. A body that fails after reaching the caller is
offered to the retry interceptor (``Watch.resume``), which carries it on
with ``Range`` as it would have.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._api_common import pop_common, raw_fields
from ._request_handler import RequestHandler
from ._response import reject_with_status
from .errors import RequestAbortedError

if TYPE_CHECKING:
    from ._undipy import Body, ResponseData
    from .dispatcher import Dispatcher, DispatchFn

Passes = Callable[[Any, "ResponseData"], bool]
"""``passes(method, response)``: True if the interceptor would pass this
response on untouched (False when unsure: the replay is always right)."""

Resume = Callable[..., None]
"""``resume(feeder, dispatch, opts, status, raw_headers, received, error)``:
the body a caller is reading failed after ``received`` bytes; decide as the
interceptor's handler would, feeding what follows into ``feeder``."""


@dataclass(frozen=True, slots=True)
class Watch:
    """What the native path needs to know of an interceptor."""

    keys: frozenset[str]
    """Its per-request options: a request with any goes through dispatch()."""
    passes: Passes
    resume: Resume | None = None
    """Set by an interceptor that acts on a body failing midway (retry)."""


class WatchedInterceptor:
    """An interceptor (``interceptor(dispatch) -> dispatch``) with its Watch."""

    __slots__ = ("_wrap", "watch")

    def __init__(self, wrap: Callable[[DispatchFn], DispatchFn], watch: Watch) -> None:
        self._wrap = wrap
        self.watch = watch

    def __call__(self, dispatch: DispatchFn) -> DispatchFn:
        return self._wrap(dispatch)


# -- the chain ---------------------------------------------------------------

# The replay waiting for the chain's first call of its base dispatch: set
# just before the chain is entered, taken by its bottom in the same call.
_handoff = threading.local()


class _Bottom:
    """The chain's base: the dispatcher's dispatch, except for the one call
    a replay is waiting for. Has the dispatcher's ``origin`` (what the
    redirect interceptor reads of the dispatch it was given)."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatch = dispatcher.dispatch
        self.origin = getattr(dispatcher, "origin", None)

    def dispatch(self, handler: Any, **opts: Any) -> bool:
        replay: _Replay | None = getattr(_handoff, "replay", None)
        if replay is not None:
            _handoff.replay = None
            return replay.start(handler)
        return bool(self._dispatch(handler, **opts))


class Chain:
    """The interceptors' dispatch over a dispatcher, with what the native
    path needs of them."""

    __slots__ = ("dispatch", "keys", "passes", "resume", "resume_dispatch")

    def __init__(self, dispatcher: Dispatcher, interceptors: Sequence[Any]) -> None:
        self.dispatch: DispatchFn = _Bottom(dispatcher).dispatch
        self.resume: Resume | None = None
        self.resume_dispatch: DispatchFn = self.dispatch
        keys: set[str] = set()
        for interceptor in interceptors:
            watch: Watch = interceptor.watch
            keys |= watch.keys
            if watch.resume is not None:
                self.resume, self.resume_dispatch = watch.resume, self.dispatch
            self.dispatch = interceptor(self.dispatch)
        self.keys: frozenset[str] = frozenset(keys)
        self.passes: tuple[Passes, ...] = tuple(i.watch.passes for i in interceptors)

    @staticmethod
    def possible(interceptors: Sequence[Any]) -> bool:
        """Whether every interceptor is watched, and at most one resumes."""
        if not all(isinstance(i, WatchedInterceptor) for i in interceptors):
            return False
        return sum(i.watch.resume is not None for i in interceptors) <= 1

    def request(
        self,
        dispatcher: Dispatcher,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        opts: dict[str, Any],
    ) -> _Request:
        request = _Request(self, future, opts)
        request.handle = dispatcher._request(loop, request, opts)  # type: ignore[arg-type]
        return request


class _Request:
    """One ``request()`` on the native path. The engine settles it as it
    would the caller's future (``done``, ``set_result``, ``set_exception``);
    the caller aborts it through it; a failing body calls it (the rescue)."""

    __slots__ = (
        "_chain",
        "_future",
        "_opts",
        "_throw",
        "_top",
        "_aborted",
        "handle",
        "__weakref__",
    )

    def __init__(self, chain: Chain, future: asyncio.Future[Any], opts: dict[str, Any]) -> None:
        self._chain = chain
        self._future = future
        self._opts = opts
        # Applied here (after the interceptors had their say), as the
        # caller's handler would on the slow path.
        self._throw = bool(opts.pop("throw_on_error", False))
        self._top: RequestHandler | None = None  # once the chain has the request
        # The caller aborted: what fails now is not the interceptors' business
        # (as on the slow path, where retry knows an abort from a failure).
        self._aborted = False
        self.handle: Any = None  # the native request's abort()

    # -- what the engine calls ---------------------------------------------------

    def done(self) -> bool:
        return self._future.done()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._future.get_loop()

    def set_result(self, response: ResponseData) -> None:
        chain = self._chain
        method = self._opts.get("method")
        for passes in chain.passes:
            if not passes(method, response):
                return self._replay(response)
        if chain.resume is not None:
            response._rescue_with(self)
        if self._throw and response.status_code >= 400:
            reject_with_status(self._future, response)
        else:
            self._future.set_result(response)

    def set_exception(self, error: BaseException) -> None:
        if self._chain.resume is None or self._aborted:  # nobody acts on it
            self._future.set_exception(error)
        else:
            self._replay(error)

    # -- what the caller calls ---------------------------------------------------

    def abort(self, error: BaseException | None = None) -> None:
        if self._top is not None:
            self._top.abort(error)
        else:
            self._aborted = True
            self.handle.abort(error)

    # -- the slow path, from where the native one stands ---------------------------

    def _replay(self, outcome: ResponseData | BaseException) -> None:
        opts = self._opts
        _, opaque, on_info = pop_common(opts)
        if self._throw:
            opts["throw_on_error"] = True
        self._top = handler = RequestHandler(self._future, opaque, on_info, self._throw)
        _handoff.replay = _Replay(outcome)
        try:
            self._chain.dispatch(handler, **opts)
        except Exception as exc:
            if not self._future.done():
                self._future.set_exception(exc)
        finally:
            _handoff.replay = None

    def __call__(
        self, body: Body, error: BaseException, received: int, status: int, headers: list[bytes]
    ) -> RequestHandler | None:
        """The rescue of the body the caller is reading (see ``Chain``)."""
        chain = self._chain
        if self._aborted or chain.resume is None:
            return None
        self._top = feeder = RequestHandler.feeding(body)
        opts = self._opts
        pop_common(opts)
        chain.resume(feeder, chain.resume_dispatch, opts, status, headers, received, error)
        return feeder


_pumping: set[asyncio.Task[None]] = set()


class _Replay:
    """The native attempt, told to the chain's handlers as the engine would
    have told them: ``on_connect``, then the error, or the head, each chunk
    of the body (pausing as asked) and the end."""

    __slots__ = ("_outcome", "_handler", "_aborted", "_waiting")

    def __init__(self, outcome: ResponseData | BaseException) -> None:
        self._outcome = outcome
        self._handler: Any = None
        self._aborted: BaseException | None = None
        self._waiting: asyncio.Future[None] | None = None

    def start(self, handler: Any) -> bool:
        self._handler = handler
        handler.on_connect(self.abort, {})
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            handler.on_error(outcome)
            return True
        if self._aborted is not None:  # in on_connect
            outcome.body._discard()
            handler.on_error(self._aborted)
            return True
        raw = outcome._raw_headers()
        paused = handler.on_headers(outcome.status_code, raw, self.resume, outcome.status_text)
        task = asyncio.get_running_loop().create_task(self._pump(outcome, paused is False))
        # The loop holds tasks weakly: one nobody else holds could vanish mid-body.
        _pumping.add(task)
        task.add_done_callback(_pumping.discard)
        return True

    async def _pump(self, response: ResponseData, paused: bool) -> None:
        handler = self._handler
        body = response.body
        try:
            if paused:
                await self._resumed()
            async for chunk in body:
                if self._aborted is not None:
                    break
                if handler.on_data(chunk) is False:
                    await self._resumed()
        except Exception as exc:
            if self._aborted is None:
                handler.on_error(exc)
                return
        if self._aborted is not None:
            handler.on_error(self._aborted)
            return
        handler.on_complete(raw_fields("trailers", response.trailers))

    def _resumed(self) -> asyncio.Future[None]:
        self._waiting = asyncio.get_running_loop().create_future()
        return self._waiting

    def resume(self) -> None:
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_result(None)

    def abort(self, error: BaseException | None = None) -> None:
        if self._aborted is not None:
            return
        self._aborted = error if error is not None else RequestAbortedError()
        if not isinstance(self._outcome, BaseException):
            self._outcome.body._discard()
        self.resume()

