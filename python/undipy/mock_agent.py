"""``MockAgent``: a dispatcher that answers requests from registered
interceptions, for tests (undici's MockAgent)::

    mock = MockAgent()
    mock.disable_net_connect()
    mock.get("http://api.test").intercept(path="/users/1").reply(200, {"id": 1})
    resp = await mock.request(origin="http://api.test", path="/users/1", method="GET")

A request is matched in stages, as undici does: path (with its query), then
method, body, headers; the first registered interception left wins, and is
used up (``.times(n)``, ``.persist()``). Replies go to the handler through
the handler protocol exactly as the engine delivers a response, so every
convenience and interceptor above the mock runs for real. A request nothing
matches goes to a real ``Agent`` while net connect allows its host, else
fails with ``MockNotMatchedError``.

Small parts: the matchers, ``MockCall`` (a request as the mock sees it, also
what the call history keeps), the reply (``_Response``), ``MockInterceptor``
/ ``MockScope`` / ``MockOrigin`` (registration), ``_Delivery`` (one reply
played to one handler) and ``MockAgent``."""

from __future__ import annotations

import asyncio
import http
import inspect
import itertools
import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, NamedTuple, Self, Unpack, overload
from urllib.parse import parse_qs

from ._api_common import add_value, check_callback, each_field, header_name, raw_fields
from ._group import DispatcherGroup
from ._options import DispatchOptions
from ._undipy import encode_query
from .agent import Agent
from .client import _origin
from .dispatcher import Dispatcher
from .errors import (
    ClientDestroyedError,
    InvalidArgumentError,
    InvalidReturnValueError,
    MockNotMatchedError,
    NotSupportedError,
    RequestAbortedError,
)
from .handler import Handler

__all__ = ["MockAgent", "MockCall", "MockCallHistory", "MockInterceptor", "MockOrigin", "MockScope"]

Matcher = str | re.Pattern[str] | Callable[[Any], object]
"""A value (compared for equality), a compiled regex (``search``) or a
callable returning true for a match."""

BodyMatcher = (
    bytes
    | bytearray
    | memoryview
    | str
    | re.Pattern[str]
    | re.Pattern[bytes]
    | Callable[[Any], object]
)
"""A body (compared as bytes, ``str`` as UTF-8), a regex (a ``str`` one
searches the body decoded as UTF-8) or a callable given the body."""

OriginMatcher = str | re.Pattern[str] | Callable[[str], object]
"""``MockAgent.get()``'s origin: one (``"http://host:port"``), or a regex
or callable over the canonical origins of requests."""

HostMatcher = str | re.Pattern[str] | Callable[[str], object]
"""``enable_net_connect()``'s host: ``"host"``, ``"host:port"``, a regex or a callable."""

ReplyCallback = Callable[[dict[str, Any]], Any]
"""``callback(request_options)`` returning ``(status_code, data, options)``
(``options``: ``headers``, ``trailers``), or an awaitable of it."""

Fields = Mapping[Any, Any] | Iterable[Any]
"""Reply headers or trailers: a dict (a list value repeats the name), a
flat ``[name, value, ...]`` list or ``(name, value)`` pairs."""

CHUNK = 64 * 1024
"""A mocked body reaches ``on_data`` in pieces of at most this many bytes."""

_STAGES = ("path", "method", "body", "headers")


# -- matchers -----------------------------------------------------------------


def _check_matcher(what: str, m: Any) -> None:
    if not isinstance(m, str | re.Pattern) and not callable(m):
        raise InvalidArgumentError(f"invalid {what}: a str, a compiled regex or a callable")


def _matches(m: Any, value: str | None) -> bool:
    if isinstance(m, re.Pattern):
        return value is not None and m.search(value) is not None
    if callable(m):
        return bool(m(value))
    return bool(m == value)


def _show(m: Any) -> str:
    """A matcher as error messages show it."""
    if isinstance(m, str):
        return m
    if isinstance(m, re.Pattern):
        return repr(m)
    return getattr(m, "__qualname__", repr(m))


