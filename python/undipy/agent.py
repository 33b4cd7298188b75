"""``Agent``: one dispatcher per origin, made on first use. Requests carry
``origin=``; the agent routes each to that origin's ``Pool`` (a ``Client``
when ``connections=1``), or to what ``factory`` builds.

A plain ``Agent`` hands ``request()`` and ``stream()`` straight to the
origin's dispatcher, so they stay on the engine's native path; an agent
whose ``dispatch()`` a subclass overrides runs them through it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Unpack

from ._group import DispatcherGroup, ignore
from ._options import ClientOptions
from ._tls import normalise
from .client import Client, Pool, _is_int, _options, _origin
from .dispatcher import Dispatcher
from .errors import InvalidArgumentError, MaxOriginsReachedError

Factory = Callable[..., Dispatcher]
"""``factory(origin, **options)``: the dispatcher of one origin."""


def _default_factory(origin: str, **opts: Any) -> Dispatcher:
    connections = opts.pop("connections", None)
    if connections == 1:
        return Client(origin, **opts)
    return Pool(origin, connections, **opts)


class Agent(DispatcherGroup):
    """Many origins through one object: a ``Pool`` per origin (a ``Client``
    when ``connections=1``), made on first use with the agent's options.

    ``Agent(connections=None, max_origins=None, factory=None, **options)``;
    ``options`` are ``Client``'s (``tls=`` included). Every request names its
    ``origin=``; an ``https`` request may also name the TLS ``server_name``
    (as the ``dns`` interceptor does: the origin is then an address), which
    gets a pool of its own. ``factory(origin, **options)`` builds the dispatcher of an
    origin instead of ``Pool``. Past ``max_origins`` origins at once:
    ``MaxOriginsReachedError``. An origin is dropped once its last
    connection closes and nothing is queued for it."""

    def __init__(
        self,
        connections: int | None = None,
        max_origins: int | None = None,
        factory: Factory | None = None,
        **opts: Unpack[ClientOptions],
    ) -> None:
        super().__init__()
        if connections is not None and not _is_int(connections, 1):
            raise InvalidArgumentError("invalid connections")
        if max_origins is not None and not _is_int(max_origins, 1):
            raise InvalidArgumentError("invalid max_origins: a positive int or None")
        if factory is not None and not callable(factory):
            raise InvalidArgumentError("invalid factory: it must be callable")
        if factory is None:
            _options(opts)  # wrong options fail now, not at the first request
        self._opts: dict[str, Any] = {**opts, "connections": connections}
        self._max_origins = max_origins
        self._factory: Factory = factory or _default_factory
        # Origin as given -> its dispatcher, and canonical origin -> the same:
        # "http://a:80/" and "http://a" share one pool.
        self._by_given: dict[str, Dispatcher] = {}
        self._by_origin: dict[str, Dispatcher] = {}

    # -- routing -------------------------------------------------------------

    def _for(self, origin: Any, server_name: Any = None) -> Dispatcher:
        """The dispatcher of ``origin`` (and TLS ``server_name``), made on
        first use."""
        given = origin if server_name is None else f"{origin} {server_name}"
        d = self._by_given.get(given) if isinstance(origin, str) else None
        if d is not None:
            return d
        self._check_open()
        if not isinstance(origin, str) or not origin:
            raise InvalidArgumentError("invalid origin: requests through an Agent need origin=")
        if server_name is not None and (not isinstance(server_name, str) or not server_name):
            raise InvalidArgumentError("invalid server_name: a host name")
        origin_key = _origin(origin)[0]
        if not origin_key.startswith("https:"):
            server_name = None  # no TLS: one pool whatever the name
        key = origin_key if server_name is None else f"{origin_key} ({server_name})"
        d = self._by_origin.get(key)
        if d is None:
            if self._max_origins is not None and len(self._by_origin) >= self._max_origins:
                raise MaxOriginsReachedError()
            d = self._make(key, origin_key, server_name)
        self._by_given[given] = d
        return d

    def _make(self, key: str, origin: str, server_name: str | None) -> Dispatcher:
        opts = self._opts
        if server_name is not None:
            opts = {**opts, "tls": {**normalise(opts.get("tls")), "server_name": server_name}}
        d = self._factory(origin, **opts)

        def after(name: str, error: Any) -> None:
            if name == "disconnect":
                self._drop_if_idle(key, d)

        self._adopt(d, after)
        self._by_origin[key] = d
        return d

    def _drop_if_idle(self, key: str, d: Dispatcher) -> None:
        """After a disconnect: an origin with no connection and no work goes."""
        stats = getattr(d, "stats", None)
        if stats is None or stats.connected or stats.size:
            return
        if self._by_origin.get(key) is not d or self.closed:
            return
        del self._by_origin[key]
        for given in [g for g, v in self._by_given.items() if v is d]:
            del self._by_given[given]
        d.close(ignore)

    # -- the dispatcher ------------------------------------------------------

    def _target(self, opts: dict[str, Any]) -> tuple[Dispatcher, dict[str, Any]]:
        return self._for(opts.get("origin"), opts.pop("server_name", None)), opts

    @property
    def stats(self) -> dict[str, Any]:
        """Origin -> its dispatcher's ``stats`` (a ``PoolStats`` by default)."""
        return {o: d.stats for o, d in self._by_origin.items() if hasattr(d, "stats")}

    def _children(self) -> Iterable[Dispatcher]:
        return list(self._by_origin.values())
