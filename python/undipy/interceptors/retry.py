"""The ``retry`` interceptor: failed requests sent again after a backoff, as
undici's ``RetryHandler``.

What fails an attempt: an error whose code is in ``error_codes``, or a final
status in ``status_codes``. The engine raises ``SocketError``
(``UND_ERR_SOCKET``) for every failed connection, the OS reason in its
message, so an error matches the codes of ``error_codes_of()``: its own
``code``, the errno name of an ``(os error N)`` in its message
(``ECONNRESET``, ``ECONNREFUSED``, ``EPIPE``, ...) or of an ``OSError``,
``ENOTFOUND`` for a failed name lookup, and ``UND_ERR_SOCKET`` for a body cut
short by the server closing (``UND_ERR_RES_CONTENT_LENGTH_MISMATCH``,
``HPE_INVALID_EOF_STATE``), which undici reports as ``SocketError('other
side closed')``.

The wrapped handler sees one response: a failed attempt's response is read
and dropped, and a body that failed after its head was passed on is resumed
with ``Range`` (and ``If-Match`` for a strong ETag); only the rest of the
body flows on. ``on_connect`` reaches it on each attempt until its head was
passed on, always with one ``abort`` that also cancels a pending backoff.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any, TypedDict

from .._api_common import Headers, parse_headers
from .._passthrough import Watch, WatchedInterceptor
from .._request_handler import RequestHandler
from ..dispatcher import DispatchFn, Interceptor
from ..errors import InvalidArgumentError, RequestAbortedError, RequestRetryError
from ..handler import DecoratorHandler, Handler

RetryFn = Callable[[BaseException, dict[str, Any]], float | None]
"""``retry(error, context) -> seconds to wait, or None to give up``."""

DEFAULT_METHODS = ("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE")
DEFAULT_STATUS_CODES = (500, 502, 503, 504, 429)
DEFAULT_ERROR_CODES = (
    "ECONNRESET",
    "ECONNREFUSED",
    "ENOTFOUND",
    "ENETDOWN",
    "ENETUNREACH",
    "EHOSTDOWN",
    "EHOSTUNREACH",
    "EPIPE",
    "UND_ERR_SOCKET",
)


class RetryOptions(TypedDict, total=False):
    """The options of ``retry()``, ``RetryAgent`` and ``retry_options=``."""

    max_retries: int
    min_timeout: float
    max_timeout: float
    timeout_factor: float
    retry_after: bool
    methods: Iterable[str]
    status_codes: Iterable[int]
    error_codes: Iterable[str]
    retry: RetryFn | None
    throw_on_error: bool


@dataclass(frozen=True)
class _Options:
    max_retries: int
    min_timeout: float
    max_timeout: float
    timeout_factor: float
    retry_after: bool
    methods: frozenset[str]
    status_codes: frozenset[int]
    error_codes: frozenset[str]
    retry: RetryFn | None
    throw_on_error: bool

    def merged(self, given: Any) -> _Options:
        """These options with a request's ``retry_options`` over them."""
        if not isinstance(given, Mapping):
            raise InvalidArgumentError("invalid retry_options: a dict of retry() options")
        unknown = set(given) - {f.name for f in fields(self)}
        if unknown:
            raise InvalidArgumentError(f"unknown retry_options: {sorted(map(str, unknown))}")
        return _check(replace(self, **given))


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def _check(o: _Options) -> _Options:
    """Validates (and normalises the collections of) freshly built options."""
    if not isinstance(o.max_retries, int) or isinstance(o.max_retries, bool) or o.max_retries < 0:
        raise InvalidArgumentError("invalid max_retries: an int, 0 or more")
    for name in ("min_timeout", "max_timeout", "timeout_factor"):
        if not _number(getattr(o, name)):
            raise InvalidArgumentError(f"invalid {name}: a number of seconds, 0 or more")
    if o.retry is not None and not callable(o.retry):
        raise InvalidArgumentError("invalid retry: a callable retry(error, context) or None")
    try:
        methods = frozenset(o.methods)
        status_codes = frozenset(o.status_codes)
        error_codes = frozenset(o.error_codes)
    except TypeError:
        raise InvalidArgumentError("methods, status_codes and error_codes are lists") from None
    if isinstance(o.methods, str) or not all(isinstance(m, str) for m in methods):
        raise InvalidArgumentError("invalid methods: a list of method names")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in status_codes):
        raise InvalidArgumentError("invalid status_codes: a list of ints")
    if isinstance(o.error_codes, str) or not all(isinstance(c, str) for c in error_codes):
        raise InvalidArgumentError("invalid error_codes: a list of codes")
    return replace(
        o,
        retry_after=bool(o.retry_after),
        throw_on_error=bool(o.throw_on_error),
        methods=methods,
        status_codes=status_codes,
        error_codes=error_codes,
    )


