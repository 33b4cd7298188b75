"""The Dispatcher ladder (issue 12's seam): a dispatcher that only provides
``dispatch()`` (and close/destroy) gets every convenience from the base
class, with the same semantics and the same types as the engine's native
paths. Two shapes: a wrapper around a ``Client`` (what agents, interceptors
and mocks will be), and a ``Client`` subclass overriding ``dispatch()``."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
import undipy
from helpers import within
from servers import HttpServer, Request, Response

BIG = 1 << 20


class Wrapper(undipy.Dispatcher):
    """Only the five things a dispatcher must provide; counts dispatches."""

    def __init__(self, inner: undipy.Client) -> None:
        super().__init__()
        self.inner = inner
        self.dispatched: list[str] = []

    def dispatch(self, handler: Any, **opts: Any) -> bool:
        self.dispatched.append(opts.get("path", "?"))
        return self.inner.dispatch(handler, **opts)

    def close(self, callback: Any = None) -> Any:
        return self.inner.close(callback)

    def destroy(self, error: Any = None, callback: Any = None) -> Any:
        return self.inner.destroy(error, callback)

    @property
    def closed(self) -> bool:
        return self.inner.closed

    @property
    def destroyed(self) -> bool:
        return self.inner.destroyed


class Counting(undipy.Client):
    """A Client whose dispatch() is its own: request() and stream() go through it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dispatched = 0

    def dispatch(self, handler: Any, **opts: Any) -> bool:
        self.dispatched += 1
        return super().dispatch(handler, **opts)


@pytest.fixture
async def server(http_server: HttpServer) -> HttpServer:
    async def big(req: Request) -> Response:
        return Response(body=b"b" * BIG)

    async def huge(req: Request) -> Response:
        return Response(body=[b"h" * BIG] * 64)  # more than the socket buffers hold

    async def json_body(req: Request) -> Response:
        return Response(body=b'{"a": [1, 2]}', headers=[("content-type", "application/json")])

    async def missing(req: Request) -> Response:
        return Response(
            status=404, body=b'{"error": "nope"}', headers=[("content-type", "application/json")]
        )

    async def trailers(req: Request) -> Response:
        return Response(body=[b"ab", b"cd"], chunked=True, trailers=[("x-sum", "42")])

    async def echo(req: Request) -> Response:
        return Response(body=req.body)

    async def slow(req: Request) -> Response:
        await asyncio.sleep(30)
        return Response()

    for path, h in [
        ("/big", big),
        ("/huge", huge),
        ("/json", json_body),
        ("/missing", missing),
        ("/trailers", trailers),
        ("/echo", echo),
        ("/slow", slow),
    ]:
        http_server.route(path, h)
    return http_server


@pytest.fixture(params=["wrapper", "subclass"])
async def d(request: pytest.FixtureRequest, server: HttpServer) -> AsyncIterator[Any]:
    if request.param == "wrapper":
        disp: Any = Wrapper(undipy.Client(server.origin, pipelining=2))
    else:
        disp = Counting(server.origin, pipelining=2)
    async with disp:
        yield disp
    assert (len(disp.dispatched) if request.param == "wrapper" else disp.dispatched) > 0


@pytest.mark.loops
async def test_request_reads_bodies_every_way(d: Any) -> None:
    resp = await within(d.request(path="/", method="GET"))
    assert isinstance(resp, undipy.ResponseData)
    assert (resp.status_code, resp.status_text) == (200, "OK")
    assert resp.headers["content-length"] == "5"
    assert await within(resp.body.text()) == "hello"
    resp = await within(d.request(path="/json", method="GET", opaque="o"))
    assert resp.opaque == "o"
    assert await within(resp.body.json()) == {"a": [1, 2]}
    resp = await within(d.request(path="/big", method="GET"))
    got = 0
    async for chunk in resp.body:  # backpressure: the reader is slower than the socket
        got += len(chunk)
        await asyncio.sleep(0)
    assert got == BIG
    resp = await within(d.request(path="/trailers", method="GET"))
    assert await within(resp.body.bytes()) == b"abcd"
    assert resp.trailers == {"x-sum": "42"}
    async with d.request(path="/echo", method="POST", body=b"x" * 100_000) as resp:
        assert len(await within(resp.body.bytes())) == 100_000


