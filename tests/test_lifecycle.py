"""Connection lifecycle: keep-alive and its hints, timeouts, connect failures, retry of
the pipeline after a server close, close() / destroy(), exactly-once completion, no
leaked sockets, Pool recovery and Unix sockets (undici.md §2, §5; reliability.md §4.3).

Counts are taken on the server: connections accepted, requests per connection, sockets
still open. Every wait is bounded (``T``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import wait_until
from hostile_helpers import (
    Clients,
    Events,
    Recorder,
    T,
    assert_error,
    fetch,
    wait_event,
)
from servers import HttpServer, RawConn, Request, Response, hello_script, response
from undipy import (
    BodyTimeoutError,
    ClientClosedError,
    ClientDestroyedError,
    ConnectTimeoutError,
    DispatchHandler,
    HeadersTimeoutError,
    HTTPParserError,
    InformationalError,
    RequestAbortedError,
    SocketError,
)

pytestmark = pytest.mark.loops


def requests_in(raw: bytes) -> list[bytes]:
    """Request lines of the (GET/HEAD/POST...) requests in ``raw`` client bytes."""
    return [line for line in raw.split(b"\r\n") if b" HTTP/1.1" in line and line[:1].isupper()]


async def echo_path_script(conn: RawConn) -> None:
    """Answer each request with its own path as the body, until the client closes."""
    while req := await conn.read_request():
        path = req.split(b" ", 2)[1]
        await conn.send(response(200, path))


# --------------------------------------------------------------------------- keep-alive


async def test_sequential_requests_share_one_connection(
    http_server: HttpServer, clients: Clients
) -> None:
    c = clients.client(http_server.origin)
    for i in range(10):
        assert (await fetch(c, path=f"/{i}")).raise_if_error().body == b"hello"
    assert http_server.connections == 1
    assert http_server.request_counts == [10]
    assert all(r.header("connection") == "keep-alive" for r in http_server.requests)


def keep_alive_conn(hint: bytes | None, closed: asyncio.Event) -> Any:
    """Serve requests with an optional ``Keep-Alive`` header; set ``closed`` at the
    client's close (the test's T bounds the wait)."""

    async def script(conn: RawConn) -> None:
        headers = [("Keep-Alive", hint.decode())] if hint is not None else []
        while await conn.read_request(timeout=T):
            await conn.send(response(200, b"ka", headers))
        closed.set()

    return script


@pytest.mark.parametrize(
    ("hint", "opts"),
    [
        (b"timeout=1", {}),  # 1 s - 2 s threshold <= 0
        (b"timeout=2", {}),
        (b"timeout=2s", {}),
        (b"timeout=5", {"keep_alive_timeout_threshold": 5.0}),
        (b"max=100, timeout=1", {}),
    ],
)
async def test_keep_alive_hint_at_or_below_threshold_closes_after_the_response(
    raw_server, clients: Clients, hint: bytes, opts: dict[str, Any]
) -> None:
    """undici: timeout = hint - keep_alive_timeout_threshold; <= 0 closes right after the
    response ('reset'), though the client's own keep_alive_timeout is long."""
    closed = asyncio.Event()
    srv = await raw_server([keep_alive_conn(hint, closed), hello_script])
    c = clients.client(srv.origin, keep_alive_timeout=60.0, **opts)
    events = Events(c)
    assert (await fetch(c)).raise_if_error().body == b"ka"
    await wait_event(closed, "the client to close the connection")
    await events.wait_for("disconnect")
    (err,) = events.named("disconnect")
    assert type(err) is InformationalError and err.code == "UND_ERR_INFO"
    assert str(err) == "reset"
    assert (await fetch(c)).raise_if_error().body == b"hello"
    assert srv.connections == 2


@pytest.mark.parametrize(
    ("hint", "opts"),
    [
        (b"timeout=3", {"keep_alive_timeout": 60.0}),  # 3 - 2 = 1 s idle
        (b"timeout=600", {"keep_alive_timeout": 60.0, "keep_alive_max_timeout": 0.3}),
        (b"timeout=30", {"keep_alive_timeout": 60.0, "keep_alive_timeout_threshold": 29.7}),
        (b"timeout=abc", {"keep_alive_timeout": 0.3}),  # unparsable: the client's own
        (None, {"keep_alive_timeout": 0.2}),
    ],
)
async def test_keep_alive_idle_timeout_from_hint_or_option(
    raw_server, clients: Clients, hint: bytes | None, opts: dict[str, Any]
) -> None:
    """The connection is kept (the next request reuses it), then closed by the client once
    idle for the computed timeout: 'disconnect' with InformationalError('socket idle
    timeout'), no request fails, and the next request opens a new connection."""
    closed = asyncio.Event()
    srv = await raw_server([keep_alive_conn(hint, closed), hello_script])
    c = clients.client(srv.origin, **opts)
    events = Events(c)
    assert (await fetch(c)).raise_if_error().body == b"ka"
    assert (await fetch(c)).raise_if_error().body == b"ka"  # reused at once
    assert srv.connections == 1
    await wait_event(closed, "the client's idle close")
    await events.wait_for("disconnect")
    (err,) = events.named("disconnect")
    assert type(err) is InformationalError and err.code == "UND_ERR_INFO"
    assert str(err) == "socket idle timeout"
    assert (await fetch(c)).raise_if_error().body == b"hello"
    assert srv.connections == 2