# -- what an error is ----------------------------------------------------------

_OS_ERROR = re.compile(r"\(os error (\d+)\)")
_TRUNCATED = frozenset({"UND_ERR_RES_CONTENT_LENGTH_MISMATCH", "HPE_INVALID_EOF_STATE"})


def error_codes_of(error: BaseException) -> set[str]:
    """The codes ``error_codes`` is matched against (see the module's doc)."""
    codes: set[str] = set()
    code = getattr(error, "code", None)
    if isinstance(code, str):
        codes.add(code)
    if code in _TRUNCATED:
        codes.add("UND_ERR_SOCKET")
    if isinstance(error, OSError) and (n := error.errno) is not None and n in errno.errorcode:
        codes.add(errno.errorcode[n])
    if (m := _OS_ERROR.search(str(error))) and int(m[1]) in errno.errorcode:
        codes.add(errno.errorcode[int(m[1])])
    if "failed to lookup address" in str(error):
        codes.add("ENOTFOUND")
    return codes


def _retry_after(headers: Headers) -> float | None:
    """``Retry-After`` in seconds from now (delta-seconds or an HTTP date)."""
    value = headers.get("retry-after")
    if isinstance(value, list):
        value = value[0]
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return seconds if math.isfinite(seconds) else None


def _default_delay(error: BaseException, counter: int, method: Any, o: _Options) -> float | None:
    """undici's rules: the delay before attempt ``counter + 1``, or None."""
    if isinstance(error, RequestRetryError):  # a status (here or from an inner retry)
        if error.status_code not in o.status_codes:
            return None
    elif not error_codes_of(error) & o.error_codes:
        return None
    if method not in o.methods or counter > o.max_retries:
        return None
    if isinstance(error, RequestRetryError) and o.retry_after:
        after = _retry_after(error.headers)
        if after is not None and after > 0:
            return min(after, o.max_timeout)
    return float(min(o.min_timeout * o.timeout_factor ** (counter - 1), o.max_timeout))


# -- the handler -----------------------------------------------------------------

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)
_FIXED_BODIES = (bytes, bytearray, memoryview, str)


