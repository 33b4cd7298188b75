"""A forward HTTP proxy for undipy's tests, recording what it was asked to do.

``TestProxy`` speaks the two forward-proxy dialects a client uses (RFC 9110 §9.3.6,
RFC 9112 §3.2.2):

* ``CONNECT host:port``: open a TCP connection to the target, answer ``200``, then copy
  bytes both ways (a tunnel, typically carrying TLS) until both sides have closed.
* absolute-form requests (``GET http://host:port/path HTTP/1.1``): forward each one in
  origin-form over an upstream connection (kept alive while both ends allow it) and relay
  the response byte for byte. Requests on one client connection are handled one at a time,
  so pipelined requests are answered in order.

It only connects to loopback targets (anything else gets ``403``), can require an exact
``Proxy-Authorization`` value (``407`` otherwise) and can refuse every CONNECT. It runs in
the test's event loop like the servers of ``servers.py``; every wait is bounded.

Not supported, on purpose: ``https://`` absolute-form targets, ``Expect: 100-continue``
(the request body is forwarded before the response is read) and HTTP/2.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import ipaddress
import re
import ssl
import subprocess
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, TypeVar
from urllib.parse import urlsplit

__all__ = ["ProxyProcess", "Seen", "TestProxy"]

CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection to a target."""

IDLE_TIMEOUT = 30.0
"""Default seconds any read or write may wait for the peer before the connection is dropped."""

MAX_HEAD = 64 * 1024
"""Longest request or response head accepted (431 / dropped beyond)."""

_CLEANUP_TIMEOUT = 2.0
_READ_SIZE = 65536
_CHUNKED = -1
"""Body framing: chunked transfer coding."""
_UNTIL_EOF = -2
"""Body framing: the body ends when the server closes (responses only)."""
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""A field name (RFC 9110 §5.6.2)."""
_LOOPBACK_NAMES = {"localhost"}
_HOP_BY_HOP_FOR_PROXY = {"proxy-authorization", "proxy-connection"}
"""Request headers meant for the proxy alone, never forwarded to the origin."""

T = TypeVar("T")


@dataclass
class Seen:
    """One request head the proxy received, in arrival order."""

    method: str
    target: str
    """The request target as sent: ``host:port`` for CONNECT, an absolute URI otherwise."""
    headers: list[tuple[str, str]]
    """Header fields in wire order, names as sent."""
    conn_id: int
    """0-based index of the client connection it arrived on."""


@dataclass(frozen=True)
class ProxyProcess:
    """A proxy running as a child process (what the ``tinyproxy`` fixture yields)."""

    origin: str
    """``http://127.0.0.1:PORT``, to give a client as its proxy."""
    port: int
    process: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path
    """The proxy's own log, worth reading when a test through it fails."""


# --------------------------------------------------------------------------- parsing


class _Reject(Exception):
    """Answer the client with ``status`` and close its connection."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _BadFraming(Exception):
    """A message body cannot be delimited; the connection cannot be reused or relayed."""


@dataclass
class _Head:
    """A parsed request or response head; ``raw`` is exactly what arrived."""

    start: list[str]
    """Request line (method, target, version) or status line (version, code, reason)."""
    headers: list[tuple[str, str]]
    raw: bytes

    def values(self, name: str) -> list[str]:
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]

    def tokens(self, name: str) -> set[str]:
        """Comma-separated tokens of every ``name`` field, lower-cased."""
        return {t.strip().lower() for v in self.values(name) for t in v.split(",")}


def _parse_head(raw: bytes, error_status: int) -> _Head:
    """Split ``raw`` (ending in CRLF CRLF) into a start line of three pieces and fields.

    A status line may lack its reason phrase. Unparsable: ``_Reject(error_status)``."""
    lines = raw[:-4].decode("latin-1").split("\r\n")
    start = lines[0].split(" ", 2)
    if len(start) == 2:
        start.append("")
    if len(start) != 3 or not all(start[:2]):
        raise _Reject(error_status)
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise _Reject(error_status)
        headers.append((name, value.strip(" \t")))
    return _Head(start, headers, raw)


def _body_framing(head: _Head) -> int:
    """Content-Length, or ``_CHUNKED``, for a body with explicit framing (RFC 9112 §6.3)."""
    if head.values("transfer-encoding"):
        if head.values("content-length") or head.tokens("transfer-encoding") != {"chunked"}:
            raise _BadFraming("unsupported Transfer-Encoding / Content-Length combination")
        return _CHUNKED
    lengths = {v.strip() for v in head.values("content-length")}
    if not lengths:
        return 0
    if len(lengths) != 1 or not (value := lengths.pop()).isdigit():
        raise _BadFraming(f"bad Content-Length {sorted(lengths)}")
    return int(value)


def _response_framing(method: str, status: int, head: _Head) -> int:
    if method == "HEAD" or status in (204, 304) or status < 200:
        return 0
    if not head.values("transfer-encoding") and not head.values("content-length"):
        return _UNTIL_EOF
    return _body_framing(head)


def _keeps_alive(head: _Head, version: str) -> bool:
    """Whether the sender of ``head`` keeps its connection open afterwards (RFC 9112 §9.3)."""
    tokens = head.tokens("connection")
    return "close" not in tokens and (version == "HTTP/1.1" or "keep-alive" in tokens)


def _split_authority(authority: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host without brackets, port)."""
    host, colon, port = authority.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _Reject(400)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _split_absolute(target: str) -> tuple[str, int, str]:
    """``http://host:port/path?query`` -> (host, port, origin-form ``/path?query``)."""
    url = urlsplit(target)
    try:
        port = url.port or 80
    except ValueError:  # not a number, or out of range
        raise _Reject(400) from None
    if url.scheme != "http" or not url.hostname:
        raise _Reject(400)  # origin-form, authority-form or an unsupported scheme
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    return url.hostname, port, path


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _encode_head(start_line: str, headers: list[tuple[str, str]]) -> bytes:
    fields = "".join(f"{n}: {v}\r\n" for n, v in headers)
    return f"{start_line}\r\n{fields}\r\n".encode("latin-1")


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Refused"


