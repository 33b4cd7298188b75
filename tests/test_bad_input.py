"""What a caller can get wrong, entry point by entry point (issue 11).

Every bad argument gets a clear ``InvalidArgumentError`` (or ``TypeError``)
before a byte is sent, or fails its own request with its own error; callbacks
that raise end their request and nothing else. Never a crash, a hang, or a
connection that poisons the next request: each row ends by making one.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import undipy
from helpers import within
from servers import HttpServer, RawConn, Request, Response

HUGE = 2**70
OPTION_VALUES: dict[str, list[Any]] = {
    "pipelining": [None, -1, 1.5, "1", True, HUGE, 2**32],
    "connect_timeout": [None, -1, -0.5, math.nan, math.inf, "1", True, b"1", []],
    "headers_timeout": [None, -1, math.nan, -math.inf, "1", False],
    "body_timeout": [None, -0.001, math.nan, math.inf, "1"],
    "keep_alive_timeout": [None, -1, math.nan, "4"],
    "keep_alive_max_timeout": [None, -1, math.inf, "600"],
    "keep_alive_timeout_threshold": [None, -1, math.nan, {}],
    "max_header_size": [None, 0, -1, 1.0, "16384", True, HUGE],
    "max_response_size": [None, -2, 1.5, "1", HUGE],
    "max_requests_per_client": [0, -1, 1.5, "1", True, HUGE],
    "socket_path": [1, b"/tmp/x", True],
    "strict_content_length": [None, 1, "yes"],
    "local_address": [1, True, HUGE, b"127.0.0.1", "localhost", "300.1.1.1"],
    "tls": [1, "not a pem or a file", {"verify": "yes"}, {"nope": 1}],
}
OPTION_CASES = [(k, v) for k, vs in OPTION_VALUES.items() for v in vs]


def _id(v: Any) -> str:
    return repr(v)[:20]


@pytest.mark.parametrize("cls", [undipy.Client, undipy.Pool])
@pytest.mark.parametrize(
    ("name", "value"), OPTION_CASES, ids=[f"{k}={_id(v)}" for k, v in OPTION_CASES]
)
def test_bad_constructor_options(cls: type[undipy.Client], name: str, value: Any) -> None:
    with pytest.raises(undipy.InvalidArgumentError, match=name):
        cls("http://127.0.0.1:1", **{name: value})


@pytest.mark.parametrize("connections", [0, -1, 1.5, "2", True, HUGE])
def test_bad_pool_connections(connections: Any) -> None:
    with pytest.raises(undipy.InvalidArgumentError, match="connections"):
        undipy.Pool("http://127.0.0.1:1", connections=connections)


@pytest.mark.parametrize("value", [-1, 1.5, None, HUGE])
def test_bad_pipelining_setter(value: Any) -> None:
    c = undipy.Client("http://127.0.0.1:1")
    with pytest.raises(undipy.InvalidArgumentError, match="pipelining"):
        c.pipelining = value
    assert c.pipelining == 1


@pytest.mark.loops
@pytest.mark.parametrize("seconds", [1e9, 1.8e19, 1e300])
async def test_huge_timeouts_mean_never(http_server: HttpServer, seconds: float) -> None:
    """Longer than the clock can hold ahead is a century, not an overflow."""
    timeouts = {
        "connect_timeout": seconds,
        "headers_timeout": seconds,
        "body_timeout": seconds,
        "keep_alive_timeout": seconds,
        "keep_alive_max_timeout": seconds,
    }
    async with undipy.Client(http_server.origin, **timeouts) as c:  # type: ignore[arg-type]
        for _ in range(2):  # the second one on the kept-alive connection
            resp = await within(
                c.request(path="/", method="GET", headers_timeout=seconds, body_timeout=seconds)
            )
            assert await within(resp.body.bytes()) == b"hello"


REQUEST_VALUES: dict[str, list[Any]] = {
    "method": [None, 1, b"\xff", "GE T", "GET\r\n", "", []],
    "path": [None, 1, "no-slash", "/a b", "/\r\nx: y", "/\x00", b"/\xff"],
    "headers": [1, "x", ["odd"], [("a",)], {"bad name": "v"}, {"x": "a\r\nb: c"}, {"x": 1 + 2j}],
    "query": [1, "a=b", [("a", "b")]],
    "body": [1, 1.5, object(), {"a": 1}],
    "idempotent": [1, "yes"],
    "blocking": [1, "yes"],
    "reset": [1, "yes"],
    "upgrade": [1, True],
    "headers_timeout": [-1, math.nan, math.inf, "1", True],
    "body_timeout": [-1, math.nan, "1"],
    "throw_on_error": [1, "yes"],
    "expect_continue": [1, "yes"],
    "signal": [1, "x", object()],
    "on_info": [1, "x"],
}
REQUEST_CASES = [(k, v) for k, vs in REQUEST_VALUES.items() for v in vs]


@pytest.fixture
async def counted(raw_server: Any) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server that records every request it gets and answers ``hello``."""
    seen: list[bytes] = []

    async def serve(conn: RawConn) -> None:
        while req := await conn.read_request():
            seen.append(req)
            await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")

    srv = await raw_server(serve)
    yield srv.origin, seen


