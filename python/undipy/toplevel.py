"""The top-level functions: ``undipy.request(url, ...)`` and its siblings,
through the global dispatcher (an ``Agent`` made on first use) or the
``dispatcher=`` of one call."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from . import api_pipeline, api_stream
from ._undipy import encode_query
from .agent import Agent
from .dispatcher import Dispatcher, _RequestCall
from .errors import InvalidArgumentError

_global: Dispatcher | None = None
_made_here = False  # the global is the default Agent (not the user's)


def get_global_dispatcher() -> Dispatcher:
    """The dispatcher the top-level functions use: an ``Agent`` made on
    first use (a fresh one in a ``fork()`` child), unless one was set."""
    global _global, _made_here
    if _global is None:
        _global, _made_here = Agent(), True
    return _global


def set_global_dispatcher(dispatcher: Dispatcher) -> None:
    """Makes ``dispatcher`` the one the top-level functions use."""
    global _global, _made_here
    if not isinstance(dispatcher, Dispatcher):
        raise InvalidArgumentError("invalid dispatcher: it must be an undipy.Dispatcher")
    _global, _made_here = dispatcher, False


def _forget_default_agent() -> None:
    """In a fork() child the parent's engine is gone: the default Agent is
    made again on first use (a dispatcher the user set stays, and refuses)."""
    global _global, _made_here
    if _made_here:
        _global, _made_here = None, False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_default_agent)


# url -> (origin, path, query): services call a few URLs over and over.
_split_urls: dict[str, tuple[str, str, str]] = {}


def _split(url: Any) -> tuple[str, str, str]:
    got = _split_urls.get(url) if isinstance(url, str) else None
    if got is None:
        if not isinstance(url, str):
            raise InvalidArgumentError("invalid url: a string such as 'https://host/path'")
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise InvalidArgumentError(f"invalid url {url!r}: it must be an http(s) URL")
        got = (f"{u.scheme}://{u.netloc}", u.path or "/", u.query)
        if len(_split_urls) >= 1024:
            _split_urls.clear()
        _split_urls[url] = got
    return got


def _route(url: Any, opts: dict[str, Any], default_method: str | None) -> Dispatcher:
    """Fills ``origin``, ``path`` (and ``method``) of ``opts`` from ``url``;
    returns the dispatcher to use."""
    dispatcher = opts.pop("dispatcher", None)
    if dispatcher is None:
        dispatcher = _global if _global is not None else get_global_dispatcher()
    elif not isinstance(dispatcher, Dispatcher):
        raise InvalidArgumentError("invalid dispatcher: it must be an undipy.Dispatcher")
    origin, path, query = _split(url)
    opts["origin"] = origin
    if opts.get("path") is None:
        if query:
            # The URL's query, then query=.
            extra = opts.pop("query", None)
            path += "?" + query + ("&" + encode_query(extra) if extra else "")
        opts["path"] = path
    if default_method is not None and opts.get("method") is None:
        opts["method"] = default_method if opts.get("body") is None else "PUT"
    return dispatcher


def request(url: str, callback: Any = None, **opts: Any) -> Any:
    """``request()`` to ``url`` (a full URL) through the global dispatcher,
    or ``dispatcher=``. The method defaults to ``PUT`` with a body and
    ``GET`` without; the other options are ``Dispatcher.request``'s."""
    d = _route(url, opts, "GET")
    if callback is None and type(d).request is Dispatcher.request:
        return _RequestCall(d, opts)  # type: ignore[arg-type]  # d.request(), without a re-pack
    return d.request(callback, **opts)


def stream(url: str, factory: api_stream.Factory, callback: Any = None, **opts: Any) -> Any:
    """``stream()`` to ``url``, as ``request()`` above."""
    return _route(url, opts, "GET").stream(factory, callback, **opts)


def pipeline(url: str, handler: api_pipeline.Handler, **opts: Any) -> api_pipeline.PipelineDuplex:
    """``pipeline()`` to ``url``, as ``request()`` above."""
    return _route(url, opts, "GET").pipeline(handler, **opts)


def upgrade(url: str, callback: Any = None, **opts: Any) -> Any:
    """``upgrade()`` to ``url``; the options are ``Dispatcher.upgrade``'s."""
    return _route(url, opts, None).upgrade(callback, **opts)


def connect(url: str, callback: Any = None, **opts: Any) -> Any:
    """``CONNECT`` through the origin of ``url``; ``path=`` is the target
    (``host:port``), by default the URL's own host and port."""
    if opts.get("path") is None:
        u = urlsplit(url) if isinstance(url, str) else None
        if u is not None and u.hostname:
            host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
            opts["path"] = f"{host}:{u.port or (443 if u.scheme == 'https' else 80)}"
    return _route(url, opts, None).connect(callback, **opts)
