"""Helpers shared by the undipy client tests (test_wire, test_dispatch, test_request).

Everything here talks to the real servers of ``servers.py``; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import undipy
from servers import HttpProtocolError, HttpServer, RawConn, RawServer, Request, Response, response

T = 5.0
"""Bound, in seconds, for any single wait on the client."""

SETTLE = 0.1
"""How long to keep listening for callbacks that must NOT come (never asserted as a time)."""

RawServerFactory = Callable[..., Awaitable[RawServer]]
R = TypeVar("R")
D = TypeVar("D", bound=undipy.Dispatcher)


async def within(aw: Awaitable[R], timeout: float = T) -> R:
    """Await ``aw`` with a bound, so a broken client fails the test instead of hanging it."""
    return await asyncio.wait_for(aw, timeout)


@contextlib.asynccontextmanager
async def closing(dispatcher: D) -> AsyncIterator[D]:
    """Use ``dispatcher``, then close it; close() must resolve within ``T`` seconds.

    If the body of the ``async with`` failed, the dispatcher is destroyed instead, so a
    failed test never waits on requests it left hanging.
    """
    try:
        yield dispatcher
    except BaseException:
        with contextlib.suppress(Exception):
            await within(dispatcher.destroy(), 2.0)
        raise
    await within(dispatcher.close())


def head(*lines: str) -> bytes:
    """Exact bytes of a request head: ``lines`` joined by CRLF, then the empty line."""
    return "".join(f"{line}\r\n" for line in lines).encode("latin-1") + b"\r\n"


def host_of(srv: Any) -> str:
    """The ``host`` header undici derives from an origin: ``hostname:port``."""
    return f"{srv.host}:{srv.port}"


def pattern(n: int) -> bytes:
    """``n`` bytes of a non-repeating-looking pattern, so reordering or loss shows."""
    block = bytes((i * 7 + i // 256) & 0xFF for i in range(65521))  # prime-sized block
    reps = -(-n // len(block))
    return (block * reps)[:n]


def streamer(
    total_mib: int, progress: list[int], *, paced: bool = False
) -> Callable[[RawConn], Awaitable[None]]:
    """Script: answer one request with a ``total_mib`` MiB body sent 1 MiB at a time,
    appending to ``progress`` after each MiB the socket accepted. Far more than socket
    buffers hold, so the client can never have all of it unless it reads it.

    ``paced`` yields to the loop after each MiB: the engine bounds what it reads ahead
    of a handler (4 MiB), and a server on the test's own loop that never yields would
    keep that loop from delivering the first chunk; pacing makes a test measure the
    handler's pause, not that bound."""

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (total_mib << 20))
        piece = pattern(1 << 20)
        try:
            for _ in range(total_mib):
                await conn.send(piece)
                progress.append(1)
                if paced:
                    await asyncio.sleep(0)
        except ConnectionError:  # the client dropped the connection: that is its right
            return
        await conn.wait_closed_by_peer(timeout=10.0)

    return script


async def wait_until(pred: Callable[[], object], what: str, timeout: float = T) -> None:
    """Poll ``pred()`` every 5 ms until true (AssertionError after ``timeout``)."""
    try:
        async with asyncio.timeout(timeout):
            while not pred():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


def answer(resp: bytes = response(200, b"ok")) -> Callable[[RawConn], Awaitable[None]]:
    """A RawServer script answering every request with ``resp`` until the client closes.

    A request that cannot be read (the client stalled, or sent bytes that do not frame)
    just ends the script and closes the connection: the tests assert the exact bytes
    received, which already shows any such client failure, with a better message. So
    does a client that resets the connection while the answer is being sent (an abort).
    """

    async def script(conn: RawConn) -> None:
        try:
            while await conn.read_request():
                await conn.send(resp)
        except (TimeoutError, asyncio.IncompleteReadError, HttpProtocolError, ConnectionError):
            return

    return script


def slow_route(srv: HttpServer, path: str = "/slow", body: bytes = b"slow") -> asyncio.Event:
    """Route ``path`` to a handler that answers ``body`` only once the returned event is set."""
    release = asyncio.Event()

    async def slow(req: Request) -> Response:
        await release.wait()
        return Response(body=body)

    srv.route(path, slow)
    return release


async def sent_bytes(
    raw_server: RawServerFactory,
    client_opts: dict[str, Any] | None = None,
    **request_opts: Any,
) -> tuple[bytes, RawServer]:
    """Make one request through a fresh Client against a RawServer answering 200 "ok".

    Returns every byte the server received on its single connection, and the server.
    """
    srv = await raw_server(answer())
    request_opts.setdefault("path", "/")
    request_opts.setdefault("method", "GET")
    async with closing(undipy.Client(srv.origin, **(client_opts or {}))) as client:
        resp = await within(client.request(**request_opts))
        assert await within(resp.body.bytes()) == b"ok"
    await srv.wait_closed(1)
    assert srv.connections == 1
    return srv.received[0], srv


