"""pipeline(): a duplex whose writes are the request body and whose reads are what the
handler makes of the response.

Covers Dispatcher.md's "Pipeline Echo" example, undici's test/client-pipeline.js
scenarios (get, echo, invalid or throwing handlers, aborted and destroyed bodies and
duplexes, server resets before and after the head) and both directions of
backpressure, plus object mode, signals and the ``async with`` form.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import undipy
from helpers import RawServerFactory, answer, closing, pattern, streamer, within
from servers import HttpServer, RawConn, Request, Response, response
from undipy import (
    AbortController,
    ClientClosedError,
    InvalidArgumentError,
    InvalidReturnValueError,
    PipelineBody,
    PipelineDuplex,
    PipelineHandlerData,
    RequestAbortedError,
    SocketError,
)


class Boom(Exception):
    """Raised by handlers under test."""


async def echo(req: Request) -> Response:
    return Response(body=req.body, headers=[("Content-Type", "text/plain")])


async def passthrough(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """What undici's example pipes the body through: a PassThrough."""
    async for chunk in body:
        yield chunk


def body_of(data: PipelineHandlerData) -> PipelineBody:
    return data.body


async def collect(dup: PipelineDuplex, timeout: float = 5.0) -> bytes:
    out = bytearray()
    async with asyncio.timeout(timeout):
        async for chunk in dup:
            out += chunk
    return bytes(out)


async def ok_text(client: undipy.Dispatcher, path: str = "/") -> str:
    resp = await within(client.request(path=path, method="GET"))
    return str(await within(resp.body.text()))


async def read_chunked(conn: RawConn, timeout: float = 10.0) -> bytes:
    """A chunked request body, read piece by piece (the head already read)."""
    body = bytearray()
    while True:
        line = await conn.read_until(b"\r\n", timeout=timeout)
        n = int(line.split(b";")[0].strip(), 16)
        if n == 0:
            assert await conn.read_until(b"\r\n", timeout=timeout) == b"\r\n"
            return bytes(body)
        body += await conn.read_exactly(n, timeout=timeout)
        assert await conn.read_exactly(2, timeout=timeout) == b"\r\n"


async def chunk_echo(conn: RawConn) -> None:
    """Script: echo each chunk of a chunked request body as soon as it arrives, as a
    chunk of a chunked response (a true duplex server)."""
    await conn.read_until(b"\r\n\r\n")
    await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    while True:
        line = await conn.read_until(b"\r\n", timeout=5.0)
        n = int(line.split(b";")[0].strip(), 16)
        if n == 0:
            await conn.read_until(b"\r\n")
            await conn.send(b"0\r\n\r\n")
            break
        data = await conn.read_exactly(n)
        assert await conn.read_exactly(2) == b"\r\n"
        await conn.send(b"%x\r\n%s\r\n" % (n, data))
    await conn.wait_closed_by_peer()


def drop(conn_after_head: bytes = b"") -> Any:
    """Script: read the request head, send ``conn_after_head``, then reset."""

    async def script(conn: RawConn) -> None:
        await conn.read_until(b"\r\n\r\n")
        if conn_after_head:
            await conn.send(conn_after_head)
            await asyncio.sleep(0.05)
        conn.reset()

    return script


# --------------------------------------------------------------------------- seed example


@pytest.mark.loops
async def test_seed_pipeline_echo(http_server: HttpServer) -> None:
    """Dispatcher.md, "Example 1 - Pipeline Echo": a source writes 'undici' into the
    duplex, the handler passes the body through, a sink collects 'undici'."""
    http_server.route("/", echo)
    seen: list[tuple[int, dict[str, Any]]] = []

    def handler(data: PipelineHandlerData) -> AsyncIterator[bytes]:
        seen.append((data.status_code, data.headers))
        return passthrough(data.body)

    async def source(dup: PipelineDuplex) -> None:
        await dup.write(b"undici")
        await dup.end()

    async with closing(undipy.Client(http_server.origin)) as client:
        dup = client.pipeline(handler, path="/", method="GET")
        feeding = asyncio.ensure_future(source(dup))
        res = (await collect(dup)).decode()
        await within(feeding)
    assert res == "undici"
    # A GET with a body is sent with connection: close, so the server answers with it.
    assert seen == [
        (200, {"content-type": "text/plain", "content-length": "6", "connection": "close"})
    ]
    (req,) = http_server.requests
    assert (req.method, req.path, req.body) == ("GET", "/", b"undici")
    assert req.header("transfer-encoding") == "chunked"


