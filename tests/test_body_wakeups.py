"""A body's pieces wake the event loop only when someone waits for them.

``request()`` bodies are read whole (``bytes()``, ``text()``, ``json()``) far
more often than iterated: their pieces are queued for the loop without waking
it, and the end of the body (or the read-ahead limit) wakes it once. Pieces
queued that way must still reach a reader who starts iterating later.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import undipy
from helpers import within
from servers import RawConn
from undipy._bridge import bridge_for

PIECES = 40
PIECE = 1000


async def trickle(conn: RawConn) -> None:
    """A Content-Length body sent in PIECES pieces, 5 ms apart."""
    await conn.read_request()
    await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (PIECES * PIECE))
    for i in range(PIECES):
        await asyncio.sleep(0.005)
        await conn.send(bytes([65 + i % 26]) * PIECE)


@pytest.mark.loops
async def test_a_body_read_whole_wakes_the_loop_for_its_end_only(raw_server: Any) -> None:
    srv = await raw_server(trickle)
    async with undipy.Client(srv.origin) as c:
        resp = await within(c.request(path="/", method="GET"))
        bridge = bridge_for(asyncio.get_running_loop())
        before = bridge.drains
        data = await within(resp.body.bytes())
        woke = bridge.drains - before
    assert data == b"".join(bytes([65 + i % 26]) * PIECE for i in range(PIECES))
    # One wake-up per piece would be PIECES; a couple of spurious ones may come.
    assert woke <= 3, f"the loop woke {woke} times for one body read whole"


@pytest.mark.loops
async def test_pieces_that_came_before_iteration_reach_the_reader(raw_server: Any) -> None:
    more = asyncio.Event()

    async def script(conn: RawConn) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await asyncio.sleep(0.05)  # the first piece in a read of its own
        await conn.send(b"5\r\nfirst\r\n")
        await more.wait()  # nothing more until the reader has the first piece
        await conn.send(b"4\r\nlast\r\n0\r\n\r\n")

    srv = await raw_server(script)
    async with undipy.Client(srv.origin) as c:
        resp = await within(c.request(path="/", method="GET"))
        await asyncio.sleep(0.2)  # the first piece arrives while nobody iterates
        it = resp.body.__aiter__()
        assert await within(it.__anext__()) == b"first"
        more.set()
        assert [chunk async for chunk in it] == [b"last"]


@pytest.mark.loops
async def test_a_body_larger_than_the_read_ahead_is_read_whole(raw_server: Any) -> None:
    size = 12 << 20  # three times the engine's 4 MiB read-ahead

    async def script(conn: RawConn) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size >> 16):
            await conn.send(b"z" * (1 << 16))

    srv = await raw_server(script)
    async with undipy.Client(srv.origin) as c:
        resp = await within(c.request(path="/", method="GET"))
        await asyncio.sleep(0.2)  # the read-ahead fills while nobody reads
        data = await within(resp.body.bytes())
    assert len(data) == size and data.count(b"z") == size