def _sorted_target(target: str) -> str:
    """``target`` with its query parameters sorted by name (stably), so the
    order they were written in does not matter (as undici)."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    params = sorted(query.split("&"), key=lambda p: p.partition("=")[0])
    return f"{path}?{'&'.join(params)}"


def _parse_query(query: str) -> dict[str, str | list[str]]:
    parsed = parse_qs(query, keep_blank_values=True)
    return {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}


def _text(v: Any) -> str:
    return v.decode("latin-1") if isinstance(v, bytes) else str(v)


def _request_headers(headers: Any) -> dict[str, str | list[str]]:
    """A request's ``headers=`` as a dict with lower-case names, a list for
    a repeated name."""
    out: dict[str, str | list[str]] = {}
    for name, value in each_field("headers", headers):
        add_value(out, header_name(name), _text(value))
    return out


def _body_bytes(body: Any) -> Any:
    """A body as the mock compares it: bytes for the forms with a known
    length; a streamed body (file, iterable) stays as it is, unread."""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    return body


# -- a request as the mock sees it ---------------------------------------------


@dataclass(frozen=True, slots=True)
class MockCall:
    """One request the ``MockAgent`` got (its ``call_history`` keeps them)."""

    origin: str
    """Canonical: ``http://host`` or ``http://host:port`` (default port left out)."""
    protocol: str
    """``"http"`` or ``"https"``."""
    host: str
    port: int
    method: str
    path: str
    """The path without its query."""
    query: dict[str, str | list[str]]
    """The query (of the path and of ``query=``), parsed."""
    target: str
    """The path with its query, as it would be sent."""
    full_url: str
    headers: dict[str, str | list[str]]
    """Lower-case names; a list for a repeated name."""
    body: Any
    """``bytes`` (``str`` bodies UTF-8 encoded), ``None``, or a streamed body
    object as given (the mock does not read it)."""

    @property
    def _host_header(self) -> str:
        return self.origin.partition("://")[2]


def _parse_request(opts: Mapping[str, Any]) -> MockCall:
    origin_opt = opts.get("origin")
    if not isinstance(origin_opt, str) or not origin_opt:
        raise InvalidArgumentError("invalid origin: requests through a MockAgent need origin=")
    origin, host, port, _ = _origin(origin_opt)
    path, method = opts.get("path"), opts.get("method")
    if not isinstance(path, str):
        raise InvalidArgumentError("invalid path: a str")
    if not isinstance(method, str) or not method:
        raise InvalidArgumentError("invalid method: a str")
    target = path
    query = opts.get("query")
    if query:
        if "?" in path or "#" in path:
            raise InvalidArgumentError(
                'Query params cannot be passed when url already contains "?" or "#".'
            )
        target = f"{path}?{encode_query(query)}"
    bare, _, query_string = target.partition("?")
    return MockCall(
        origin=origin,
        protocol=origin.partition(":")[0],
        host=host,
        port=port,
        method=method,
        path=bare,
        query=_parse_query(query_string),
        target=target,
        full_url=origin + target,
        headers=_request_headers(opts.get("headers")),
        body=_body_bytes(opts.get("body")),
    )


def _check_handler(handler: Any, opts: Mapping[str, Any]) -> None:
    """As the engine: a handler missing a method it will need is refused."""
    upgrade = opts.get("upgrade") is not None or opts.get("method") == "CONNECT"
    needed = (
        ("on_connect", "on_error", "on_upgrade")
        if upgrade
        else ("on_connect", "on_error", "on_headers", "on_data", "on_complete")
    )
    for name in needed:
        if not callable(getattr(handler, name, None)):
            raise InvalidArgumentError(
                f"invalid {name} method: the handler has none "
                "(subclass undipy.DispatchHandler for no-op defaults)"
            )


# -- replies ------------------------------------------------------------------


class _Response(NamedTuple):
    status: int
    headers: list[bytes]
    data: bytes
    trailers: list[bytes]