@pytest.mark.parametrize(
    ("name", "value"), REQUEST_CASES, ids=[f"{k}={_id(v)}" for k, v in REQUEST_CASES]
)
async def test_bad_request_options_send_nothing(
    counted: tuple[str, list[bytes]], name: str, value: Any
) -> None:
    origin, seen = counted
    async with undipy.Client(origin) as c:
        with pytest.raises((undipy.InvalidArgumentError, TypeError)):
            await within(c.request(**{"path": "/", "method": "GET", name: value}))
        with pytest.raises((undipy.InvalidArgumentError, TypeError)):
            c.dispatch(undipy.DispatchHandler(), **{"path": "/", "method": "GET", name: value})
        assert seen == [], "a rejected request reached the server"
        resp = await within(c.request(path="/", method="GET"))
        assert await within(resp.body.bytes()) == b"hello"


# --- callbacks that raise -------------------------------------------------------

CALLBACKS = ["on_connect", "on_headers", "on_data", "on_body_sent", "on_complete"]


class Raising(undipy.DispatchHandler):
    """Raises in one callback; records every call; ``done`` settles on the end."""

    def __init__(self, bad: str) -> None:
        self.bad = bad
        self.calls: list[str] = []
        self.error: BaseException | None = None
        self.done = asyncio.get_running_loop().create_future()

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name == self.bad:
            raise RuntimeError(f"boom in {name}")

    def on_connect(self, abort: Any, context: Any = None) -> None:
        self._call("on_connect")

    def on_headers(self, status: int, headers: list[bytes], resume: Any, text: str = "") -> bool:
        self._call("on_headers")
        return True

    def on_data(self, chunk: bytes) -> bool:
        self._call("on_data")
        return True

    def on_body_sent(self, chunk: bytes) -> None:
        self._call("on_body_sent")

    def on_complete(self, trailers: list[bytes]) -> None:
        self.done.set_result(None)
        self._call("on_complete")

    def on_error(self, error: BaseException) -> None:
        self.calls.append("on_error")
        self.error = error
        self.done.set_result(None)


@pytest.fixture
async def big(http_server: HttpServer) -> HttpServer:
    async def body(req: Request) -> Response:
        return Response(body=b"x" * 300_000)

    http_server.route("/big", body)
    return http_server


