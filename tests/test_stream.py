"""stream(): the response body goes into the writable a factory returns.

Covers Dispatcher.md's stream examples ("Basic GET stream request", "Stream to Fastify
Response" with an asyncio StreamWriter as the writable), undici's test/client-stream.js
scenarios (factory throw, invalid return, CONNECT, aborts, trailers, 1xx, backpressure,
waiting for the writable) and backpressure: a slow writer pauses the socket, so the
server's send of a 32 MiB body stalls, and the whole body still arrives intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import threading
import time
from typing import Any

import pytest
import undipy
from helpers import (
    RawServerFactory,
    Recorder,
    answer,
    closing,
    head,
    host_of,
    pattern,
    streamer,
    within,
)
from servers import HttpServer, RawConn, Request, Response, chunked, response
from undipy import (
    AbortController,
    InvalidArgumentError,
    InvalidReturnValueError,
    RequestAbortedError,
    ResponseStatusCodeError,
    SocketError,
    StreamData,
    StreamFactoryData,
)


class Boom(Exception):
    """Raised by factories and writables under test."""


class Sink:
    """A writable with a plain synchronous write()."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.closed = False

    def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def close(self) -> None:  # undipy must never call it
        self.closed = True

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


class GatedWriter:
    """An async writable whose write() does not return while ``gate`` is closed."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.data = bytearray()
        self.writes = 0
        self.first_write = asyncio.Event()
        self.finished_writes = 0

    async def write(self, chunk: bytes) -> None:
        self.data += chunk
        self.writes += 1
        self.first_write.set()
        await self.gate.wait()
        self.finished_writes += 1


class GatedDrain:
    """A writable whose write() is synchronous and whose drain() waits for ``gate``
    (the shape of an asyncio StreamWriter)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.data = bytearray()
        self.drains = 0
        self.first_drain = asyncio.Event()

    def write(self, chunk: bytes) -> None:
        self.data += chunk

    async def drain(self) -> None:
        self.drains += 1
        self.first_drain.set()
        await self.gate.wait()


async def wait_stalled(progress: list[int], timeout: float = 5.0) -> int:
    """Wait until ``progress`` stops growing (unchanged over 4 polls 50 ms apart)."""
    async with asyncio.timeout(timeout):
        seen, stable = -1, 0
        while stable < 4:
            await asyncio.sleep(0.05)
            stable = stable + 1 if len(progress) == seen else 0
            seen = len(progress)
    return seen


async def ok_text(client: undipy.Dispatcher, path: str = "/") -> str:
    resp = await within(client.request(path=path, method="GET"))
    return str(await within(resp.body.text()))


# --------------------------------------------------------------------------- seed examples


@pytest.mark.loops
async def test_seed_basic_get_stream_request(http_server: HttpServer) -> None:
    """Dispatcher.md, "Example 1 - Basic GET stream request": the factory gets status,
    headers and the opaque (the closure-free pattern), the writable gets the body."""

    async def hello(req: Request) -> Response:
        return Response(body=b"Hello, World!")

    http_server.route("/", hello)
    bufs: list[bytes] = []
    seen: list[StreamFactoryData] = []

    class Collect:
        def __init__(self, bufs: list[bytes]) -> None:
            self.bufs = bufs

        def write(self, chunk: bytes) -> None:
            self.bufs.append(chunk)

    def factory(data: StreamFactoryData) -> Collect:
        seen.append(data)
        return Collect(data.opaque["bufs"])

    opaque = {"bufs": bufs}
    async with closing(undipy.Client(http_server.origin)) as client:
        result = await within(client.stream(factory, path="/", method="GET", opaque=opaque))
    assert b"".join(bufs).decode("utf-8") == "Hello, World!"
    assert isinstance(result, StreamData)
    assert result.opaque is opaque
    assert result.trailers == {}
    assert isinstance(result.context, dict)
    (data,) = seen
    assert data.status_code == 200
    assert data.headers == {"content-length": "13"}
    assert data.opaque is opaque
    assert data.context is result.context


