"""The ``cookies`` interceptor: an ``http.cookiejar.CookieJar`` for every request."""

from __future__ import annotations

import email.message
import http.cookiejar
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

from .._api_common import header_name, header_pairs
from ..dispatcher import DispatchFn, Interceptor
from ..errors import InvalidArgumentError
from ..handler import DecoratorHandler, Handler
from .redirect import request_origin, request_target


class _Response:
    """What ``CookieJar.extract_cookies`` reads of a response: ``info()``."""

    def __init__(self, raw: list[bytes]) -> None:
        self._message = email.message.Message()
        for name, value in header_pairs(raw):
            if header_name(name) in ("set-cookie", "set-cookie2"):
                self._message[name.decode("latin-1")] = value.decode("latin-1")

    def info(self) -> email.message.Message:
        return self._message


class _CookieHandler(DecoratorHandler):
    """Stores the ``set-cookie`` of the answer (1xx heads aside) in the jar,
    for the URL the answer came from."""

    def __init__(self, handler: Handler, jar: http.cookiejar.CookieJar, url: str) -> None:
        super().__init__(handler)
        self._jar = jar
        self._url = url
        self._history: list[Any] | None = None

    def on_connect(self, abort: Callable[..., None], context: dict[str, Any]) -> object:
        # Composed outside redirect (the wrong order) the answer may come from
        # the last URL followed, not the first: its history says which.
        history = context.get("history")
        self._history = history if isinstance(history, list) else None
        return super().on_connect(abort, context)

    def on_headers(
        self, status_code: int, headers: list[bytes], resume: Callable[[], None], status_text: str
    ) -> object:
        if status_code >= 200:
            url = self._url
            if self._history and str(self._history[-1]).startswith(("http://", "https://")):
                url = str(self._history[-1])
            response: Any = _Response(headers)  # all the jar reads of an HTTPResponse
            self._jar.extract_cookies(response, urllib.request.Request(url))
        return super().on_headers(status_code, headers, resume, status_text)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(_text(v) for v in value if v is not None)
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _with_cookie(headers: Any, cookie: str) -> list[tuple[Any, Any]]:
    """``headers`` as pairs with one ``cookie`` line: the caller's own
    cookies first, then the jar's (a request has one ``cookie`` line)."""
    pairs = header_pairs(headers)
    mine = [_text(v) for n, v in pairs if header_name(n) == "cookie" and v is not None]
    rest = [(n, v) for n, v in pairs if header_name(n) != "cookie"]
    return [*rest, ("cookie", "; ".join([*mine, cookie]))]


def cookies(jar: http.cookiejar.CookieJar | None = None) -> Interceptor:
    """Sends the cookies ``jar`` holds for each request's URL and stores the
    ``set-cookie`` of its answer there, by the jar's policy (domain, path,
    secure, expiry). ``jar``: an ``http.cookiejar.CookieJar``, a fresh one by
    default. Requests need ``origin=`` (or a ``Client``/``Pool`` right
    below): without a URL there are no cookie rules to apply, and the request
    goes on untouched. With ``redirect()``, list ``cookies()`` first
    (``compose(cookies(), redirect())``) so that every redirect goes through
    it."""
    if jar is None:
        jar = http.cookiejar.CookieJar()
    elif not isinstance(jar, http.cookiejar.CookieJar):
        raise InvalidArgumentError("invalid jar: an http.cookiejar.CookieJar")
    cookie_jar = jar

    def interceptor(dispatch: DispatchFn) -> DispatchFn:
        def cookies_dispatch(handler: Handler, **opts: Any) -> bool:
            origin = request_origin(opts, dispatch)
            if origin is None:
                return dispatch(handler, **opts)
            url = urljoin(origin + "/", request_target(opts))
            request = urllib.request.Request(url)
            cookie_jar.add_cookie_header(request)
            cookie = request.get_header("Cookie")
            if cookie:
                opts["headers"] = _with_cookie(opts.get("headers"), cookie)
            return dispatch(_CookieHandler(handler, cookie_jar, url), **opts)

        return cookies_dispatch

    return interceptor