async def test_pipeline_get_with_an_empty_body(http_server: HttpServer) -> None:
    """undici 'pipeline get': two pipelines at once, each ended at once."""
    async with closing(undipy.Client(http_server.origin)) as client:
        dups = [client.pipeline(body_of, path="/", method="GET") for _ in range(2)]
        for dup in dups:
            await within(dup.end())
        assert [await collect(d) for d in dups] == [b"hello", b"hello"]
    assert [(r.method, r.body, r.header("content-length")) for r in http_server.requests] == [
        ("GET", b"", None),
        ("GET", b"", None),
    ]


async def test_pipeline_echo_of_a_mib(http_server: HttpServer) -> None:
    """undici 'pipeline echo': 1e3 then 1e6 bytes round-trip through a PUT."""
    http_server.route("/", echo)
    buf1, buf2 = pattern(1000), pattern(1_000_000)
    async with closing(undipy.Client(http_server.origin)) as client:
        dup = client.pipeline(lambda d: passthrough(d.body), path="/", method="PUT")

        async def source() -> None:
            await dup.write(buf1)
            await dup.end(buf2)

        feeding = asyncio.ensure_future(source())
        assert await collect(dup) == buf1 + buf2
        await within(feeding)


@pytest.mark.loops
async def test_the_duplex_streams_both_ways_at_once(raw_server: RawServerFactory) -> None:
    """Each message written comes back (echoed by the server chunk by chunk) before the
    next one is written: nothing waits for the whole request body."""
    srv = await raw_server(chunk_echo)
    async with closing(undipy.Client(srv.origin)) as client:
        dup = client.pipeline(body_of, path="/chat", method="POST")
        for i in range(5):
            await within(dup.write(f"message {i}"))
            assert await within(anext(dup)) == f"message {i}".encode()
        await within(dup.end())
        assert await collect(dup) == b""


# --------------------------------------------------------------------------- backpressure


@pytest.mark.loops
async def test_an_unread_duplex_pauses_the_socket_and_then_gets_all_32_mib(
    raw_server: RawServerFactory,
) -> None:
    progress: list[int] = []
    srv = await raw_server(streamer(32, progress, paced=True))
    async with closing(undipy.Client(srv.origin)) as client:
        dup = client.pipeline(lambda d: passthrough(d.body), path="/", method="GET")
        await within(dup.end())
        first = await within(anext(dup))
        seen = -1
        async with asyncio.timeout(5):  # wait until the server's send stalls
            while seen != len(progress):
                seen = len(progress)
                await asyncio.sleep(0.2)
        assert seen < 32
        data = first + await collect(dup, 30.0)
    assert data == pattern(1 << 20) * 32


async def test_writes_wait_while_the_server_does_not_read(raw_server: RawServerFactory) -> None:
    """The request side: with the server not reading, write() stops returning after a
    bounded amount (socket buffers plus the duplex's own 64 KiB); once the server reads,
    every byte arrives in order."""
    go = asyncio.Event()
    received: list[bytes] = []

    async def script(conn: RawConn) -> None:
        await conn.read_until(b"\r\n\r\n")
        await go.wait()
        received.append(await read_chunked(conn))
        await conn.send(response(200, str(len(received[0])).encode()))
        await conn.wait_closed_by_peer()

    srv = await raw_server(script)
    total, piece = 32 << 20, 1 << 16
    payload = pattern(total)
    accepted: list[int] = []
    async with closing(undipy.Client(srv.origin)) as client:
        dup = client.pipeline(body_of, path="/upload", method="PUT")

        async def source() -> None:
            for i in range(0, total, piece):
                await dup.write(payload[i : i + piece])
                accepted.append(i + piece)
            await dup.end()

        feeding = asyncio.ensure_future(source())
        seen = -1
        async with asyncio.timeout(5):  # wait until writes stop returning
            while seen != len(accepted):
                seen = len(accepted)
                await asyncio.sleep(0.2)
        assert not feeding.done()
        assert 0 < accepted[-1] < 16 << 20
        go.set()
        assert await collect(dup, 30.0) == str(total).encode()
        await within(feeding)
    assert received == [payload]


