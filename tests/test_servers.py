"""Tests of the test servers themselves, using plain asyncio stream clients.

If these servers are wrong, every client test built on them is meaningless; these tests
pin down the behaviour the client tests rely on, independently of undipy.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from servers import (
    HttpProtocolError,
    HttpServer,
    RawConn,
    RawServer,
    Request,
    Response,
    chunked,
    response,
)

RawServerFactory = Callable[..., Awaitable[RawServer]]
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
T = 2.0  # seconds any single client-side wait may take


# --------------------------------------------------------------------------- client helpers


async def connect(srv: HttpServer | RawServer) -> Conn:
    if srv.unix_path is not None:
        return await asyncio.wait_for(asyncio.open_unix_connection(srv.unix_path), T)
    return await asyncio.wait_for(asyncio.open_connection(srv.host, srv.port), T)


@contextlib.asynccontextmanager
async def connection(srv: HttpServer | RawServer) -> AsyncIterator[Conn]:
    reader, writer = await connect(srv)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), T)


async def send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await asyncio.wait_for(writer.drain(), T)


def get(path: str = "/", *extra: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        body += await reader.readexactly(size)
        assert await reader.readexactly(2) == b"\r\n"
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass
    return bytes(body)


async def read_response(
    reader: asyncio.StreamReader, head_only: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, body); body framed by Content-Length or chunked."""

    async def read() -> tuple[int, dict[str, str], bytes]:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *lines = head.split("\r\n")[:-2]
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        if head_only:
            return int(status_line.split()[1]), headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = await read_chunked(reader)
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body

    return await asyncio.wait_for(read(), T)


async def read_eof(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), T)


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------- helpers


def test_response_helper_bytes() -> None:
    assert response() == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert response(404, b"no", [("X-A", "1")]) == (
        b"HTTP/1.1 404 Not Found\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nno"
    )
    assert response(200, b"x", [("content-length", "5")], reason="Fine") == (
        b"HTTP/1.1 200 Fine\r\ncontent-length: 5\r\n\r\nx"
    )


def test_chunked_helper_bytes() -> None:
    assert chunked(b"hello", b"", b"0123456789abcdef") == (
        b"5\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n"
    )
    assert chunked(trailers=[("X-T", "v")]) == b"0\r\nX-T: v\r\n\r\n"


# --------------------------------------------------------------------------- HttpServer


@pytest.mark.loops
async def test_keep_alive_three_requests_one_connection(http_server: HttpServer) -> None:
    async with connection(http_server) as (reader, writer):
        for i in range(3):
            await send(writer, get(f"/{i}"))
            status, headers, body = await read_response(reader)
            assert (status, body, headers["content-length"]) == (200, b"hello", "5")
            assert "connection" not in headers
    assert http_server.connections == 1
    assert [r.path for r in http_server.requests] == ["/0", "/1", "/2"]
    assert http_server.request_counts == [3]


async def test_pipelined_requests_answered_in_order(http_server: HttpServer) -> None:
    async def slow(req: Request) -> Response:
        await asyncio.sleep(0.1)
        return Response(body=b"slow")

    async def fast(req: Request) -> Response:
        return Response(body=b"fast")

    http_server.route("/slow", slow)
    http_server.route("/fast", fast)
    async with connection(http_server) as (reader, writer):
        await send(writer, get("/slow") + get("/fast?x=1") + get("/other"))
        bodies = [(await read_response(reader))[2] for _ in range(3)]
    assert bodies == [b"slow", b"fast", b"hello"]
    assert [r.path for r in http_server.requests] == ["/slow", "/fast?x=1", "/other"]
    assert http_server.request_counts == [3]