# --------------------------------------------------------------------------- byte copying


class _Out(Protocol):
    """Where a body is copied to: a StreamWriter, or ``_DISCARD``."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


class _Discard:
    """Swallows a request body the proxy refuses, so the next request can be read."""

    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass


_DISCARD = _Discard()


@dataclass
class _Upstream:
    """A connection from the proxy to one target."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def usable(self) -> bool:
        # A kept-alive connection the target has closed meanwhile must not be reused.
        return not self.reader.at_eof() and not self.writer.is_closing()


class TestProxy:
    """A forward HTTP/1.1 proxy on 127.0.0.1 for tests (see the module docstring).

    ``async with TestProxy() as proxy:`` then point a client at ``proxy.origin``.
    ``stop()`` closes every connection within bounded time and re-raises the proxy's own
    failures (bugs, never a peer's misbehaviour).
    """

    __test__ = False  # a helper, not a pytest test class

    def __init__(
        self,
        *,
        auth: str | None = None,
        refuse_connect: int | None = None,
        tls: ssl.SSLContext | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.auth = auth
        """Exact ``Proxy-Authorization`` value required (``407`` otherwise); None: no auth."""
        self.refuse_connect = refuse_connect
        """Answer every (authorized) CONNECT with this status and close."""
        self.tls = tls
        """Server context: the listener speaks TLS (``https://`` origin)."""
        self.idle_timeout = idle_timeout
        self.port = 0
        self.seen: list[Seen] = []
        """Every request head received, CONNECT or absolute-form or rejected."""
        self.connections = 0
        """Client connections accepted."""
        self.tunnels = 0
        """CONNECT tunnels established (``200`` sent)."""
        self.open_connections = 0
        """Client connections currently open."""
        self.errors: list[BaseException] = []
        """The proxy's own failures, re-raised by ``stop()``."""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._changed = asyncio.Event()

    @property
    def origin(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    # ----------------------------------------------------------------------- lifecycle

    async def start(self) -> Self:
        self._server = await asyncio.start_server(
            self._handle,
            "127.0.0.1",
            0,
            limit=MAX_HEAD,
            ssl=self.tls,
            ssl_handshake_timeout=CONNECT_TIMEOUT if self.tls else None,
            ssl_shutdown_timeout=_CLEANUP_TIMEOUT if self.tls else None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close the listener and every connection (bounded), then raise recorded failures.

        Only the first call does anything."""
        if self._stopping:
            return
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()  # each connection task aborts its own sockets as it ends
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=_CLEANUP_TIMEOUT)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLEANUP_TIMEOUT):
                    await self._server.wait_closed()
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise BaseExceptionGroup("TestProxy failed", list(self.errors))

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def wait_idle(self, timeout: float = _CLEANUP_TIMEOUT) -> None:
        """Wait until no client connection is open (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout):
            while self.open_connections:
                await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # ----------------------------------------------------------------------- connections

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn_id = self.connections
        self.connections += 1
        self.open_connections += 1
        self._notify()
        upstreams: dict[tuple[str, int], _Upstream] = {}
        try:
            await self._serve(conn_id, reader, writer, upstreams)
        except (OSError, EOFError, _BadFraming, asyncio.CancelledError):
            pass  # the peer went away, sent garbage or stop() cancelled: just drop it
        except Exception as exc:
            self.errors.append(exc)
        finally:
            for upstream in upstreams.values():
                upstream.writer.transport.abort()
            writer.transport.abort()  # no-op once closed gracefully
            self.open_connections -= 1
            self._tasks.discard(task)
            self._notify()

    async def _serve(
        self,
        conn_id: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstreams: dict[tuple[str, int], _Upstream],
    ) -> None:
        """Answer request after request on one client connection until one ends it."""
        while True:
            try:
                head = await self._read_request_head(reader)
                if head is None:
                    return
                self.seen.append(Seen(head.start[0], head.start[1], head.headers, conn_id))
                if head.start[0] == "CONNECT":
                    await self._connect(head, reader, writer)
                    return
                if not await self._forward(head, reader, writer, upstreams):
                    await self._close_gracefully(reader, writer)
                    return
            except _Reject as rejected:
                await self._answer(writer, rejected.status, close=True)
                await self._close_gracefully(reader, writer)
                return

    async def _read_request_head(self, reader: asyncio.StreamReader) -> _Head | None:
        """The next request head, or None if the client closed or idled between requests."""
        try:
            raw = await self._bounded(reader.readuntil(b"\r\n\r\n"))
        except (asyncio.IncompleteReadError, TimeoutError):
            return None
        except asyncio.LimitOverrunError:
            raise _Reject(431) from None
        head = _parse_head(raw, 400)
        if not head.start[2].startswith("HTTP/1."):
            raise _Reject(400)
        return head

    def _authorized(self, head: _Head) -> bool:
        return self.auth is None or head.values("proxy-authorization") == [self.auth]

    async def _answer(
        self, writer: asyncio.StreamWriter, status: int, *, close: bool = False
    ) -> None:
        """Send the proxy's own empty response."""
        headers = [("Content-Length", "0")]
        if status == 407:
            headers.append(("Proxy-Authenticate", 'Basic realm="test"'))
        if close:
            headers.append(("Connection", "close"))
        writer.write(_encode_head(f"HTTP/1.1 {status} {_reason(status)}", headers))
        await self._bounded(writer.drain())

    async def _close_gracefully(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Half-close, then read until the client closes too (bounded), then close.

        Closing with unread input makes the kernel send RST, which can destroy the last
        response at the client before it is read (e.g. behind pipelined requests)."""
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(_CLEANUP_TIMEOUT):
                await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()
                    while await reader.read(_READ_SIZE):
                        pass
                writer.close()
                await writer.wait_closed()

    async def _bounded(self, aw: Awaitable[T]) -> T:
        """Await one step that depends on a peer, for at most ``idle_timeout`` seconds."""
        async with asyncio.timeout(self.idle_timeout):
            return await aw

    async def _open(self, host: str, port: int) -> _Upstream:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEAD)
        except OSError:  # refused, unreachable, or TimeoutError
            raise _Reject(502) from None
        return _Upstream(reader, writer)

    # ----------------------------------------------------------------------- CONNECT

    async def _connect(
        self, head: _Head, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Check, open the tunnel, then copy bytes both ways until it ends."""
        if not self._authorized(head):
            raise _Reject(407)
        if self.refuse_connect is not None:
            raise _Reject(self.refuse_connect)
        host, port = _split_authority(head.start[1])
        if not _is_loopback(host):
            raise _Reject(403)
        upstream = await self._open(host, port)
        try:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await self._bounded(writer.drain())
            self.tunnels += 1
            self._notify()
            await self._tunnel(reader, writer, upstream)
        finally:
            upstream.writer.transport.abort()

    async def _tunnel(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: _Upstream
    ) -> None:
        """Copy both ways; each side's close is passed on as a half-close, and the tunnel
        ends once both directions ended (or either failed, idled or cannot half-close)."""
        try:
            async with asyncio.TaskGroup() as pumps:  # one failing cancels the other
                pumps.create_task(self._pump(reader, upstream.writer))
                pumps.create_task(self._pump(upstream.reader, writer))
        except* (OSError, EOFError):
            pass  # a reset, an idle timeout or a TLS side: the tunnel is over either way
        await _close(writer)
        await _close(upstream.writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await self._bounded(reader.read(_READ_SIZE)):
            writer.write(data)
            await self._bounded(writer.drain())
        if not writer.can_write_eof():  # TLS cannot half-close: end the whole tunnel
            raise EOFError("peer closed and the other side cannot half-close")
        writer.write_eof()

    # ----------------------------------------------------------------------- absolute-form

    async def _forward(
        self,
        head: _Head,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstreams: dict[tuple[str, int], _Upstream],
    ) -> bool:
        """Forward one absolute-form request and relay its response.

        Returns whether the client connection stays open for another request. An upstream
        connection stays in ``upstreams`` while in use, so a failure still closes it."""
        method, target, version = head.start
        host, port, path = _split_absolute(target)
        try:
            request_framing = _body_framing(head)
        except _BadFraming:
            raise _Reject(400) from None
        status = self._refusal(head, host)
        if status is not None:
            await self._copy_body(reader, _DISCARD, request_framing)
            keep = _keeps_alive(head, version)
            await self._answer(writer, status, close=not keep)
            return keep
        key = (host, port)
        upstream = upstreams.get(key)
        if upstream is None or not upstream.usable():
            if upstream is not None:
                upstream.writer.transport.abort()
            upstream = upstreams[key] = await self._open(*key)
        upstream.writer.write(_encode_head(f"{method} {path} {version}", _origin_headers(head)))
        await self._copy_body(reader, upstream.writer, request_framing)
        reusable = await self._relay_response(method, upstream, reader, writer)
        if reusable and _keeps_alive(head, version):
            return True
        del upstreams[key]
        await _close(upstream.writer)
        return False

    def _refusal(self, head: _Head, host: str) -> int | None:
        """The proxy's own answer to an absolute-form request, or None to forward it."""
        if not self._authorized(head):
            return 407
        if not _is_loopback(host):
            return 403
        return None

    async def _relay_response(
        self,
        method: str,
        upstream: _Upstream,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Relay interim responses, then the final one, unchanged; returns whether the
        upstream connection (and so the client's) can carry another request."""
        while True:
            try:
                raw = await self._bounded(upstream.reader.readuntil(b"\r\n\r\n"))
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                raise _Reject(502) from None
            head = _parse_head(raw, 502)
            status = int(head.start[1]) if head.start[1].isdigit() else 0
            if status < 100:
                raise _Reject(502)
            if status >= 200:
                break
            writer.write(raw)
            if status == 101:  # switched protocols: from now on, just bytes both ways
                await self._tunnel(reader, writer, upstream)
                return False
        try:
            framing = _response_framing(method, status, head)
        except _BadFraming:
            raise _Reject(502) from None
        writer.write(raw)
        await self._copy_body(upstream.reader, writer, framing)
        return framing != _UNTIL_EOF and _keeps_alive(head, head.start[0])

    async def _copy_body(self, reader: asyncio.StreamReader, out: _Out, framing: int) -> None:
        if framing == _CHUNKED:
            await self._copy_chunked(reader, out)
        elif framing == _UNTIL_EOF:
            while data := await self._bounded(reader.read(_READ_SIZE)):
                out.write(data)
                await self._bounded(out.drain())
        else:
            await self._copy_exact(reader, out, framing)

    async def _copy_exact(self, reader: asyncio.StreamReader, out: _Out, n: int) -> None:
        while n > 0:
            data = await self._bounded(reader.read(min(n, _READ_SIZE)))
            if not data:
                raise EOFError(f"connection closed {n} bytes before the end of a body")
            out.write(data)
            await self._bounded(out.drain())
            n -= len(data)

    async def _copy_chunked(self, reader: asyncio.StreamReader, out: _Out) -> None:
        """Copy a chunked body as-is: chunks, last-chunk, trailer section."""
        while True:
            line = await self._read_line(reader)
            out.write(line)
            size_field = line.split(b";", 1)[0].strip()
            try:
                size = int(size_field, 16)
            except ValueError:
                raise _BadFraming(f"bad chunk size line {line[:100]!r}") from None
            if size == 0:
                break
            await self._copy_exact(reader, out, size + 2)  # data and its CRLF
        while (line := await self._read_line(reader)) != b"\r\n":
            out.write(line)
        out.write(line)
        await self._bounded(out.drain())

    async def _read_line(self, reader: asyncio.StreamReader) -> bytes:
        try:
            return await self._bounded(reader.readuntil(b"\r\n"))
        except asyncio.LimitOverrunError:
            raise _BadFraming("line too long in a chunked body") from None


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close gracefully (FIN, or TLS close_notify); abort if that takes too long."""
    writer.close()
    try:
        async with asyncio.timeout(_CLEANUP_TIMEOUT):
            await writer.wait_closed()
    except OSError:  # includes TimeoutError
        writer.transport.abort()


def _origin_headers(head: _Head) -> list[tuple[str, str]]:
    """The request's fields for the origin: the proxy's own removed, Host ensured."""
    headers = [(n, v) for n, v in head.headers if n.lower() not in _HOP_BY_HOP_FOR_PROXY]
    if not head.values("host"):
        headers.insert(0, ("Host", urlsplit(head.start[1]).netloc))
    return headers
