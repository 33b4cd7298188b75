"""request() through composed retry, redirect and decompress interceptors:
native while none of them acts (no interceptor handler is made), and the
same results as dispatch() when one does: a redirect, a coded body, a retry
status, an error before the head, a body cut after it reached the caller
(resumed with Range, backpressure kept), an abort, throw_on_error, and the
cases that stay on the slow path (per-request options, a subscriber, an
interceptor without a watch)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator
from typing import Any

import pytest
import undipy
from helpers import RawServerFactory, within
from servers import HttpServer, RawConn, Request, Response, response
from undipy import diagnostics
from undipy.errors import RequestAbortedError, ResponseStatusCodeError
from undipy.handler import DecoratorHandler
from undipy.interceptors import decompress, dump, redirect, retry

FAST = {"min_timeout": 0.001, "max_timeout": 0.01}


def chain() -> tuple[Any, ...]:
    return retry(**FAST), redirect(max_redirections=3), decompress()


@pytest.fixture
def handlers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The interceptor handlers made (a native request makes none)."""
    made: list[str] = []
    init = DecoratorHandler.__init__

    def counting(self: DecoratorHandler, handler: Any) -> None:
        made.append(type(self).__name__)
        init(self, handler)

    monkeypatch.setattr(DecoratorHandler, "__init__", counting)
    yield made


async def get(d: undipy.Dispatcher, path: str = "/", **opts: Any) -> tuple[int, bytes]:
    resp = await within(d.request(path=path, method=opts.pop("method", "GET"), **opts))
    return resp.status_code, await within(resp.body.bytes())


async def test_a_quiet_chain_stays_native(http_server: HttpServer, handlers: list[str]) -> None:
    async with undipy.Pool(http_server.origin) as pool:
        d = pool.compose(*chain())
        for _ in range(3):
            assert await get(d) == (200, b"hello")
        assert await get(d, method="POST", body=b"x") == (200, b"hello")
    assert handlers == []


async def test_through_an_agent_too(http_server: HttpServer, handlers: list[str]) -> None:
    async with undipy.Agent() as agent:
        d = agent.compose(*chain())
        resp = await within(d.request(origin=http_server.origin, path="/", method="GET"))
        assert await within(resp.body.bytes()) == b"hello"
    assert handlers == []


async def test_each_interceptor_acts_from_the_native_path(
    http_server: HttpServer, handlers: list[str]
) -> None:
    busy = 0

    async def flaky(req: Request) -> Response:
        nonlocal busy
        busy += 1
        return Response(status=503, body=b"busy") if busy == 1 else Response(body=b"done")

    async def moved(req: Request) -> Response:
        return Response(status=302, headers=[("Location", "/gz")], body=b"elsewhere")

    async def coded(req: Request) -> Response:
        return Response(headers=[("Content-Encoding", "gzip")], body=gzip.compress(b"x" * 5000))

    http_server.route("/flaky", flaky)
    http_server.route("/moved", moved)
    http_server.route("/gz", coded)
    async with undipy.Pool(http_server.origin) as pool:
        d = pool.compose(*chain())
        assert await get(d, "/flaky") == (200, b"done")
        assert busy == 2
        assert await get(d, "/moved") == (200, b"x" * 5000)
    assert {"_RetryHandler", "_RedirectHandler", "_DecompressHandler"} <= set(handlers)
    assert [r.path for r in http_server.requests] == ["/flaky", "/flaky", "/moved", "/gz"]


