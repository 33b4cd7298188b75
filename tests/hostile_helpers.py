"""Helpers shared by test_hostile.py and test_lifecycle.py.

* ``head()`` builds exact response bytes, wrong ones included.
* ``fetch()`` runs one ``request()`` to its end (body read) and returns an ``Outcome``:
  the response or the error, wherever it surfaced (the awaitable or the body).
* ``WireConn`` is a RawServer script for a connection that answers the first request
  with scripted bytes (in one write or byte by byte) and then records what the client
  does with the connection: close it, or (wrongly, after an error) send more requests.
* ``Clients`` makes dispatchers and destroys every one of them on exit (the test files'
  ``clients`` fixture), so a failing test never leaves sockets or engine tasks behind.
* ``Events`` records a dispatcher's events; ``Recorder`` (from ``helpers``, re-exported)
  is a dispatch handler that records every callback, to check that each request ends
  exactly once.
* ``raw_socket()`` / ``wait_delivered()`` act on a RawConn's socket with plain system
  calls, for tests where "the bytes are already there" must really be true.

Every wait here is bounded by ``T``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import struct
import termios
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import undipy
from helpers import Recorder as Recorder  # shared with the other suites, re-exported
from servers import RawConn, response

T = 3.0
"""Bound, in seconds, for any single wait on the client or the server."""

Delivery = Literal["whole", "bytewise"]
DELIVERIES: tuple[Delivery, ...] = ("whole", "bytewise")


def head(status_line: bytes, *fields: bytes, body: bytes = b"") -> bytes:
    """``status_line`` CRLF, each field line CRLF, CRLF, then ``body`` (all verbatim)."""
    return status_line + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


def ok(*fields: bytes, body: bytes = b"") -> bytes:
    """An ``HTTP/1.1 200 OK`` head with exactly ``fields`` (no framing added) and ``body``."""
    return head(b"HTTP/1.1 200 OK", *fields, body=body)


# --------------------------------------------------------------------------- outcomes


@dataclass
class Outcome:
    """How one request ended: a full response, or an error (with the status if the
    head had arrived before it)."""

    status: int | None = None
    status_text: str | None = None
    headers: dict[str, Any] | None = None
    body: bytes | None = None
    trailers: dict[str, Any] | None = None
    error: BaseException | None = None
    infos: list[dict[str, Any]] = field(default_factory=list)

    def raise_if_error(self) -> Outcome:
        if self.error is not None:
            raise AssertionError(f"request failed: {self.error!r}") from self.error
        return self


def _is_hang(exc: BaseException) -> bool:
    """``asyncio.wait_for`` gave up (undipy's timeout errors are subclasses, not this)."""
    return type(exc) is TimeoutError


async def fetch(d: Any, *, timeout: float = T, **opts: Any) -> Outcome:
    """``d.request(**opts)`` and its whole body, each step bounded by ``timeout``.

    Any exception the request or its body raises is the outcome's ``error``, except a
    hang: that shows up as ``TimeoutError`` from here, so it fails the test.
    """
    opts.setdefault("method", "GET")
    opts.setdefault("path", "/")
    out = Outcome()
    opts.setdefault("on_info", out.infos.append)
    try:
        resp = await asyncio.wait_for(d.request(**opts), timeout)
    except Exception as exc:
        if _is_hang(exc):
            raise
        out.error = exc
        return out
    out.status, out.status_text, out.headers = resp.status_code, resp.status_text, resp.headers
    try:
        out.body = await asyncio.wait_for(resp.body.bytes(), timeout)
    except Exception as exc:
        if _is_hang(exc):
            raise
        out.error = exc
        return out
    out.trailers = dict(resp.trailers)
    return out


def assert_error(out: Outcome, cls: type[BaseException], code: str | None = None) -> None:
    """``out`` failed with exactly an instance of ``cls`` carrying ``code``."""
    assert out.error is not None, f"expected {cls.__name__}, got a response: {out!r}"
    assert isinstance(out.error, cls), f"expected {cls.__name__}, got {out.error!r}"
    if code is not None:
        assert getattr(out.error, "code", None) == code, f"{out.error!r} has code {out.error.code}"


# --------------------------------------------------------------------------- servers


class WireConn:
    """RawServer script: answer the first request with ``wire``, then ``then``.

    ``then``:
      * ``"close"``: close gracefully (FIN) after the bytes;
      * ``"reset"``: abort with RST right after the bytes;
      * ``"keep"``: keep the connection open and serve whatever the client does next:
        each further request on it is counted in ``reused`` and answered ``200 again``;
        the client closing it sets ``closed_by_peer``.

    ``delivery="bytewise"`` sends one byte per write (TCP_NODELAY is on). If the client
    gives up mid-way (it closes or resets), sending stops quietly: that is allowed.
    """

    REUSED_BODY = b"again"

    def __init__(
        self,
        wire: bytes,
        delivery: Delivery = "whole",
        then: Literal["close", "reset", "keep"] = "keep",
    ) -> None:
        self.wire = wire
        self.delivery = delivery
        self.then = then
        self.first_request = b""
        self.reused = 0
        self.sent = asyncio.Event()
        """Set once sending stopped (all sent, or the client went away)."""
        self.finished = asyncio.Event()
        """Set once the script is done with the connection."""
        self.closed_by_peer = False
        self.conn: RawConn | None = None

    async def send(self, conn: RawConn, data: bytes) -> bool:
        """Send ``data`` per ``delivery``; False if the client went away meanwhile."""
        try:
            if self.delivery == "bytewise":
                await conn.send_split(data, 1)
            else:
                await conn.send(data)
        except (ConnectionError, OSError):
            return False
        return True

    async def __call__(self, conn: RawConn) -> None:
        self.conn = conn
        try:
            self.first_request = await conn.read_request(timeout=T)
            await self.send(conn, self.wire)
            self.sent.set()
            if self.then == "reset":
                await wait_delivered(conn)
                conn.reset()
            elif self.then == "keep":
                await self._serve_rest(conn)
        finally:
            self.sent.set()
            self.finished.set()

    async def _serve_rest(self, conn: RawConn) -> None:
        while True:
            try:
                req = await conn.read_request(timeout=T)
            except TimeoutError:
                return
            if not req:
                self.closed_by_peer = True
                return
            self.reused += 1
            with contextlib.suppress(ConnectionError, OSError):
                await conn.send(response(200, self.REUSED_BODY))


async def wait_delivered(conn: RawConn, timeout: float = T) -> None:
    """Wait until the kernel has no unacknowledged bytes of ours queued (TIOCOUTQ).

    An RST discards what is still queued, so a test of "RST right after a complete
    response" must first make sure the response actually left.
    """
    sock = conn.writer.get_extra_info("socket")
    async with asyncio.timeout(timeout):
        while True:
            (queued,) = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))
            if queued == 0:
                return
            await asyncio.sleep(0.001)


