"""A response body nobody reads never holds its connection (issue 9).

Bodies dropped unread, reads cancelled at any point, and bodies that failed
halfway: the request ends, the connection is reused or replaced, the next
request and ``close()`` proceed, and nothing stays alive in memory.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest
import undipy
from helpers import T, within
from servers import HttpServer, RawConn, Request, Response

SIZES = [16, 1024, 150_000, 200_000, 1 << 20, 4 << 20]


def repeats(size: int) -> int:
    """Small bodies arrive whole before anyone could drop them: try many times."""
    return 10_000 if size <= 1024 else 200 if size <= 200_000 else 30


@pytest.fixture
async def sized() -> AsyncIterator[HttpServer]:
    """``/n/<size>`` answers ``size`` bytes."""

    async def body(req: Request) -> Response:
        return Response(body=b"x" * int(req.path.rsplit("/", 1)[1]))

    async with HttpServer() as srv:
        srv.route("/n/*", body)
        yield srv


def make(kind: str, origin: str) -> undipy.Dispatcher:
    if kind == "client":
        return undipy.Client(origin)
    return undipy.Pool(origin, connections=2)


async def serves(d: undipy.Dispatcher) -> None:
    resp = await within(d.request(path="/n/5", method="GET"))
    assert await within(resp.body.bytes()) == b"xxxxx"


async def still_serves(d: undipy.Dispatcher) -> None:
    """The next request completes and close() resolves: nothing was left stuck."""
    await serves(d)
    await within(d.close())


@pytest.mark.loops
@pytest.mark.parametrize("kind", ["client", "pool"])
@pytest.mark.parametrize("size", SIZES)
async def test_dropped_unread_bodies_release_their_connection(
    sized: HttpServer, kind: str, size: int
) -> None:
    d = make(kind, sized.origin)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        for _ in range(repeats(size)):
            resp = await within(d.request(path=f"/n/{size}", method="GET"))
            assert resp.status_code == 200
            del resp
    await still_serves(d)


@pytest.mark.loops
@pytest.mark.parametrize("kind", ["client", "pool"])
@pytest.mark.parametrize("size", SIZES)
async def test_cancelled_before_reading_releases_the_connection(
    sized: HttpServer, kind: str, size: int
) -> None:
    d = make(kind, sized.origin)
    got_head = asyncio.Event()

    async def fetch() -> None:
        resp = await d.request(path=f"/n/{size}", method="GET")
        got_head.set()
        await asyncio.sleep(T)  # cancelled here, holding the unread response
        await resp.body.dump()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        for _ in range(repeats(size)):
            got_head.clear()
            task = asyncio.ensure_future(fetch())
            await within(got_head.wait())
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    await still_serves(d)


def trickle(gap: float = 0.02) -> Any:
    """A handler that owns the connection: a head promising 10 MB, then 10 bytes
    every ``gap`` seconds for a while: the response never ends within the test
    unless the client aborts it."""

    async def handler(req: Request) -> None:
        req.writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10000000\r\n\r\n")
        try:
            for _ in range(int(2 * T / gap)):
                await asyncio.sleep(gap)
                req.writer.write(b"0123456789")
                await req.writer.drain()
        except ConnectionError:
            return

    return handler


@pytest.mark.loops
@pytest.mark.parametrize("kind", ["client", "pool"])
@pytest.mark.parametrize("where", ["before_headers", "after_headers", "mid_body", "between"])
@pytest.mark.parametrize("read", ["iterate", "bytes"])
async def test_cancelling_a_body_read_aborts_the_request(
    http_server: HttpServer, kind: str, where: str, read: str
) -> None:
    """A second request waits behind the first on the same connection; cancelling
    the first one's task wherever it is must let the second one through."""
    http_server.route("/trickle", trickle())
    d = undipy.Client(http_server.origin) if kind == "client" else undipy.Pool(
        http_server.origin, connections=1
    )
    reached = asyncio.Event()

    async def first() -> None:
        if where == "before_headers":
            reached.set()
        resp = await d.request(path="/trickle", method="GET")
        if where == "after_headers":
            reached.set()
        if read == "bytes":
            if where in ("mid_body", "between"):
                reached.set()
            await resp.body.bytes()
            return
        async for _chunk in resp.body:
            if where == "mid_body":
                reached.set()
            if where == "between":
                reached.set()
                await asyncio.sleep(0.02)  # cancelled outside the read: the next read ends it

    task = asyncio.ensure_future(first())
    second = asyncio.ensure_future(d.request(path="/", method="GET"))
    await within(reached.wait())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await within(task)
    resp = await within(second)
    assert await within(resp.body.bytes()) == b"hello"
    await within(d.close())