async def test_an_error_before_the_head_is_retried(
    raw_server: RawServerFactory, handlers: list[str]
) -> None:
    async def reset(conn: RawConn) -> None:
        assert await conn.read_request()
        conn.reset()

    async def ok(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(response(200, b"second"))
        await conn.wait_closed_by_peer()

    srv = await raw_server([reset, ok])
    async with undipy.Client(srv.origin) as client:
        assert await get(client.compose(*chain())) == (200, b"second")
    assert "_RetryHandler" in handlers


async def test_an_error_is_not_retried_without_retry(raw_server: RawServerFactory) -> None:
    async def reset(conn: RawConn) -> None:
        assert await conn.read_request()
        conn.reset()

    srv = await raw_server([reset])
    async with undipy.Client(srv.origin) as client:
        with pytest.raises(undipy.errors.SocketError):
            await get(client.compose(redirect(max_redirections=2), decompress()))


BIG = bytes(range(256)) * 1200  # 300 KiB: more than the body buffers before pausing


def cut_big(at: int) -> Any:
    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        head = response(200, BIG, [("ETag", '"big"')])
        await conn.send(head[: len(head) - len(BIG) + at])
        await asyncio.sleep(0.2)  # the client reads some, then stops: paused
        conn.reset()

    return script


async def test_a_body_cut_while_paused_is_resumed(raw_server: RawServerFactory) -> None:
    got: list[bytes] = []

    async def rest(conn: RawConn) -> None:
        req = await conn.read_request()
        got.append(req)
        start = int(req.split(b"range: bytes=")[1].split(b"-")[0])
        fields = [("Content-Range", f"bytes {start}-{len(BIG) - 1}/{len(BIG)}"), ("ETag", '"big"')]
        await conn.send(response(206, BIG[start:], fields))
        await conn.wait_closed_by_peer()

    srv = await raw_server([cut_big(200_000), rest])
    async with undipy.Client(srv.origin) as client:
        resp = await within(client.compose(*chain()).request(path="/big", method="GET"))
        chunks = []
        async for chunk in resp.body:
            chunks.append(chunk)
            await asyncio.sleep(0.01 if len(chunks) < 5 else 0)
    assert b"".join(chunks) == BIG
    assert len(got) == 1 and b'if-match: "big"' in got[0]


async def test_an_aborted_body_is_not_resumed(raw_server: RawServerFactory) -> None:
    async def slow(conn: RawConn) -> None:
        assert await conn.read_request()
        head = response(200, BIG)
        await conn.send(head[: len(head) - len(BIG) + 1000])
        await conn.wait_closed_by_peer()

    srv = await raw_server([slow, slow])
    signal = undipy.AbortController()
    async with undipy.Client(srv.origin) as client:
        d = client.compose(*chain())
        resp = await within(d.request(path="/", method="GET", signal=signal.signal))
        signal.abort()
        with pytest.raises(RequestAbortedError):
            await within(resp.body.bytes())
    assert srv.connections == 1


async def test_throw_on_error(http_server: HttpServer) -> None:
    async def missing(req: Request) -> Response:
        return Response(status=404, body=b"no")

    http_server.route("/missing", missing)
    async with undipy.Pool(http_server.origin) as pool:
        d = pool.compose(*chain())
        with pytest.raises(ResponseStatusCodeError) as info:
            await get(d, "/missing", throw_on_error=True)
        assert info.value.status_code == 404
        assert await get(d, "/missing") == (404, b"no")


async def test_what_stays_on_the_slow_path(http_server: HttpServer, handlers: list[str]) -> None:
    async with undipy.Pool(http_server.origin) as pool:
        # A per-request option of an interceptor.
        assert await get(pool.compose(*chain()), max_redirections=1) == (200, b"hello")
        assert handlers
        handlers.clear()
        # An interceptor the native path does not know.
        assert await get(pool.compose(*chain(), dump())) == (200, b"")  # dump drops it
        assert "_DumpHandler" in handlers
        handlers.clear()
        # A diagnostics subscriber (it sees every attempt).
        seen: list[Any] = []
        diagnostics.subscribe("request:headers", seen.append)
        try:
            assert await get(pool.compose(*chain())) == (200, b"hello")
        finally:
            diagnostics.unsubscribe("request:headers", seen.append)
        assert len(seen) == 1 and "_RetryHandler" in handlers