@contextlib.contextmanager
def raw_socket(conn: RawConn) -> Iterator[socket.socket]:
    """The connection's socket for direct syscalls (``send``, ``shutdown``) that take
    effect before the call returns, whatever the event loop (asyncio's and uvloop's
    transports may defer them)."""
    fd = os.dup(conn.writer.get_extra_info("socket").fileno())
    sock = socket.socket(fileno=fd)
    try:
        yield sock
    finally:
        sock.close()


async def wait_event(ev: asyncio.Event, what: str, timeout: float = T) -> None:
    try:
        await asyncio.wait_for(ev.wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


# --------------------------------------------------------------------------- clients


class Clients:
    """Makes dispatchers and tears down every one of them after the test."""

    def __init__(self) -> None:
        self.made: list[undipy.Dispatcher] = []

    def client(self, origin: str, **opts: Any) -> undipy.Client:
        c = undipy.Client(origin, **opts)
        self.made.append(c)
        return c

    def pool(self, origin: str, **opts: Any) -> undipy.Pool:
        p = undipy.Pool(origin, **opts)
        self.made.append(p)
        return p

    async def __aenter__(self) -> Clients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.teardown()

    async def teardown(self) -> None:
        for d in self.made:
            if not d.destroyed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(d.destroy(), T)


class Events:
    """Records a dispatcher's events as (name, error) in order."""

    NAMES = ("connect", "disconnect", "connection_error", "drain")

    def __init__(self, d: undipy.Dispatcher, names: Iterable[str] = NAMES) -> None:
        self.log: list[tuple[str, BaseException | None]] = []
        self._changed = asyncio.Event()
        for name in names:
            d.on(name, self._listener(name))

    def _listener(self, name: str) -> Callable[..., None]:
        def on(origin: str, *rest: Any) -> None:
            err = rest[1] if len(rest) > 1 else None
            self.log.append((name, err))
            self._changed.set()

        return on

    def named(self, name: str) -> list[BaseException | None]:
        return [e for n, e in self.log if n == name]

    async def wait_for(self, name: str, n: int = 1, timeout: float = T) -> None:
        async def until() -> None:
            while len(self.named(name)) < n:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"timed out waiting for {n} {name!r} events; log: {self.log!r}"
            ) from None