async def test_request_fields_and_raw(http_server: HttpServer) -> None:
    wire = b"POST /p?q=1 HTTP/1.1\r\nHost: h\r\nX-Dup: a\r\nx-dup: b\r\nContent-Length: 3\r\n\r\n"
    wire += b"abc"
    async with connection(http_server) as (reader, writer):
        await send(writer, wire)
        await read_response(reader)
    (req,) = http_server.requests
    assert (req.method, req.path, req.version, req.body, req.raw) == (
        "POST",
        "/p?q=1",
        "HTTP/1.1",
        b"abc",
        wire,
    )
    assert req.headers == [("Host", "h"), ("X-Dup", "a"), ("x-dup", "b"), ("Content-Length", "3")]
    assert req.header("X-DUP") == "a" and req.header_all("x-dup") == ["a", "b"]
    assert req.header("missing") is None and req.conn_id == 0


async def test_chunked_request_body_decoded(http_server: HttpServer) -> None:
    head = b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Sum: 11\r\n\r\n"
    async with connection(http_server) as (reader, writer):
        await send(writer, head + body + get("/after"))
        assert (await read_response(reader))[0] == 200
        assert (await read_response(reader))[0] == 200
    first, second = http_server.requests
    assert first.body == b"hello world"
    assert first.trailers == [("X-Sum", "11")]
    assert first.raw == head + body
    assert second.path == "/after" and second.conn_id == 0


async def test_request_body_split_across_writes(http_server: HttpServer) -> None:
    wire = b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789"
    async with connection(http_server) as (reader, writer):
        for i in range(0, len(wire), 7):
            await send(writer, wire[i : i + 7])
            await asyncio.sleep(0.005)
        await read_response(reader)
    assert http_server.requests[0].body == b"0123456789"


async def test_connection_close_honoured(http_server: HttpServer) -> None:
    async with connection(http_server) as (reader, writer):
        await send(writer, get("/", "Connection: close"))
        status, headers, _ = await read_response(reader)
        assert headers["connection"] == "close"
        assert await read_eof(reader) == b""
    await http_server.wait_closed(1)
    assert http_server.open_connections == 0


async def test_pipelined_request_after_close_is_not_answered(http_server: HttpServer) -> None:
    async with connection(http_server) as (reader, writer):
        # more than the server's stream buffers: closing with it unread would send RST
        writer.write(get("/first", "Connection: close") + get("/second") * 20000)
        assert (await read_response(reader))[2] == b"hello"
        assert await read_eof(reader) == b""  # a FIN, not a reset
    await http_server.wait_closed(1)
    assert [r.path for r in http_server.requests] == ["/first"]