# --------------------------------------------------------------------------- handler errors


@pytest.mark.parametrize("returned", [None, {}, b"bytes", [b"a list"]], ids=repr)
async def test_invalid_handler_return_fails_with_expected_readable(
    http_server: HttpServer, returned: Any
) -> None:
    """undici 'pipeline invalid handler return'."""
    async with closing(undipy.Client(http_server.origin)) as client:
        dup = client.pipeline(lambda d: returned, path="/", method="GET")
        await within(dup.end())
        with pytest.raises(InvalidReturnValueError) as info:
            await within(anext(dup))
        assert str(info.value) == "expected Readable"
        assert info.value.code == "UND_ERR_INVALID_RETURN_VALUE"
        with pytest.raises(InvalidReturnValueError):
            await within(dup.write(b"late"))
        assert dup.destroyed
        assert await ok_text(client) == "hello"


async def test_a_throwing_handler_fails_the_duplex(http_server: HttpServer) -> None:
    """undici 'pipeline throw handler'."""

    def handler(data: PipelineHandlerData) -> Any:
        raise Boom("asd")

    async with closing(undipy.Client(http_server.origin)) as client:
        dup = client.pipeline(handler, path="/", method="GET")
        await within(dup.end())
        with pytest.raises(Boom, match="asd"):
            await within(anext(dup))
        with pytest.raises(Boom):  # the duplex stays failed
            await within(anext(dup))
        assert await ok_text(client) == "hello"


async def test_destroy_in_the_handler_then_throw(http_server: HttpServer) -> None:
    """undici 'pipeline destroy and throw handler': the destroy comes first."""
    holder: list[PipelineDuplex] = []

    def handler(data: PipelineHandlerData) -> Any:
        holder[0].destroy()
        raise Boom("asd")

    async with closing(undipy.Client(http_server.origin)) as client:
        dup = client.pipeline(handler, path="/", method="GET")
        holder.append(dup)
        await within(dup.end())
        with pytest.raises(RequestAbortedError):
            await within(anext(dup))
        assert await ok_text(client) == "hello"


async def test_destroy_with_an_error_in_the_handler(http_server: HttpServer) -> None:
    """undici 'pipeline invalid handler return after destroy should not error': the
    destroy's error wins over the invalid return."""
    holder: list[PipelineDuplex] = []

    def handler(data: PipelineHandlerData) -> Any:
        holder[0].destroy(Boom("asd"))
        return {}

    async with closing(undipy.Client(http_server.origin)) as client:
        dup = client.pipeline(handler, path="/", method="GET")
        holder.append(dup)
        await within(dup.end())
        with pytest.raises(Boom, match="asd"):
            await within(anext(dup))


