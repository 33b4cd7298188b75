"""``ProxyAgent`` and ``EnvHttpProxyAgent``: requests through an HTTP proxy.

``http://`` targets go to the proxy in absolute form (``GET http://host/path``)
over one pool to the proxy; ``https://`` targets (and every target with
``proxy_tunnel=True``) go through a ``CONNECT`` tunnel per origin, opened by
the engine under an ordinary connection, with TLS to the target inside it,
so pipelining, keep-alive and the timeouts work through the tunnel."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, Unpack
from urllib.parse import unquote, urlsplit

from . import _tls
from ._api_common import header_name, header_pairs
from ._group import DispatcherGroup
from ._options import ClientOptions
from .agent import Agent
from .client import Pool, _origin
from .dispatcher import Dispatcher
from .errors import InvalidArgumentError

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class _TunnelPool(Pool):
    """A pool whose connections reach the origin through a CONNECT tunnel."""

    def __init__(self, origin: str, proxy: dict[str, Any], **opts: Any) -> None:
        self._proxy = proxy
        super().__init__(origin, **opts)

    def _engine_extras(self) -> dict[str, Any]:
        return {"proxy": self._proxy}


def _field(name: Any, value: Any) -> tuple[bytes, bytes]:
    """A header for the proxy, checked as request headers are."""
    n = name.encode("latin-1") if isinstance(name, str) else name
    v = value.encode("latin-1") if isinstance(value, str) else value
    if not isinstance(n, bytes) or not _TOKEN.match(n.decode("latin-1")):
        raise InvalidArgumentError(f"invalid proxy header name {name!r}")
    if not isinstance(v, bytes) or any(b in v for b in b"\r\n\0"):
        raise InvalidArgumentError(f"invalid proxy header value for {name!r}")
    return n, v


class ProxyAgent(DispatcherGroup):
    """Every request through the proxy at ``uri``.

    ``ProxyAgent(uri, token=None, headers=None, proxy_tls=None,
    request_tls=None, proxy_tunnel=None, **options)``: ``token`` is sent as
    ``proxy-authorization`` (credentials in ``uri`` become Basic auth);
    ``headers`` go to the proxy with every request (absolute form) or
    ``CONNECT``; ``proxy_tls`` is the ``tls=`` of an ``https://`` proxy,
    ``request_tls`` that of the ``https://`` targets; ``proxy_tunnel=True``
    tunnels ``http://`` targets too. ``options`` are ``Agent``'s."""

    def __init__(
        self,
        uri: str,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        proxy_tls: dict[str, Any] | None = None,
        request_tls: dict[str, Any] | None = None,
        proxy_tunnel: bool | None = None,
        **opts: Unpack[ClientOptions],
    ) -> None:
        super().__init__()
        if not isinstance(uri, str):
            raise InvalidArgumentError("invalid proxy uri: a string such as 'http://proxy:3128'")
        u = urlsplit(uri)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise InvalidArgumentError(f"invalid proxy uri {uri!r}")
        if proxy_tunnel is not None and not isinstance(proxy_tunnel, bool):
            raise InvalidArgumentError("invalid proxy_tunnel: True, False or None")
        if "tls" in opts:
            raise InvalidArgumentError("invalid tls: use proxy_tls and request_tls")
        fields = [_field(k, v) for k, v in (headers or {}).items()]
        has_auth = any(header_name(n) == "proxy-authorization" for n, _ in fields)
        if has_auth and (token or u.username):
            raise InvalidArgumentError("proxy-authorization given twice")
        if token is not None and u.username:
            raise InvalidArgumentError("give the proxy's credentials in uri or token, not both")
        if token is not None:
            fields.append(_field("proxy-authorization", token))
        elif u.username is not None:
            creds = f"{unquote(u.username)}:{unquote(u.password or '')}".encode()
            basic = "Basic " + base64.b64encode(creds).decode("ascii")
            fields.append(_field("proxy-authorization", basic))
        self._fields = fields
        proxy_origin, host, port, _ = _origin(f"{u.scheme}://{u.netloc.rpartition('@')[2]}")
        self._proxy: dict[str, Any] = {"host": host, "port": port, "headers": fields}
        if u.scheme == "https":
            self._proxy["tls"] = _tls.normalise(proxy_tls)
        self._tunnel_all = bool(proxy_tunnel)
        self._request_tls = request_tls
        agent_opts: dict[str, Any] = dict(opts)
        connections = agent_opts.pop("connections", None)
        max_origins = agent_opts.pop("max_origins", None)
        # http:// targets: one pool to the proxy; the others: a tunnel pool
        # per origin.
        self._forward = Pool(proxy_origin, connections, tls=proxy_tls, **agent_opts)
        self._tunnels = Agent(connections, max_origins, self._tunnel_pool, **agent_opts)
        self._adopt(self._forward)
        self._adopt(self._tunnels)

    def _tunnel_pool(self, origin: str, **opts: Any) -> Dispatcher:
        return _TunnelPool(origin, self._proxy, **dict(opts, tls=self._request_tls))

    # -- routing -------------------------------------------------------------

    def _target(self, opts: dict[str, Any]) -> tuple[Dispatcher, dict[str, Any]]:
        """The dispatcher for a request, and its options as sent there."""
        self._check_open()
        origin = opts.get("origin")
        if not isinstance(origin, str) or not origin:
            raise InvalidArgumentError("invalid origin: requests through a ProxyAgent need one")
        pairs = header_pairs(opts.get("headers"))
        if any(header_name(n) == "proxy-authorization" for n, _ in pairs):
            raise InvalidArgumentError(
                "proxy-authorization cannot be given per request: pass token= to ProxyAgent"
            )
        if not self._tunnel_all and origin.startswith("http:"):
            return self._forward, self._absolute(opts, origin, pairs)
        return self._tunnels, opts

    def _absolute(
        self, opts: dict[str, Any], origin: str, pairs: list[tuple[Any, Any]]
    ) -> dict[str, Any]:
        """``opts`` for the proxy: the target in absolute form, its host."""
        target, _, _, host = _origin(origin)
        path = opts.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidArgumentError("invalid path: it must start with a slash")
        if not any(header_name(n) == "host" for n, _ in pairs):
            pairs.append(("host", host))
        pairs.extend(self._fields)
        return dict(opts, path=target + path, headers=pairs)

    def _children(self) -> Iterable[Dispatcher]:
        return [self._forward, self._tunnels]