async def test_idle_close_is_seen_by_the_server(raw_server, clients: Clients) -> None:
    """keep_alive_timeout=0.2: the server sees the client close the idle connection."""
    seen: list[bool] = []

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(response(200, b"x"))
        seen.append(await conn.wait_closed_by_peer(T))

    srv = await raw_server(script)
    c = clients.client(srv.origin, keep_alive_timeout=0.2)
    assert (await fetch(c)).raise_if_error().body == b"x"
    await srv.wait_closed(1, timeout=T)
    assert seen == [True]
    assert srv.conns[0].received.count(b"GET / HTTP/1.1") == 1


async def test_server_connection_close_means_new_connection(
    http_server: HttpServer, clients: Clients
) -> None:
    async def closing(req: Request) -> Response:
        return Response(body=b"bye", close=True)

    http_server.route("/close", closing)
    c = clients.client(http_server.origin)
    assert (await fetch(c, path="/close")).raise_if_error().body == b"bye"
    assert (await fetch(c, path="/close")).raise_if_error().body == b"bye"
    assert (await fetch(c)).raise_if_error().body == b"hello"
    assert http_server.request_counts == [1, 1, 1]


async def test_pipelining_zero_disables_keep_alive(
    http_server: HttpServer, clients: Clients
) -> None:
    c = clients.client(http_server.origin, pipelining=0)
    for _ in range(3):
        assert (await fetch(c)).raise_if_error().body == b"hello"
    assert http_server.request_counts == [1, 1, 1]
    assert [r.header("connection") for r in http_server.requests] == ["close"] * 3
    await http_server.wait_closed(3, timeout=T)


async def test_max_requests_per_client_rotates_connections(
    http_server: HttpServer, clients: Clients
) -> None:
    c = clients.client(http_server.origin, max_requests_per_client=2)
    for _ in range(4):
        assert (await fetch(c)).raise_if_error().body == b"hello"
    assert http_server.request_counts == [2, 2]
    assert [r.header("connection") for r in http_server.requests] == [
        "keep-alive", "close", "keep-alive", "close",
    ]


async def test_server_closing_an_idle_connection_means_reconnect(clients: Clients) -> None:
    """The server closes the idle keep-alive connection; the next request goes on a new
    one (the client saw the FIN: 'disconnect' with SocketError('other side closed'))."""
    async with HttpServer(idle_timeout=0.1) as srv:
        c = clients.client(srv.origin)
        events = Events(c)
        assert (await fetch(c)).raise_if_error().body == b"hello"
        await srv.wait_closed(1, timeout=T)
        await events.wait_for("disconnect")
        (err,) = events.named("disconnect")
        assert type(err) is SocketError and err.code == "UND_ERR_SOCKET"
        assert str(err) == "other side closed"
        assert (await fetch(c)).raise_if_error().body == b"hello"
        assert srv.request_counts == [1, 1]
        await asyncio.wait_for(c.close(), T)


# --------------------------------------------------------------------------- timeouts


def silent_script(seen_close: list[bool], send: bytes = b"") -> Any:
    """Read one request, send ``send`` (maybe nothing), then wait for the client to close."""

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        if send:
            await conn.send(send)
        seen_close.append(await conn.wait_closed_by_peer(T))

    return script


@pytest.mark.parametrize(
    ("client_opts", "request_opts"),
    [
        ({"headers_timeout": 0.2}, {}),
        ({"headers_timeout": 60.0}, {"headers_timeout": 0.2}),  # per request wins
    ],
)
async def test_headers_timeout(
    raw_server, clients: Clients, client_opts: dict[str, Any], request_opts: dict[str, Any]
) -> None:
    seen_close: list[bool] = []
    srv = await raw_server([silent_script(seen_close), hello_script])
    c = clients.client(srv.origin, **client_opts)
    out = await fetch(c, **request_opts)
    assert_error(out, HeadersTimeoutError, "UND_ERR_HEADERS_TIMEOUT")
    assert isinstance(out.error, TimeoutError)
    assert (await fetch(c)).raise_if_error().body == b"hello"
    await srv.wait_closed(1, timeout=T)
    assert seen_close == [True]
    assert srv.connections == 2