@pytest.mark.loops
async def test_seed_stream_into_a_front_servers_response(
    http_server: HttpServer, raw_server: RawServerFactory
) -> None:
    """Dispatcher.md, "Example 2 - Stream to Fastify Response": a front server answers
    its own request by streaming a back-end response straight into its asyncio
    StreamWriter (passed as the opaque), which works as a writable as is."""

    async def hello(req: Request) -> Response:
        return Response(body=b"Hello, World! From Node.js HTTP Server")

    http_server.route("/", hello)
    back = undipy.Client(http_server.origin)

    async def front(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        await back.stream(lambda data: data.opaque, path="/", method="GET", opaque=conn.writer)

    srv = await raw_server(front)
    async with closing(back), closing(undipy.Client(srv.origin)) as client:
        resp = await within(client.request(path="/", method="GET"))
        assert resp.status_code == 200
        assert await within(resp.body.text()) == "Hello, World! From Node.js HTTP Server"


# --------------------------------------------------------------------------- writables


async def test_an_io_bytesio_is_a_writable(http_server: HttpServer) -> None:
    out = io.BytesIO()
    async with closing(undipy.Client(http_server.origin)) as client:
        await within(client.stream(lambda d: out, path="/", method="GET"))
    assert out.getvalue() == b"hello"
    assert not out.closed  # undipy never closes the writable


async def chunks_a_then_b(conn: RawConn) -> None:
    """Script: a chunked body whose chunks "a" and "b" arrive 50 ms apart."""
    assert await conn.read_request()
    await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for part in (b"a", b"b"):
        await conn.send(chunked(part)[: -len(b"0\r\n\r\n")])
        await asyncio.sleep(0.05)
    await conn.send(b"0\r\n\r\n")
    await conn.wait_closed_by_peer()


async def test_each_chunk_is_its_own_bytes_and_may_be_kept(raw_server: RawServerFactory) -> None:
    """A sync writable that keeps every chunk: each is a `bytes` of its own (not a view
    of a buffer the engine reuses), and they add up to the body in order."""
    body = pattern(500_000)
    parts = [body[i : i + 100_000] for i in range(0, 500_000, 100_000)]
    kept: list[Any] = []

    class Keeper:
        def write(self, chunk: bytes) -> int:
            kept.append(chunk)
            return len(chunk)  # like a file: not an awaitable, so no pause

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % 500_000)
        for part in parts:
            await conn.send(part)
            await asyncio.sleep(0.02)  # separate reads, separate chunks
        assert await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await conn.wait_closed_by_peer()

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin)) as client:
        data = await within(client.stream(lambda d: Keeper(), path="/", method="GET"))
        assert isinstance(data, StreamData)
        assert len(kept) >= 2
        assert all(type(c) is bytes for c in kept)
        assert b"".join(kept) == body
        # Same connection, next request: nothing of the first is left over.
        out = io.BytesIO()
        await within(client.stream(lambda d: out, path="/again", method="GET"))
        assert out.getvalue() == b"ok"
    assert srv.connections == 1


async def test_a_sync_drain_is_called_after_each_write(raw_server: RawServerFactory) -> None:
    events: list[str] = []

    class Writer:
        def write(self, chunk: bytes) -> None:
            events.append(f"write {chunk.decode()}")

        def drain(self) -> None:
            events.append("drain")

    srv = await raw_server(chunks_a_then_b)
    async with closing(undipy.Client(srv.origin)) as client:
        await within(client.stream(lambda d: Writer(), path="/", method="GET"))
    assert events == ["write a", "drain", "write b", "drain"]


async def test_async_write_and_drain_are_awaited_in_order(raw_server: RawServerFactory) -> None:
    events: list[str] = []

    class Writer:
        async def write(self, chunk: bytes) -> None:
            events.append(f"write {chunk.decode()}")
            await asyncio.sleep(0.01)
            events.append("written")

        async def drain(self) -> None:
            events.append("drain")
            await asyncio.sleep(0.01)
            events.append("drained")

    srv = await raw_server(chunks_a_then_b)
    async with closing(undipy.Client(srv.origin)) as client:
        await within(client.stream(lambda d: Writer(), path="/", method="GET"))
        events.append("resolved")
    assert events == [
        "write a",
        "written",
        "drain",
        "drained",
        "write b",
        "written",
        "drain",
        "drained",
        "resolved",
    ]