@pytest.mark.loops
async def test_request_errors_and_aborts(d: Any) -> None:
    with pytest.raises(undipy.ResponseStatusCodeError) as info:
        await within(d.request(path="/missing", method="GET", throw_on_error=True))
    assert info.value.status_code == 404 and info.value.body == {"error": "nope"}
    with pytest.raises(undipy.InvalidArgumentError):
        await within(d.request(path="no-slash", method="GET"))
    controller = undipy.AbortController()
    call = asyncio.ensure_future(d.request(path="/slow", method="GET", signal=controller.signal))
    await asyncio.sleep(0.05)
    controller.abort()
    with pytest.raises(undipy.RequestAbortedError):
        await within(call)
    task = asyncio.ensure_future(d.request(path="/slow", method="GET"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # A body dropped unread aborts its request (its connection closes), as
    # on the native path: nothing but its reader may keep it alive.
    client = d.inner if isinstance(d, Wrapper) else d
    closed = asyncio.get_running_loop().create_future()
    client.once("disconnect", lambda *args: closed.set_result(None))
    resp = await within(d.request(path="/huge", method="GET"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del resp
        gc.collect()
    await within(closed)
    resp = await within(d.request(path="/", method="GET"))
    assert await within(resp.body.bytes()) == b"hello"


@pytest.mark.loops
async def test_request_with_a_callback(d: Any) -> None:
    got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    assert d.request(lambda e, r: got.set_result((e, r)), path="/", method="GET") is None
    err, resp = await within(got)
    assert err is None and await within(resp.body.bytes()) == b"hello"


@pytest.mark.loops
async def test_stream_writes_and_awaits_the_writable(d: Any) -> None:
    class Sink:
        def __init__(self) -> None:
            self.chunks: list[bytes] = []

        async def write(self, chunk: bytes) -> None:
            await asyncio.sleep(0)
            self.chunks.append(chunk)

    sink = Sink()
    data = await within(d.stream(lambda info: sink, path="/big", method="GET", opaque=7))
    assert isinstance(data, undipy.StreamData) and data.opaque == 7
    assert sum(map(len, sink.chunks)) == BIG
    with pytest.raises(undipy.ResponseStatusCodeError):
        await within(
            d.stream(lambda info: sink, path="/missing", method="GET", throw_on_error=True)
        )


@pytest.mark.loops
async def test_pipeline_and_upgrade_go_through_dispatch(d: Any) -> None:
    dup = d.pipeline(lambda data: data.body, path="/echo", method="POST")
    await within(dup.write(b"ping"))
    await within(dup.end())
    assert b"".join([c async for c in dup]) == b"ping"
    with pytest.raises(undipy.SocketError, match="bad upgrade"):
        await within(d.upgrade(path="/"))  # the server does not upgrade


async def test_a_plain_client_stays_native(server: HttpServer) -> None:
    """The fast path: request() and stream() of an undisturbed Client never
    call dispatch()."""
    calls = 0

    class Spy(undipy.Client):
        pass

    async with Spy(server.origin) as c:
        original = undipy.Client.dispatch

        def spy(self: Any, handler: Any, **opts: Any) -> bool:
            nonlocal calls
            calls += 1
            return original(self, handler, **opts)

        resp = await within(c.request(path="/", method="GET"))
        assert await within(resp.body.bytes()) == b"hello"
        Spy.dispatch = spy  # type: ignore[method-assign]
        resp = await within(c.request(path="/", method="GET"))
        assert await within(resp.body.bytes()) == b"hello"
    assert calls == 1  # only once dispatch() was overridden