@pytest.mark.parametrize(
    ("client_opts", "request_opts"),
    [
        ({"body_timeout": 0.2}, {}),
        ({"body_timeout": 60.0}, {"body_timeout": 0.2}),
    ],
)
async def test_body_timeout(
    raw_server, clients: Clients, client_opts: dict[str, Any], request_opts: dict[str, Any]
) -> None:
    """Head and 3 of 10 body bytes, then nothing: the body fails with BodyTimeoutError."""
    seen_close: list[bool] = []
    stall = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    srv = await raw_server([silent_script(seen_close, stall), hello_script])
    c = clients.client(srv.origin, **client_opts)
    out = await fetch(c, **request_opts)
    assert out.status == 200
    assert_error(out, BodyTimeoutError, "UND_ERR_BODY_TIMEOUT")
    assert (await fetch(c)).raise_if_error().body == b"hello"
    await srv.wait_closed(1, timeout=T)
    assert seen_close == [True]


@pytest.mark.parametrize(
    ("client_opts", "request_opts"),
    [
        ({"headers_timeout": 0.2}, {"headers_timeout": 0}),  # 0 disables
        ({"headers_timeout": 0.2}, {"headers_timeout": 5.0}),
        ({"body_timeout": 0.2}, {"body_timeout": 5.0}),
    ],
)
async def test_per_request_timeout_extends_the_clients(
    raw_server, clients: Clients, client_opts: dict[str, Any], request_opts: dict[str, Any]
) -> None:
    """The server waits 0.6 s (past the client's 0.2 s) before the head, or in the middle
    of the body; the request's own, longer timeout applies."""

    async def slow(conn: RawConn) -> None:
        assert await conn.read_request()
        if "headers_timeout" in client_opts:
            await asyncio.sleep(0.6)
            await conn.send(response(200, b"late"))
        else:
            await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nla")
            await asyncio.sleep(0.6)
            await conn.send(b"te")
        assert await conn.wait_closed_by_peer(T)

    srv = await raw_server(slow)
    c = clients.client(srv.origin, **client_opts)
    assert (await fetch(c, **request_opts)).raise_if_error().body == b"late"


async def test_headers_timeout_waits_for_the_request_body(
    raw_server, clients: Clients
) -> None:
    """undici #645: headers_timeout (0.3 s) starts once the request body is written, not
    before: a body trickled over ~1 s, answered at once when complete, succeeds."""

    async def script(conn: RawConn) -> None:
        req = await conn.read_request(timeout=T)
        assert req.endswith(b"0\r\n\r\n") and req.count(b"\r\nchunk\r\n") == 8
        await conn.send(response(200, b"got it"))
        assert await conn.wait_closed_by_peer(T)

    async def trickle():
        for _ in range(8):
            await asyncio.sleep(0.125)
            yield b"chunk"

    srv = await raw_server(script)
    c = clients.client(srv.origin, headers_timeout=0.3)
    out = await fetch(c, method="POST", path="/up", body=trickle())
    assert out.raise_if_error().body == b"got it"


async def test_body_timeout_does_not_fire_while_the_consumer_is_slow(
    raw_server, clients: Clients
) -> None:
    """A 32 MiB body the caller does not read for 0.6 s, body_timeout 0.2 s: the client
    stops reading (back-pressure: the server cannot finish sending meanwhile), the paused
    body is not timed out, and the whole body arrives once read."""
    body = bytes(range(256)) * (128 * 1024)
    sent_all = asyncio.Event()

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(response(200, body))
        sent_all.set()
        assert await conn.wait_closed_by_peer(T)

    srv = await raw_server(script)
    c = clients.client(srv.origin, body_timeout=0.2)
    resp = await asyncio.wait_for(c.request(method="GET", path="/"), T)
    await asyncio.sleep(0.6)
    assert not sent_all.is_set(), "the client read 32 MiB nobody asked for"
    got = await asyncio.wait_for(resp.body.bytes(), T)
    assert len(got) == len(body) and got == body
    await wait_event(sent_all, "the server to finish sending")