def _response(status: Any, data: Any, headers: Any, trailers: Any) -> _Response:
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 999:
        raise InvalidArgumentError("invalid status_code: an int from 200 to 999")
    raw = raw_fields("headers", headers)
    if isinstance(data, dict | list):
        body = json.dumps(data, separators=(",", ":")).encode("utf-8")
        if b"content-type" not in (n.lower() for n in raw[::2]):
            raw += [b"content-type", b"application/json"]
    elif isinstance(data, str):
        body = data.encode("utf-8")
    elif isinstance(data, bytes | bytearray | memoryview):
        body = bytes(data)
    elif data is None:
        body = b""
    else:
        raise InvalidArgumentError("invalid data: bytes, str, a dict or a list (sent as JSON)")
    return _Response(status, raw, body, raw_fields("trailers", trailers))


def _callback_response(result: Any) -> _Response:
    """What a reply callback returned, checked."""
    if not isinstance(result, tuple) or len(result) not in (2, 3):
        raise InvalidReturnValueError(
            "a reply callback returns (status_code, data) or (status_code, data, options)"
        )
    options = (result[2] if len(result) == 3 else None) or {}
    if not isinstance(options, Mapping) or not set(options) <= {"headers", "trailers"}:
        raise InvalidReturnValueError("a reply callback's options are a dict of headers, trailers")
    try:
        return _response(result[0], result[1], options.get("headers"), options.get("trailers"))
    except InvalidArgumentError as exc:
        raise InvalidReturnValueError(f"invalid reply from the callback: {exc}") from None


Reply = _Response | ReplyCallback | BaseException
"""What an interception answers: a response, a callback making one, or an error."""


# -- registration ---------------------------------------------------------------