class _RetryHandler(DecoratorHandler):
    def __init__(
        self, handler: Handler, dispatch: DispatchFn, opts: dict[str, Any], o: _Options
    ) -> None:
        super().__init__(handler)
        self._dispatch = dispatch
        self._opts = opts
        self._o = o
        body = opts.get("body")
        # A stream, file or iterator is used up by the first attempt.
        self._replayable = body is None or isinstance(body, _FIXED_BODIES)
        self._attempts = 0
        self._abort: Callable[..., None] | None = None  # the running attempt's
        self._resume: Callable[[], None] | None = None  # the running attempt's
        self._timer: asyncio.TimerHandle | None = None
        self._aborted = False
        self._abort_reason: BaseException | None = None
        self._done = False  # the wrapped handler got its last call
        # The response being dropped (its status failed the attempt), and
        # what was decided for it.
        self._failure: RequestRetryError | None = None
        self._delay: float | None = None
        self._fatal: BaseException | None = None  # ends the request (resume check)
        # Once the head was passed on: where the body stands, to resume it.
        self._head_sent = False
        self._resumable = False
        self._status = 0
        self._pos = 0
        self._end: int | None = None
        self._etag: str | None = None

    def start(self) -> bool:
        self._attempts += 1
        self._failure = self._abort = self._resume = None
        return bool(self._dispatch(self, **self._opts))

    # -- what the wrapped handler holds ----------------------------------------

    def _user_abort(self, error: BaseException | None = None) -> None:
        if self._done or self._aborted:
            return
        self._aborted = True
        self._abort_reason = error
        if self._timer is not None:  # between attempts: nothing runs to abort
            self._timer.cancel()
            self._timer = None
            self._finish(error if error is not None else RequestAbortedError())
        elif self._abort is not None:
            self._abort(error)  # the engine then calls on_error

    def _user_resume(self) -> None:
        # Stable across attempts: the one the wrapped handler got with the
        # head must resume the attempt that carries the body now.
        if self._resume is not None:
            self._resume()

    # -- the handler protocol ----------------------------------------------------

    def on_connect(self, abort: Callable[..., None], context: dict[str, Any]) -> object:
        self._abort = abort
        if self._aborted:  # between dispatch() and now
            abort(self._abort_reason)
            return None
        if self._head_sent:  # resuming: the wrapped handler is mid-response
            return None
        return super().on_connect(self._user_abort, context)

    def on_headers(
        self,
        status_code: int,
        headers: list[bytes],
        resume: Callable[[], None],
        status_text: str,
    ) -> object:
        if status_code < 200:
            if not self._head_sent:
                return super().on_headers(status_code, headers, resume, status_text)
            return True
        self._resume = resume
        parsed = parse_headers(headers)
        if status_code >= 300 and status_code in self._o.status_codes:
            data = {"count": self._attempts}
            failure = RequestRetryError(f"Request failed: {status_code}", status_code, parsed, data)
            delay = self._decide(failure)
            if self._fatal is not None:  # the retry hook raised
                self._abort_attempt(self._fatal)
                return True
            if delay is None and not self._o.throw_on_error and not self._head_sent:
                return self._pass_head(status_code, headers, parsed, status_text)
            self._failure, self._delay = failure, delay
            return True  # its body is read and dropped
        if self._head_sent:
            self._fatal = self._check_resume(status_code, parsed)
            if self._fatal is not None:
                self._abort_attempt(self._fatal)
            return True
        return self._pass_head(status_code, headers, parsed, status_text)

    def on_data(self, chunk: bytes) -> object:
        if self._failure is not None or self._fatal is not None:
            return True
        self._pos += len(chunk)
        return super().on_data(chunk)

    def on_complete(self, trailers: list[bytes]) -> object:
        if self._done:
            return None
        if self._fatal is not None:  # it ended before the abort took
            return self._finish(self._fatal)
        if self._failure is not None:
            return self._after(self._failure, self._delay)
        self._done = True
        return super().on_complete(trailers)

    def on_error(self, error: BaseException) -> object:
        if self._done:
            return None
        if self._failure is not None and not self._aborted:
            # The dropped body broke: the decision for its status stands.
            return self._after(self._failure, self._delay)
        if self._aborted or error is self._fatal or (self._head_sent and not self._resumable):
            return self._finish(error)
        return self._after(error, self._decide(error))

    def on_upgrade(self, status_code: int, headers: list[bytes], socket: Any) -> object:
        self._done = True
        return super().on_upgrade(status_code, headers, socket)

    # -- deciding and retrying ---------------------------------------------------

    def _decide(self, error: BaseException) -> float | None:
        """Seconds before the next attempt, or None to give up."""
        if not self._replayable:
            return None
        method = self._opts.get("method")
        delay = _default_delay(error, self._attempts, method, self._o)
        if self._o.retry is None:
            return delay
        context = {
            "counter": self._attempts,
            "delay": delay,
            "opts": self._opts,
            "retry_options": {f.name: getattr(self._o, f.name) for f in fields(self._o)},
        }
        try:
            chosen = self._o.retry(error, context)
            if chosen is not None and not _number(chosen):
                raise InvalidArgumentError("retry() must return seconds (0 or more) or None")
        except Exception as exc:  # the request fails with it
            self._fatal = exc
            return None
        return chosen

    def _after(self, error: BaseException, delay: float | None) -> object:
        """Retries after ``delay`` seconds, or gives up with ``error``."""
        if delay is None:
            return self._finish(self._fatal if self._fatal is not None else error)
        self._abort = self._resume = None
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self._retry)
        return None

    def _retry(self) -> None:
        self._timer = None
        if self._head_sent:
            end = "" if self._end is None else str(self._end)
            extra = {"range": f"bytes={self._pos}-{end}"}
            if self._etag is not None:
                extra["if-match"] = self._etag
            self._opts["headers"] = _with_headers(self._opts.get("headers"), extra)
        try:
            self.start()
        except Exception as exc:
            self._finish(exc)

    def _finish(self, error: BaseException) -> object:
        self._done = True
        return super().on_error(error)

    def _abort_attempt(self, error: BaseException) -> None:
        if self._abort is not None:
            self._abort(error)

    # -- the body, to resume it ----------------------------------------------------

    def _pass_head(
        self, status: int, headers: list[bytes], parsed: Headers, status_text: str
    ) -> object:
        """The response the wrapped handler gets."""
        self._note_head(status, parsed)
        return super().on_headers(status, headers, self._user_resume, status_text)

    def take_over(self, status: int, parsed: Headers, received: int) -> None:
        """Stands where a response passed on natively stands: its head passed
        on, ``received`` bytes of its body read (``_passthrough.py``)."""
        self._attempts = 1
        self._note_head(status, parsed)
        self._pos += received

    def _note_head(self, status: int, parsed: Headers) -> None:
        """Remembers where the body passed on starts and ends, and its ETag,
        for a resume."""
        self._head_sent = True
        self._status = status
        etag = parsed.get("etag")
        # A weak ETag does not promise the same bytes: no If-Match with it.
        self._etag = etag if isinstance(etag, str) and not etag.startswith("W/") else None
        length = parsed.get("content-length")
        if status == 206:
            m = _CONTENT_RANGE.fullmatch(str(parsed.get("content-range", "")).strip())
            self._resumable = m is not None
            if m is not None:
                self._pos, self._end = int(m[1]), int(m[2])
        else:
            self._resumable = status == 200
            if isinstance(length, str) and length.isdigit():
                self._end = int(length) - 1

    def _check_resume(self, status: int, headers: Headers) -> RequestRetryError | None:
        """Why the answer to a resume cannot carry on the body, or None."""

        def fail(why: str) -> RequestRetryError:
            return RequestRetryError(why, status, headers, {"count": self._attempts})

        if self._etag is not None and headers.get("etag") != self._etag:
            return fail("ETag mismatch")
        if status == 200 and self._status == 200 and self._pos == 0:
            return None  # nothing of the body was read: the whole of it again is fine
        if status != 206:
            return fail(f"Cannot resume the body: expected 206 Partial Content, got {status}")
        m = _CONTENT_RANGE.fullmatch(str(headers.get("content-range", "")).strip())
        if m is None or int(m[1]) != self._pos:
            return fail("Content-Range mismatch")
        if self._end is not None and int(m[2]) != self._end:
            return fail("Content-Range mismatch")
        return None


