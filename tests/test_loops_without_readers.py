"""Event loops that watch no descriptors, as Windows' proactor loop (the
default there): their ``add_reader`` raises NotImplementedError. undipy then
wakes the loop through a socket pair that a task reads with ``sock_recv``.

Here that loop is a selector loop whose public ``add_reader``/``add_writer``
raise as the proactor's do; its own ``sock_recv``, its servers and its
transports keep working (they register through private methods), so the
servers below run on the same loop.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import undipy
from helpers import within
from servers import HttpServer, RawConn, RawServer, Request, Response
from undipy import _bridge
from undipy.errors import NotSupportedError


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


def test_the_loop_stays_responsive_and_errors_still_arrive() -> None:
    async def main() -> None:
        async def hang_up(conn: RawConn) -> None:
            await conn.read_request()
            await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
            await conn.close()

        async with RawServer(hang_up) as srv, undipy.Client(srv.origin) as client:
            resp = await within(client.request(path="/", method="GET"))
            with pytest.raises(undipy.errors.UndiciError):
                await within(resp.body.bytes())
            # The loop's own timers run between wake-ups.
            await within(asyncio.sleep(0.01))

    run(main)


def test_an_upgraded_socket_says_the_loop_cannot_drive_it() -> None:
    async def main() -> None:
        async def switch(conn: RawConn) -> None:
            await conn.read_request()
            await conn.send(
                b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n"
            )
            await conn.wait_closed_by_peer()

        async with RawServer(switch) as srv, undipy.Client(srv.origin) as client:
            data = await within(client.upgrade(path="/", protocol="x"))
            with pytest.raises(NotSupportedError, match="add_reader"):
                await within(data.socket.read())
            await data.socket.close()
            assert data.socket.closed

    run(main)
    gc.collect()