async def test_response_close_and_http10(http_server: HttpServer) -> None:
    async def closing(req: Request) -> Response:
        return Response(body=b"bye", close=True)

    async def says_close(req: Request) -> Response:
        return Response(headers=[("connection", "Close")])

    http_server.route("/bye", closing)
    http_server.route("/says", says_close)
    for path in ("/bye", "/says"):
        async with connection(http_server) as (reader, writer):
            await send(writer, get(path))
            assert (await read_response(reader))[1]["connection"].lower() == "close"
            assert await read_eof(reader) == b""
    async with connection(http_server) as (reader, writer):
        await send(writer, b"GET / HTTP/1.0\r\n\r\n")
        assert (await read_response(reader))[1]["connection"] == "close"
        assert await read_eof(reader) == b""
    async with connection(http_server) as (reader, writer):
        await send(writer, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert (await read_response(reader))[1]["connection"] == "keep-alive"
        await send(writer, get("/"))
        assert (await read_response(reader))[2] == b"hello"


async def test_response_options(http_server: HttpServer) -> None:
    async def chunky(req: Request) -> Response:
        return Response(
            201,
            [b"ab", b"cd"],
            headers=[("X-A", "1")],
            reason="Made",
            chunked=True,
            trailers=[("X-T", "2")],
        )

    async def empty(req: Request) -> Response:
        return Response(204)

    http_server.route("/chunky", chunky, method="GET")
    http_server.route("/empty", empty)
    async with connection(http_server) as (reader, writer):
        await send(writer, get("/chunky"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T)
        assert head == b"HTTP/1.1 201 Made\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
        expected = b"2\r\nab\r\n2\r\ncd\r\n0\r\nX-T: 2\r\n\r\n"
        assert await asyncio.wait_for(reader.readexactly(len(expected)), T) == expected
        await send(writer, get("/empty") + b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n")
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T) == (
            b"HTTP/1.1 204 No Content\r\n\r\n"
        )
        status, headers, _ = await read_response(reader, head_only=True)
        assert (status, headers["content-length"]) == (200, "5")
        await send(writer, b"POST /chunky HTTP/1.1\r\nHost: h\r\n\r\n")  # method mismatch
        assert (await read_response(reader))[2] == b"hello"


async def test_route_prefix_and_override(http_server: HttpServer) -> None:
    async def one(req: Request) -> Response:
        return Response(body=b"one")

    async def two(req: Request) -> Response:
        return Response(body=b"two")

    http_server.route("/files/*", one)
    async with connection(http_server) as (reader, writer):
        await send(writer, get("/files/a/b?c"))
        assert (await read_response(reader))[2] == b"one"
        http_server.route("/files/a/b", two)
        await send(writer, get("/files/a/b"))
        assert (await read_response(reader))[2] == b"two"


@pytest.mark.parametrize(
    "wire",
    [
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
        b"GET / HTTP/1.1\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: y\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
    ],
    ids=[
        "cl+te",
        "bad-cl",
        "conflicting-cl",
        "te-not-chunked",
        "bad-chunk-size",
        "chunk-overrun",
        "bare-lf",
        "space-before-colon",
        "obs-fold",
        "double-space",
        "http2",
        "missing-host",
        "two-hosts",
    ],
)
async def test_malformed_framing_gets_400_and_close(http_server: HttpServer, wire: bytes) -> None:
    async with connection(http_server) as (reader, writer):
        await send(writer, wire)
        status, headers, _ = await read_response(reader)
        assert (status, headers["connection"]) == (400, "close")
        assert await read_eof(reader) == b""
    assert len(http_server.protocol_errors) == 1
    assert http_server.requests == []


async def test_handler_takes_over_connection(http_server: HttpServer) -> None:
    async def upgrade(req: Request) -> None:
        req.writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n\r\n")
        req.writer.write((await req.reader.readexactly(4)).upper())
        await req.writer.drain()

    http_server.route("/ws", upgrade)
    async with connection(http_server) as (reader, writer):
        # the tunnel bytes follow the head in the same write: none may be lost
        await send(writer, get("/ws", "Upgrade: echo", "Connection: upgrade") + b"ping")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T)
        assert head.startswith(b"HTTP/1.1 101 ")
        assert await read_eof(reader) == b"PING"


async def test_handler_exception_answers_500_and_reraises() -> None:
    async def broken(req: Request) -> Response:
        raise LookupError("handler bug")

    with pytest.raises(LookupError, match="handler bug"):
        async with HttpServer() as srv:
            srv.route("/", broken)
            async with connection(srv) as (reader, writer):
                await send(writer, get("/"))
                assert (await read_response(reader))[0] == 500
                assert await read_eof(reader) == b""


async def test_idle_timeout_closes_idle_connection() -> None:
    async with HttpServer(idle_timeout=0.1) as srv, connection(srv) as (reader, writer):
        await send(writer, get("/"))
        assert (await read_response(reader))[2] == b"hello"
        started = time.monotonic()
        assert await read_eof(reader) == b""
        assert 0.05 < time.monotonic() - started < 1.5


async def test_wait_requests_and_counts() -> None:
    async with HttpServer() as srv:
        async with connection(srv) as (_, w1), connection(srv) as (_, w2):
            await send(w1, get("/a"))
            await send(w2, get("/b") + get("/c"))
            await srv.wait_requests(3)
            await srv.wait_connections(2)
            assert srv.open_connections == 2
        assert sorted(srv.request_counts) == [1, 2]
        await srv.wait_closed(2)
        assert srv.open_connections == 0
        with pytest.raises(TimeoutError, match="4 requests"):
            await srv.wait_requests(4, timeout=0.05)


async def test_unix_socket_http_server() -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        path = str(Path(tmp) / "s.sock")
        async with HttpServer(unix_path=path) as srv:
            assert srv.origin == "http://localhost" and srv.port == 0
            async with connection(srv) as (reader, writer):
                await send(writer, get("/") + get("/"))
                assert (await read_response(reader))[2] == b"hello"
                assert (await read_response(reader))[2] == b"hello"
        assert not Path(path).exists()


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback")
async def test_ipv6_http_server() -> None:
    async with HttpServer(host="::1") as srv:
        assert srv.origin == f"http://[::1]:{srv.port}"
        async with connection(srv) as (reader, writer):
            await send(writer, get("/"))
            assert (await read_response(reader))[2] == b"hello"


# --------------------------------------------------------------------------- RawServer


@pytest.mark.loops
async def test_raw_server_records_exact_bytes(raw_server: RawServerFactory) -> None:
    seen: list[bytes] = []
    body = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nabcd"
    tail = b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n"

    async def script(conn: RawConn) -> None:
        seen.append(await conn.read_request())
        await conn.send(response(200, b"ok"))

    srv = await raw_server(script)
    async with connection(srv) as (reader, writer):
        await send(writer, body + tail)
        assert (await read_response(reader))[2] == b"ok"
        assert await read_eof(reader) == b""  # the script returned: connection closed
    await srv.wait_closed(1)
    assert seen == [body]
    assert srv.received == [body + tail]  # unread bytes are recorded at close too


async def test_read_request_chunked_with_trailers_is_exact(raw_server: RawServerFactory) -> None:
    first = b"POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: Chunked\r\n\r\n"
    first += chunked(b"abc", b"defgh", trailers=[("X-T", "1")])
    second = b"\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"  # a stray CRLF belongs to the next
    got: list[bytes] = []

    async def script(conn: RawConn) -> None:
        while request := await conn.read_request():
            got.append(request)

    srv = await raw_server(script)
    async with connection(srv) as (_, writer):
        await send(writer, first[:30])
        await asyncio.sleep(0.01)
        await send(writer, first[30:] + second)
    await srv.wait_closed(1)
    assert got == [first, second]


async def test_read_helpers(raw_server: RawServerFactory) -> None:
    results: list[object] = []
    still_open = asyncio.Event()

    async def script(conn: RawConn) -> None:
        results.append(await conn.read_until(b"|"))
        results.append(await conn.read_exactly(3))
        results.append(await conn.read_available(0.05))
        results.append(await conn.wait_closed_by_peer(0.05))
        still_open.set()
        results.append(await conn.wait_closed_by_peer())
        results.append(await conn.read_available(0.05))
        results.append(await conn.read_request())
        results.append((conn.eof, conn.reset_by_peer, conn.index))

    srv = await raw_server(script)
    async with connection(srv) as (_, writer):
        await send(writer, b"ab|cdefg")
        await asyncio.wait_for(still_open.wait(), T)
        await send(writer, b"late")
    await srv.wait_closed(1)
    assert results == [b"ab|", b"cde", b"fg", False, True, b"late", b"", (True, False, 0)]
    assert srv.received == [b"ab|cdefglate"]


async def test_read_timeouts_and_eof_keep_bytes(raw_server: RawServerFactory) -> None:
    results: list[object] = []
    timed_out = asyncio.Event()

    async def script(conn: RawConn) -> None:
        with pytest.raises(TimeoutError, match="GET / HTTP"):
            await conn.read_request(timeout=0.05)
        with pytest.raises(TimeoutError):
            await conn.read_until(b"END", timeout=0.05)
        timed_out.set()
        with pytest.raises(asyncio.IncompleteReadError) as excinfo:
            await conn.read_request()
        results.append(excinfo.value.partial)
        results.append(await conn.read_available(0))

    srv = await raw_server(script)
    async with connection(srv) as (_, writer):
        await send(writer, b"GET / HTTP/1.1\r\nHost:")
        await asyncio.wait_for(timed_out.wait(), T)
    await srv.wait_closed(1)
    assert results == [b"GET / HTTP/1.1\r\nHost:"] * 2


async def test_read_request_gives_up_past_1_mib(raw_server: RawServerFactory) -> None:
    errors: list[Exception] = []

    async def script(conn: RawConn) -> None:
        try:
            await conn.read_request()
        except HttpProtocolError as exc:
            errors.append(exc)

    srv = await raw_server(script)
    async with connection(srv) as (_, writer):
        await send(writer, b"POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n")
        await srv.wait_closed(1)
    assert len(errors) == 1 and "larger than" in str(errors[0])


@pytest.mark.loops
async def test_send_split_delivers_byte_by_byte(raw_server: RawServerFactory) -> None:
    payload = response(200, b"abcdef")

    async def script(conn: RawConn) -> None:
        await conn.read_request()
        await conn.send_split(payload, sizes=1, delay=0.005)

    srv = await raw_server(script)
    reads: list[bytes] = []
    async with connection(srv) as (reader, writer):
        await send(writer, get("/"))
        while chunk := await asyncio.wait_for(reader.read(100), T):
            reads.append(chunk)
    assert b"".join(reads) == payload
    assert len(reads) > len(payload) // 2  # most bytes arrived on their own


async def test_send_split_explicit_sizes(raw_server: RawServerFactory) -> None:
    async def script(conn: RawConn) -> None:
        await conn.send_split(b"0123456789", sizes=[2, 3], delay=0.05)

    srv = await raw_server(script)
    reads: list[bytes] = []
    async with connection(srv) as (reader, _):
        while chunk := await asyncio.wait_for(reader.read(100), T):
            reads.append(chunk)
    assert reads == [b"01", b"234", b"56789"]


@pytest.mark.loops
async def test_reset_gives_connection_reset_error(raw_server: RawServerFactory) -> None:
    async def script(conn: RawConn) -> None:
        await conn.read_request()
        conn.reset()

    srv = await raw_server(script)
    async with connection(srv) as (reader, writer):
        await send(writer, get("/"))
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(100), T)
    await srv.wait_closed(1)
    assert srv.received == [get("/")]