def _with_headers(headers: Any, extra: dict[str, str]) -> list[tuple[Any, Any]]:
    """``headers`` (any of the three forms) as pairs, ``extra`` replacing
    the fields of the same names."""
    if headers is None:
        pairs: list[tuple[Any, Any]] = []
    elif isinstance(headers, Mapping):
        pairs = list(headers.items())
    elif headers and not isinstance(headers[0], tuple | list):  # flat [name, value, ...]
        pairs = list(zip(headers[::2], headers[1::2], strict=False))
    else:
        pairs = [(p[0], p[1]) for p in headers]

    def name(n: Any) -> str:
        return (n.decode("latin-1") if isinstance(n, bytes) else str(n)).lower()

    return [p for p in pairs if name(p[0]) not in extra] + list(extra.items())


def retry(
    max_retries: int = 5,
    min_timeout: float = 0.5,
    max_timeout: float = 30.0,
    timeout_factor: float = 2,
    retry_after: bool = True,
    methods: Iterable[str] = DEFAULT_METHODS,
    status_codes: Iterable[int] = DEFAULT_STATUS_CODES,
    error_codes: Iterable[str] = DEFAULT_ERROR_CODES,
    retry: RetryFn | None = None,
    throw_on_error: bool = True,
) -> Interceptor:
    """Sends a failed request again, up to ``max_retries`` times, waiting
    ``min(min_timeout * timeout_factor ** (n - 1), max_timeout)`` seconds
    before retry ``n`` (or what ``Retry-After`` says, when ``retry_after``,
    capped at ``max_timeout``).

    An attempt fails on an error matching ``error_codes`` (see
    ``error_codes_of``) or a status in ``status_codes``; only ``methods``
    are retried, and never a streaming body. Giving up on an error passes it
    on; on a status, ``throw_on_error`` fails the request with
    ``RequestRetryError`` (``status_code``, ``headers``, ``data={"count":
    attempts}``), else that response is passed on. A body failing after its
    head was passed on is resumed with ``Range`` and ``If-Match``; an answer
    that is not the expected 206 fails the request with ``RequestRetryError``.

    ``retry(error, context)``, when given, decides instead of those rules:
    it returns the seconds to wait before the next attempt, or None to give
    up. ``context`` holds ``counter`` (the attempt that failed, from 1),
    ``delay`` (what the rules above decided), ``opts`` (the dispatch
    options) and ``retry_options``. It is called for every error and every
    status in ``status_codes``, but never for a request the caller aborted
    or one with a streaming body.

    Per request: ``retry_options=`` (a dict of these options)."""
    base = _check(
        _Options(
            max_retries,
            min_timeout,
            max_timeout,
            timeout_factor,
            retry_after,
            methods,  # type: ignore[arg-type]  # made frozensets by _check
            status_codes,  # type: ignore[arg-type]
            error_codes,  # type: ignore[arg-type]
            retry,
            throw_on_error,
        )
    )

    def interceptor(dispatch: DispatchFn) -> DispatchFn:
        def retry_dispatch(handler: Handler, **opts: Any) -> bool:
            given = opts.pop("retry_options", None)
            o = base if given is None else base.merged(given)
            return _RetryHandler(handler, dispatch, opts, o).start()

        return retry_dispatch

    def passes(method: Any, response: Any) -> bool:
        return response.status_code not in base.status_codes

    def resume(
        feeder: RequestHandler,
        dispatch: DispatchFn,
        opts: dict[str, Any],
        status: int,
        headers: list[bytes],
        received: int,
        error: BaseException,
    ) -> None:
        handler = _RetryHandler(feeder, dispatch, opts, base)
        handler.take_over(status, parse_headers(headers), received)
        feeder.attach(handler._user_abort, handler._user_resume)
        handler.on_error(error)

    return WatchedInterceptor(interceptor, Watch(frozenset({"retry_options"}), passes, resume))