async def test_a_body_collected_while_arriving_warns(sized: HttpServer) -> None:
    async with undipy.Client(sized.origin) as c:
        # Far more than the engine reads ahead (4 MiB): still arriving when dropped.
        resp = await within(c.request(path=f"/n/{32 << 20}", method="GET"))
        with pytest.warns(ResourceWarning, match="garbage-collected before it was read"):
            del resp
            gc.collect()
        resp = await within(c.request(path="/n/3", method="GET"))
        assert await within(resp.body.bytes()) == b"xxx"
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            del resp  # read: no warning
            gc.collect()


async def cut_short(conn: RawConn) -> None:
    """Promise 1000 bytes, send 10, close."""
    while await conn.read_request():
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789")
        return


async def fail_and_keep(client: undipy.Client, refs: list[weakref.ref[Any]]) -> None:
    """Leaves the cycle of issue 9: the exception's traceback holds this frame,
    which holds the response, whose body holds the exception."""
    resp = await client.request(path="/", method="GET")
    try:
        await resp.body.bytes()
    except undipy.UndiciError as exc:
        err = exc
        refs.append(weakref.ref(err))
    else:
        raise AssertionError("the body should have failed")


async def test_failed_bodies_are_collected(raw_server: Any) -> None:
    srv = await raw_server(cut_short)
    refs: list[weakref.ref[Any]] = []
    async with undipy.Client(srv.origin) as c:
        gc.collect()
        for _ in range(300):
            await within(fail_and_keep(c, refs))
        gc.collect()
    alive = sum(r() is not None for r in refs)
    assert alive == 0, f"{alive} of {len(refs)} body errors survived gc.collect()"


@pytest.mark.loops
async def test_iterator_taken_with_aiter_can_be_iterated(sized: HttpServer) -> None:
    async with undipy.Client(sized.origin) as c:
        resp = await within(c.request(path="/n/300000", method="GET"))
        it = resp.body.__aiter__()
        first = await it.__anext__()
        rest = [chunk async for chunk in it]
        assert len(first) + sum(map(len, rest)) == 300_000
        with pytest.raises(TypeError, match="unusable"):
            await resp.body.bytes()


@pytest.mark.loops
async def test_one_signal_for_many_requests_lets_go_of_finished_ones(sized: HttpServer) -> None:
    """A controller (or Event) kept for a whole session holds no listener, no
    watcher task, for requests that are over."""
    controller = undipy.AbortController()
    event = asyncio.Event()
    async with undipy.Client(sized.origin) as c:
        await serves(c)  # the server's task for the connection is running
        tasks_before = len(asyncio.all_tasks())
        for _ in range(300):
            for signal in (controller.signal, event):
                resp = await within(c.request(path="/n/5", method="GET", signal=signal))
                assert await within(resp.body.bytes()) == b"xxxxx"
        gc.collect()
        await asyncio.sleep(0)  # cancelled watchers finish
        assert controller.signal._listeners == []
        assert len(asyncio.all_tasks()) <= tasks_before
        # (A signal still aborts the requests it is bound to: test_cancel.py.)