async def test_close_sends_fin_after_pending_data(raw_server: RawServerFactory) -> None:
    async def script(conn: RawConn) -> None:
        await conn.send(b"partial")
        await conn.close()
        assert conn.is_closed

    srv = await raw_server(script)
    async with connection(srv) as (reader, _):
        assert await read_eof(reader) == b"partial"


async def test_shutdown_write_keeps_reading(raw_server: RawServerFactory) -> None:
    got: list[object] = []

    async def script(conn: RawConn) -> None:
        await conn.send(b"bye")
        await conn.shutdown_write()
        got.append(await conn.wait_closed_by_peer())
        got.append(await conn.read_available(0))

    srv = await raw_server(script)
    async with connection(srv) as (reader, writer):
        assert await read_eof(reader) == b"bye"
        await send(writer, b"after fin")
    await srv.wait_closed(1)
    assert got == [True, b"after fin"]


async def test_client_reset_reads_as_eof(raw_server: RawServerFactory) -> None:
    flags: list[bool] = []

    async def script(conn: RawConn) -> None:
        flags.append(await conn.wait_closed_by_peer())
        flags.append(conn.reset_by_peer)

    srv = await raw_server(script)
    reader, writer = await connect(srv)
    await srv.wait_connections(1)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()
    await srv.wait_closed(1)
    assert flags == [True, True]