async def test_a_failing_handler_iterable_ends_both_sides_and_the_request(
    raw_server: RawServerFactory,
) -> None:
    """undici 'pipeline error body': the handler's iterable raises after a chunk: the
    duplex raises it, writes raise it, the connection is dropped."""

    async def script(conn: RawConn) -> None:
        await conn.read_until(b"\r\n\r\n")
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
        await conn.wait_closed_by_peer()

    async def failing(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in body:
            yield chunk
            raise Boom("asd")

    srv = await raw_server([script, answer()])
    async with closing(undipy.Client(srv.origin)) as client:
        dup = client.pipeline(lambda d: failing(d.body), path="/", method="PUT")
        await within(dup.write(b"x"))
        assert await within(anext(dup)) == b"first"
        with pytest.raises(Boom):
            await within(anext(dup))
        with pytest.raises(Boom):
            await within(dup.write(b"more"))
        await srv.wait_closed(1)
        assert srv.conns[0].eof
        assert await ok_text(client) == "ok"


async def test_closing_the_body_in_the_handler_aborts(raw_server: RawServerFactory) -> None:
    """undici 'pipeline abort res': the handler gives up the body before its end."""

    async def script(conn: RawConn) -> None:
        await conn.read_until(b"\r\n\r\n")
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nasd")
        await conn.wait_closed_by_peer()

    def handler(data: PipelineHandlerData) -> PipelineBody:
        asyncio.get_running_loop().call_later(0.02, asyncio.ensure_future, data.body.aclose())
        return data.body

    srv = await raw_server([script, answer()])
    async with closing(undipy.Client(srv.origin)) as client:
        dup = client.pipeline(handler, path="/", method="GET")
        await within(dup.end())
        with pytest.raises(RequestAbortedError):
            await collect(dup)
        await srv.wait_closed(1)
        assert await ok_text(client) == "ok"


async def test_an_independent_handler_iterable_still_sees_the_request_fail(
    raw_server: RawServerFactory,
) -> None:
    """A handler iterable that ignores the body (it waits for something else) is
    interrupted when the request fails: the duplex raises the request's error."""

    async def never(data: PipelineHandlerData) -> AsyncIterator[bytes]:
        await asyncio.Event().wait()
        yield b"never"

    srv = await raw_server(drop(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nasd"))
    async with closing(undipy.Client(srv.origin)) as client:
        dup = client.pipeline(never, path="/", method="GET")
        await within(dup.end())
        with pytest.raises(SocketError):
            await within(anext(dup))


# --------------------------------------------------------------------------- server failures


async def test_server_reset_before_the_head(raw_server: RawServerFactory) -> None:
    """undici 'pipeline abort server res': SocketError, the handler is never called."""
    called: list[Any] = []
    srv = await raw_server([drop(), answer()])
    async with closing(undipy.Client(srv.origin)) as client:
        dup = client.pipeline(called.append, path="/", method="GET")
        await within(dup.end())
        with pytest.raises(SocketError):
            await within(anext(dup))
        assert called == []
        assert await ok_text(client) == "ok"


async def test_server_reset_after_the_head(raw_server: RawServerFactory) -> None:
    """undici 'pipeline abort server res after headers' / 'w/ write ...'."""
    srv = await raw_server([drop(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nasd"), answer()])
    async with closing(undipy.Client(srv.origin)) as client:
        dup = client.pipeline(body_of, path="/", method="PUT")
        await within(dup.write(b"asd"))
        with pytest.raises(SocketError):
            await collect(dup)
        assert await ok_text(client) == "ok"


# --------------------------------------------------------------------------- destroy and aborts


async def test_destroying_the_duplex_before_the_answer(raw_server: RawServerFactory) -> None:
    """undici 'pipeline abort duplex'."""

    async def hold(conn: RawConn) -> None:
        await conn.read_until(b"\r\n\r\n")
        await conn.wait_closed_by_peer()

    called: list[Any] = []
    srv = await raw_server([hold, answer()])
    async with closing(undipy.Client(srv.origin)) as client:
        dup = client.pipeline(called.append, path="/", method="PUT")
        async with asyncio.timeout(5):  # the request is on the wire
            while not (srv.conns and b"\r\n\r\n" in srv.conns[0].received):
                await asyncio.sleep(0.005)
        dup.destroy()
        with pytest.raises(RequestAbortedError):
            await within(anext(dup))
        with pytest.raises(RequestAbortedError):
            await within(dup.write(b"x"))
        await srv.wait_closed(1)
        assert called == []
        assert await ok_text(client) == "ok"


@pytest.mark.loops
async def test_abort_signal_during_the_response(raw_server: RawServerFactory) -> None:
    async def script(conn: RawConn) -> None:
        await conn.read_until(b"\r\n\r\n")
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nasd")
        await conn.wait_closed_by_peer()

    srv = await raw_server([script, answer()])
    controller = AbortController()
    async with closing(undipy.Client(srv.origin)) as client:
        dup = client.pipeline(body_of, path="/", method="GET", signal=controller.signal)
        await within(dup.end())
        assert await within(anext(dup)) == b"asd"
        controller.abort()
        with pytest.raises(RequestAbortedError):
            await within(anext(dup))
        await srv.wait_closed(1)
        assert await ok_text(client) == "ok"


async def test_abort_while_the_socket_is_paused(raw_server: RawServerFactory) -> None:
    """Aborting while nothing reads the duplex (the socket is paused) still ends it."""
    progress: list[int] = []
    srv = await raw_server([streamer(32, progress, paced=True), answer()])
    event = asyncio.Event()
    async with closing(undipy.Client(srv.origin)) as client:
        dup = client.pipeline(body_of, path="/", method="GET", signal=event)
        await within(dup.end())
        await within(anext(dup))
        await asyncio.sleep(0.2)  # the body buffer fills and the socket pauses
        event.set()
        with pytest.raises(RequestAbortedError):
            await collect(dup)
        await srv.wait_closed(1)
        assert len(progress) < 32
        assert await ok_text(client) == "ok"


async def test_an_already_aborted_signal_sends_nothing(raw_server: RawServerFactory) -> None:
    srv = await raw_server(answer())
    controller = AbortController()
    reason = Boom("before")
    controller.abort(reason)
    async with closing(undipy.Client(srv.origin)) as client:
        dup = client.pipeline(body_of, path="/", method="GET", signal=controller.signal)
        with pytest.raises(Boom) as info:
            await within(anext(dup))
        assert info.value is reason
        with pytest.raises(Boom):
            await within(dup.write(b"x"))
    assert srv.connections == 0


async def test_async_with_leaving_early_aborts_the_request(raw_server: RawServerFactory) -> None:
    progress: list[int] = []
    srv = await raw_server([streamer(32, progress, paced=True), answer()])
    async with closing(undipy.Client(srv.origin)) as client:
        async with client.pipeline(body_of, path="/", method="GET") as dup:
            await within(dup.end())
            assert len(await within(anext(dup))) > 0
        assert dup.destroyed
        await srv.wait_closed(1)
        assert len(progress) < 32
        assert await ok_text(client) == "ok"


async def test_async_with_after_the_end_does_not_abort(http_server: HttpServer) -> None:
    async with closing(undipy.Client(http_server.origin)) as client:
        async with client.pipeline(body_of, path="/", method="GET") as dup:
            await within(dup.end())
            assert await collect(dup) == b"hello"
        assert not dup.destroyed
        assert await ok_text(client) == "hello"


# --------------------------------------------------------------------------- shapes


async def test_object_mode_yields_any_objects(raw_server: RawServerFactory) -> None:
    lines = b'{"n": 1}\n{"n": 2}\n{"n": 3}\n'
    srv = await raw_server(answer(response(200, lines, [("Content-Type", "application/x-ndjson")])))

    async def records(body: AsyncIterator[bytes]) -> AsyncIterator[dict[str, int]]:
        buf = b""
        async for chunk in body:
            buf += chunk
            *done, buf = buf.split(b"\n")
            for line in done:
                yield json.loads(line)

    async with closing(undipy.Client(srv.origin)) as client:
        dup = client.pipeline(lambda d: records(d.body), path="/", method="GET", object_mode=True)
        await within(dup.end())
        out = [item async for item in dup]
    assert out == [{"n": 1}, {"n": 2}, {"n": 3}]


async def test_objects_without_object_mode_fail_with_type_error(
    raw_server: RawServerFactory,
) -> None:
    async def script(conn: RawConn) -> None:
        await conn.read_until(b"\r\n\r\n")
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nasd")
        await conn.wait_closed_by_peer()

    async def objects(body: AsyncIterator[bytes]) -> AsyncIterator[Any]:
        async for _ in body:
            yield {"not": "bytes"}

    srv = await raw_server([script, answer()])
    async with closing(undipy.Client(srv.origin)) as client:
        dup = client.pipeline(lambda d: objects(d.body), path="/", method="GET")
        await within(dup.end())
        with pytest.raises(TypeError):
            await within(anext(dup))
        await srv.wait_closed(1)  # the request was aborted
        assert await ok_text(client) == "ok"


async def test_str_bytearray_and_memoryview_items_become_bytes(http_server: HttpServer) -> None:
    async def mixed(body: AsyncIterator[bytes]) -> AsyncIterator[Any]:
        async for chunk in body:
            yield chunk.decode()
            yield bytearray(b"|")
            yield memoryview(b"end")

    async with closing(undipy.Client(http_server.origin)) as client:
        dup = client.pipeline(lambda d: mixed(d.body), path="/", method="GET")
        await within(dup.end())
        assert [item async for item in dup] == [b"hello", b"|", b"end"]


async def test_on_info_and_opaque_and_context(raw_server: RawServerFactory) -> None:
    async def script(conn: RawConn) -> None:
        await conn.read_until(b"\r\n\r\n")
        await conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
        await conn.send(response(200, b"done"))
        await conn.wait_closed_by_peer()

    srv = await raw_server(script)
    infos: list[dict[str, Any]] = []
    seen: list[PipelineHandlerData] = []

    def handler(data: PipelineHandlerData) -> PipelineBody:
        seen.append(data)
        return data.body

    async with closing(undipy.Client(srv.origin)) as client:
        dup = client.pipeline(handler, path="/", method="GET", on_info=infos.append, opaque="o")
        await within(dup.end())
        assert await collect(dup) == b"done"
    assert infos == [{"status_code": 103, "headers": {"link": "</a>"}}]
    (data,) = seen
    assert (data.status_code, data.opaque, data.headers) == (200, "o", {"content-length": "4"})
    assert isinstance(data.context, dict)


async def test_a_response_that_ends_before_the_request_body(raw_server: RawServerFactory) -> None:
    """The server answers before the request body ended: the duplex yields the answer,
    later writes are dropped without error, and the client stays usable."""

    async def script(conn: RawConn) -> None:
        await conn.read_until(b"\r\n\r\n")
        await conn.send(response(200, b"early"))
        await conn.wait_closed_by_peer()

    srv = await raw_server([script, answer()])
    async with closing(undipy.Client(srv.origin)) as client:
        dup = client.pipeline(body_of, path="/", method="PUT")
        await within(dup.write(b"part"))
        assert await collect(dup) == b"early"
        await within(dup.write(b"ignored"))
        await within(dup.end())
        assert await ok_text(client) == "ok"


async def test_invalid_arguments_raise_at_once(raw_server: RawServerFactory) -> None:
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin)) as client:
        for kwargs in (
            {"method": "CONNECT"},
            {"method": "GET", "body": b"x"},
            {"method": "GET", "object_mode": "yes"},
            {"method": "GET", "upgrade": "websocket"},
            {"method": "GET", "signal": object()},
            {"method": "GET", "on_info": 1},
            {"method": "GET", "headers": {"a\nb": "c"}},
        ):
            with pytest.raises(InvalidArgumentError):
                client.pipeline(body_of, path="/", **kwargs)
        with pytest.raises(InvalidArgumentError):
            client.pipeline(None, path="/", method="GET")  # type: ignore[arg-type]
        dup = client.pipeline(body_of, path="/", method="POST")
        with pytest.raises(TypeError):
            await dup.write(123)  # type: ignore[arg-type]
        await within(dup.end())
        with pytest.raises(InvalidArgumentError):
            await dup.write(b"after end")
        assert await collect(dup) == b"ok"
    assert srv.connections == 1


async def test_a_closed_client_fails_the_duplex(http_server: HttpServer) -> None:
    client = undipy.Client(http_server.origin)
    await within(client.close())
    dup = client.pipeline(body_of, path="/", method="GET")
    with pytest.raises(ClientClosedError):
        await within(anext(dup))
    assert http_server.requests == []
