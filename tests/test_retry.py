"""The retry interceptor and RetryAgent, against real loopback servers: which
failures are retried and how often, the backoff and Retry-After, giving up
(RequestRetryError), bodies that cannot be replayed, the resume of a body
that failed halfway (Range, If-Match, the 206 checks), user aborts during a
backoff, per-request retry_options, and RetryAgent over a Client and an
Agent. Backoffs are tiny; delays are asserted through the retry hook."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import undipy
from helpers import Recorder, within
from servers import HttpServer, RawConn, RawServer, Request, Response, response
from undipy import RequestRetryError, RetryAgent, SocketError
from undipy.dispatcher import Interceptor
from undipy.interceptors import dump, retry
from undipy.interceptors.retry import RetryOptions, error_codes_of

FAST: RetryOptions = {"min_timeout": 0.001, "max_timeout": 0.01}

RawServerFactory = Callable[..., Awaitable[RawServer]]


def fast(**opts: Any) -> Interceptor:
    """``retry()`` with tiny backoffs."""
    return retry(**{**FAST, **opts})


def failing(srv: HttpServer, times: int, status: int = 503, **extra: Any) -> list[Request]:
    """Route ``/`` to answer ``status`` ``times`` times, then 200 "done"."""
    seen: list[Request] = []

    async def handler(req: Request) -> Response:
        seen.append(req)
        if len(seen) <= times:
            return Response(status=status, body=b"busy", **extra)
        return Response(body=b"done")

    srv.route("/", handler)
    return seen


async def get(d: undipy.Dispatcher, **opts: Any) -> tuple[int, bytes]:
    opts.setdefault("path", "/")
    opts.setdefault("method", "GET")
    resp = await within(d.request(**opts))
    return resp.status_code, await within(resp.body.bytes())


async def reset(conn: RawConn) -> None:
    assert await conn.read_request()
    conn.reset()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------- what is retried


async def test_a_503_twice_then_200(http_server: HttpServer) -> None:
    seen = failing(http_server, 2)
    async with undipy.Client(http_server.origin) as client:
        d = client.compose(fast())
        assert await get(d) == (200, b"done")
    assert len(seen) == 3


async def test_a_reset_connection_then_200(raw_server: RawServerFactory) -> None:
    srv = await raw_server([reset, reset, _hello])
    async with undipy.Client(srv.origin) as client:
        rec = Recorder()
        client.compose(fast()).dispatch(rec, path="/", method="GET")
        await rec.wait()
    assert rec.status == 200 and rec.body == b"hello"
    # The handler saw one response, and on_connect once per attempt before it.
    assert rec.kinds == ["connect", "connect", "connect", "headers", "data", "complete"]
    assert srv.connections == 3


async def _hello(conn: RawConn) -> None:
    while await conn.read_request():
        await conn.send(response(200, b"hello"))


@pytest.mark.parametrize(
    ("codes", "attempts"), [(None, 3), (("ECONNREFUSED",), 3), (("ECONNRESET",), 1)]
)
async def test_refused_connections_and_error_codes(
    codes: tuple[str, ...] | None, attempts: int
) -> None:
    """A refused connection is SocketError with ECONNREFUSED among its codes: retried
    by default and with error_codes=("ECONNREFUSED",), not with ("ECONNRESET",)."""
    counters: list[int] = []

    def hook(err: BaseException, ctx: dict[str, Any]) -> float | None:
        counters.append(ctx["counter"])
        delay: float | None = ctx["delay"]
        return delay

    opts: dict[str, Any] = {"max_retries": 2, "retry": hook, **FAST}
    if codes is not None:
        opts["error_codes"] = codes
    async with undipy.Client(f"http://127.0.0.1:{closed_port()}") as client:
        with pytest.raises(SocketError) as info:
            await get(client.compose(retry(**opts)))
    assert {"ECONNREFUSED", "UND_ERR_SOCKET"} <= error_codes_of(info.value)
    assert counters == list(range(1, attempts + 1))


def test_error_codes_of() -> None:
    assert error_codes_of(SocketError("Connection reset by peer (os error 104)")) == {
        "UND_ERR_SOCKET",
        "ECONNRESET",
    }
    assert "ENOTFOUND" in error_codes_of(
        SocketError("getaddrinfo x.invalid: failed to lookup address information: no")
    )
    assert error_codes_of(undipy.ResponseContentLengthMismatchError()) == {
        "UND_ERR_RES_CONTENT_LENGTH_MISMATCH",
        "UND_ERR_SOCKET",  # a body cut short by the server closing
    }
    truncated = undipy.HTTPParserError("closed inside chunked body", "HPE_INVALID_EOF_STATE")
    assert error_codes_of(truncated) == {"HPE_INVALID_EOF_STATE", "UND_ERR_SOCKET"}
    assert error_codes_of(ConnectionResetError(104, "reset")) == {"ECONNRESET"}
    assert error_codes_of(ValueError("x")) == set()


async def test_a_status_not_listed_and_a_success_are_passed_on(http_server: HttpServer) -> None:
    seen = failing(http_server, 1, status=404)
    async with undipy.Client(http_server.origin) as client:
        d = client.compose(fast())
        assert await get(d) == (404, b"busy")
        assert await get(d) == (200, b"done")
    assert len(seen) == 2


# --------------------------------------------------------------------------- backoff


async def test_the_backoff_and_the_retry_hook(http_server: HttpServer) -> None:
    seen = failing(http_server, 4)
    delays: list[tuple[int, float]] = []

    def hook(err: BaseException, ctx: dict[str, Any]) -> float | None:
        assert isinstance(err, RequestRetryError) and err.status_code == 503
        assert ctx["opts"]["path"] == "/" and ctx["retry_options"]["max_retries"] == 5
        delays.append((ctx["counter"], ctx["delay"]))
        return 0.0

    async with undipy.Client(http_server.origin) as client:
        d = client.compose(
            retry(min_timeout=0.001, timeout_factor=10, max_timeout=0.05, retry=hook)
        )
        assert await get(d) == (200, b"done")
    assert delays == [(1, 0.001), (2, 0.01), (3, 0.05), (4, 0.05)]
    assert len(seen) == 5


async def test_the_retry_hook_gives_up_or_fails(http_server: HttpServer) -> None:
    seen = failing(http_server, 10)
    async with undipy.Client(http_server.origin) as client:
        d = client.compose(retry(retry=lambda err, ctx: None))
        with pytest.raises(RequestRetryError):
            await get(d)

        def bad(err: BaseException, ctx: dict[str, Any]) -> float | None:
            raise KeyError("hook")

        with pytest.raises(KeyError):
            await get(client.compose(retry(retry=bad)))
    assert len(seen) == 2


@pytest.mark.parametrize("kind", ["seconds", "date", "capped", "ignored"])
async def test_retry_after(http_server: HttpServer, kind: str) -> None:
    value = "1"
    if kind == "date":
        value = email.utils.formatdate(time.time() + 3, usegmt=True)
    seen = failing(http_server, 1, headers=[("Retry-After", value)])
    got: list[float] = []

    def hook(err: BaseException, ctx: dict[str, Any]) -> float | None:
        got.append(ctx["delay"])
        return 0.0

    opts: dict[str, Any] = {"retry": hook, "min_timeout": 0.001}
    if kind == "capped":
        opts["max_timeout"] = 0.5
    if kind == "ignored":
        opts["retry_after"] = False
    async with undipy.Client(http_server.origin) as client:
        assert await get(client.compose(retry(**opts))) == (200, b"done")
    assert len(seen) == 2
    (delay,) = got
    expected = {"seconds": 1.0, "capped": 0.5, "ignored": 0.001}
    if kind == "date":
        assert 1.0 < delay <= 3.0  # whole seconds on the wire
    else:
        assert delay == expected[kind]


async def test_retry_after_is_waited_for(http_server: HttpServer) -> None:
    seen = failing(http_server, 1, headers=[("Retry-After", "1")])
    async with undipy.Client(http_server.origin) as client:
        start = time.monotonic()
        assert await get(client.compose(retry(min_timeout=0.001))) == (200, b"done")
        assert 0.9 <= time.monotonic() - start < 4.0
    assert len(seen) == 2


# --------------------------------------------------------------------------- giving up


async def test_giving_up_on_a_status(http_server: HttpServer) -> None:
    seen = failing(http_server, 100, headers=[("x-why", "busy")])
    async with undipy.Client(http_server.origin) as client:
        with pytest.raises(RequestRetryError) as info:
            await get(client.compose(fast(max_retries=2)))
        err = info.value
        assert err.code == "UND_ERR_REQ_RETRY"
        assert err.status_code == 503 and err.headers["x-why"] == "busy"
        assert err.data == {"count": 3}
        assert len(seen) == 3
        # throw_on_error=False: the last failed response is the answer.
        assert await get(client.compose(fast(max_retries=1, throw_on_error=False))) == (
            503,
            b"busy",
        )
        assert len(seen) == 5
        # The failed responses were read, not cut: one connection did it all.
        assert http_server.connections == 1


async def test_giving_up_on_an_error(raw_server: RawServerFactory) -> None:
    srv = await raw_server(reset)
    async with undipy.Client(srv.origin) as client:
        with pytest.raises(SocketError):
            await get(client.compose(fast(max_retries=1)))
    assert srv.connections == 2


# --------------------------------------------------------------------------- what is never retried


async def test_post_is_not_retried_unless_listed(
    http_server: HttpServer, raw_server: RawServerFactory
) -> None:
    seen = failing(http_server, 1)
    async with undipy.Client(http_server.origin) as client:
        with pytest.raises(RequestRetryError):
            await get(client.compose(fast()), method="POST", body=b"x")
        assert len(seen) == 1
        d = client.compose(fast(methods=["POST"]))
        assert await get(d, method="POST", body=b"x") == (200, b"done")
        assert [r.body for r in seen] == [b"x", b"x"]
    srv = await raw_server([reset, _hello])
    async with undipy.Client(srv.origin) as client:
        with pytest.raises(SocketError):
            await get(client.compose(fast()), method="POST", body=b"x")
    assert srv.connections == 1


async def test_a_streaming_body_is_never_retried(
    http_server: HttpServer, raw_server: RawServerFactory
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"

    seen = failing(http_server, 2)
    async with undipy.Client(http_server.origin) as client:
        d = client.compose(fast())
        with pytest.raises(RequestRetryError) as info:
            await get(d, method="PUT", body=chunks())
        assert info.value.status_code == 503
        with pytest.raises(RequestRetryError):
            await get(d, method="PUT", body=iter([b"a", b"b"]))
        assert await get(d, method="PUT", body=b"ab") == (200, b"done")
    assert [r.body for r in seen] == [b"ab", b"ab", b"ab"]
    srv = await raw_server([reset, _hello])
    async with undipy.Client(srv.origin) as client:
        with pytest.raises(SocketError):
            await get(client.compose(fast()), method="PUT", body=chunks())
    assert srv.connections == 1


# --------------------------------------------------------------------------- resuming a body

BODY = b"0123456789"


def cut_after(n: int, *, etag: str = '"v1"', close: bool = False) -> Callable[..., Any]:
    """Script: a 200 with all of BODY announced, ``n`` bytes of it, then a reset (or a
    clean close)."""

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        fields = [("ETag", etag)] if etag else []
        head = response(200, BODY, fields)
        await conn.send(head[: len(head) - len(BODY) + n])
        await asyncio.sleep(0.05)  # let the client take those bytes first
        if close:
            await conn.close()
        else:
            conn.reset()

    return script


def answer_range(
    got: list[bytes], status: int = 206, content_range: str | None = None, etag: str = '"v1"'
) -> Callable[..., Any]:
    """Script: record the resume request, answer it with the rest of BODY."""

    async def script(conn: RawConn) -> None:
        req = await conn.read_request()
        got.append(req)
        start = int(req.split(b"range: bytes=")[1].split(b"-")[0]) if b"range:" in req else 0
        cr = content_range or f"bytes {start}-{len(BODY) - 1}/{len(BODY)}"
        fields = [("Content-Range", cr)] + ([("ETag", etag)] if etag else [])
        await conn.send(response(status, BODY[start:], fields))
        await conn.wait_closed_by_peer()

    return script


@pytest.mark.parametrize("close", [False, True], ids=["reset", "closed"])
async def test_a_body_cut_halfway_is_resumed(raw_server: RawServerFactory, close: bool) -> None:
    got: list[bytes] = []
    srv = await raw_server([cut_after(4, close=close), answer_range(got)])
    async with undipy.Client(srv.origin) as client:
        rec = Recorder()
        client.compose(fast()).dispatch(rec, path="/file", method="GET")
        await rec.wait()
    assert rec.kinds[:2] == ["connect", "headers"] and rec.kinds[-1] == "complete"
    assert rec.kinds.count("headers") == 1 and rec.kinds.count("connect") == 1
    assert rec.status == 200 and rec.body == BODY
    (req,) = got
    assert req.startswith(b"GET /file HTTP/1.1\r\n")
    assert b"\r\nrange: bytes=4-9\r\n" in req and b'\r\nif-match: "v1"\r\n' in req


async def test_a_chunked_body_cut_halfway_is_resumed(raw_server: RawServerFactory) -> None:
    """No length: the resume asks for the rest with an open range."""

    async def cut(conn: RawConn) -> None:
        assert await conn.read_request()
        fields = b'Transfer-Encoding: chunked\r\nETag: "v1"\r\n'
        await conn.send(b"HTTP/1.1 200 OK\r\n" + fields + b"\r\n4\r\n0123\r\n")
        await asyncio.sleep(0.05)

    got: list[bytes] = []
    srv = await raw_server([cut, answer_range(got)])
    async with undipy.Client(srv.origin) as client:
        assert await get(client.compose(fast())) == (200, BODY)
    assert b"\r\nrange: bytes=4-\r\n" in got[0] and b'if-match: "v1"' in got[0]


async def test_a_resume_through_request(raw_server: RawServerFactory) -> None:
    got: list[bytes] = []
    srv = await raw_server([cut_after(3), answer_range(got)])
    async with undipy.Client(srv.origin) as client:
        headers = {"x-keep": "1", "Range": "ignored"}
        assert await get(client.compose(fast()), headers=headers) == (200, BODY)
    assert b"x-keep: 1\r\n" in got[0] and got[0].count(b"ange: ") == 1


async def test_a_weak_etag_is_not_sent(raw_server: RawServerFactory) -> None:
    got: list[bytes] = []
    srv = await raw_server([cut_after(4, etag='W/"v1"'), answer_range(got, etag='W/"v1"')])
    async with undipy.Client(srv.origin) as client:
        assert await get(client.compose(fast())) == (200, BODY)
    assert b"range: bytes=4-9" in got[0] and b"if-match" not in got[0]


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ({"content_range": "bytes 0-9/10"}, "Content-Range mismatch"),
        ({"content_range": None, "etag": '"v2"'}, "ETag mismatch"),
        ({"status": 200}, "expected 206"),
    ],
)
async def test_a_wrong_resume_fails(
    raw_server: RawServerFactory, answer: dict[str, Any], why: str
) -> None:
    got: list[bytes] = []
    srv = await raw_server([cut_after(4), answer_range(got, **answer)])
    async with undipy.Client(srv.origin) as client:
        resp = await within(client.compose(fast()).request(path="/", method="GET"))
        assert resp.status_code == 200
        with pytest.raises(RequestRetryError, match=why):
            await within(resp.body.bytes())
    assert len(got) == 1


async def test_a_resumed_body_keeps_backpressure(raw_server: RawServerFactory) -> None:
    """The resume the handler got with the head resumes the attempt carrying the body."""
    got: list[bytes] = []
    srv = await raw_server([cut_after(4), answer_range(got)])
    async with undipy.Client(srv.origin) as client:
        rec = Recorder(pause_on_data=True)
        client.compose(fast()).dispatch(rec, path="/", method="GET")
        for _ in range(10):
            await rec.wait_for("data", rec.kinds.count("data"))
            if rec.done.done():
                break
            await asyncio.sleep(0.02)
            assert rec.resume is not None
            rec.resume()
        await rec.wait()
    assert rec.body == BODY and rec.kinds[-1] == "complete"


# --------------------------------------------------------------------------- aborts


async def test_an_abort_during_the_backoff(http_server: HttpServer) -> None:
    seen = failing(http_server, 100)
    async with undipy.Client(http_server.origin) as client:
        rec = Recorder()
        client.compose(retry(min_timeout=10)).dispatch(rec, path="/", method="GET")
        await http_server.wait_requests(1)
        await asyncio.sleep(0.05)  # the failed response is read, the timer set
        assert rec.abort is not None and not rec.done.done()
        rec.abort(ValueError("stop"))
        await rec.wait(1.0)
        await asyncio.sleep(0.05)
    assert isinstance(rec.only_error, ValueError) and len(seen) == 1
    assert rec.kinds == ["connect", "error"]


async def test_an_abort_during_a_retried_attempt(http_server: HttpServer) -> None:
    """The abort the handler got on its first on_connect stops the attempt running now."""
    release = asyncio.Event()
    seen: list[Request] = []

    async def handler(req: Request) -> Response:
        seen.append(req)
        if len(seen) == 1:
            return Response(status=503)
        await release.wait()
        return Response(body=b"late")

    http_server.route("/", handler)
    async with undipy.Client(http_server.origin) as client:
        rec = Recorder()
        client.compose(fast()).dispatch(rec, path="/", method="GET")
        await http_server.wait_requests(2)
        assert rec.abort is not None
        rec.abort()
        await rec.wait()
        release.set()
        await asyncio.sleep(0.05)
    assert isinstance(rec.only_error, undipy.RequestAbortedError)
    assert rec.kinds == ["connect", "connect", "error"] and len(seen) == 2


async def test_cancelling_request_during_the_backoff(http_server: HttpServer) -> None:
    seen = failing(http_server, 100)
    async with undipy.Client(http_server.origin) as client:
        task = asyncio.ensure_future(get(client.compose(retry(min_timeout=10))))
        await http_server.wait_requests(1)
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await within(task, 1.0)
    assert len(seen) == 1


# --------------------------------------------------------------------------- options


async def test_per_request_retry_options(http_server: HttpServer) -> None:
    seen = failing(http_server, 100)
    async with undipy.Client(http_server.origin) as client:
        d = client.compose(fast(max_retries=3))
        with pytest.raises(RequestRetryError):
            await get(d, retry_options={"max_retries": 0})
        assert len(seen) == 1
        status = await get(d, retry_options={"throw_on_error": False, "max_retries": 1})
        assert status == (503, b"busy") and len(seen) == 3
        with pytest.raises(undipy.InvalidArgumentError, match="unknown retry_options"):
            await get(d, retry_options={"max_retry": 1})
        with pytest.raises(undipy.InvalidArgumentError):
            await get(d, retry_options={"max_retries": -1})
    assert len(seen) == 3


@pytest.mark.parametrize(
    "bad",
    [
        {"max_retries": "3"},
        {"min_timeout": -1},
        {"methods": "GET"},
        {"status_codes": [503.0]},
        {"error_codes": "ECONNRESET"},
        {"retry": 3},
    ],
)
def test_bad_options(bad: dict[str, Any]) -> None:
    with pytest.raises(undipy.InvalidArgumentError):
        retry(**bad)


# --------------------------------------------------------------------------- RetryAgent


async def test_retry_agent_over_an_agent_and_a_client(http_server: HttpServer) -> None:
    seen = failing(http_server, 1)
    async with RetryAgent(undipy.Agent(), **FAST) as agent:
        assert await get(agent, origin=http_server.origin) == (200, b"done")
        assert isinstance(agent.dispatcher, undipy.Agent)
    assert agent.closed
    seen.clear()
    async with RetryAgent(undipy.Client(http_server.origin), max_retries=1, min_timeout=0.001) as d:
        assert isinstance(d, undipy.Dispatcher)
        # Through stream() too.
        chunks: list[bytes] = []

        class Sink:
            def write(self, chunk: bytes) -> None:
                chunks.append(chunk)

        data = await within(d.stream(lambda info: Sink(), path="/", method="GET"))
        assert b"".join(chunks) == b"done" and data.opaque is None
        # And the top level.
        resp = await within(undipy.request(http_server.url("/"), dispatcher=d))
        assert await within(resp.body.bytes()) == b"done"
    assert len(seen) == 3


async def test_composed_with_dump(http_server: HttpServer) -> None:
    seen = failing(http_server, 1)
    async with undipy.Client(http_server.origin) as client:
        # dump outside retry: the one response it sees is dropped.
        assert await get(client.compose(fast(), dump())) == (200, b"")
        # dump inside retry: each attempt's body is dropped; the retry still happens.
        seen.clear()
        assert await get(client.compose(dump(), fast())) == (200, b"")
        assert len(seen) == 2
        # A RetryAgent composes like any dispatcher.
        seen.clear()
        assert await get(RetryAgent(client, **FAST).compose(dump())) == (200, b"")
        assert len(seen) == 2