@pytest.mark.loops
@pytest.mark.parametrize("pipelining", [1, 4])
@pytest.mark.parametrize("bad", CALLBACKS)
async def test_a_handler_that_raises_ends_its_request_only(
    big: HttpServer, bad: str, pipelining: int
) -> None:
    unraisable: list[BaseException | None] = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = lambda u: unraisable.append(u.exc_value)
    try:
        async with undipy.Client(big.origin, pipelining=pipelining) as c:
            h = Raising(bad)
            c.dispatch(h, path="/big", method="POST", body=b"y" * 100_000)
            await within(h.done)
            await asyncio.sleep(0.05)  # nothing more may come
            resp = await within(c.request(path="/", method="GET"))
            assert await within(resp.body.bytes()) == b"hello"
    finally:
        sys.unraisablehook = old_hook
    assert h.calls.count("on_error") + h.calls.count("on_complete") == 1, h.calls
    assert h.calls[-1] in ("on_error", "on_complete")
    if bad == "on_complete":
        # The request is over: the error goes where Python puts errors nobody
        # can take (docs/choices.md), not to on_error as well.
        assert h.calls[-1] == "on_complete"
        assert [str(e) for e in unraisable] == ["boom in on_complete"]
    else:
        assert h.calls[-1] == "on_error"
        assert isinstance(h.error, RuntimeError) and str(h.error) == f"boom in {bad}"


class Writable:
    def __init__(self, fail_at: int) -> None:
        self.writes = 0
        self.fail_at = fail_at

    def write(self, chunk: bytes) -> None:
        self.writes += 1
        if self.writes == self.fail_at:
            raise RuntimeError("write boom")


class AsyncWritable:
    async def write(self, chunk: bytes) -> None:
        raise RuntimeError("async write boom")


def _raise_factory(data: Any) -> Any:
    raise RuntimeError("factory boom")


STREAM_CASES: dict[str, tuple[Any, type[BaseException], str]] = {
    "write-raises-first": (lambda d: Writable(1), RuntimeError, "write boom"),
    "write-raises-second": (lambda d: Writable(2), RuntimeError, "write boom"),
    "async-write-raises": (lambda d: AsyncWritable(), RuntimeError, "async write boom"),
    "factory-raises": (_raise_factory, RuntimeError, "factory boom"),
    "factory-returns-none": (lambda d: None, undipy.InvalidReturnValueError, "Writable"),
}


@pytest.mark.loops
@pytest.mark.parametrize("case", STREAM_CASES.values(), ids=STREAM_CASES.keys())
async def test_stream_writables_that_fail(big: HttpServer, case: Any) -> None:
    factory, error, says = case
    async with undipy.Client(big.origin) as c:
        with pytest.raises(error, match=says):
            await within(c.stream(factory, path="/big", method="GET"))
        resp = await within(c.request(path="/", method="GET"))
        assert await within(resp.body.bytes()) == b"hello"


def sync_body(fail_at: int) -> Iterator[bytes]:
    for i in range(3):
        if i == fail_at:
            raise RuntimeError(f"body boom at {i}")
        yield b"abc" * 10_000


async def async_body(fail_at: int) -> AsyncIterator[bytes]:
    for i in range(3):
        if i == fail_at:
            raise RuntimeError(f"body boom at {i}")
        yield b"abc" * 10_000


def yields_int() -> Iterator[Any]:
    yield b"ok"
    yield 123


class FailingFile:
    def read(self, n: int = -1) -> bytes:
        raise OSError("read boom")


BODY_CASES: dict[str, tuple[Any, type[BaseException], str]] = {
    **{
        f"sync-raises-at-{i}": (lambda i=i: sync_body(i), RuntimeError, f"at {i}") for i in range(3)
    },
    **{
        f"async-raises-at-{i}": (lambda i=i: async_body(i), RuntimeError, f"at {i}")
        for i in range(3)
    },
    "yields-an-int": (yields_int, TypeError, "bytes or str"),
    "file-read-raises": (FailingFile, OSError, "read boom"),
}