class MockInterceptor:
    """What ``intercept()`` returns: the matchers of one kind of request.
    ``reply*()`` registers an interception and returns its ``MockScope``."""

    def __init__(
        self,
        owner: MockOrigin,
        path: Matcher,
        method: Matcher,
        body: BodyMatcher | None,
        headers: Mapping[str, Matcher] | Callable[[dict[str, Any]], object] | None,
        query: Mapping[str, Any] | Callable[[dict[str, Any]], object] | None,
    ) -> None:
        _check_matcher("path", path)
        _check_matcher("method", method)
        if isinstance(body, str | bytearray | memoryview):
            body = _body_bytes(body)
        elif body is not None and not isinstance(body, bytes | re.Pattern) and not callable(body):
            raise InvalidArgumentError("invalid body: bytes, str, a compiled regex or a callable")
        if isinstance(headers, Mapping):
            for name, m in headers.items():
                _check_matcher(f"matcher for header {name!r}", m)
            headers = {header_name(n): m for n, m in headers.items()}
        elif headers is not None and not callable(headers):
            raise InvalidArgumentError("invalid headers: a dict of matchers or a callable")
        if isinstance(query, Mapping):
            if isinstance(path, str) and "?" in path:
                raise InvalidArgumentError("give the query in path or in query=, not both")
            query = _parse_query(encode_query(query))
        elif query is not None and not callable(query):
            raise InvalidArgumentError("invalid query: a dict or a callable")
        self.owner = owner
        self.path = path
        self.method = method
        self.body = body
        self.headers = headers
        self.query = query

    @overload
    def reply(
        self,
        status_code: int,
        data: bytes | bytearray | memoryview | str | dict[str, Any] | list[Any] | None = b"",
        headers: Fields | None = None,
        trailers: Fields | None = None,
    ) -> MockScope: ...
    @overload
    def reply(self, callback: ReplyCallback, /) -> MockScope: ...
    def reply(
        self,
        status_code: int | ReplyCallback,
        data: bytes | bytearray | memoryview | str | dict[str, Any] | list[Any] | None = b"",
        headers: Fields | None = None,
        trailers: Fields | None = None,
    ) -> MockScope:
        """Answers with ``status_code`` and ``data`` (a dict or list is sent as
        JSON, with ``content-type: application/json`` unless ``headers``
        has one), ``headers`` and ``trailers`` (dicts or pairs). Or
        ``reply(callback)``: ``callback(request_options)``, sync or async,
        returns ``(status_code, data, options)`` for each request."""
        if callable(status_code):
            if data != b"" or headers is not None or trailers is not None:
                raise InvalidArgumentError("reply(callback) takes nothing else")
            return self.owner._register(self, status_code)
        return self.owner._register(self, _response(status_code, data, headers, trailers))

    def reply_with_error(self, error: BaseException) -> MockScope:
        """Fails the request with ``error`` (after ``on_connect``)."""
        if not isinstance(error, BaseException):
            raise InvalidArgumentError("invalid error: an exception")
        return self.owner._register(self, error)

    def _passes(self, stage: str, call: MockCall) -> bool:
        if stage == "path":
            return self._path_passes(call)
        if stage == "method":
            return _matches(self.method, call.method)
        if stage == "body":
            return self._body_passes(call.body)
        return self._headers_pass(call.headers)

    def _path_passes(self, call: MockCall) -> bool:
        if self.query is not None:
            # The query is matched on its own: the path matcher sees the path.
            query_ok = (
                self.query(dict(call.query)) if callable(self.query) else self.query == call.query
            )
            return bool(query_ok) and _matches(self.path, call.path)
        target = _sorted_target(call.target)
        if isinstance(self.path, str):
            return _sorted_target(self.path) == target
        return _matches(self.path, target)

    def _body_passes(self, body: Any) -> bool:
        m = self.body
        if m is None:
            return True
        if body is None:
            body = b""
        if isinstance(m, re.Pattern):
            if not isinstance(body, bytes):
                return False
            subject: Any = body if isinstance(m.pattern, bytes) else body.decode("utf-8", "replace")
            return m.search(subject) is not None
        if callable(m):
            return bool(m(body))
        return bool(m == body)

    def _headers_pass(self, headers: dict[str, str | list[str]]) -> bool:
        m = self.headers
        if m is None:
            return True
        if not isinstance(m, Mapping):
            return bool(m(dict(headers)))
        for name, matcher in m.items():
            value = headers.get(name)
            joined = ", ".join(value) if isinstance(value, list) else value
            if not _matches(matcher, joined):
                return False
        return True

    def _describe(self) -> str:
        return f"{_show(self.method)} {_show(self.path)}"


class MockScope:
    """One registered interception. ``delay()``, ``times()`` and
    ``persist()`` return it, for chaining."""

    def __init__(self, interceptor: MockInterceptor, reply: Reply, seq: int) -> None:
        self.interceptor = interceptor
        self._reply = reply
        self._seq = seq  # registration order, across origins
        self._delay = 0.0
        self._times = 1
        self._persist = False
        self.invocations = 0
        """How many requests it answered."""

    def delay(self, seconds: float) -> Self:
        """Answers ``seconds`` after the request (errors too)."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise InvalidArgumentError("invalid delay: a number of seconds >= 0")
        self._delay = float(seconds)
        return self

    def times(self, n: int) -> Self:
        """Answers ``n`` requests (the default is one)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgumentError("invalid times: a positive int")
        self._times = n
        return self

    def persist(self) -> Self:
        """Answers every request, never used up (wins over ``times()``)."""
        self._persist = True
        return self

    @property
    def consumed(self) -> bool:
        """Used up: it answers no more requests."""
        return not self._persist and self.invocations >= self._times

    @property
    def pending(self) -> bool:
        """Not persistent and not used up yet."""
        return not self._persist and not self.consumed

    @property
    def remaining(self) -> int | None:
        """Requests it still answers (None: persistent)."""
        return None if self._persist else max(self._times - self.invocations, 0)

    @property
    def origin(self) -> OriginMatcher:
        return self.interceptor.owner.origin

    def _describe(self) -> str:
        left = "persistent" if self._persist else f"{self.remaining} of {self._times} call(s) left"
        return f"{self.interceptor._describe()} on {_show(self.origin)}: {left}"

    def __repr__(self) -> str:
        return f"<MockScope {self._describe()}>"