def _env(name: str) -> str | None:
    """``name`` from the environment, lower case winning over upper case."""
    value = os.environ.get(name.lower())
    return value if value is not None else os.environ.get(name.upper())


class _NoProxy:
    """undici's ``no_proxy`` rules: ``*``; ``host`` exactly; ``.domain`` or
    ``*.domain`` by suffix; each optionally with ``:port``."""

    def __init__(self, value: str) -> None:
        self.everything = value.strip() == "*"
        self.entries: list[tuple[str, int]] = []
        for entry in re.split(r"[,\s]", value):
            if not entry:
                continue
            m = re.fullmatch(r"(.+):(\d+)", entry)
            host, port = (m.group(1), int(m.group(2))) if m else (entry, 0)
            self.entries.append((host.lower().strip("[]"), port))

    def bypasses(self, host: str, port: int) -> bool:
        if self.everything:
            return True
        for entry, entry_port in self.entries:
            if entry_port and entry_port != port:
                continue
            if entry[0] in ".*":
                if host.endswith(entry.lstrip("*")):
                    return True
            elif host == entry:
                return True
        return False


class EnvHttpProxyAgent(DispatcherGroup):
    """A ``ProxyAgent`` or a plain ``Agent`` per request, from the arguments
    or the environment: ``http_proxy``, ``https_proxy`` (default: the http
    proxy), ``no_proxy`` (lower case wins over upper case).

    ``EnvHttpProxyAgent(http_proxy=None, https_proxy=None, no_proxy=None,
    **options)``; ``options`` go to every agent made (``tls=`` or
    ``request_tls=`` is the targets', ``proxy_tls``, ``proxy_tunnel`` and
    ``token`` the proxies')."""

    def __init__(
        self,
        http_proxy: str | None = None,
        https_proxy: str | None = None,
        no_proxy: str | None = None,
        **opts: Any,
    ) -> None:
        super().__init__()
        http_uri = http_proxy if http_proxy is not None else _env("http_proxy")
        https_uri = https_proxy if https_proxy is not None else _env("https_proxy")
        rules = no_proxy if no_proxy is not None else _env("no_proxy") or ""
        if not isinstance(rules, str):
            raise InvalidArgumentError("invalid no_proxy: a string")
        self._no_proxy = _NoProxy(rules)
        # tls= (or request_tls=) is the targets'; the proxies' own options
        # go to the ProxyAgents only.
        tls = opts.pop("tls", None)
        proxied: dict[str, Any] = {
            k: opts.pop(k) for k in ("proxy_tls", "proxy_tunnel", "token") if k in opts
        }
        proxied["request_tls"] = opts.pop("request_tls", tls)
        self._direct: Dispatcher = Agent(tls=proxied["request_tls"], **opts)
        self._http: Dispatcher = (
            ProxyAgent(http_uri, **proxied, **opts) if http_uri else self._direct
        )
        self._https: Dispatcher = (
            ProxyAgent(https_uri, **proxied, **opts) if https_uri else self._http
        )
        for d in self._children():
            self._adopt(d)

    def _target(self, opts: dict[str, Any]) -> tuple[Dispatcher, dict[str, Any]]:
        return self._pick(opts), opts

    def _pick(self, opts: Mapping[str, Any]) -> Dispatcher:
        self._check_open()
        origin = opts.get("origin")
        if not isinstance(origin, str) or not origin:
            raise InvalidArgumentError("invalid origin: requests need one")
        _, host, port, _ = _origin(origin)
        if self._no_proxy.bypasses(host.lower(), port):
            return self._direct
        return self._https if origin.startswith("https:") else self._http

    def _children(self) -> Iterable[Dispatcher]:
        return list(dict.fromkeys([self._direct, self._http, self._https]))