@pytest.mark.loops
async def test_per_connection_scripts(raw_server: RawServerFactory) -> None:
    def replying(tag: bytes) -> Callable[[RawConn], Awaitable[None]]:
        async def script(conn: RawConn) -> None:
            await conn.read_request()
            await conn.send(response(200, tag + b"%d" % conn.index))

        return script

    srv = await raw_server([replying(b"a"), replying(b"b")])
    bodies = []
    for _ in range(3):
        async with connection(srv) as (reader, writer):
            await send(writer, get("/"))
            bodies.append((await read_response(reader))[2])
    assert bodies == [b"a0", b"b1", b"b2"]
    await srv.wait_connections(3)
    assert srv.connections == 3 and len(srv.received) == 3


async def test_default_script_serves_hello(raw_server: RawServerFactory) -> None:
    srv = await raw_server()
    async with connection(srv) as (reader, writer):
        await send(writer, get("/") + get("/"))
        assert (await read_response(reader))[2] == b"hello"
        assert (await read_response(reader))[2] == b"hello"


async def test_script_exception_propagates() -> None:
    async def script(conn: RawConn) -> None:
        await conn.read_request()
        raise AssertionError("script saw a bad request")

    with pytest.raises(AssertionError, match="bad request"):
        async with RawServer(script) as srv, connection(srv) as (reader, writer):
            await send(writer, get("/"))
            assert await read_eof(reader) == b""  # a failed script closes its connection
            await srv.wait_closed(1)


