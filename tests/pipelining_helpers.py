"""Helpers for test_pipelining.py: scripted connections the test drives step by step.

* ``Hand`` is a RawServer script that hands every accepted connection to the test and
  keeps it open: the test itself reads requests, answers, closes or resets, in the exact
  order the scenario needs (so "the server has not answered yet" is a fact, not a race).
* ``one_read`` / ``nothing_more`` observe the socket: the bytes of a single read, or that
  nothing arrives within a short window (bounded, never asserted as a time).
* ``Probe`` is a dispatch handler recording every callback; ``Ledger`` makes probes and
  checks that every request ended exactly once.
* ``StalledServer`` is a RawServer whose accept queue is full until ``release()``: the
  client's connect stays pending, so the dispatcher can be observed before it connects.

Every wait is bounded by ``T``.
"""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import Iterable
from typing import Any

import undipy
from helpers import Recorder
from helpers import closing as closing  # shared with the other suites, re-exported
from helpers import host_of as host_of
from helpers import wait_until as wait_until
from helpers import within as within
from hostile_helpers import Events as Events
from servers import MAX_LINE, RawConn, RawServer

T = 3.0
"""Bound, in seconds, for any single wait on the client or the server."""

SETTLE = 0.2
"""How long to listen for bytes or callbacks that must NOT come (never asserted as a time)."""


# --------------------------------------------------------------------------- wire bytes


def req(
    srv: RawServer,
    path: str,
    method: str = "GET",
    connection: str | None = "keep-alive",
    headers: Iterable[str] = (),
    body: bytes | None = None,
) -> bytes:
    """Exact bytes undici writes for a request: request line, host, connection, the user
    headers, content-length when there is a body, the empty line, the body."""
    lines = [f"{method} {path} HTTP/1.1", f"host: {host_of(srv)}"]
    if connection is not None:
        lines.append(f"connection: {connection}")
    lines.extend(headers)
    if body is not None:
        lines.append(f"content-length: {len(body)}")
    return "".join(f"{line}\r\n" for line in lines).encode("latin-1") + b"\r\n" + (body or b"")


def request_lines(raw: bytes) -> list[bytes]:
    """The request lines found in ``raw`` client bytes (in order)."""
    return [
        line
        for line in raw.split(b"\r\n")
        if line.endswith(b" HTTP/1.1") and line.split(b" ", 1)[0].isalpha()
    ]


# --------------------------------------------------------------------------- server side


class Hand:
    """RawServer script: each accepted connection is handed to the test (``next()``) and
    held open until the test closes it, the client does, or the server stops."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[RawConn] = asyncio.Queue()
        self.conns: list[RawConn] = []

    async def __call__(self, conn: RawConn) -> None:
        self.conns.append(conn)
        self._queue.put_nowait(conn)
        await asyncio.Event().wait()  # until the server stops (it cancels scripts)

    async def next(self, timeout: float = T) -> RawConn:
        """The next accepted connection."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"no new connection within {timeout}s ({len(self.conns)} so far)"
            ) from None

    def no_new_connection(self) -> bool:
        return self._queue.empty()


async def read_requests(conn: RawConn, n: int, timeout: float = T) -> list[bytes]:
    """Exact bytes of the next ``n`` requests (AssertionError if the client closes)."""
    out = []
    for _ in range(n):
        r = await conn.read_request(timeout=timeout)
        assert r, f"conn {conn.index}: closed by the client after {out!r}"
        out.append(r)
    return out


async def one_read(conn: RawConn, timeout: float = T) -> bytes:
    """The bytes of exactly one read from the socket (nothing may be buffered before).

    Requests that the client writes in one system call arrive together here; requests
    written one by one, as the client gets to them, do not.
    """
    assert not conn._buf, f"conn {conn.index}: unread bytes {bytes(conn._buf)!r}"
    try:
        async with asyncio.timeout(timeout):
            got = await conn._fill()
    except TimeoutError:
        raise AssertionError(f"conn {conn.index}: nothing received within {timeout}s") from None
    assert got, f"conn {conn.index}: closed by the client"
    data = bytes(conn._buf)
    conn._buf.clear()
    return data


async def nothing_more(conn: RawConn, window: float = SETTLE) -> None:
    """Nothing arrives on ``conn`` within ``window`` (and nothing is buffered)."""
    data = await conn.read_available(timeout=window)
    assert data == b"", f"conn {conn.index}: unexpected bytes {data!r}"


# --------------------------------------------------------------------------- handlers


class Probe(Recorder):
    """A Recorder that also knows what ``dispatch`` returned for it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.accepted: bool | None = None
        """What ``dispatch`` returned for it."""

    @property
    def connects(self) -> int:
        return self.kinds.count("connect")

    @property
    def outcome(self) -> tuple[Any, ...]:
        """(status, body) when it completed, (error type,) when it failed."""
        if self.error is not None:
            return (type(self.error),)
        return (self.status, self.body)


class Ledger:
    """Dispatches probes and checks that each one ended exactly once."""

    def __init__(self) -> None:
        self.probes: list[Probe] = []

    def dispatch(self, d: undipy.Dispatcher, path: str, **opts: Any) -> Probe:
        opts.setdefault("method", "GET")
        p = Probe(path)
        self.probes.append(p)
        p.accepted = d.dispatch(p, path=path, **opts)
        return p

    async def all_ended(self, timeout: float = T) -> None:
        """Every probe ended, then (after a settle) none got a second terminal call or
        anything after its terminal call."""
        for p in self.probes:
            await p.wait(timeout)
        await asyncio.sleep(SETTLE)
        for p in self.probes:
            assert len(p.terminals) == 1, p
            assert p.kinds[-1] in Probe.TERMINAL, p


# --------------------------------------------------------------------------- stalled connect


class StalledServer(RawServer):
    """A RawServer whose listening socket (backlog 0) has its accept queue filled by a
    connection of our own until ``release()``: the kernel drops the client's SYNs, so
    its connect stays pending; the SYN is retried about 1 s later and gets in once
    ``release()`` has emptied the queue and started serving."""

    def __init__(self, script: Any) -> None:
        super().__init__(script)
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._filler: socket.socket | None = None

    async def start(self) -> StalledServer:
        self._lsock.bind((self.host, 0))
        self._lsock.listen(0)
        self.port = self._lsock.getsockname()[1]
        self._filler = socket.create_connection((self.host, self.port), timeout=T)
        ready, _, _ = select.select([self._lsock], [], [], T)  # the filler is queued
        assert ready, "the filler connection never reached the accept queue"
        return self

    async def release(self) -> None:
        self._lsock.settimeout(T)
        peer, _ = self._lsock.accept()
        peer.close()
        assert self._filler is not None
        self._filler.close()
        self._filler = None
        self._lsock.setblocking(False)
        self._server = await asyncio.start_server(self._handle, sock=self._lsock, limit=MAX_LINE)

    async def stop(self) -> None:
        if self._filler is not None:
            self._filler.close()
        if self._server is None:
            self._lsock.close()
        await super().stop()