class MockOrigin:
    """What ``MockAgent.get(origin)`` returns: the interceptions of one
    origin (or of every origin a regex or callable matches)."""

    def __init__(self, agent: MockAgent, origin: OriginMatcher) -> None:
        self._agent = agent
        self.origin = origin
        self.scopes: list[MockScope] = []
        """Every interception registered here, in order (used up ones too)."""

    def intercept(
        self,
        path: Matcher,
        method: Matcher = "GET",
        body: BodyMatcher | None = None,
        headers: Mapping[str, Matcher] | Callable[[dict[str, Any]], object] | None = None,
        query: Mapping[str, Any] | Callable[[dict[str, Any]], object] | None = None,
    ) -> MockInterceptor:
        """The requests to answer. ``path``: the path with its query (query
        parameters in any order), or the path alone when ``query`` (a dict
        compared to the parsed query, or a callable) is given. ``headers``:
        a matcher per name (any case; other request headers are ignored), or
        a callable given them all. ``body``: see ``BodyMatcher``; a streamed
        request body only matches a callable (given the body object) or
        ``None``."""
        return MockInterceptor(self, path, method, body, headers, query)

    def _register(self, interceptor: MockInterceptor, reply: Reply) -> MockScope:
        scope = MockScope(interceptor, reply, next(self._agent._seq))
        self.scopes.append(scope)
        return scope

    def _serves(self, origin: str) -> bool:
        if isinstance(self.origin, str):
            return self.origin == origin
        return _matches(self.origin, origin)


# -- call history ---------------------------------------------------------------


_CALL_FIELDS = frozenset(f.name for f in fields(MockCall))


class MockCallHistory:
    """Every request a ``MockAgent`` got, answered by a mock or passed
    through, in order."""

    def __init__(self) -> None:
        self._calls: list[MockCall] = []

    def calls(self) -> list[MockCall]:
        return list(self._calls)

    def first_call(self) -> MockCall | None:
        return self._calls[0] if self._calls else None

    def last_call(self) -> MockCall | None:
        return self._calls[-1] if self._calls else None

    def nth_call(self, n: int) -> MockCall | None:
        """The ``n``-th call, counting from 1."""
        return self._calls[n - 1] if 1 <= n <= len(self._calls) else None

    def filter_calls(
        self, predicate: Callable[[MockCall], object] | None = None, /, **criteria: Any
    ) -> list[MockCall]:
        """The calls ``predicate`` accepts and whose every named field
        matches: ``filter_calls(method="POST", path=re.compile("^/api"))``.
        Each criterion is a value, a compiled regex (for text fields) or a
        callable given the field."""
        unknown = set(criteria) - _CALL_FIELDS
        if unknown:
            raise InvalidArgumentError(
                f"unknown call fields {sorted(unknown)}: any of {sorted(_CALL_FIELDS)}"
            )
        return [
            call
            for call in self._calls
            if (predicate is None or predicate(call))
            and all(_field_matches(m, getattr(call, name)) for name, m in criteria.items())
        ]

    def clear(self) -> None:
        self._calls.clear()

    def __len__(self) -> int:
        return len(self._calls)


def _field_matches(m: Any, value: Any) -> bool:
    if isinstance(m, re.Pattern):
        return isinstance(value, str) and m.search(value) is not None
    if callable(m):
        return bool(m(value))
    return bool(m == value)


# -- one reply, played to one handler --------------------------------------------