async def test_body_timeout_counts_again_after_a_long_pause(
    raw_server, clients: Clients
) -> None:
    """A handler pauses at the first body bytes for 0.6 s (past body_timeout 0.2 s), then
    resumes; the server sends nothing more: the timeout fires 0.2 s after the resume
    instead of the request waiting forever (the timer lapsed while paused)."""
    seen_close: list[bool] = []
    stall = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    srv = await raw_server([silent_script(seen_close, stall)])
    c = clients.client(srv.origin, body_timeout=0.2)
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[BaseException | None] = loop.create_future()

    class Pausing(DispatchHandler):
        def on_headers(self, status: int, headers: Any, resume: Any, text: str) -> bool:
            self.resume = resume
            return True

        def on_data(self, chunk: bytes) -> bool:
            loop.call_later(0.6, self.resume)
            return False

        def on_complete(self, trailers: Any) -> None:
            ended.set_result(None)

        def on_error(self, error: BaseException) -> None:
            ended.set_result(error)

    c.dispatch(Pausing(), path="/", method="GET")
    error = await asyncio.wait_for(ended, T)
    assert isinstance(error, BodyTimeoutError)


# --------------------------------------------------------------------------- connecting


@contextlib.contextmanager
def saturated_listener() -> Iterator[int]:
    """A loopback port whose accept queue is full (backlog 0, never accepted), so a new
    connect's SYN is dropped and the connect hangs. Skips if the kernel does not behave so."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(16):
            s = socket.socket()
            s.settimeout(0.2)
            fillers.append(s)
            try:
                s.connect(("127.0.0.1", port))
            except TimeoutError:
                break  # this one hangs: the queue is full
        else:
            pytest.skip("could not fill the accept queue of a loopback listener")
        yield port
    finally:
        for s in fillers:
            s.close()
        listener.close()


async def test_connect_timeout(clients: Clients) -> None:
    with saturated_listener() as port:
        c = clients.client(f"http://127.0.0.1:{port}", connect_timeout=0.3)
        events = Events(c)
        outs = await asyncio.gather(fetch(c, path="/1"), fetch(c, path="/2"))
        for out in outs:  # a connect error fails every pending request
            assert_error(out, ConnectTimeoutError, "UND_ERR_CONNECT_TIMEOUT")
            assert isinstance(out.error, TimeoutError)
        await events.wait_for("connection_error")
        err = events.named("connection_error")[0]
        assert type(err) is ConnectTimeoutError and err.code == "UND_ERR_CONNECT_TIMEOUT"
        assert events.named("connect") == []
        await asyncio.wait_for(c.close(), T)


async def test_destroy_while_connecting(clients: Clients) -> None:
    """destroy() during a connect that would take 10 s resolves at once; the waiting
    request fails with ClientDestroyedError."""
    with saturated_listener() as port:
        c = clients.client(f"http://127.0.0.1:{port}", connect_timeout=10.0)
        task = asyncio.ensure_future(fetch(c))
        # stats.connected counts sockets that are up (undici): a pending
        # connect shows as a request that is pending, with no socket.
        await wait_until(lambda: c.stats.pending == 1, "the request to be queued")
        await asyncio.sleep(0.1)  # the connect attempt is under way
        assert c.stats.connected == 0
        await asyncio.wait_for(c.destroy(), T)
        assert_error(await asyncio.wait_for(task, T), ClientDestroyedError, "UND_ERR_DESTROYED")


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def test_connection_refused(clients: Clients) -> None:
    c = clients.client(f"http://127.0.0.1:{closed_port()}")
    events = Events(c)
    outs = await asyncio.gather(fetch(c, path="/1"), fetch(c, path="/2"))
    for out in outs:
        assert_error(out, SocketError, "UND_ERR_SOCKET")
        assert isinstance(out.error, ConnectionError)
    await events.wait_for("connection_error")
    err = events.named("connection_error")[0]
    assert type(err) is SocketError and err.code == "UND_ERR_SOCKET"
    assert events.named("connect") == events.named("disconnect") == []
    await asyncio.wait_for(c.close(), T)


# --------------------------------------------------------------------------- pipeline retry


async def test_pipelined_requests_are_resent_after_connection_close(
    raw_server, clients: Clients
) -> None:
    """Three pipelined GETs; the server answers the first with ``Connection: close`` and
    closes: the first completes, the other two are re-sent on a new connection."""
    got: list[bytes] = []

    async def first(conn: RawConn) -> None:
        for _ in range(3):  # all three were written before any answer
            got.append(await conn.read_request())
        await conn.send(response(200, b"/1", [("Connection", "close")]))
        await conn.shutdown_write()
        assert await conn.wait_closed_by_peer(T)

    srv = await raw_server([first, echo_path_script])
    c = clients.client(srv.origin, pipelining=3)
    outs = await asyncio.gather(
        *(fetch(c, path=f"/{i}", blocking=False) for i in (1, 2, 3))
    )
    assert [o.raise_if_error().body for o in outs] == [b"/1", b"/2", b"/3"]
    assert [requests_in(r) for r in got] == [[b"GET /1 HTTP/1.1"], [b"GET /2 HTTP/1.1"],
                                             [b"GET /3 HTTP/1.1"]]
    assert srv.connections == 2
    await asyncio.wait_for(c.close(), T)
    await srv.wait_closed(2, timeout=T)
    assert requests_in(srv.received[1]) == [b"GET /2 HTTP/1.1", b"GET /3 HTTP/1.1"]


async def test_pipeline_head_fails_and_rest_is_resent_on_plain_eof(
    raw_server, clients: Clients
) -> None:
    """Same, but the first response is keep-alive and the server then just closes: the
    request at the head of the pipeline (/2) fails with 'other side closed' (undici never
    retries the head), /3 is re-sent on a new connection."""

    async def first(conn: RawConn) -> None:
        for _ in range(3):
            assert await conn.read_request()
        await conn.send(response(200, b"/1"))
        await conn.shutdown_write()
        assert await conn.wait_closed_by_peer(T)

    srv = await raw_server([first, echo_path_script])
    c = clients.client(srv.origin, pipelining=3)
    o1, o2, o3 = await asyncio.gather(
        *(fetch(c, path=f"/{i}", blocking=False) for i in (1, 2, 3))
    )
    assert o1.raise_if_error().body == b"/1"
    assert_error(o2, SocketError, "UND_ERR_SOCKET")
    assert str(o2.error) == "other side closed"
    assert o3.raise_if_error().body == b"/3"
    await asyncio.wait_for(c.close(), T)
    await srv.wait_closed(2, timeout=T)
    assert requests_in(srv.received[1]) == [b"GET /3 HTTP/1.1"]


async def test_aborting_a_pipelined_request_resends_the_others(
    raw_server, clients: Clients
) -> None:
    """undici 'abort pipelined': aborting request 2 of 3 in flight destroys the connection
    (its bytes are on the wire); 1 and 3 are re-sent on a new connection and succeed."""
    arrived = asyncio.Event()

    async def first(conn: RawConn) -> None:
        for _ in range(3):
            assert await conn.read_request()
        arrived.set()
        assert await conn.wait_closed_by_peer(T)

    srv = await raw_server([first, echo_path_script])
    c = clients.client(srv.origin, pipelining=3)
    events = Events(c)
    recs = [Recorder(f"/{i}") for i in (1, 2, 3)]
    for r in recs:
        c.dispatch(r, method="GET", path=r.name, blocking=False)
    await wait_event(arrived, "three pipelined requests")
    assert recs[1].abort is not None
    recs[1].abort()
    for r in recs:
        await r.wait()
    assert [(r.error, r.body) for r in (recs[0], recs[2])] == [(None, b"/1"), (None, b"/3")]
    assert type(recs[1].error) is RequestAbortedError
    assert [r.kinds.count("connect") for r in recs] == [2, 1, 2]  # on_connect again on resend
    await events.wait_for("disconnect")
    err = events.named("disconnect")[0]
    assert type(err) is InformationalError and err.code == "UND_ERR_INFO"
    await asyncio.wait_for(c.close(), T)
    await srv.wait_closed(2, timeout=T)
    assert requests_in(srv.received[1]) == [b"GET /1 HTTP/1.1", b"GET /3 HTTP/1.1"]


async def test_blocking_defaults_to_false_as_in_the_seed(raw_server, clients: Clients) -> None:
    """The seed document (which wins over later undici) says ``blocking`` defaults to
    False: with pipelining 3 the second GET is written before the first one's headers."""
    early: list[bytes] = []

    async def script(conn: RawConn) -> None:
        assert (await conn.read_request()).startswith(b"GET /1 ")
        with contextlib.suppress(TimeoutError):  # a pipelined GET is here by now
            early.append(await conn.read_request(timeout=2.0))
        await conn.send(response(200, b"/1"))
        if early:
            await conn.send(response(200, b"/2"))
        await echo_path_script(conn)

    srv = await raw_server(script)
    c = clients.client(srv.origin, pipelining=3)
    o1, o2 = await asyncio.gather(fetch(c, path="/1"), fetch(c, path="/2"))
    assert (o1.raise_if_error().body, o2.raise_if_error().body) == (b"/1", b"/2")
    assert len(early) == 1 and early[0].startswith(b"GET /2 "), "GET /2 was not pipelined"
    assert srv.connections == 1


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_post_at_the_head_is_never_resent(raw_server, clients: Clients, how: str) -> None:
    """The server reads a POST and closes (or resets) without answering: the POST fails
    with SocketError and was received exactly once; the next request works."""

    async def first(conn: RawConn) -> None:
        assert (await conn.read_request()).startswith(b"POST /once HTTP/1.1")
        if how == "reset":
            conn.reset()

    srv = await raw_server([first, hello_script])
    c = clients.client(srv.origin)
    out = await fetch(c, method="POST", path="/once", body=b"payload")
    assert_error(out, SocketError, "UND_ERR_SOCKET")
    assert (await fetch(c)).raise_if_error().body == b"hello"
    await asyncio.wait_for(c.close(), T)
    await srv.wait_closed(srv.connections, timeout=T)
    assert sum(r.count(b"POST /once") for r in srv.received) == 1
    assert requests_in(srv.received[1]) == [b"GET / HTTP/1.1"]


