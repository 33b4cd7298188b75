"""Byte-exact HTTP/1.1 servers for undipy's tests.

The client under test is a Rust core whose bugs show up as bytes on the wire, so these
servers are written directly on asyncio streams (no HTTP framework): every byte sent and
received is ours to script and to inspect.

* ``HttpServer`` is a small *correct* HTTP/1.1 origin (keep-alive, pipelining, chunked
  request bodies) with routes, for tests of the happy path and of connection reuse.
* ``RawServer`` runs a script per accepted connection, for tests of exact framing,
  misbehaving servers, resets and timing.

Both run in the test's own event loop: the client does its I/O on its own thread, so the
loop is free to serve. Both only listen on loopback addresses or Unix sockets, and every
wait is bounded so a broken client makes a test fail instead of hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import os
import re
import socket
import ssl
import stat
import struct
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_RAW_REQUEST",
    "Handler",
    "HttpProtocolError",
    "HttpServer",
    "RawConn",
    "RawServer",
    "Request",
    "Response",
    "Script",
    "chunked",
    "hello_script",
    "raise_errors",
    "response",
]

DEFAULT_TIMEOUT = 2.0
"""Default bound, in seconds, for every wait that depends on the client doing something."""

MAX_RAW_REQUEST = 1 << 20
"""``RawConn`` gives up framing a request past this many bytes (1 MiB)."""

MAX_LINE = 64 * 1024
"""Longest request line, header line or chunk-size line accepted."""

_CLEANUP_TIMEOUT = 2.0
_COLLECT_WINDOW = 0.01
_READ_SIZE = 65536

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_VERSION = re.compile(rb"HTTP/1\.[01]")
_BAD_VALUE_CHARS = re.compile(rb"[\r\n\x00]")
_HEX_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_DECIMAL = re.compile(r"[0-9]{1,18}")


# --------------------------------------------------------------------------- helpers


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _has_header(headers: Iterable[tuple[str, str]], name: str) -> bool:
    name = name.lower()
    return any(n.lower() == name for n, _ in headers)


def _encode_fields(headers: Iterable[tuple[str, str]]) -> bytes:
    return b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in headers)


def response(
    status: int = 200,
    body: bytes = b"",
    headers: Iterable[tuple[str, str]] = (),
    reason: str | None = None,
) -> bytes:
    """Build exact response bytes for ``RawConn.send``.

    ``Content-Length`` is added unless ``headers`` already frame the body (a
    ``Content-Length`` or ``Transfer-Encoding`` of their own), so a test can also build
    deliberately wrong framing. ``reason`` defaults to the standard phrase ("OK" for 200).
    """
    fields = list(headers)
    if not (_has_header(fields, "content-length") or _has_header(fields, "transfer-encoding")):
        fields.append(("Content-Length", str(len(body))))
    phrase = _reason(status) if reason is None else reason
    head = f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1") + _encode_fields(fields)
    return head + b"\r\n" + body


def chunked(*chunks: bytes, trailers: Iterable[tuple[str, str]] = ()) -> bytes:
    """Encode ``chunks`` as a chunked body, last-chunk and trailer section included.

    Empty chunks are skipped: on the wire an empty chunk would end the body early.
    """
    out = bytearray()
    for chunk in chunks:
        if chunk:
            out += b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    return bytes(out + b"0\r\n" + _encode_fields(trailers) + b"\r\n")


# --------------------------------------------------------------------------- framing


class HttpProtocolError(ValueError):
    """The received bytes cannot be framed as an HTTP/1.1 request."""


class _CleanEOF(Exception):
    """The peer closed before sending any byte of a next request (not an error)."""


class _Source(Protocol):
    """Where the request framer pulls bytes from; both raise IncompleteReadError at EOF."""

    async def read_line(self, limit: int) -> bytes: ...

    async def read_exact(self, n: int) -> bytes: ...


@dataclass
class _Message:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    trailers: list[tuple[str, str]]
    body: bytes
    raw: bytes


def _parse_request_line(line: bytes) -> tuple[str, str, str]:
    parts = line.split(b" ")
    if len(parts) != 3:
        raise HttpProtocolError(f"malformed request line {line[:200]!r}")
    method, target, version = parts
    if not _TOKEN.fullmatch(method) or not _TARGET.fullmatch(target):
        raise HttpProtocolError(f"malformed request line {line[:200]!r}")
    if not _VERSION.fullmatch(version):
        raise HttpProtocolError(f"unsupported HTTP version {version[:20]!r}")
    return method.decode("ascii"), target.decode("ascii"), version.decode("ascii")


def _parse_field(line: bytes) -> tuple[str, str]:
    if line[:1] in (b" ", b"\t"):
        raise HttpProtocolError("obsolete line folding in header section")
    name, colon, value = line.partition(b":")
    value = value.strip(b" \t")
    if not colon or not _TOKEN.fullmatch(name) or _BAD_VALUE_CHARS.search(value):
        raise HttpProtocolError(f"malformed header line {line[:200]!r}")
    return name.decode("ascii"), value.decode("latin-1")


def _body_length(headers: list[tuple[str, str]]) -> int | None:
    """Return the Content-Length to read, or None for a chunked body (RFC 9112 §6.3)."""
    te = [v for n, v in headers if n.lower() == "transfer-encoding"]
    cl = [v for n, v in headers if n.lower() == "content-length"]
    if te:
        if cl:
            raise HttpProtocolError("both Transfer-Encoding and Content-Length")
        codings = [c.strip().lower() for v in te for c in v.split(",")]
        if codings != ["chunked"]:
            raise HttpProtocolError(f"unsupported Transfer-Encoding {codings}")
        return None
    values = {c.strip() for v in cl for c in v.split(",")}
    if not values:
        return 0
    if len(values) != 1:
        raise HttpProtocolError(f"conflicting Content-Length values {sorted(values)}")
    (value,) = values
    if not _DECIMAL.fullmatch(value):
        raise HttpProtocolError(f"invalid Content-Length {value!r}")
    return int(value)


class _Framer:
    """Reads one request from a source, decoding it and keeping its exact bytes."""

    def __init__(self, source: _Source, max_size: int) -> None:
        self.source = source
        self.max_size = max_size
        self.raw = bytearray()

    def _account(self, data: bytes) -> bytes:
        self.raw += data
        if len(self.raw) > self.max_size:
            raise HttpProtocolError(f"request larger than {self.max_size} bytes")
        return data

    async def line(self) -> bytes:
        """One CRLF-terminated line without its CRLF; a bare LF is a client bug."""
        limit = min(MAX_LINE, self.max_size - len(self.raw))
        line = self._account(await self.source.read_line(limit))
        if not line.endswith(b"\r\n"):
            raise HttpProtocolError(f"line not terminated by CRLF: {line[:200]!r}")
        return line[:-2]

    async def exact(self, n: int) -> bytes:
        if len(self.raw) + n > self.max_size:
            raise HttpProtocolError(f"request larger than {self.max_size} bytes")
        return self._account(await self.source.read_exact(n))

    async def fields(self) -> list[tuple[str, str]]:
        out = []
        while line := await self.line():
            out.append(_parse_field(line))
        return out

    async def chunked_body(self) -> tuple[bytes, list[tuple[str, str]]]:
        body = bytearray()
        while True:
            line = await self.line()
            size = line.split(b";", 1)[0].strip(b" \t")
            if not _HEX_SIZE.fullmatch(size):
                raise HttpProtocolError(f"malformed chunk size line {line[:200]!r}")
            if (n := int(size, 16)) == 0:
                break
            body += await self.exact(n)
            if await self.exact(2) != b"\r\n":
                raise HttpProtocolError("chunk data not followed by CRLF")
        return bytes(body), await self.fields()

    async def message(self) -> _Message:
        line = await self.line()
        for _ in range(4):  # RFC 9112 §2.2: tolerate stray CRLFs before a request line
            if line:
                break
            line = await self.line()
        method, target, version = _parse_request_line(line)
        headers = await self.fields()
        length = _body_length(headers)
        trailers: list[tuple[str, str]] = []
        if length is None:
            body, trailers = await self.chunked_body()
        else:
            body = await self.exact(length)
        return _Message(method, target, version, headers, trailers, body, bytes(self.raw))


async def _read_message(source: _Source, max_size: int) -> _Message:
    """Frame one request; _CleanEOF if the peer closed between requests."""
    framer = _Framer(source, max_size)
    try:
        return await framer.message()
    except asyncio.IncompleteReadError as exc:
        partial = bytes(framer.raw) + exc.partial
        if not partial.strip(b"\r\n"):
            raise _CleanEOF from None
        raise asyncio.IncompleteReadError(partial, None) from None


class _StreamSource:
    """Framer source over a StreamReader that never reads past the request.

    Not over-reading matters: a handler that takes over ``req.reader`` (upgrade, CONNECT)
    must see every byte the client sent after the request head.
    """

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._peeked = b""

    async def wait_readable(self) -> bool:
        """Wait for the next byte without losing it; False at EOF."""
        if not self._peeked:
            self._peeked = await self._reader.read(1)
        return bool(self._peeked)

    def _take_peeked(self) -> bytes:
        data, self._peeked = self._peeked, b""
        return data

    async def read_line(self, limit: int) -> bytes:
        head = self._take_peeked()
        if head == b"\n":
            return head
        try:
            return head + await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise asyncio.IncompleteReadError(head + exc.partial, None) from None
        except asyncio.LimitOverrunError:
            raise HttpProtocolError(f"line longer than {MAX_LINE} bytes") from None

    async def read_exact(self, n: int) -> bytes:
        head = self._take_peeked()
        if len(head) > n:  # only when n == 0
            self._peeked = head
            return b""
        try:
            return head + await self._reader.readexactly(n - len(head))
        except asyncio.IncompleteReadError as exc:
            raise asyncio.IncompleteReadError(head + exc.partial, None) from None


# --------------------------------------------------------------------------- base server


def _set_nodelay(writer: asyncio.StreamWriter) -> None:
    """Small writes must leave at once so split/trickled sends reach the client split."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    """Flush and close (FIN); abort if the peer does not let the buffer drain in time."""
    if not writer.transport.is_closing():
        writer.close()
    try:
        async with asyncio.timeout(_CLEANUP_TIMEOUT):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        writer.transport.abort()


_PASS_THROUGH = (asyncio.CancelledError, KeyboardInterrupt, SystemExit)
"""Never recorded as a handler/script failure. Anything else is, including pytest's
outcome exceptions (``pytest.fail``, a failed ``pytest.raises``), which are BaseExceptions."""


def raise_errors(errors: Sequence[BaseException], what: str) -> None:
    """Raise the one failure as itself, several as an exception group, none: nothing."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise BaseExceptionGroup(f"{len(errors)} {what} failed", list(errors))