async def test_resolves_only_once_the_last_write_finished(http_server: HttpServer) -> None:
    """undici 'stream waits only for writable side': the result comes when the
    writable is done with the body, not before."""
    w = GatedWriter()
    async with closing(undipy.Client(http_server.origin)) as client:
        task = asyncio.ensure_future(client.stream(lambda d: w, path="/", method="GET"))
        await within(w.first_write.wait())
        await asyncio.sleep(0.1)
        assert not task.done()
        w.gate.set()
        await within(task)
    assert bytes(w.data) == b"hello"
    assert w.finished_writes == w.writes == 1


async def test_writable_is_never_closed_on_success_or_failure(raw_server: RawServerFactory) -> None:
    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(response(200, b"fine"))
        assert await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart")
        conn.reset()

    srv = await raw_server(script)
    sinks = [Sink(), Sink()]
    async with closing(undipy.Client(srv.origin)) as client:
        await within(client.stream(lambda d: sinks[0], path="/", method="GET"))
        with pytest.raises(SocketError):
            await within(client.stream(lambda d: sinks[1], path="/", method="GET"))
    assert sinks[0].data == b"fine" and not sinks[0].closed
    assert sinks[1].data in (b"", b"part") and not sinks[1].closed


@pytest.mark.loops
async def test_stream_on_a_pool(http_server: HttpServer) -> None:
    sinks = [Sink() for _ in range(4)]
    async with closing(undipy.Pool(http_server.origin, connections=2)) as pool:
        results = await within(
            asyncio.gather(*(pool.stream(lambda d, s=s: s, path="/", method="GET") for s in sinks))
        )
    assert all(isinstance(r, StreamData) for r in results)
    assert [s.data for s in sinks] == [b"hello"] * 4
    assert http_server.connections <= 2


# --------------------------------------------------------------------------- backpressure


@pytest.mark.loops
async def test_a_slow_async_writer_pauses_the_socket_and_gets_the_whole_32_mib(
    raw_server: RawServerFactory,
) -> None:
    """While a write is pending, no more body is delivered and the socket is not read:
    the server's send stalls part way. Once the writer goes on, all 32 MiB arrive in
    order."""
    progress: list[int] = []
    srv = await raw_server(streamer(32, progress, paced=True))
    w = GatedWriter()
    async with closing(undipy.Client(srv.origin)) as client:
        task = asyncio.ensure_future(client.stream(lambda d: w, path="/", method="GET"))
        await within(w.first_write.wait())
        sent = await wait_stalled(progress)
        assert sent < 32
        assert w.writes == 1  # nothing more while the first write is pending
        assert len(w.data) < 4 << 20
        w.gate.set()
        await within(task, 30.0)
    assert len(w.data) == 32 << 20
    assert bytes(w.data) == pattern(1 << 20) * 32
    assert len(progress) == 32
    assert w.finished_writes == w.writes


async def test_a_pending_drain_pauses_the_socket(raw_server: RawServerFactory) -> None:
    progress: list[int] = []
    srv = await raw_server(streamer(32, progress, paced=True))
    w = GatedDrain()
    async with closing(undipy.Client(srv.origin)) as client:
        task = asyncio.ensure_future(client.stream(lambda d: w, path="/", method="GET"))
        await within(w.first_drain.wait())
        assert await wait_stalled(progress) < 32
        assert w.drains == 1
        w.gate.set()
        await within(task, 30.0)
    assert bytes(w.data) == pattern(1 << 20) * 32


async def test_backpressure_through_a_stream_writer_reaches_the_origin(
    raw_server: RawServerFactory,
) -> None:
    """End to end: the front server streams a 32 MiB origin body into its StreamWriter;
    while the front's own client does not read, StreamWriter.drain() waits, the origin
    connection is paused and the origin's send stalls; reading the front's response
    then yields every byte."""
    progress: list[int] = []
    origin = await raw_server(streamer(32, progress, paced=True))
    back = undipy.Client(origin.origin)

    async def front(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (32 << 20))
        await back.stream(lambda d: conn.writer, path="/", method="GET")

    srv = await raw_server(front)
    async with closing(back), closing(undipy.Client(srv.origin)) as client:
        resp = await within(client.request(path="/", method="GET"))
        assert await wait_stalled(progress) < 32
        data = await within(resp.body.bytes(), 30.0)
    assert data == pattern(1 << 20) * 32


