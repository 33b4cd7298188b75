"""The ``redirect`` interceptor: 3xx answers followed, as undici's."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

from .._api_common import header_name, header_pairs, parse_headers
from .._passthrough import Watch, WatchedInterceptor
from .._undipy import encode_query
from ..dispatcher import DispatchFn, Interceptor
from ..errors import InvalidArgumentError, UndiciError
from ..handler import DecoratorHandler, Handler

_STATUSES = frozenset({300, 301, 302, 303, 307, 308})
_CROSS_ORIGIN = ("authorization", "cookie", "proxy-authorization")
_DEFAULT_PORTS = {"http": 80, "https": 443}

# -- URLs and headers, shared with the cookies interceptor --------------------


def _origin(u: SplitResult) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, the default port left out
    (so that equal origins are equal strings); None for anything else."""
    try:
        port = u.port
    except ValueError:
        return None
    if u.scheme not in _DEFAULT_PORTS or not u.hostname:
        return None
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    port_part = "" if port is None or port == _DEFAULT_PORTS[u.scheme] else f":{port}"
    return f"{u.scheme}://{host}{port_part}"


def bound_origin(dispatch: DispatchFn) -> str | None:
    """The origin of the dispatcher ``dispatch`` belongs to when that serves
    one origin only (a ``Client`` or ``Pool``: ``origin=`` means nothing to
    them); None when unknown (an ``Agent``, another interceptor)."""
    origin = getattr(getattr(dispatch, "__self__", None), "origin", None)
    return _origin(urlsplit(origin)) if isinstance(origin, str) else None


def request_origin(opts: dict[str, Any], dispatch: DispatchFn) -> str | None:
    """The origin a request goes to: its ``origin=``, else its dispatcher's."""
    given = opts.get("origin")
    if isinstance(given, str):
        return _origin(urlsplit(given))
    return bound_origin(dispatch)


def request_target(opts: dict[str, Any]) -> str:
    """``path`` with ``query=`` appended, as the engine writes it."""
    path = str(opts.get("path") or "/")
    query = opts.get("query")
    return path + "?" + encode_query(query) if query else path


def _names(names: Iterable[str], what: str) -> frozenset[str]:
    if isinstance(names, (str, bytes)) or not all(isinstance(n, str) for n in names):
        raise InvalidArgumentError(f"invalid {what}: a list of header names")
    return frozenset(n.lower() for n in names)


def _replayable(body: Any) -> bool:
    """Bytes and text can be sent again; files and iterables are read once."""
    return body is None or isinstance(body, (bytes, bytearray, memoryview, str))


def _is_limit(v: Any) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)


# -- the handler --------------------------------------------------------------


class _Settings:
    def __init__(self, limit: Any, throw: Any, strip: Any, cross: Any) -> None:
        if not _is_limit(limit):
            raise InvalidArgumentError("invalid max_redirections: an int, 0 or more, or None")
        self.limit: int = limit or 0
        self.throw = bool(throw)
        self.user_strip = _names(strip, "strip_headers_on_redirect")
        self.user_cross = _names(cross, "strip_headers_on_cross_origin_redirect")
        self.strip = self.user_strip | {"host"}  # always: it names the first origin
        self.cross = self.user_cross | frozenset(_CROSS_ORIGIN)

    def given(self) -> tuple[Any, ...]:
        return (self.limit, self.throw, self.user_strip, self.user_cross)