class _BaseServer:
    """Listening, connection bookkeeping and bounded teardown shared by both servers."""

    _what_fails = "connection handlers"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        unix_path: str | os.PathLike[str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.tls = tls
        """Serve TLS with this context (``https://`` origin)."""
        self.unix_path = os.fspath(unix_path) if unix_path is not None else None
        self.port = 0
        """TCP port once started (set it before to choose one); 0 for a Unix
        socket server."""
        self.connections = 0
        """Connections accepted so far."""
        self.open_connections = 0
        """Connections currently open (server side)."""
        self.closed = 0
        """Connections the server has finished with and closed."""
        self.errors: list[BaseException] = []
        """Handler/script failures, re-raised by ``stop()``."""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._stopping = False
        self._changed = asyncio.Event()

    @property
    def origin(self) -> str:
        """Origin for request URLs; for a Unix socket, a placeholder host."""
        if self.unix_path is not None:
            return "http://localhost"
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.origin + path

    async def start(self) -> Self:
        if self.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(os.stat(self.unix_path).st_mode):
                    os.unlink(self.unix_path)
            self._server = await asyncio.start_unix_server(
                self._handle, path=self.unix_path, limit=MAX_LINE, ssl=self.tls
            )
        else:
            self._server = await asyncio.start_server(
                self._handle, self.host, self.port, limit=MAX_LINE, ssl=self.tls
            )
            self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close everything within bounded time, then raise handler/script failures.

        Only the first call does anything, so a server stopped by a test can also be
        stopped by its fixture."""
        if self._stopping:
            return
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for _ in range(3):  # let freshly accepted connections reach _handle and see _stopping
            await asyncio.sleep(0)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=_CLEANUP_TIMEOUT)
        for writer in self._writers:
            writer.transport.abort()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLEANUP_TIMEOUT):
                    await self._server.wait_closed()
        if self.unix_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.unix_path)
        raise_errors(self.errors, self._what_fails)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_until(
        self, ready: Callable[[], bool], timeout: float, what: Callable[[], str]
    ) -> None:
        """Wait for ``ready()``, re-checked whenever the server's state changes."""
        try:
            async with asyncio.timeout(timeout):
                while not ready():
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what()}") from None

    async def wait_connections(self, n: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until at least ``n`` connections were accepted (TimeoutError otherwise)."""
        await self._wait_until(
            lambda: self.connections >= n,
            timeout,
            lambda: f"{n} connections (have {self.connections})",
        )

    async def wait_closed(self, n: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until at least ``n`` connections were closed by the server side."""
        await self._wait_until(
            lambda: self.closed >= n,
            timeout,
            lambda: f"{n} closed connections (have {self.closed})",
        )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        index = self.connections
        self.connections += 1
        self.open_connections += 1
        self._notify()
        try:
            with contextlib.suppress(asyncio.CancelledError):  # only stop() cancels these
                try:
                    _set_nodelay(writer)
                    await self._serve(index, reader, writer)
                except _PASS_THROUGH:
                    raise
                except BaseException as exc:
                    self.errors.append(exc)
                if not self._stopping:
                    await _close_writer(writer)
        finally:
            writer.transport.abort()  # no-op unless cancelled or stopping
            self.open_connections -= 1
            self.closed += 1
            self._tasks.discard(task)
            self._notify()

    async def _serve(
        self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------- HttpServer


@dataclass(eq=False)
class Request:
    """One request as received by ``HttpServer``."""

    method: str
    path: str
    """Raw request target, query included (or authority-form for CONNECT)."""
    version: str
    headers: list[tuple[str, str]]
    """Header fields in wire order, names as sent."""
    body: bytes
    """Body with Content-Length or chunked framing removed."""
    raw: bytes
    """Exact bytes of this request: head plus framed body."""
    conn_id: int
    """0-based index of the connection it arrived on."""
    reader: asyncio.StreamReader = field(repr=False)
    writer: asyncio.StreamWriter = field(repr=False)
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (case-insensitive), or None."""
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]


@dataclass
class Response:
    """What a handler returns; ``HttpServer`` adds framing and Connection headers.

    ``Content-Length`` is added unless ``chunked`` or given in ``headers`` (a wrong one
    given there is sent as-is). With ``chunked``, a list ``body`` is sent as one chunk
    per item.
    """

    status: int = 200
    body: bytes | list[bytes] = b""
    headers: list[tuple[str, str]] | None = None
    reason: str | None = None
    chunked: bool = False
    trailers: list[tuple[str, str]] | None = None
    close: bool = False


Handler = Callable[[Request], Awaitable[Response | None]]


async def _hello(req: Request) -> Response:
    return Response(body=b"hello")


def _connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    values = [v for n, v in headers if n.lower() == "connection"]
    return {t.strip().lower() for v in values for t in v.split(",")}


def _keeps_alive(req: Request, resp: Response) -> bool:
    """Whether the connection stays open after ``resp`` (RFC 9112 §9.3)."""
    tokens = _connection_tokens(req.headers)
    if resp.close or "close" in tokens or "close" in _connection_tokens(resp.headers or []):
        return False
    return req.version == "HTTP/1.1" or "keep-alive" in tokens


async def _lingering_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close, then discard what the client still sends until it closes (bounded).

    Closing a socket with unread input makes the kernel send RST, which can destroy the
    response at the client before it is read (e.g. pipelined requests behind a
    ``Connection: close``); real servers linger for the same reason.
    """
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(_CLEANUP_TIMEOUT):
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            while await reader.read(_READ_SIZE):
                pass


def _encode_response(req: Request, resp: Response, keep_alive: bool) -> bytes:
    headers = list(resp.headers or [])
    chunks = [resp.body] if isinstance(resp.body, bytes) else list(resp.body)
    bodyless = req.method == "HEAD" or resp.status < 200 or resp.status in (204, 304)
    if resp.chunked:
        if not _has_header(headers, "transfer-encoding"):
            headers.append(("Transfer-Encoding", "chunked"))
        payload = chunked(*chunks, trailers=resp.trailers or ())
    else:
        payload = b"".join(chunks)
        if not _has_header(headers, "content-length") and not (
            resp.status < 200 or resp.status in (204, 304)
        ):
            headers.append(("Content-Length", str(len(payload))))
    if not _has_header(headers, "connection"):
        if not keep_alive:
            headers.append(("Connection", "close"))
        elif req.version == "HTTP/1.0":
            headers.append(("Connection", "keep-alive"))
    reason = _reason(resp.status) if resp.reason is None else resp.reason
    head = f"HTTP/1.1 {resp.status} {reason}\r\n".encode("latin-1") + _encode_fields(headers)
    return head + b"\r\n" + (b"" if bodyless else payload)


class HttpServer(_BaseServer):
    """A small, strict HTTP/1.1 origin server with routes.

    Keep-alive by default, ``Connection: close`` and HTTP/1.0 honoured, pipelined requests
    answered in order (one at a time, so a slow handler delays the ones behind it).
    Malformed request framing gets ``400`` and a close, recorded in ``protocol_errors``.
    ``Expect: 100-continue`` is ignored (no interim response is ever sent).
    A handler exception is answered with ``500`` + close and re-raised by ``stop()``.
    """

    _what_fails = "HttpServer handlers"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        unix_path: str | os.PathLike[str] | None = None,
        idle_timeout: float | None = None,
        max_request_size: int = 64 << 20,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``idle_timeout``: close a connection that waits that long for its next request,
        to test the client's handling of servers closing idle keep-alive connections."""
        super().__init__(host=host, unix_path=unix_path, tls=tls)
        self.idle_timeout = idle_timeout
        self.max_request_size = max_request_size
        self.requests: list[Request] = []
        """Every request received, in arrival order."""
        self.protocol_errors: list[str] = []
        """Why requests were rejected with 400."""
        self._routes: list[tuple[str, str | None, Handler]] = []

    def route(self, path: str, handler: Handler, method: str | None = None) -> None:
        """Serve ``path`` (the target without its query; a trailing ``*`` matches a prefix)
        with ``handler``, for ``method`` only if given. Later routes take precedence."""
        self._routes.append((path, method, handler))

    def _handler_for(self, req: Request) -> Handler:
        path = req.path.split("?", 1)[0]
        for pattern, method, handler in reversed(self._routes):
            if method is not None and method != req.method:
                continue
            if pattern == path or (pattern.endswith("*") and path.startswith(pattern[:-1])):
                return handler
        return _hello

    @property
    def request_counts(self) -> list[int]:
        """Requests received per connection, indexed by ``conn_id``."""
        counts = [0] * self.connections
        for req in self.requests:
            counts[req.conn_id] += 1
        return counts

    async def wait_requests(self, n: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until at least ``n`` requests were received (TimeoutError otherwise)."""
        await self._wait_until(
            lambda: len(self.requests) >= n,
            timeout,
            lambda: f"{n} requests (have {len(self.requests)})",
        )

    async def _next_message(self, source: _StreamSource) -> _Message | None:
        """The next request, or None when the connection should just close."""
        try:
            if self.idle_timeout is not None:
                async with asyncio.timeout(self.idle_timeout):
                    if not await source.wait_readable():
                        return None
            msg = await _read_message(source, self.max_request_size)
        except (_CleanEOF, TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return None
        hosts = [v for n, v in msg.headers if n.lower() == "host"]
        if len(hosts) > 1 or (msg.version == "HTTP/1.1" and not hosts):  # RFC 9112 §3.2
            raise HttpProtocolError(f"a request needs exactly one Host header, got {hosts}")
        return msg

    async def _serve(
        self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        source = _StreamSource(reader)
        while True:
            try:
                msg = await self._next_message(source)
            except HttpProtocolError as exc:
                self.protocol_errors.append(str(exc))
                body = f"{exc}\n".encode()
                writer.write(response(400, body, [("Connection", "close")]))
                await _lingering_close(reader, writer)
                return
            if msg is None:
                return
            req = Request(
                method=msg.method,
                path=msg.target,
                version=msg.version,
                headers=msg.headers,
                body=msg.body,
                raw=msg.raw,
                conn_id=index,
                reader=reader,
                writer=writer,
                trailers=msg.trailers,
            )
            self.requests.append(req)
            self._notify()
            try:
                resp = await self._handler_for(req)(req)
            except _PASS_THROUGH:
                raise
            except BaseException as exc:
                self.errors.append(exc)
                writer.write(response(500, b"handler failed\n", [("Connection", "close")]))
                await _lingering_close(reader, writer)
                return
            if resp is None:
                return  # the handler owned the connection; it is closed once it returns
            keep_alive = _keeps_alive(req, resp)
            writer.write(_encode_response(req, resp, keep_alive))
            if not keep_alive:
                await _lingering_close(reader, writer)
                return
            try:
                await writer.drain()
            except ConnectionError:
                return


# --------------------------------------------------------------------------- RawServer


class _PeekSource:
    """Framer source over a RawConn's buffer that consumes nothing until committed.

    So a request that times out or fails to frame stays readable by other read_* calls.
    """

    def __init__(self, conn: RawConn) -> None:
        self._conn = conn
        self.pos = 0

    async def read_line(self, limit: int) -> bytes:
        buf = self._conn._buf
        start = self.pos
        while (end := buf.find(b"\n", start)) < 0:
            if len(buf) - self.pos > limit:
                raise HttpProtocolError(f"line longer than {limit} bytes")
            start = len(buf)
            if not await self._conn._fill():
                raise asyncio.IncompleteReadError(bytes(buf[self.pos :]), None)
        line = bytes(buf[self.pos : end + 1])
        self.pos = end + 1
        return line

    async def read_exact(self, n: int) -> bytes:
        buf = self._conn._buf
        while len(buf) - self.pos < n:
            if not await self._conn._fill():
                raise asyncio.IncompleteReadError(bytes(buf[self.pos :]), n)
        data = bytes(buf[self.pos : self.pos + n])
        self.pos += n
        return data


class RawConn:
    """One accepted connection as seen by a ``RawServer`` script.

    Reads are on demand (past asyncio's ~128 KiB stream buffer, unread bytes stay in the
    kernel, so a client sending more feels real backpressure) and every read is bounded
    by a timeout. A reset by the client reads as EOF and sets ``reset_by_peer``.
    """

    def __init__(
        self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.index = index
        """0-based number of this connection on its server."""
        self.reader = reader
        self.writer = writer
        self.eof = False
        """The client closed (or reset) its sending side."""
        self.reset_by_peer = False
        self.is_closed = False
        """This side closed or reset the connection."""
        self._buf = bytearray()  # received but not yet returned by a read_* call
        self._received = bytearray()

    @property
    def received(self) -> bytes:
        """Every byte received from the client so far."""
        return bytes(self._received)

    async def _fill(self) -> bool:
        """Append the next bytes from the socket to the buffer; False at EOF."""
        if self.eof:
            return False
        try:
            data = await self.reader.read(_READ_SIZE)
        except OSError:
            self.reset_by_peer = True
            data = b""
        if not data:
            self.eof = True
            return False
        self._buf += data
        self._received += data
        return True

    def _take(self, n: int) -> bytes:
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _timeout_error(self, what: str, timeout: float) -> TimeoutError:
        pending = bytes(self._buf[:300])
        return TimeoutError(f"conn {self.index}: no {what} within {timeout}s; have {pending!r}")

    async def read_request(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Exact bytes of the next full request (head, body, chunk framing, trailers).

        ``b""`` if the client closed before starting one. Raises IncompleteReadError on
        EOF mid-request, HttpProtocolError if the framing cannot be determined or passes
        1 MiB, TimeoutError after ``timeout``; bytes stay buffered in all three cases.
        """
        source = _PeekSource(self)
        try:
            async with asyncio.timeout(timeout):
                msg = await _read_message(source, MAX_RAW_REQUEST)
        except _CleanEOF:
            self._take(len(self._buf))
            return b""
        except TimeoutError:
            raise self._timeout_error("complete request", timeout) from None
        return self._take(len(msg.raw))

    async def read_until(
        self, marker: bytes, timeout: float = DEFAULT_TIMEOUT, limit: int = MAX_RAW_REQUEST
    ) -> bytes:
        """Bytes up to and including ``marker``; IncompleteReadError at EOF."""
        start = 0
        try:
            async with asyncio.timeout(timeout):
                while (end := self._buf.find(marker, start)) < 0:
                    if len(self._buf) > limit:
                        raise ValueError(f"{marker!r} not found within {limit} bytes")
                    start = max(0, len(self._buf) - len(marker) + 1)
                    if not await self._fill():
                        raise asyncio.IncompleteReadError(bytes(self._buf), None)
        except TimeoutError:
            raise self._timeout_error(repr(marker), timeout) from None
        return self._take(end + len(marker))

    async def read_exactly(self, n: int, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Exactly ``n`` bytes; IncompleteReadError at EOF."""
        try:
            async with asyncio.timeout(timeout):
                while len(self._buf) < n:
                    if not await self._fill():
                        raise asyncio.IncompleteReadError(bytes(self._buf), n)
        except TimeoutError:
            raise self._timeout_error(f"{n} bytes", timeout) from None
        return self._take(n)

    async def read_available(self, timeout: float = 0.1) -> bytes:
        """Everything buffered plus whatever arrives within ``timeout`` (less at EOF)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while await self._fill():
                    pass
        return self._take(len(self._buf))

    async def wait_closed_by_peer(self, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """True once the client has closed (or reset); False after ``timeout``.

        Bytes arriving meanwhile are kept for later reads.
        """
        try:
            async with asyncio.timeout(timeout):
                while await self._fill():
                    pass
        except TimeoutError:
            return False
        return True

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_split(
        self, data: bytes, sizes: int | Sequence[int] = 1, delay: float = 0.0
    ) -> None:
        """Send ``data`` in pieces, draining (and sleeping ``delay``) between them.

        ``sizes`` is a piece size, or explicit piece sizes whose remainder goes last.
        """
        if isinstance(sizes, int):
            if sizes <= 0:
                raise ValueError("piece size must be positive")
            sizes = [sizes] * -(-len(data) // sizes)
        pieces, pos = [], 0
        for size in sizes:
            if pos >= len(data):
                break
            pieces.append(data[pos : pos + size])
            pos += size
        if pos < len(data):
            pieces.append(data[pos:])
        for i, piece in enumerate(pieces):
            if i and delay:
                await asyncio.sleep(delay)
            await self.send(piece)

    async def shutdown_write(self) -> None:
        """Half-close: send FIN after pending writes but keep reading from the client."""
        await self.writer.drain()
        if self.writer.can_write_eof():
            self.writer.write_eof()

    async def close(self) -> None:
        """Close gracefully (FIN after pending writes), recording bytes already received."""
        if self.is_closed:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_COLLECT_WINDOW):
                while await self._fill():
                    pass
        self.is_closed = True
        await _close_writer(self.writer)

    def reset(self) -> None:
        """Abort with RST (SO_LINGER on, 0 s), discarding pending writes."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.is_closed = True
        self.writer.transport.abort()


Script = Callable[[RawConn], Awaitable[None]]


@dataclass(frozen=True)
class TlsPair:
    """A server context with a certificate for localhost and 127.0.0.1, and the
    PEM of the CA that issued it (what a client trusts)."""

    server: ssl.SSLContext
    ca: bytes
    authority: Any
    """The ``trustme.CA``, to issue more certificates."""


async def hello_script(conn: RawConn) -> None:
    """Default script: answer every request with 200 "hello" until the client closes."""
    while await conn.read_request():
        await conn.send(response(200, b"hello"))


class RawServer(_BaseServer):
    """Runs a script per accepted connection, recording every byte received.

    ``scripts[i]`` serves connection ``i`` (the last one serves any extra). When a script
    returns, the connection is closed gracefully unless it already was. ``stop()``
    cancels running scripts, closes all sockets and re-raises script failures.
    """

    _what_fails = "RawServer scripts"

    def __init__(
        self,
        script: Script | None = None,
        *,
        scripts: Sequence[Script] | None = None,
        host: str = "127.0.0.1",
        unix_path: str | os.PathLike[str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(host=host, unix_path=unix_path, tls=tls)
        if script is not None and scripts:
            raise TypeError("pass either script or scripts, not both")
        self._scripts: list[Script] = list(scripts) if scripts else [script or hello_script]
        self.conns: list[RawConn] = []
        """One RawConn per accepted connection, in accept order."""

    @property
    def received(self) -> list[bytes]:
        """Bytes received per connection (complete once that connection is closed)."""
        return [conn.received for conn in self.conns]

    async def _serve(
        self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        conn = RawConn(index, reader, writer)
        self.conns.append(conn)
        await self._scripts[min(index, len(self._scripts) - 1)](conn)
        await conn.close()
