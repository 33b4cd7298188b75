"""Event loops that watch no descriptors, as Windows' proactor loop (the
default there): their ``add_reader`` raises NotImplementedError. undipy then
wakes the loop through a socket pair that a task reads with ``sock_recv``,
and an upgraded socket reads and writes with ``sock_recv``/``sock_sendall``.

Here that loop is a selector loop whose public ``add_reader``/``add_writer``
raise as the proactor's do; its own ``sock_recv``, its servers and its
transports keep working (they register through private methods), so the
servers below run on the same loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import undipy
from helpers import within
from servers import HttpServer, RawConn, RawServer, Request, Response
from undipy import _bridge


class NoReaderLoop(asyncio.SelectorEventLoop):
    def add_reader(self, *args: Any) -> None:
        raise NotImplementedError

    def add_writer(self, *args: Any) -> None:
        raise NotImplementedError


def run(main: Callable[[], Awaitable[None]]) -> NoReaderLoop:
    with asyncio.Runner(loop_factory=NoReaderLoop) as runner:
        runner.run(main())
        loop = runner.get_loop()
    assert isinstance(loop, NoReaderLoop)
    return loop


def test_requests_complete_woken_through_the_socket() -> None:
    seen: dict[str, Any] = {}

    async def main() -> None:
        async def echo(req: Request) -> Response:
            return Response(body=req.path.encode() + b"|" + req.body)

        async with HttpServer() as srv:
            srv.route("/", echo)
            async with undipy.Pool(srv.origin, connections=4, pipelining=2) as pool:

                async def one(i: int) -> bytes:
                    resp = await pool.request(path=f"/?{i}", method="POST", body=b"x" * i)
                    return await resp.body.bytes()

                bodies = await within(asyncio.gather(*(one(i) for i in range(200))))
                chunks = []
                resp = await within(pool.request(path="/?big", method="POST", body=b"y" * 300_000))
                async for chunk in resp.body:
                    chunks.append(chunk)
            loop = asyncio.get_running_loop()
            bridge = _bridge.bridge_for(loop)
            seen["drains"] = bridge.drains
            seen["reader"] = _bridge._readers.get(loop)
        assert bodies == [b"/?%d|" % i + b"x" * i for i in range(200)]
        assert b"".join(chunks) == b"/?big|" + b"y" * 300_000

    run(main)
    assert seen["drains"] > 0
    reader = seen["reader"]
    assert reader is not None  # woken by the reading task, not by add_reader
    assert reader.done()  # ended with its loop


def test_errors_arrive_through_the_socket_wake_up() -> None:
    async def main() -> None:
        async def hang_up(conn: RawConn) -> None:
            await conn.read_request()
            await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
            await conn.close()

        async with RawServer(hang_up) as srv, undipy.Client(srv.origin) as client:
            resp = await within(client.request(path="/", method="GET"))
            # As on any loop: the body ended before its Content-Length.
            with pytest.raises(undipy.errors.ResponseContentLengthMismatchError) as caught:
                await within(resp.body.bytes())
            assert caught.value.code == "UND_ERR_RES_CONTENT_LENGTH_MISMATCH"

    run(main)


SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n"


def test_an_upgraded_socket_reads_and_writes_through_the_loops_own_calls() -> None:
    big = bytes(range(256)) * 4096  # 1 MiB: more than one send and one recv

    async def main() -> None:
        async def echo(conn: RawConn) -> None:
            await conn.read_request()
            await conn.send(SWITCH + b"early")
            assert await conn.read_exactly(5) == b"hello"
            await conn.send(b"HELLO")
            await conn.send(await conn.read_exactly(len(big)))
            assert await conn.wait_closed_by_peer()

        async with RawServer(echo) as srv, undipy.Client(srv.origin) as client:
            data = await within(client.upgrade(path="/", protocol="x"))
            sock = data.socket
            assert await within(sock.read()) == b"early"
            await within(sock.write(b"hello"))
            assert await within(sock.read(5)) == b"HELLO"
            # Written while read back: the server echoes as it reads.
            writer = asyncio.create_task(sock.write(big))
            got = bytearray()
            while len(got) < len(big):
                got += await within(sock.read())
            await within(writer)
            assert got == big
            await within(sock.write_eof())
            assert await within(sock.read()) == b""
            await sock.close()

    run(main)


def test_close_ends_a_read_waiting_in_the_loop_and_later_writes_fail() -> None:
    async def main() -> None:
        async def silent(conn: RawConn) -> None:
            await conn.read_request()
            await conn.send(SWITCH)
            await conn.wait_closed_by_peer()

        async with RawServer(silent) as srv, undipy.Client(srv.origin) as client:
            data = await within(client.upgrade(path="/", protocol="x"))
            sock = data.socket
            reader = asyncio.create_task(sock.read())
            await asyncio.sleep(0.05)  # the read now waits inside sock_recv
            assert not reader.done()
            await sock.close()
            assert await within(reader) == b""
            with pytest.raises(undipy.errors.SocketError):
                await sock.write(b"late")

    run(main)


def test_cancelling_a_read_waiting_in_the_loop_leaves_the_socket_usable() -> None:
    async def main() -> None:
        go = asyncio.Event()

        async def later(conn: RawConn) -> None:
            await conn.read_request()
            await conn.send(SWITCH)
            await go.wait()
            await conn.send(b"after")
            await conn.wait_closed_by_peer()

        async with RawServer(later) as srv, undipy.Client(srv.origin) as client:
            data = await within(client.upgrade(path="/", protocol="x"))
            sock = data.socket
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(sock.read(), 0.05)
            go.set()
            assert await within(sock.read()) == b"after"
            await sock.close()

    run(main)