# --------------------------------------------------------------------------- errors


async def test_factory_throw_fails_that_request_only(http_server: HttpServer) -> None:
    """undici 'stream factory throw': two throwing factories, then a good one."""

    def throw(data: StreamFactoryData) -> Any:
        raise Boom("asd")

    good = Sink()
    async with closing(undipy.Client(http_server.origin)) as client:
        results = await within(
            asyncio.gather(
                client.stream(throw, path="/", method="GET"),
                client.stream(throw, path="/", method="GET"),
                client.stream(lambda d: good, path="/", method="GET"),
                return_exceptions=True,
            )
        )
        assert [type(r) for r in results[:2]] == [Boom, Boom]
        assert [str(r) for r in results[:2]] == ["asd", "asd"]
        assert isinstance(results[2], StreamData)
        assert good.data == b"hello"
        assert await ok_text(client) == "hello"


@pytest.mark.parametrize(
    "returned",
    [{}, None, object(), b"bytes", [1]],
    ids=["dict", "none", "object", "bytes", "list"],
)
async def test_invalid_return_value_fails_with_expected_writable(
    http_server: HttpServer, returned: Any
) -> None:
    async with closing(undipy.Client(http_server.origin)) as client:
        with pytest.raises(InvalidReturnValueError) as info:
            await within(client.stream(lambda d: returned, path="/", method="GET"))
        assert str(info.value) == "expected Writable"
        assert info.value.code == "UND_ERR_INVALID_RETURN_VALUE"
        assert await ok_text(client) == "hello"


async def test_an_async_factory_is_an_invalid_return_value(http_server: HttpServer) -> None:
    async def factory(data: StreamFactoryData) -> Sink:
        return Sink()

    async with closing(undipy.Client(http_server.origin)) as client:
        with pytest.raises(InvalidReturnValueError):
            await within(client.stream(factory, path="/", method="GET"))
        assert await ok_text(client) == "hello"


@pytest.mark.parametrize("where", ["sync-write", "async-write", "drain"])
async def test_a_failing_writable_fails_the_request_and_the_client_stays_usable(
    raw_server: RawServerFactory, where: str
) -> None:
    class Failing:
        def __init__(self) -> None:
            self.calls = 0

        def write(self, chunk: bytes) -> Any:
            self.calls += 1
            if where == "sync-write":
                raise Boom("write")
            if where == "async-write":
                return self._fail()
            return None

        async def _fail(self) -> None:
            await asyncio.sleep(0)
            raise Boom("async write")

        async def drain(self) -> None:
            if where == "drain":
                raise Boom("drain")

    bodies = [pattern(8 << 20)]  # the first request gets 8 MiB, any other one "ok"

    async def big_then_ok(conn: RawConn) -> None:
        try:
            while await conn.read_request():
                await conn.send(response(200, bodies.pop() if bodies else b"ok"))
        except (ConnectionError, asyncio.IncompleteReadError):
            return

    srv = await raw_server(big_then_ok)
    w = Failing()
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(Boom):
            await within(client.stream(lambda d: w, path="/", method="GET"))
        assert w.calls == 1
        # The failed request's connection is dropped, unless the engine had read the
        # whole response already; either way the next request works.
        assert await ok_text(client) == "ok"


async def test_invalid_arguments(http_server: HttpServer) -> None:
    """undici 'stream CONNECT throw' and 'stream args validation'."""
    async with closing(undipy.Client(http_server.origin)) as client:
        with pytest.raises(InvalidArgumentError):
            await within(client.stream(lambda d: Sink(), path="/", method="CONNECT"))
        with pytest.raises(InvalidArgumentError):
            await within(client.stream(None, path="/", method="GET"))  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            await within(client.stream(lambda d: Sink(), path="/", method="GET", signal=1))
        with pytest.raises(InvalidArgumentError):
            await within(client.stream(lambda d: Sink(), path="/", method="GET", on_info=3))
        with pytest.raises(InvalidArgumentError):
            await within(
                client.stream(lambda d: Sink(), path="/", method="GET", throw_on_error="yes")
            )
        with pytest.raises(InvalidArgumentError):
            await within(client.stream(lambda d: Sink(), path="/", method="GET", upgrade="x"))
    assert http_server.requests == []