class _Delivery:
    """Plays an interception's reply to a handler as the engine delivers a
    response: ``on_connect`` inside ``dispatch()``, the rest later on the
    loop; ``on_headers``/``on_data`` returning False pause it until
    ``resume()``; ``abort()`` ends it with one ``on_error``. A handler
    raising in ``on_headers``/``on_data`` ends the request with that
    error."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        handler: Handler,
        scope: MockScope,
        request: dict[str, Any],
        done: Callable[[_Delivery], None],
    ) -> None:
        self._loop = loop
        self._handler = handler
        self._scope = scope
        self._request = request
        self._done = done
        self._ended = False  # no more response events (an abort's on_error may follow)
        self._finished = False  # on_complete or on_error was called
        self._paused = False
        self._chunks: deque[bytes] = deque()
        self._trailers: list[bytes] = []
        self._waiting: asyncio.TimerHandle | asyncio.Future[Any] | None = None

    def start(self) -> None:
        try:
            self._handler.on_connect(self.abort, {})
        except Exception as exc:
            self.abort(exc)
        if not self._ended:
            self._waiting = self._loop.call_later(self._scope._delay, self._reply)

    # -- what the handler may call -------------------------------------------

    def abort(self, error: BaseException | None = None) -> None:
        if error is not None and not isinstance(error, BaseException):
            raise TypeError("abort() takes an exception")
        if self._ended:
            return
        self._end()
        if self._waiting is not None:
            self._waiting.cancel()
        if self._loop.is_closed():  # a test's loop is gone: nobody listens
            self._finish()
            return
        self._loop.call_soon(self._error, error if error is not None else RequestAbortedError())

    def resume(self) -> None:
        if self._paused and not self._ended:
            self._paused = False
            self._loop.call_soon(self._pump)

    # -- the reply -----------------------------------------------------------

    def _reply(self) -> None:
        self._waiting = None
        reply = self._scope._reply
        if self._request.get("upgrade") is not None or self._request["method"] == "CONNECT":
            self._error(NotSupportedError("MockAgent cannot answer upgrade or CONNECT requests"))
        elif isinstance(reply, BaseException):
            self._error(reply)
        elif isinstance(reply, _Response):
            self._respond(reply)
        else:
            try:
                result = reply(self._request)
                response = None if inspect.isawaitable(result) else _callback_response(result)
            except Exception as exc:
                return self._error(exc)
            if response is not None:
                return self._respond(response)
            self._waiting = task = asyncio.ensure_future(result)
            task.add_done_callback(self._answered)

    def _answered(self, task: asyncio.Future[Any]) -> None:
        error = RequestAbortedError() if task.cancelled() else task.exception()  # retrieved
        if self._ended:
            return
        self._waiting = None
        if error is not None:
            return self._error(error)
        try:
            response = _callback_response(task.result())
        except Exception as exc:
            return self._error(exc)
        self._respond(response)

    def _respond(self, response: _Response) -> None:
        data = response.data
        self._chunks.extend(data[i : i + CHUNK] for i in range(0, len(data), CHUNK))
        self._trailers = response.trailers
        try:
            status_text = http.HTTPStatus(response.status).phrase
        except ValueError:
            status_text = ""
        try:
            r = self._handler.on_headers(
                response.status, list(response.headers), self.resume, status_text
            )
        except Exception as exc:
            return self._error(exc)
        if r is False:
            self._paused = True
        else:
            self._pump()

    def _pump(self) -> None:
        """Body pieces, then the end, until the handler pauses."""
        while not self._ended and not self._paused:
            if not self._chunks:
                if self._finish():
                    self._handler.on_complete(list(self._trailers))
                return
            try:
                r = self._handler.on_data(self._chunks.popleft())
            except Exception as exc:
                return self._error(exc)
            if r is False:
                self._paused = True

    # -- the end -------------------------------------------------------------

    def _end(self) -> None:
        self._ended = True
        self._paused = False
        self._chunks.clear()

    def _finish(self) -> bool:
        """Ends the request for good; False if it already was (a handler
        that raised after aborting gets one on_error: for what it raised,
        as from the engine)."""
        if self._finished:
            return False
        self._finished = True
        self._end()
        self._done(self)
        return True

    def _error(self, error: BaseException) -> None:
        if self._finish():
            self._handler.on_error(error)


# -- the agent -------------------------------------------------------------------


class MockAgent(DispatcherGroup):
    """A dispatcher answering from interceptions registered through
    ``get(origin).intercept(...).reply(...)``; requests need ``origin=``.

    ``MockAgent(connections=None, **agent_options)``: the options of the
    real ``Agent`` that requests nothing matches go to while net connect
    allows their host (it does for every host until
    ``disable_net_connect()``)."""

    def __init__(self, connections: int | None = None, **agent_opts: Any) -> None:
        super().__init__()
        self._agent = Agent(connections, **agent_opts)
        self._adopt(self._agent)
        self._origins: dict[Any, MockOrigin] = {}
        self._seq = itertools.count()
        self._net_connect: bool | list[HostMatcher] = True
        self._deliveries: set[_Delivery] = set()
        self._idle: asyncio.Future[None] | None = None
        self.call_history: MockCallHistory = MockCallHistory()

    # -- registration ----------------------------------------------------------

    def get(self, origin: OriginMatcher) -> MockOrigin:
        """The interceptions of ``origin`` (``"http://host:port"``), or of
        every origin a compiled regex or a callable matches."""
        if isinstance(origin, str):
            key: Any = _origin(origin)[0]
        elif isinstance(origin, re.Pattern) or callable(origin):
            key = origin
        else:
            raise InvalidArgumentError("invalid origin: a str, a compiled regex or a callable")
        mock = self._origins.get(key)
        if mock is None:
            mock = self._origins[key] = MockOrigin(self, key)
        return mock

    def _scopes_for(self, origin: str) -> list[MockScope]:
        """Every interception that may answer ``origin``, in registration order."""
        scopes = [s for o in self._origins.values() if o._serves(origin) for s in o.scopes]
        return sorted(scopes, key=_registered)

    # -- net connect -----------------------------------------------------------

    def disable_net_connect(self) -> None:
        """Requests nothing matches fail with ``MockNotMatchedError``."""
        self._net_connect = False

    def enable_net_connect(self, host: HostMatcher | None = None) -> None:
        """Requests nothing matches go to the network: for every host
        (``None``), or also for ``host``: ``"host"`` (any port),
        ``"host:port"``, a compiled regex searched in ``host[:port]`` or a
        callable given it."""
        if host is None:
            self._net_connect = True
            return
        _check_matcher("host", host)
        if isinstance(self._net_connect, list):
            self._net_connect.append(host)
        else:
            self._net_connect = [host]

    def _net_allowed(self, call: MockCall) -> bool:
        if isinstance(self._net_connect, bool):
            return self._net_connect
        host = call._host_header
        for m in self._net_connect:
            if isinstance(m, str):
                if m in (host, call.host, f"{call.host}:{call.port}"):
                    return True
            elif _matches(m, host):
                return True
        return False

    # -- pending interceptions --------------------------------------------------

    def pending_interceptors(self) -> list[MockScope]:
        """The interceptions not used up, persistent ones aside."""
        pending = [s for o in self._origins.values() for s in o.scopes if s.pending]
        return sorted(pending, key=_registered)

    def assert_no_pending_interceptors(self) -> None:
        """Raises ``AssertionError`` listing the pending interceptions."""
        report = self._pending_report()
        if report is not None:
            raise AssertionError(report)

    def _pending_report(self) -> str | None:
        pending = self.pending_interceptors()
        if not pending:
            return None
        lines = [f"  {s._describe()}" for s in pending]
        noun = "interceptor is" if len(pending) == 1 else "interceptors are"
        return f"{len(pending)} {noun} pending:\n" + "\n".join(lines)

    def clear_call_history(self) -> None:
        self.call_history.clear()

    # -- the dispatcher ----------------------------------------------------------

    def dispatch(self, handler: Handler, **opts: Unpack[DispatchOptions]) -> bool:
        """Answers from the first interception that matches, or passes the
        request to the network, or fails it with ``MockNotMatchedError``."""
        self._check_open()
        loop = asyncio.get_running_loop()
        call = _parse_request(opts)
        _check_handler(handler, opts)
        self.call_history._calls.append(call)
        scopes = self._scopes_for(call.origin)
        scope, stage, closest = _find(scopes, call)
        if scope is None:
            if self._net_allowed(call):
                return self._agent.dispatch(handler, **opts)
            # Refused, as the engine refuses a request: only on_error, later.
            loop.call_soon(handler.on_error, self._not_matched(call, scopes, stage, closest))
            return True
        scope.invocations += 1
        request = {**opts, "origin": call.origin, "headers": dict(call.headers), "body": call.body}
        delivery = _Delivery(loop, handler, scope, request, self._delivered)
        self._deliveries.add(delivery)
        delivery.start()
        return True

    def _not_matched(
        self, call: MockCall, scopes: list[MockScope], stage: str, closest: list[MockScope]
    ) -> MockNotMatchedError:
        """undici's message: the stage that failed, the net connect state and
        the interceptions of the origin left out of all it had."""
        state = (
            "net connect disabled"
            if self._net_connect is False
            else "net connect is not enabled for this host"
        )
        left = sum(not s.consumed for s in scopes)
        return MockNotMatchedError(
            f"{_mismatch(call, stage, closest)}: subsequent request to origin {call.origin} "
            f"was not allowed ({state}), {left} interceptor(s) remaining out of "
            f"{len(scopes)} defined"
        )

    def _delivered(self, delivery: _Delivery) -> None:
        self._deliveries.discard(delivery)
        if not self._deliveries and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    # -- lifecycle -----------------------------------------------------------------

    def close(self, callback: Any = None) -> Any:
        """Stops taking requests; resolves once the mocked replies in flight
        ended and the real ``Agent`` closed."""
        check_callback(callback)
        if self._closing is None and not self._destroyed:
            self._closing = asyncio.ensure_future(self._close())
        return super().close(callback)

    async def _close(self) -> None:
        while self._deliveries:
            self._idle = asyncio.get_running_loop().create_future()
            await self._idle
        await self._agent.close()

    def destroy(self, error: Any = None, callback: Any = None) -> Any:
        """Fails every request in flight now (mocked or not) with ``error``,
        or ``ClientDestroyedError``."""
        result = super().destroy(error, callback)
        reason = error if isinstance(error, BaseException) else ClientDestroyedError()
        for delivery in list(self._deliveries):
            delivery.abort(reason)
        return result

    def _children(self) -> Iterable[Dispatcher]:
        return [self._agent]


def _registered(scope: MockScope) -> int:
    return scope._seq


def _find(scopes: list[MockScope], call: MockCall) -> tuple[MockScope | None, str, list[MockScope]]:
    """The first interception left that passes every stage; else the stage
    where none did and the ones that got that far."""
    survivors = [s for s in scopes if not s.consumed]
    for stage in _STAGES:
        passed = [s for s in survivors if s.interceptor._passes(stage, call)]
        if not passed:
            return None, stage, survivors
        survivors = passed
    return survivors[0], "", []


def _mismatch(call: MockCall, stage: str, closest: list[MockScope]) -> str:
    on = f"on path {_sorted_target(call.target)!r}"
    what = {
        "path": f"path {_sorted_target(call.target)!r}",
        "method": f"method {call.method!r} {on}",
        "body": f"body {_short(call.body)} {on}",
        "headers": f"headers {call.headers!r} {on}",
    }[stage]
    message = f"Mock dispatch not matched for {what}"
    if closest:
        shown = ", ".join(s.interceptor._describe() for s in closest[:5])
        more = f" and {len(closest) - 5} more" if len(closest) > 5 else ""
        message += f" (closest: {shown}{more})"
    return message


def _short(body: Any, limit: int = 80) -> str:
    text = repr(body)
    return text if len(text) <= limit else text[: limit - 3] + "..."
