"""The keyword options of the dispatchers and their methods, as ``TypedDict``s
for ``**options: Unpack[...]``: type checkers and IDEs see every option by
name, with its type. Nothing here runs: the options are checked where they
are used (``dispatcher._options`` and the native ``Core``).

An option given as ``None`` counts as not given (``opaque`` excepted), so
most request options also accept ``None``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, Required, TypedDict, TypeVar

from .abort import AbortSignal

_T = TypeVar("_T")

# -- values ------------------------------------------------------------------

HeaderScalar = str | bytes | int | float
"""One header value: ``str`` (UTF-8), ``bytes``, or a number (``bool`` too),
sent as text."""

HeaderValues = HeaderScalar | Sequence[HeaderScalar | None] | None
"""A header's value in the dict or pairs form: a list sends one line per
element; ``None`` (as a value or an element) is skipped. (The list must be a
real ``list``: ``Sequence`` here only lets literals such as
``["1", None]`` type-check.)"""

RequestHeaders = (
    Mapping[Any, HeaderValues]
    | list[str]
    | list[bytes]
    | list[HeaderScalar | None]
    | tuple[HeaderScalar | None, ...]
    | Sequence[tuple[str | bytes, HeaderValues] | list[str] | list[bytes]]
)
"""The three forms of ``headers=``: a dict, a flat ``[name, value, ...]``
list, or a list of ``(name, value)`` pairs. Names are ``str`` or ``bytes``
(the dict's key type is ``Any`` so that literals mixing value types
type-check); the dict must be a real ``dict``, the lists real lists or
tuples."""

QueryValue = str | bytes | int | float | None
Query = Mapping[str, QueryValue | Sequence[QueryValue]]
"""``query=``: a ``dict``; a list value repeats the key, ``None`` is an empty
value."""

BodyChunk = bytes | bytearray | memoryview | str
"""One chunk of a streamed request body."""


class ReadableFile(Protocol):
    """A binary file object: read in 64 KiB chunks."""

    def read(self, size: int, /) -> bytes | bytearray | memoryview: ...


RequestBody = (
    bytes
    | bytearray
    | memoryview
    | str
    | ReadableFile
    | Iterable[BodyChunk]
    | AsyncIterable[BodyChunk]
)
"""``body=``: bytes-like or text (sent with ``content-length``), or a file,
an iterable or an async iterable, streamed as the socket takes it."""

Signal = AbortSignal | asyncio.Event
"""``signal=``: an ``AbortController().signal`` or an ``asyncio.Event``."""

InfoCallback = Callable[[dict[str, Any]], Any]
"""``on_info=``: called with ``{"status_code": int, "headers": dict}`` for
each interim (1xx) response."""

ResultCallback = Callable[[BaseException | None, _T | None], Any]
"""``callback=``: ``callback(error, result)``, exactly one of them ``None``."""


# -- option groups -----------------------------------------------------------


class _Target(TypedDict):
    path: str
    """The request target (``/...`` or an absolute URL; ``host:port`` for CONNECT)."""
    method: str
    """The method, sent exactly as given."""


class _Common(TypedDict, total=False):
    headers: RequestHeaders | None
    query: Query | None
    idempotent: bool | None
    blocking: bool | None
    reset: bool | None
    headers_timeout: float | None
    body_timeout: float | None
    throw_on_error: bool | None
    expect_continue: bool | None
    origin: str | None
    server_name: str | None
    """With ``origin``, for an ``Agent``: the TLS name of an ``https`` origin
    given as an address (the ``dns`` interceptor's)."""
    # Read by the interceptors composed on a dispatcher (ignored where no
    # interceptor takes them, as undici).
    retry_options: Mapping[str, Any] | None
    max_redirections: int | None
    throw_on_max_redirect: bool | None
    strip_headers_on_redirect: Sequence[str] | None
    strip_headers_on_cross_origin_redirect: Sequence[str] | None
    dump_max_size: int | None


class _WithBody(_Common, total=False):
    body: RequestBody | None


class DispatchOptions(_Target, _WithBody, total=False):
    """The options of ``dispatch()``: ``path`` and ``method`` are required."""

    upgrade: str | None


class CoreRequestOptions(_Target, _WithBody, total=False):
    """What the native ``Core.request``/``Core.stream`` take: the dispatch
    options without ``upgrade``, plus ``opaque`` and ``on_info``."""

    opaque: Any
    on_info: InfoCallback | None


class RequestOptions(CoreRequestOptions, total=False):
    """The options of ``request()`` and ``stream()`` (without ``callback``)."""

    signal: Signal | None


StreamOptions = RequestOptions


class PipelineOptions(_Target, _Common, total=False):
    """The options of ``pipeline()``: no ``body`` (the duplex is the body),
    no ``upgrade``."""

    opaque: Any
    signal: Signal | None
    on_info: InfoCallback | None
    object_mode: bool


class UpgradeOptions(_WithBody, total=False):
    """The options of ``upgrade()`` (without ``callback``): ``path`` defaults
    to ``"/"``, ``method`` to ``"GET"``, ``protocol`` to ``"Websocket"``."""

    path: str
    method: str
    protocol: str
    opaque: Any
    signal: Signal | None


class ConnectOptions(_WithBody, total=False):
    """The options of ``connect()`` (without ``callback``): ``path`` (the
    authority to tunnel to) is required; the method is ``CONNECT``."""

    path: Required[str]
    opaque: Any
    signal: Signal | None


class ClientOptions(TypedDict, total=False):
    """The constructor options of ``Client`` and ``Pool`` (durations in
    seconds); the defaults are ``dispatcher._DEFAULTS``."""

    pipelining: int
    connect_timeout: float
    headers_timeout: float
    body_timeout: float
    keep_alive_timeout: float
    keep_alive_max_timeout: float
    keep_alive_timeout_threshold: float
    max_header_size: int
    max_response_size: int
    max_requests_per_client: int | None
    socket_path: str | None
    strict_content_length: bool
    local_address: str | None
    tls: dict[str, Any] | None