async def test_server_side_destroy_fails_with_socket_error(raw_server: RawServerFactory) -> None:
    """undici 'stream server side destroy': the factory is never called."""

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        conn.reset()

    srv = await raw_server([script, answer()])
    called: list[Any] = []
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(SocketError):
            await within(client.stream(called.append, path="/", method="POST", body=b"x"))
        assert called == []
        assert await ok_text(client) == "ok"


# --------------------------------------------------------------------------- aborts


async def test_abort_before_dispatch_sends_nothing(raw_server: RawServerFactory) -> None:
    """undici 'stream abort before dispatch'; a reason given to abort() is raised as is."""
    srv = await raw_server(answer())
    plain, with_reason = AbortController(), AbortController()
    plain.abort()
    reason = Boom("why")
    with_reason.abort(reason)
    event = asyncio.Event()
    event.set()
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(RequestAbortedError):
            await within(
                client.stream(lambda d: Sink(), path="/", method="GET", signal=plain.signal)
            )
        with pytest.raises(Boom) as info:
            await within(
                client.stream(lambda d: Sink(), path="/", method="GET", signal=with_reason.signal)
            )
        assert info.value is reason
        with pytest.raises(RequestAbortedError):
            await within(client.stream(lambda d: Sink(), path="/", method="GET", signal=event))
    assert srv.connections == 0


async def test_abort_in_the_factory(http_server: HttpServer) -> None:
    """undici 'stream factory abort': the signal's listener is gone afterwards."""
    controller = AbortController()

    def factory(data: StreamFactoryData) -> Sink:
        controller.abort()
        return Sink()

    async with closing(undipy.Client(http_server.origin)) as client:
        with pytest.raises(RequestAbortedError):
            await within(client.stream(factory, path="/", method="GET", signal=controller.signal))
        assert controller.signal._listeners == []
        assert await ok_text(client) == "hello"


@pytest.mark.loops
async def test_abort_while_a_write_is_pending(raw_server: RawServerFactory) -> None:
    progress: list[int] = []
    srv = await raw_server([streamer(32, progress, paced=True), answer()])
    controller = AbortController()
    w = GatedWriter()
    async with closing(undipy.Client(srv.origin)) as client:
        task = asyncio.ensure_future(
            client.stream(lambda d: w, path="/", method="GET", signal=controller.signal)
        )
        await within(w.first_write.wait())
        controller.abort()
        with pytest.raises(RequestAbortedError):
            await within(task)
        await srv.wait_closed(1)
        assert len(progress) < 32
        assert w.finished_writes == 0  # the pending write was cancelled
        assert await ok_text(client) == "ok"