async def assert_rejected_before_sending(
    raw_server: RawServerFactory,
    error: type[BaseException],
    **request_opts: Any,
) -> BaseException:
    """``request(**request_opts)`` fails with ``error`` and nothing reaches the server.

    A valid request made afterwards on the same Client is then the only thing the server
    ever receives, on its only connection: so no byte of the rejected one was sent.
    """
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin)) as client:
        opts = {"path": "/", "method": "GET", **request_opts}
        try:
            resp = await within(client.request(**opts))
        except error as exc:
            caught: BaseException = exc
        else:
            await resp.body.aclose()
            raise AssertionError(f"request({request_opts!r}) was accepted")
        assert srv.connections == 0
        ok = await within(client.request(path="/next", method="GET"))
        assert await within(ok.body.bytes()) == b"ok"
    await srv.wait_closed(1)
    assert srv.connections == 1
    assert srv.received == [
        head("GET /next HTTP/1.1", f"host: {host_of(srv)}", "connection: keep-alive")
    ]
    return caught


class Recorder(undipy.DispatchHandler):
    """A dispatch handler that records every callback, in order, with its arguments.

    ``events`` holds tuples: ("connect",), ("headers", status, headers, status_text),
    ("data", chunk), ("complete", trailers), ("error", exc), ("body_sent", chunk),
    ("upgrade", status, headers, socket); everything else is read from it. ``done``
    resolves on the first terminal callback; later callbacks are still recorded, so a
    test can assert exactly one terminal and nothing after it. ``name`` labels it in
    messages. ``pause_*`` make on_headers / on_data return False; ``raise_in`` maps a
    method name ("on_connect", "on_headers", "on_data") to an exception it raises after
    recording its call.
    """

    TERMINAL = ("complete", "error", "upgrade")

    def __init__(
        self,
        name: str = "",
        *,
        pause_on_headers: bool = False,
        pause_on_data: bool = False,
        raise_in: dict[str, BaseException] | None = None,
    ) -> None:
        self.name = name
        self.events: list[tuple[Any, ...]] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.threads: set[int] = set()
        self.pause_on_headers = pause_on_headers
        self.pause_on_data = pause_on_data
        self.raise_in = raise_in or {}
        self.abort: Callable[..., None] | None = None
        self.resume: Callable[[], None] | None = None
        self.context: Any = None
        self.changed = asyncio.Event()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.kinds} {self.error!r}>"

    def _record(self, *event: Any) -> None:
        self.events.append(event)
        self.threads.add(threading.get_ident())
        self.changed.set()

    def _maybe_raise(self, method: str) -> None:
        if method in self.raise_in:
            raise self.raise_in[method]

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def on_connect(self, abort: Callable[..., None], context: Any) -> None:
        self.abort = abort
        self.context = context
        self._record("connect")
        self._maybe_raise("on_connect")

    def on_headers(
        self, status_code: int, headers: list[bytes], resume: Callable[[], None], status_text: str
    ) -> bool:
        self.resume = resume
        self._record("headers", status_code, list(headers), status_text)
        self._maybe_raise("on_headers")
        return not self.pause_on_headers

    def on_data(self, chunk: bytes) -> bool:
        self._record("data", chunk)
        self._maybe_raise("on_data")
        return not self.pause_on_data

    def on_complete(self, trailers: list[bytes]) -> None:
        self._record("complete", list(trailers))
        self._finish()

    def on_error(self, error: BaseException) -> None:
        self._record("error", error)
        self._finish()

    def on_upgrade(self, status_code: int, headers: list[bytes], socket: Any) -> None:
        self._record("upgrade", status_code, list(headers), socket)
        self._finish()

    def on_body_sent(self, chunk: bytes) -> None:
        self._record("body_sent", chunk)

    # -- reading the record ----------------------------------------------------

    async def wait(self, timeout: float = T) -> Recorder:
        """Wait for the first terminal callback; AssertionError if none within ``timeout``."""
        try:
            await asyncio.wait_for(asyncio.shield(self.done), timeout)
        except TimeoutError:
            raise AssertionError(f"request {self.name!r} never ended: {self!r}") from None
        return self

    async def wait_for(self, kind: str, count: int = 1, timeout: float = T) -> None:
        """Wait until ``count`` events of ``kind`` were recorded."""

        async def loop() -> None:
            while sum(1 for e in self.events if e[0] == kind) < count:
                self.changed.clear()
                await self.changed.wait()

        await within(loop(), timeout)

    @property
    def kinds(self) -> list[str]:
        return [e[0] for e in self.events]

    @property
    def status(self) -> int | None:
        """The last final (>= 200) status on_headers got, None before any."""
        finals = [e[1] for e in self.events if e[0] == "headers" and e[1] >= 200]
        return finals[-1] if finals else None

    @property
    def body(self) -> bytes:
        return b"".join(e[1] for e in self.events if e[0] == "data")

    @property
    def terminals(self) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] in self.TERMINAL]

    @property
    def error(self) -> BaseException | None:
        """The last error on_error got, None if it was never called."""
        errors = [e[1] for e in self.events if e[0] == "error"]
        return errors[-1] if errors else None

    @property
    def only_error(self) -> BaseException:
        """The error, asserting that an on_error was the one and only terminal callback."""
        (terminal,) = self.terminals
        assert terminal[0] == "error", self.kinds
        exc = terminal[1]
        assert isinstance(exc, BaseException)
        return exc


def squash(kinds: Iterable[str]) -> list[str]:
    """Collapse runs of the same kind: [connect, data, data, complete] -> [connect, data, ...]."""
    out: list[str] = []
    for k in kinds:
        if not out or out[-1] != k:
            out.append(k)
    return out


async def settle() -> None:
    """Give callbacks that must not happen a chance to happen (bounded, never asserted)."""
    await asyncio.sleep(SETTLE)