@pytest.mark.loops
@pytest.mark.parametrize("pipelining", [1, 4])
@pytest.mark.parametrize("case", BODY_CASES.values(), ids=BODY_CASES.keys())
async def test_request_bodies_that_fail(
    http_server: HttpServer, case: Any, pipelining: int
) -> None:
    make, error, says = case
    async with undipy.Client(http_server.origin, pipelining=pipelining) as c:
        with pytest.raises(error, match=says):
            await within(c.request(path="/", method="POST", body=make()))
        resp = await within(c.request(path="/", method="GET"))
        assert await within(resp.body.bytes()) == b"hello"


async def test_on_info_and_pipeline_handlers_that_raise(raw_server: Any) -> None:
    async def serve(conn: RawConn) -> None:
        while req := await conn.read_request():
            if req.startswith(b"GET /info "):
                await conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
            await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")

    srv = await raw_server(serve)

    def on_info(info: Any) -> None:
        raise RuntimeError("info boom")

    def handler(data: Any) -> Any:
        raise RuntimeError("pipeline boom")

    async with undipy.Client(srv.origin) as c:
        with pytest.raises(RuntimeError, match="info boom"):
            await within(c.request(path="/info", method="GET", on_info=on_info))
        dup = c.pipeline(handler, path="/", method="GET")
        with pytest.raises(RuntimeError, match="pipeline boom"):
            await within(dup.end())
            async for _ in dup:
                pass
        resp = await within(c.request(path="/", method="GET"))
        assert await within(resp.body.bytes()) == b"hello"


# --- lifecycle and events -------------------------------------------------------


LIFECYCLE_CASES: dict[str, Any] = {
    "close-callback-not-callable": lambda c: c.close(callback=1),
    "destroy-error-a-string": lambda c: c.destroy(error="boom"),
    "destroy-error-an-int": lambda c: c.destroy(1),
    "destroy-callback-not-callable": lambda c: c.destroy(None, 1),
    "on-misspelt-event": lambda c: c.on("conect", print),
    "on-event-not-a-str": lambda c: c.on(1, print),
    "on-listener-not-callable": lambda c: c.on("connect", 1),
    "once-listener-not-callable": lambda c: c.once("drain", None),
    "request-callback-not-callable": lambda c: c.request(path="/", method="GET", callback=1),
    "stream-factory-not-callable": lambda c: c.stream(1, path="/", method="GET"),
    "pipeline-handler-not-callable": lambda c: c.pipeline(1, path="/", method="GET"),
    "dispatch-handler-none": lambda c: c.dispatch(None, path="/", method="GET"),
    "upgrade-protocol-not-a-str": lambda c: c.upgrade(path="/", protocol=1),
    "connect-path-not-a-str": lambda c: c.connect(path=1),
}


@pytest.mark.parametrize("call", LIFECYCLE_CASES.values(), ids=LIFECYCLE_CASES.keys())
async def test_bad_lifecycle_and_event_arguments(
    counted: tuple[str, list[bytes]], call: Any
) -> None:
    origin, seen = counted
    async with undipy.Client(origin) as c:
        with pytest.raises(undipy.InvalidArgumentError):
            result = call(c)
            if hasattr(result, "__await__"):
                await within(result)
        assert not c.closed and not c.destroyed
        resp = await within(c.request(path="/", method="GET"))
        assert await within(resp.body.bytes()) == b"hello"
    assert len(seen) == 1


async def test_a_listener_that_raises_does_not_silence_the_others(http_server: HttpServer) -> None:
    heard: list[str] = []

    def loud(*args: Any) -> None:
        raise RuntimeError("listener boom")

    unraisable: list[BaseException | None] = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = lambda u: unraisable.append(u.exc_value)
    try:
        async with undipy.Client(http_server.origin) as c:
            c.on("connect", loud).on("connect", lambda *a: heard.append("second"))
            resp = await within(c.request(path="/", method="GET"))
            assert await within(resp.body.bytes()) == b"hello"
    finally:
        sys.unraisablehook = old_hook
    assert heard == ["second"]
    assert [str(e) for e in unraisable] == ["listener boom"]