async def test_abort_by_an_asyncio_event_during_the_response(
    raw_server: RawServerFactory,
) -> None:
    async def hold(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await conn.wait_closed_by_peer()

    srv = await raw_server([hold, answer()])
    event = asyncio.Event()
    sink = Sink()
    async with closing(undipy.Client(srv.origin)) as client:
        task = asyncio.ensure_future(
            client.stream(lambda d: sink, path="/", method="GET", signal=event)
        )
        while sink.data != b"abc":
            await asyncio.sleep(0.005)
        event.set()
        with pytest.raises(RequestAbortedError):
            await within(task)
        assert await ok_text(client) == "ok"


async def test_abort_after_complete_does_nothing(http_server: HttpServer) -> None:
    """undici 'stream abort after complete'."""
    controller = AbortController()
    async with closing(undipy.Client(http_server.origin)) as client:
        result = await within(
            client.stream(lambda d: Sink(), path="/", method="GET", signal=controller.signal)
        )
        controller.abort()
        assert isinstance(result, StreamData)
        assert controller.signal._listeners == []
        assert await ok_text(client) == "hello"
    assert len(http_server.requests) == 2
    assert http_server.connections == 1


async def test_cancelling_the_awaiting_task_aborts_the_request(
    raw_server: RawServerFactory,
) -> None:
    async def hold(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.wait_closed_by_peer()

    srv = await raw_server([hold, answer()])
    async with closing(undipy.Client(srv.origin)) as client:
        task = asyncio.ensure_future(client.stream(lambda d: Sink(), path="/", method="GET"))
        await srv.wait_connections(1)
        while not srv.conns[0].received:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await srv.wait_closed(1)
        assert srv.conns[0].eof
        assert await ok_text(client) == "ok"


# --------------------------------------------------------------------------- response shapes


async def test_trailers(raw_server: RawServerFactory) -> None:
    """undici 'trailers'."""
    body = chunked(b"hi", trailers=[("Content-MD5", "test")])
    srv = await raw_server(
        answer(response(200, body, [("Transfer-Encoding", "chunked"), ("Trailer", "Content-MD5")]))
    )
    sink = Sink()
    async with closing(undipy.Client(srv.origin)) as client:
        result = await within(client.stream(lambda d: sink, path="/", method="GET"))
    assert result.trailers == {"content-md5": "test"}
    assert sink.data == b"hi"


async def test_1xx_is_ignored_or_given_to_on_info(raw_server: RawServerFactory) -> None:
    """undici 'stream ignore 1xx' and 'stream ignore 1xx and use onInfo'."""

    async def script(conn: RawConn) -> None:
        while await conn.read_request():
            await conn.send(b"HTTP/1.1 102 Processing\r\n\r\n")
            await conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
            await conn.send(response(200, b"hello"))

    srv = await raw_server(script)
    infos: list[dict[str, Any]] = []
    statuses: list[int] = []
    sinks = [Sink(), Sink()]

    def factory(i: int) -> Any:
        def make(data: StreamFactoryData) -> Sink:
            statuses.append(data.status_code)
            return sinks[i]

        return make

    async with closing(undipy.Client(srv.origin)) as client:
        await within(client.stream(factory(0), path="/", method="GET"))
        await within(client.stream(factory(1), path="/", method="GET", on_info=infos.append))
    assert statuses == [200, 200]
    assert [s.data for s in sinks] == [b"hello", b"hello"]
    assert infos == [
        {"status_code": 102, "headers": {}},
        {"status_code": 103, "headers": {"link": "</a>"}},
    ]


async def test_headers_are_lower_case_strings_and_repeated_names_lists(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(
        answer(
            response(
                200,
                b"x",
                [("Set-Cookie", "a=1"), ("X-Cafe", "cr\xe8me"), ("set-cookie", "b=2")],
            )
        )
    )
    seen: list[StreamFactoryData] = []
    async with closing(undipy.Client(srv.origin)) as client:
        await within(client.stream(lambda d: seen.append(d) or Sink(), path="/", method="GET"))
    assert seen[0].headers == {
        "set-cookie": ["a=1", "b=2"],
        "x-cafe": "cr\xe8me",
        "content-length": "1",
    }


@pytest.mark.parametrize(
    ("ctype", "payload", "expected"),
    [
        ("application/json", b'{"error": "nope"}', {"error": "nope"}),
        ("text/plain", b"not here", "not here"),
    ],
)
async def test_throw_on_error_raises_without_calling_the_factory(
    raw_server: RawServerFactory, ctype: str, payload: bytes, expected: Any
) -> None:
    srv = await raw_server(answer(response(404, payload, [("Content-Type", ctype)])))
    called: list[Any] = []
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(ResponseStatusCodeError) as info:
            await within(client.stream(called.append, path="/", method="GET", throw_on_error=True))
        err = info.value
        assert err.status_code == 404
        assert err.body == expected
        assert err.headers["content-type"] == ctype
        assert str(err) == "Response status code 404: Not Found"
        assert called == []
        sink = Sink()
        await within(client.stream(lambda d: sink, path="/", method="GET"))  # same connection
        assert sink.data == payload
    assert srv.connections == 1


async def test_post_body_and_request_bytes(raw_server: RawServerFactory) -> None:
    srv = await raw_server(answer(response(201, json.dumps({"ok": True}).encode())))
    sink = Sink()
    async with closing(undipy.Client(srv.origin)) as client:
        await within(
            client.stream(
                lambda d: sink,
                path="/items",
                method="POST",
                headers={"content-type": "application/json"},
                body=b'{"a": 1}',
            )
        )
    assert json.loads(sink.data) == {"ok": True}
    assert (
        srv.received[0]
        == head(
            "POST /items HTTP/1.1",
            f"host: {host_of(srv)}",
            "connection: keep-alive",
            "content-type: application/json",
            "content-length: 8",
        )
        + b'{"a": 1}'
    )


# --------------------------------------------------------------------------- engine


async def test_engine_abort_of_a_paused_dispatch_calls_on_error_without_resume(
    raw_server: RawServerFactory,
) -> None:
    """stream() and pipeline() work around it by calling resume() after abort()."""

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await conn.wait_closed_by_peer()

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin)) as client:
        h = Recorder(pause_on_data=True)
        client.dispatch(h, path="/", method="GET")
        await h.wait_for("data")
        assert h.abort is not None
        h.abort()
        try:
            await h.wait(2.0)
        finally:
            if h.resume is not None:
                h.resume()  # let the request end either way
        assert h.kinds == ["connect", "headers", "data", "error"]
        assert isinstance(h.only_error, RequestAbortedError)


async def test_engine_bounds_what_it_reads_ahead_of_a_busy_loop() -> None:
    """A server thread (independent of the loop) sends 128 MiB once on_headers ran; the
    loop is then busy for as long as the server makes progress, so no on_data runs
    meanwhile. The engine must stop reading after a bounded amount, not take the whole
    body."""
    lsock = socket.create_server(("127.0.0.1", 0))
    sent = [0]
    total = 128
    headers_seen = threading.Event()  # the body is sent only once on_headers ran

    def serve() -> None:
        conn, _ = lsock.accept()
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (total << 20))
            if not headers_seen.wait(5.0):
                return
            piece = b"x" * (1 << 20)
            with contextlib.suppress(OSError):
                for _ in range(total):
                    conn.sendall(piece)
                    sent[0] += 1

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = undipy.Client(f"http://127.0.0.1:{lsock.getsockname()[1]}")
    try:
        h = Recorder(pause_on_data=True)
        client.dispatch(h, path="/", method="GET")
        await h.wait_for("headers")
        headers_seen.set()
        # Busy loop: wait (blocking) until the server stops making progress.
        deadline = time.monotonic() + 10.0
        seen, stable_since = -1, time.monotonic()
        while sent[0] < total and time.monotonic() < deadline:
            if sent[0] != seen:
                seen, stable_since = sent[0], time.monotonic()
            elif time.monotonic() - stable_since > 0.5:
                break
            time.sleep(0.01)
        assert sent[0] < 64, f"the engine took {sent[0]} MiB while the handler could not run"
    finally:
        await within(client.destroy())
        lsock.close()
        thread.join(5.0)


# --------------------------------------------------------------------------- callback form


async def test_callback_form(raw_server: RawServerFactory) -> None:
    srv = await raw_server([answer(response(200, b"cb")), answer()])
    loop = asyncio.get_running_loop()
    ok: asyncio.Future[tuple[Any, Any]] = loop.create_future()
    failed: asyncio.Future[tuple[Any, Any]] = loop.create_future()
    sink = Sink()

    def throw(data: StreamFactoryData) -> Any:
        raise Boom("cb")

    async with closing(undipy.Client(srv.origin)) as client:
        ret = client.stream(
            lambda d: sink,
            path="/",
            method="GET",
            opaque=1,
            callback=lambda e, d: ok.set_result((e, d)),
        )
        assert ret is None
        err, data = await within(ok)
        assert err is None and data.opaque == 1 and sink.data == b"cb"
        client.stream(
            throw, path="/", method="GET", callback=lambda e, d: failed.set_result((e, d))
        )
        err, data = await within(failed)
        assert isinstance(err, Boom) and data is None
        with pytest.raises(InvalidArgumentError):
            client.stream(lambda d: sink, path="/", method="GET", callback="nope")