class _RedirectHandler(DecoratorHandler):
    """Dispatches the request again, through the same ``dispatch``, for each
    redirect it follows; the 3xx answers followed never reach the wrapped
    handler (their bodies are read and dropped), the last answer does."""

    def __init__(
        self, dispatch: DispatchFn, handler: Handler, opts: dict[str, Any], settings: _Settings
    ) -> None:
        super().__init__(handler)
        self._dispatch = dispatch
        self._opts = opts
        self._s = settings
        self._bound = bound_origin(dispatch)
        self._origin = request_origin(opts, dispatch)
        self.history = [(self._origin or "") + request_target(opts)]
        self._abort: Callable[..., None] | None = None
        self._next: dict[str, Any] | None = None  # the redirect being followed
        self._error: BaseException | None = None  # fails the request at its end

    def on_connect(self, abort: Callable[..., None], context: dict[str, Any]) -> object:
        self._abort = abort
        if len(self.history) > 1:
            return None  # the wrapped handler started with the first request
        context["history"] = self.history  # the same list: it grows as we follow
        return super().on_connect(self._abort_current, context)

    def _abort_current(self, *args: Any) -> None:
        """What the wrapped handler aborts with: whichever request is running."""
        if self._abort is not None:
            self._abort(*args)

    def on_headers(
        self, status_code: int, headers: list[bytes], resume: Callable[[], None], status_text: str
    ) -> object:
        if status_code >= 200:
            self._next = self._follow(status_code, headers)
        if self._next is not None or self._error is not None:
            return True
        return super().on_headers(status_code, headers, resume, status_text)

    def on_data(self, chunk: bytes) -> object:
        if self._next is not None or self._error is not None:
            return True  # a 3xx body: dropped
        return super().on_data(chunk)

    def on_complete(self, trailers: list[bytes]) -> object:
        if self._error is not None:
            return super().on_error(self._error)
        if self._next is None:
            return super().on_complete(trailers)
        self._opts, self._next = self._next, None
        self._origin = request_origin(self._opts, self._dispatch)
        self.history.append((self._origin or "") + request_target(self._opts))
        try:
            self._dispatch(self, **self._opts)
        except Exception as exc:  # refused at once (a closed dispatcher, bad origin)
            return super().on_error(exc)
        return None

    def _follow(self, status: int, raw: list[bytes]) -> dict[str, Any] | None:
        """The options of the next request, or None to hand this answer on
        (sets ``_error`` instead when following is an error)."""
        location = parse_headers(raw).get("location") if status in _STATUSES else None
        if isinstance(location, list):
            location = location[0]
        if not location:
            return None
        try:
            u = urlsplit(urljoin(self.history[-1], location.strip()))
        except ValueError:
            return None
        absolute = bool(u.scheme or u.netloc)  # else relative to a URL without origin
        origin = _origin(u) if absolute else None
        if absolute and (origin is None or self._origin is None):
            return None  # not http(s), or no telling where the dispatcher would send it
        if len(self.history) > self._s.limit:
            if self._s.throw:
                self._error = UndiciError("max redirects")
            return None
        if self._bound is not None and origin != self._bound:
            return None  # a Client or Pool cannot reach another origin: use an Agent
        method = str(self._opts.get("method") or "GET")
        opts = dict(self._opts)
        to_get = (status in (301, 302) and method.upper() == "POST") or (
            status == 303 and method.upper() != "HEAD"
        )
        if to_get:
            opts["method"] = "GET"
            opts.pop("body", None)
        elif not _replayable(opts.get("body")):
            return None  # never replayed: the 3xx is the answer
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        if (origin or "") + path in self.history:
            self._error = InvalidArgumentError(
                f"Redirect loop detected. Cannot redirect to {origin or ''}{path}. This"
                " typically happens when using a Client or Pool with cross-origin redirects."
                " Use an Agent for cross-origin redirects."
            )
            return None
        strip = self._s.strip | (self._s.cross if origin != self._origin else frozenset())
        opts["headers"] = [
            (n, v)
            for n, v in header_pairs(opts.get("headers"))
            if header_name(n) not in strip
            and not (to_get and header_name(n).startswith("content-"))
        ]
        opts["path"] = path
        opts.pop("query", None)  # now part of path
        if origin is not None:
            opts["origin"] = origin
        return opts


def redirect(
    max_redirections: int | None = None,
    throw_on_max_redirect: bool = False,
    strip_headers_on_redirect: Iterable[str] = (),
    strip_headers_on_cross_origin_redirect: Iterable[str] = (),
) -> Interceptor:
    """Follows 300/301/302/303/307/308 up to ``max_redirections`` times (None
    or 0: not at all). POST becomes GET on 301/302, everything but HEAD on
    303 (body and ``content-*`` headers dropped); ``host`` and
    ``strip_headers_on_redirect`` are dropped on every redirect, and
    ``authorization``, ``cookie``, ``proxy-authorization`` and
    ``strip_headers_on_cross_origin_redirect`` on one to another origin. A
    streamed body is never sent twice (the 3xx is the answer); a URL seen
    before in the chain fails with ``InvalidArgumentError``; past the limit
    the last 3xx is the answer, or ``UndiciError("max redirects")`` with
    ``throw_on_max_redirect``. ``context["history"]`` lists the URLs. All
    four options can also be given per request."""
    settings = _Settings(
        max_redirections,
        throw_on_max_redirect,
        strip_headers_on_redirect,
        strip_headers_on_cross_origin_redirect,
    )

    def interceptor(dispatch: DispatchFn) -> DispatchFn:
        def redirect_dispatch(handler: Handler, **opts: Any) -> bool:
            s = settings
            given = [opts.pop(k, None) for k in _OPTIONS]
            if any(v is not None for v in given):
                pairs = zip(given, s.given(), strict=True)
                s = _Settings(*[d if v is None else v for v, d in pairs])
            upgrade = opts.get("upgrade") or str(opts.get("method")).upper() == "CONNECT"
            if not s.limit or upgrade:
                return dispatch(handler, **opts)
            return dispatch(_RedirectHandler(dispatch, handler, opts, s), **opts)

        return redirect_dispatch

    def passes(method: Any, response: Any) -> bool:
        return not settings.limit or response.status_code not in _STATUSES

    return WatchedInterceptor(interceptor, Watch(frozenset(_OPTIONS), passes))


_OPTIONS = (
    "max_redirections",
    "throw_on_max_redirect",
    "strip_headers_on_redirect",
    "strip_headers_on_cross_origin_redirect",
)
