"""The ``dns`` interceptor: each host name looked up once per ``max_ttl``
and its requests rotated over the addresses found, as undici's.

It acts on requests that carry ``origin=`` (those through an ``Agent``): the
origin becomes the address picked (``http://[::1]:8080``), the ``host``
header keeps the name, and for ``https`` the dispatch option ``server_name``
keeps the name as SNI and as the name the certificate must cover (an
``Agent`` makes one pool per address and name). A ``Client`` or ``Pool``
serves one origin: under them it changes nothing. An origin that is an IP
address is left alone.

With ``dual_stack`` the picks alternate between IPv4 and IPv6 addresses
(round robin within each); without it only the ``affinity`` family is
looked up. A connection refused or timed out tries the host's next address
(each address once per request); a name that is not found is forgotten.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import SplitResult, urlsplit

from .._api_common import header_name, header_pairs
from ..dispatcher import DispatchFn, Interceptor
from ..errors import InvalidArgumentError, RequestAbortedError, SocketError
from ..handler import DecoratorHandler, Handler
from .retry import error_codes_of

Lookup = Callable[[str, int], Awaitable[Iterable[tuple[str, int]]]]
"""``lookup(hostname, family) -> [(address, family), ...]``; ``family`` is
4, 6, or 0 for both."""

_NEXT_ADDRESS = frozenset({"ECONNREFUSED", "ETIMEDOUT"})


async def _getaddrinfo(host: str, family: int) -> list[tuple[str, int]]:
    af = {0: socket.AF_UNSPEC, 4: socket.AF_INET, 6: socket.AF_INET6}[family]
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, None, family=af, type=socket.SOCK_STREAM
    )
    return [(str(info[4][0]), 6 if info[0] == socket.AF_INET6 else 4) for info in infos]


class _Host:
    """One host's addresses by family, and where the rotation stands."""

    __slots__ = ("families", "turn", "expires")

    def __init__(self, addresses: Iterable[tuple[str, int]], ttl: float) -> None:
        self.families: dict[int, list[str]] = {4: [], 6: []}
        for address, family in addresses:
            listed = self.families.get(family)
            if listed is not None and address not in listed:
                listed.append(address)
        self.turn = 0
        self.expires = time.monotonic() + ttl

    def count(self) -> int:
        return len(self.families[4]) + len(self.families[6])

    def pick(self, order: tuple[int, ...]) -> str:
        """The next address: families taken in turn (as ``order`` allows),
        round robin within each."""
        usable = [f for f in order if self.families[f]]
        family = usable[self.turn % len(usable)]
        addresses = self.families[family]
        address = addresses[(self.turn // len(usable)) % len(addresses)]
        self.turn += 1
        return address


class _Resolver:
    """The cache one ``dns()`` interceptor keeps across its requests."""

    def __init__(
        self, max_ttl: float, max_items: int | None, dual_stack: bool, affinity: int, lookup: Lookup
    ) -> None:
        self.max_ttl = max_ttl
        self.max_items = max_items
        # The families picked from, in turn: both, or the affinity alone.
        self.order = (4, 6) if dual_stack else (affinity,)
        self.lookup = lookup
        self.hosts: dict[str, _Host] = {}

    def cached(self, host: str) -> _Host | None:
        entry = self.hosts.get(host)
        if entry is not None and (time.monotonic() >= entry.expires or not entry.count()):
            del self.hosts[host]
            return None
        return entry

    def full(self) -> bool:
        return self.max_items is not None and len(self.hosts) >= self.max_items

    async def resolve(self, host: str) -> _Host:
        found = await self.lookup(host, 0 if len(self.order) > 1 else self.order[0])
        entry = _Host(found, self.max_ttl)
        if not any(entry.families[f] for f in self.order):
            raise SocketError(f"failed to lookup address information: no address for {host}")
        if not self.full() or host in self.hosts:
            self.hosts[host] = entry
        return entry


class _DnsHandler(DecoratorHandler):
    """One request: sent to an address of its host, and to the next one
    when that refuses or times out."""

    def __init__(
        self,
        handler: Handler,
        dispatch: DispatchFn,
        opts: dict[str, Any],
        url: SplitResult,
        resolver: _Resolver,
    ) -> None:
        super().__init__(handler)
        self._dispatch = dispatch
        self._opts = opts
        self._url = url
        self._host = url.hostname or ""
        self._resolver = resolver
        self._tried: list[str] = []
        self._lookup: asyncio.Task[None] | None = None
        self._head_sent = False

    def start(self) -> bool:
        entry = self._resolver.cached(self._host)
        if entry is not None:
            return self._send(entry)
        # The lookup takes a while: the caller can abort it meanwhile.
        super().on_connect(self._abort_lookup, {})
        self._lookup = asyncio.get_running_loop().create_task(self._resolve())
        return True

    async def _resolve(self) -> None:
        try:
            entry = await self._resolver.resolve(self._host)
        except asyncio.CancelledError:
            return
        except Exception as exc:
            self._lookup = None  # ended: an abort now has nothing to stop
            error = exc if isinstance(exc, SocketError) else _lookup_error(self._host, exc)
            super().on_error(error)
            return
        self._lookup = None
        try:
            self._send(entry)
        except Exception as exc:
            super().on_error(exc)

    def _abort_lookup(self, error: BaseException | None = None) -> None:
        if self._lookup is not None:  # still looking up (else the engine aborts)
            self._lookup.cancel()
            self._lookup = None
            super().on_error(error if error is not None else RequestAbortedError())

    def _send(self, entry: _Host) -> bool:
        address = entry.pick(self._resolver.order)
        self._tried.append(address)
        u = self._url
        shown = f"[{address}]" if ":" in address else address
        port = f":{u.port}" if u.port is not None else ""
        opts = dict(self._opts, origin=f"{u.scheme}://{shown}{port}")
        headers = header_pairs(opts.get("headers"))
        if not any(header_name(n) == "host" for n, _ in headers):
            opts["headers"] = [*headers, ("host", _host_header(u))]
        if u.scheme == "https":
            opts["server_name"] = self._host
        return bool(self._dispatch(self, **opts))

    def on_headers(
        self, status_code: int, headers: list[bytes], resume: Callable[[], None], status_text: str
    ) -> object:
        if status_code >= 200:
            self._head_sent = True
        return super().on_headers(status_code, headers, resume, status_text)

    def on_error(self, error: BaseException) -> object:
        codes = error_codes_of(error)
        resolver = self._resolver
        if "ENOTFOUND" in codes:
            resolver.hosts.pop(self._host, None)
        elif codes & _NEXT_ADDRESS and not self._head_sent and len(resolver.order) > 1:
            entry = resolver.cached(self._host)
            if entry is not None and len(self._tried) < entry.count():
                try:
                    self._send(entry)
                    return None
                except Exception as exc:
                    error = exc
        return super().on_error(error)


def _host_header(u: SplitResult) -> str:
    host = u.hostname or ""
    shown = f"[{host}]" if ":" in host else host
    return shown if u.port is None else f"{shown}:{u.port}"


def _lookup_error(host: str, exc: BaseException) -> SocketError:
    error = SocketError(f"failed to lookup address information for {host}: {exc}")
    error.__cause__ = exc
    return error


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def dns(
    max_ttl: float | None = None,
    max_items: int | None = None,
    dual_stack: bool = True,
    affinity: int | None = None,
    lookup: Lookup | None = None,
) -> Interceptor:
    """Caches each host's addresses for ``max_ttl`` seconds (10 by default)
    and rotates its requests over them; at most ``max_items`` hosts (past
    that, new hosts are left to the connection's own lookup). ``dual_stack``
    alternates IPv4 and IPv6; without it only ``affinity`` (4 by default, or
    6) is used. ``lookup(hostname, family)`` replaces the system resolver
    (``loop.getaddrinfo``)."""
    if max_ttl is not None and (
        not isinstance(max_ttl, int | float) or isinstance(max_ttl, bool) or not max_ttl >= 0
    ):
        raise InvalidArgumentError("invalid max_ttl: seconds, 0 or more")
    if max_items is not None and (
        not isinstance(max_items, int) or isinstance(max_items, bool) or max_items < 1
    ):
        raise InvalidArgumentError("invalid max_items: an int, 1 or more")
    if not isinstance(dual_stack, bool):
        raise InvalidArgumentError("invalid dual_stack: a bool")
    if affinity not in (None, 4, 6):
        raise InvalidArgumentError("invalid affinity: 4 or 6")
    if lookup is not None and not callable(lookup):
        raise InvalidArgumentError("invalid lookup: a callable")
    resolver = _Resolver(
        10.0 if max_ttl is None else float(max_ttl),
        max_items,
        dual_stack,
        affinity or 4,
        lookup or _getaddrinfo,
    )

    def interceptor(dispatch: DispatchFn) -> DispatchFn:
        def dns_dispatch(handler: Handler, **opts: Any) -> bool:
            origin = opts.get("origin")
            if not isinstance(origin, str):
                return dispatch(handler, **opts)
            url = urlsplit(origin)
            host = url.hostname
            if url.scheme not in ("http", "https") or not host or _is_ip(host):
                return dispatch(handler, **opts)
            if resolver.full() and resolver.cached(host) is None:
                return dispatch(handler, **opts)
            return _DnsHandler(handler, dispatch, opts, url, resolver).start()

        return dns_dispatch

    return interceptor