# --------------------------------------------------------------------------- close / destroy


class Gate:
    """HttpServer route handler that holds requests until ``release()``."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.open = asyncio.Event()

    async def __call__(self, req: Request) -> Response:
        self.arrived.set()
        await self.open.wait()
        return Response(body=req.path.encode())

    def release(self) -> None:
        self.open.set()


async def test_close_waits_for_running_and_queued_requests(
    http_server: HttpServer, clients: Clients
) -> None:
    gate = Gate()
    http_server.route("/slow", gate)
    c = clients.client(http_server.origin)
    tasks = [asyncio.ensure_future(fetch(c, path=p)) for p in ("/slow", "/a", "/b")]
    await wait_event(gate.arrived, "the first request at the server")
    close1 = asyncio.ensure_future(c.close())
    close2 = asyncio.ensure_future(c.close())
    late = await fetch(c, path="/late")  # after close(): refused at once
    assert_error(late, ClientClosedError, "UND_ERR_CLOSED")
    for _ in range(5):
        await asyncio.sleep(0)
    assert not close1.done() and not close2.done()
    assert c.closed and not c.destroyed
    gate.release()
    outs = await asyncio.wait_for(asyncio.gather(*tasks), T)
    assert [o.raise_if_error().body for o in outs] == [b"/slow", b"hello", b"hello"]
    await asyncio.wait_for(asyncio.gather(close1, close2), T)
    await asyncio.wait_for(c.close(), T)  # closing a closed client resolves too
    await http_server.wait_closed(1, timeout=T)
    assert http_server.open_connections == 0
    assert http_server.request_counts == [3]


@pytest.mark.parametrize("given", [False, True])
async def test_destroy_fails_running_and_pending_requests(
    raw_server, clients: Clients, given: bool
) -> None:
    """One request running (the server never answers), two queued: destroy() fails all
    three (with ClientDestroyedError, or the given error), closes the socket and resolves
    after 'disconnect'."""
    arrived = asyncio.Event()
    seen_close: list[bool] = []

    async def hang(conn: RawConn) -> None:
        assert await conn.read_request()
        arrived.set()
        seen_close.append(await conn.wait_closed_by_peer(T))

    srv = await raw_server(hang)
    c = clients.client(srv.origin)
    order: list[str] = []
    c.on("disconnect", lambda *a: order.append("disconnect"))
    tasks = [asyncio.ensure_future(fetch(c, path=p)) for p in ("/hang", "/q1", "/q2")]
    await wait_event(arrived, "the first request at the server")
    boom = RuntimeError("boom")
    await asyncio.wait_for(c.destroy(boom) if given else c.destroy(), T)
    order.append("destroyed")
    assert order == ["disconnect", "destroyed"]
    outs = await asyncio.wait_for(asyncio.gather(*tasks), T)
    for out in outs:
        if given:
            assert out.error is boom
        else:
            assert_error(out, ClientDestroyedError, "UND_ERR_DESTROYED")
    assert c.destroyed and c.closed
    assert_error(await fetch(c), ClientDestroyedError, "UND_ERR_DESTROYED")
    with pytest.raises(ClientDestroyedError):
        await asyncio.wait_for(c.close(), T)
    await srv.wait_closed(1, timeout=T)
    assert seen_close == [True]
    assert srv.connections == 1
    assert requests_in(srv.received[0]) == [b"GET /hang HTTP/1.1"]


async def test_destroy_of_an_idle_client_resolves(http_server: HttpServer, clients: Clients):
    c = clients.client(http_server.origin)
    assert (await fetch(c)).raise_if_error().body == b"hello"
    await asyncio.wait_for(c.destroy(), T)
    await asyncio.wait_for(c.destroy(), T)  # again: still resolves
    await http_server.wait_closed(1, timeout=T)


# --------------------------------------------------------------------------- exactly once


def reset_now(req: Request) -> None:
    sock = req.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    req.writer.transport.abort()


async def test_every_request_ends_exactly_once(http_server: HttpServer, clients: Clients) -> None:
    """~30 mixed requests over a Pool (4 connections, pipelining 2): completed, aborted
    before and while running, cut by server closes and RSTs, failed by bad framing, held
    until the Pool is destroyed, and dispatched after it. Each handler sees exactly one of
    on_complete / on_error, and nothing after it."""

    async def close_route(req: Request) -> None:
        return None  # the server closes the connection without answering

    async def rst_route(req: Request) -> None:
        reset_now(req)
        return None

    async def bad_route(req: Request) -> None:
        req.writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX")
        await req.writer.drain()
        return None

    gate = Gate()  # never released: /hold requests end by abort or destroy
    http_server.route("/close", close_route)
    http_server.route("/rst", rst_route)
    http_server.route("/bad", bad_route)
    http_server.route("/hold", gate)
    pool = clients.pool(http_server.origin, connections=4, pipelining=2)
    recs: list[tuple[str, Recorder]] = []

    def send(path: str, **opts: Any) -> Recorder:
        rec = Recorder(f"{len(recs)}{path}")
        recs.append((path, rec))
        pool.dispatch(rec, method="GET", path=path, **opts)
        return rec

    # Phase 1: everything that ends on its own.
    for _ in range(4):
        send("/ok")
        send("/close")
        send("/ok")
        send("/rst")
        send("/bad")
        rec = send("/ok")
        assert rec.abort is not None
        rec.abort()  # aborted right after dispatch
        recs[-1] = ("/abort-early", rec)
    await asyncio.wait_for(asyncio.gather(*(r.done for _, r in recs)), T)
    # Phase 2: three requests that hold a connection each (blocking: nothing pipelines
    # behind them), one of them aborted while running; then destroy with work queued.
    holds = []
    for n in range(1, 4):
        holds.append(send("/hold", blocking=True))
        await wait_until(lambda n=n: pool.stats.running == n, f"{n} held requests running")
    assert holds[0].abort is not None
    holds[0].abort()
    recs[-3] = ("/hold-abort", holds[0])
    await holds[0].wait()
    last_ok = send("/ok")  # racing destroy: either outcome, but exactly one
    await asyncio.wait_for(pool.destroy(), T)
    send("/after-destroy")
    send("/after-destroy")
    await asyncio.wait_for(asyncio.gather(*(r.done for _, r in recs)), T)
    await asyncio.sleep(0.1)  # late or duplicate callbacks would land here

    assert len(recs) == 30
    for path, r in recs:
        assert len(r.terminals) == 1, r
        assert r.kinds[-1] in Recorder.TERMINAL, r
        if r is last_ok:
            assert r.error is None or type(r.error) is ClientDestroyedError, r
        elif path == "/ok":
            assert (r.error, r.body) == (None, b"hello"), r
        elif path in ("/abort-early", "/hold-abort"):
            assert type(r.error) is RequestAbortedError, r
        elif path == "/bad":
            assert type(r.error) is HTTPParserError, r
        elif path in ("/hold", "/after-destroy"):
            assert type(r.error) is ClientDestroyedError, r
        elif path in ("/close", "/rst"):
            assert type(r.error) is SocketError, r
    await wait_until(lambda: pool.stats.connected == 0, "the pool to drop its connections")


# --------------------------------------------------------------------------- no leaks


@pytest.mark.parametrize("end", ["close", "destroy"])
async def test_no_socket_left_open(raw_server, clients: Clients, end: str) -> None:
    """A Pool with 4 busy connections and 4 queued requests; after close() (requests
    released) or destroy() (requests held), the server sees every connection closed by
    the client."""
    release = asyncio.Event()
    closed_by_client: list[int] = []

    async def held(conn: RawConn) -> None:
        while True:
            if not await conn.read_request(timeout=T):
                closed_by_client.append(conn.index)
                return
            eof = asyncio.ensure_future(conn.wait_closed_by_peer(T))
            go = asyncio.ensure_future(release.wait())
            done, _ = await asyncio.wait({eof, go}, return_when=asyncio.FIRST_COMPLETED)
            for t in (eof, go):
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            if eof in done:
                assert eof.result(), "neither released nor closed by the client"
                closed_by_client.append(conn.index)
                return
            await conn.send(response(200, b"done"))

    srv = await raw_server(held)
    pool = clients.pool(srv.origin, connections=4)
    tasks = [asyncio.ensure_future(fetch(pool, path=f"/{i}")) for i in range(8)]
    await srv.wait_connections(4, timeout=T)
    await wait_until(lambda: pool.stats.running == 4, "4 running requests")
    if end == "close":
        closing = asyncio.ensure_future(pool.close())
        release.set()
        outs = await asyncio.wait_for(asyncio.gather(*tasks), T)
        assert [o.raise_if_error().body for o in outs] == [b"done"] * 8
        await asyncio.wait_for(closing, T)
    else:
        await asyncio.wait_for(pool.destroy(), T)
        outs = await asyncio.wait_for(asyncio.gather(*tasks), T)
        for out in outs:
            assert_error(out, ClientDestroyedError, "UND_ERR_DESTROYED")
    await srv.wait_closed(4, timeout=T)
    assert sorted(closed_by_client) == [0, 1, 2, 3]
    assert (srv.connections, srv.open_connections) == (4, 0)
    assert pool.stats.connected == 0


# --------------------------------------------------------------------------- Pool recovery


async def test_pool_recovers_from_connection_errors(raw_server, clients: Clients) -> None:
    """Connections that reset, hang up or send garbage fail their own request only; later
    requests on the same Pool succeed."""

    async def reset(conn: RawConn) -> None:
        assert await conn.read_request()
        conn.reset()

    async def hang_up(conn: RawConn) -> None:
        assert await conn.read_request()

    async def garbage(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(b"NOT HTTP AT ALL\r\n\r\n")
        assert await conn.wait_closed_by_peer(T)

    srv = await raw_server([reset, hang_up, garbage, hello_script])
    pool = clients.pool(srv.origin, connections=2)
    assert_error(await fetch(pool), SocketError, "UND_ERR_SOCKET")
    assert_error(await fetch(pool), SocketError, "UND_ERR_SOCKET")
    assert_error(await fetch(pool), HTTPParserError, "HPE_INVALID_CONSTANT")
    outs = await asyncio.gather(*(fetch(pool, path=f"/{i}") for i in range(6)))
    assert [o.raise_if_error().body for o in outs] == [b"hello"] * 6
    assert 4 <= srv.connections <= 5
    assert pool.stats.connected <= 2
    await asyncio.wait_for(pool.close(), T)
    await wait_until(lambda: srv.open_connections == 0, "all sockets closed")


# --------------------------------------------------------------------------- Unix sockets


@pytest.mark.parametrize("kind", ["client", "pool"])
async def test_unix_socket(unix_path: str, clients: Clients, kind: str) -> None:
    async with HttpServer(unix_path=unix_path) as srv:
        make = clients.client if kind == "client" else clients.pool
        d = make("http://localhost", socket_path=unix_path)
        events = Events(d)
        for _ in range(3):
            assert (await fetch(d)).raise_if_error().body == b"hello"
        assert srv.request_counts == [3]
        assert [r.header("host") for r in srv.requests] == ["localhost"] * 3
        assert len(events.named("connect")) == 1
        await asyncio.wait_for(d.close(), T)
        await srv.wait_closed(1, timeout=T)


# --------------------------------------------------------------------------- keep-alive race


def _closes_on_second_request(conn_log: list[bytes]) -> Any:
    """Answers the first request keep-alive, then reads the second and closes without a
    byte of answer: the server gave up on the idle connection as the request arrived."""

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(response(200, b"one"))
        conn_log.append(await conn.read_request())
        await conn.close()

    return script


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT"])
async def test_keep_alive_race_resends_an_idempotent_request_once(
    raw_server, clients: Clients, method: str
) -> None:
    """The request written to an idle kept-alive connection the server was closing is
    sent again on a new connection (undici leaves this to the retry interceptor)."""
    log: list[bytes] = []
    srv = await raw_server([_closes_on_second_request(log), hello_script])
    c = clients.client(srv.origin)
    assert (await fetch(c, path="/1")).raise_if_error().body == b"one"
    await asyncio.sleep(0.05)  # idle
    out = await fetch(c, path="/2", method=method, idempotent=True, reset=False)
    out.raise_if_error()
    assert out.status == 200
    assert srv.connections == 2
    assert len(log) == 1 and log[0].startswith(f"{method} /2 ".encode())


async def test_keep_alive_race_never_resends_a_post(raw_server, clients: Clients) -> None:
    log: list[bytes] = []
    srv = await raw_server([_closes_on_second_request(log), hello_script])
    c = clients.client(srv.origin)
    assert (await fetch(c, path="/1")).raise_if_error().body == b"one"
    await asyncio.sleep(0.05)
    out = await fetch(c, path="/2", method="POST", body=b"once")
    assert_error(out, SocketError, "UND_ERR_SOCKET")
    assert srv.connections == 1
    assert len(log) == 1 and log[0].startswith(b"POST /2 ")