async def test_pytest_outcome_in_script_propagates() -> None:
    async def script(conn: RawConn) -> None:
        pytest.fail("failed inside the script")

    async with RawServer(script) as srv:
        async with connection(srv) as (reader, _):
            await read_eof(reader)
        await srv.wait_closed(1)
        errors = srv.errors
        srv.errors = []  # keep stop() from failing this test
    assert len(errors) == 1 and "failed inside the script" in str(errors[0])


async def test_several_script_failures_are_grouped() -> None:
    async def script(conn: RawConn) -> None:
        raise KeyError(conn.index)

    with pytest.raises(ExceptionGroup) as excinfo:
        async with RawServer(script) as srv:
            for _ in range(2):
                async with connection(srv) as (reader, _):
                    await read_eof(reader)
            await srv.wait_closed(2)
    assert sorted(e.args[0] for e in excinfo.value.exceptions) == [0, 1]


@pytest.mark.loops
async def test_cleanup_never_hangs() -> None:
    async def stuck(conn: RawConn) -> None:
        await asyncio.sleep(3600)

    async def blocked_reader(conn: RawConn) -> None:
        await conn.read_request(timeout=3600)

    async def flooding(conn: RawConn) -> None:
        while True:  # the client never reads: this blocks in drain
            await conn.send(b"x" * 65536)

    started = time.monotonic()
    clients: list[Conn] = []
    async with RawServer(scripts=[stuck, blocked_reader, flooding]) as srv:
        for _ in range(3):
            clients.append(await connect(srv))
        await srv.wait_connections(3)
        await asyncio.sleep(0.1)
    assert time.monotonic() - started < 1.5
    assert srv.open_connections == 0 and srv.closed == 3
    for reader, writer in clients:
        with contextlib.suppress(ConnectionError):
            while await asyncio.wait_for(reader.read(1 << 20), T):
                pass
        writer.close()


async def test_http_server_cleanup_never_hangs() -> None:
    async def never(req: Request) -> Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    started = time.monotonic()
    async with HttpServer() as srv:
        srv.route("/never", never)
        reader, writer = await connect(srv)
        await send(writer, get("/never"))
        idle = await connect(srv)
        await srv.wait_requests(1)
    assert time.monotonic() - started < 1.5
    assert await read_eof(reader) == b""
    assert await read_eof(idle[0]) == b""
    writer.close()
    idle[1].close()


async def test_wait_connections_times_out(raw_server: RawServerFactory) -> None:
    srv = await raw_server()
    with pytest.raises(TimeoutError, match="1 connections"):
        await srv.wait_connections(1, timeout=0.05)


async def test_unix_socket_raw_server(raw_server: RawServerFactory) -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        srv = await raw_server(unix_path=str(Path(tmp) / "r.sock"))
        async with connection(srv) as (reader, writer):
            await send(writer, get("/"))
            assert (await read_response(reader))[2] == b"hello"


# --------------------------------------------------------------------------- loops marker


@pytest.mark.loops
async def test_loops_marker_selects_event_loop(request: pytest.FixtureRequest) -> None:
    loop_module = type(asyncio.get_running_loop()).__module__
    if request.node.name.endswith("[uvloop]"):
        assert loop_module.startswith("uvloop")
    else:
        assert loop_module.startswith("asyncio")
