"""dispatch(): the handler protocol, callback by callback, against loopback servers."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Any

import pytest
import undipy
from helpers import (
    RawServerFactory,
    Recorder,
    answer,
    closing,
    head,
    host_of,
    pattern,
    settle,
    slow_route,
    squash,
    streamer,
    within,
)
from servers import HttpServer, RawConn, Request, Response, chunked, response
from undipy import (
    ClientClosedError,
    ClientDestroyedError,
    InformationalError,
    RequestAbortedError,
    ResponseContentLengthMismatchError,
    SocketError,
)

BIG = 4 << 20  # a body far larger than every socket and bridge buffer on the way


class Boom(Exception):
    """Raised by handlers under test."""


async def dispatch(client: undipy.Dispatcher, handler: Recorder, **opts: Any) -> Recorder:
    """Dispatch and wait for the terminal callback."""
    opts.setdefault("path", "/")
    opts.setdefault("method", "GET")
    client.dispatch(handler, **opts)
    await handler.wait()
    return handler


# --------------------------------------------------------------------------- callback order


@pytest.mark.loops
async def test_get_calls_connect_headers_data_complete_in_order(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(answer(response(200, b"hello", [("X-Foo", "bar")])))
    async with closing(undipy.Client(srv.origin)) as client:
        h = await dispatch(client, Recorder())
        await settle()
    assert squash(h.kinds) == ["connect", "headers", "data", "complete"]
    assert h.events[1] == ("headers", 200, [b"X-Foo", b"bar", b"Content-Length", b"5"], "OK")
    assert h.body == b"hello"
    assert h.events[-1] == ("complete", [])
    assert len(h.terminals) == 1
    assert h.threads == {threading.get_ident()}


async def test_on_headers_gets_a_resume_callable_and_the_status_text(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(answer(response(201, b"", reason="Very Much Created")))
    seen: dict[str, Any] = {}

    class H(Recorder):
        def on_headers(
            self, status_code: int, headers: list[bytes], resume: Any, text: str
        ) -> bool:
            seen.update(status=status_code, headers=headers, resume=resume, text=text)
            return super().on_headers(status_code, headers, resume, text)

    async with closing(undipy.Client(srv.origin)) as client:
        h = await dispatch(client, H())
    assert seen["status"] == 201
    assert seen["text"] == "Very Much Created"
    assert callable(seen["resume"])
    assert all(isinstance(x, bytes) for x in seen["headers"])
    assert seen["headers"] == [b"Content-Length", b"0"]
    assert squash(h.kinds) == ["connect", "headers", "complete"]


async def test_on_connect_gets_an_abort_callable_and_a_context_dict(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin)) as client:
        h = await dispatch(client, Recorder())
    assert callable(h.abort)
    assert isinstance(h.context, dict)


async def test_header_names_and_values_are_raw_bytes_as_received(
    raw_server: RawServerFactory,
) -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nX-Latin: \xe9\r\n"
        b"Content-Length: 2\r\n\r\nok"
    )
    srv = await raw_server(answer(raw))
    async with closing(undipy.Client(srv.origin)) as client:
        h = await dispatch(client, Recorder())
    assert h.events[1][2] == [
        b"Set-Cookie",
        b"a=1",
        b"set-cookie",
        b"b=2",
        b"X-Latin",
        b"\xe9",
        b"Content-Length",
        b"2",
    ]


async def test_on_body_sent_follows_connect_for_a_bytes_body(raw_server: RawServerFactory) -> None:
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin)) as client:
        h = await dispatch(client, Recorder(), method="POST", body=b"abc")
    assert squash(h.kinds) == ["connect", "body_sent", "headers", "data", "complete"]
    assert [e[1] for e in h.events if e[0] == "body_sent"] == [b"abc"]


async def test_on_body_sent_is_called_per_chunk_of_an_iterable_body(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin)) as client:
        h = await dispatch(client, Recorder(), method="POST", body=iter([b"ab", b"cde", b"f"]))
    assert [e[1] for e in h.events if e[0] == "body_sent"] == [b"ab", b"cde", b"f"]
    assert h.kinds[:4] == ["connect", "body_sent", "body_sent", "body_sent"]
    assert squash(h.kinds[4:]) == ["headers", "data", "complete"]
    assert srv.received[0].endswith(b"2\r\nab\r\n3\r\ncde\r\n1\r\nf\r\n0\r\n\r\n")


async def test_handler_without_on_body_sent_is_fine(raw_server: RawServerFactory) -> None:
    srv = await raw_server(answer())
    done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    chunks: list[bytes] = []

    class Minimal:
        def on_connect(self, abort: Any, context: Any) -> None:
            pass

        def on_headers(self, status: int, headers: list[bytes], resume: Any, text: str) -> bool:
            return True

        def on_data(self, chunk: bytes) -> bool:
            chunks.append(chunk)
            return True

        def on_complete(self, trailers: list[bytes]) -> None:
            done.set_result(b"".join(chunks))

        def on_error(self, error: BaseException) -> None:
            done.set_exception(error)

    async with closing(undipy.Client(srv.origin)) as client:
        client.dispatch(Minimal(), path="/", method="POST", body=b"x")
        assert await within(done) == b"ok"


# --------------------------------------------------------------------------- trailers and 1xx


async def test_chunked_response_delivers_chunks_and_trailers_to_on_complete(
    raw_server: RawServerFactory,
) -> None:
    body = chunked(b"hel", b"lo", trailers=[("X-Checksum", "abc"), ("X-Other", "1")])
    raw = response(200, body, [("Transfer-Encoding", "chunked"), ("Trailer", "X-Checksum")])
    srv = await raw_server(answer(raw))
    async with closing(undipy.Client(srv.origin)) as client:
        h = await dispatch(client, Recorder())
    assert h.body == b"hello"
    assert h.events[-1] == ("complete", [b"X-Checksum", b"abc", b"X-Other", b"1"])
    assert squash(h.kinds) == ["connect", "headers", "data", "complete"]


@pytest.mark.parametrize(
    ("status", "reason", "info_headers"),
    [
        (103, "Early Hints", [("Link", "</style.css>; rel=preload")]),
        (102, "Processing", []),
    ],
)
async def test_informational_response_calls_on_headers_first(
    raw_server: RawServerFactory, status: int, reason: str, info_headers: list[tuple[str, str]]
) -> None:
    info = (
        f"HTTP/1.1 {status} {reason}\r\n".encode()
        + b"".join(f"{n}: {v}\r\n".encode() for n, v in info_headers)
        + b"\r\n"
    )

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(info)
        await conn.send(response(200, b"final"))
        await conn.wait_closed_by_peer()

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin)) as client:
        h = await dispatch(client, Recorder())
    flat = [x.encode() for pair in info_headers for x in pair]
    assert squash(h.kinds) == ["connect", "headers", "data", "complete"]
    headers = [e for e in h.events if e[0] == "headers"]
    assert headers == [
        ("headers", status, flat, reason),
        ("headers", 200, [b"Content-Length", b"5"], "OK"),
    ]
    assert h.body == b"final"


# --------------------------------------------------------------------------- backpressure


class PauseOnce(Recorder):
    """Returns False from the first on_data only."""

    def __init__(self) -> None:
        super().__init__()
        self.paused_once = False

    def on_data(self, chunk: bytes) -> bool:
        super().on_data(chunk)
        if not self.paused_once:
            self.paused_once = True
            return False
        return True


@pytest.mark.loops
async def test_on_data_false_pauses_until_resume_and_the_body_arrives_intact(
    raw_server: RawServerFactory,
) -> None:
    data = pattern(BIG)
    srv = await raw_server(answer(response(200, data)))
    async with closing(undipy.Client(srv.origin)) as client:
        h = PauseOnce()
        client.dispatch(h, path="/", method="GET")
        await h.wait_for("data")
        await settle()
        await settle()
        assert h.kinds.count("data") == 1
        assert not h.done.done()
        assert h.resume is not None
        h.resume()
        await h.wait()
    assert h.body == data
    assert h.terminals == [("complete", [])]


async def test_on_headers_false_holds_back_on_data_until_resume(
    raw_server: RawServerFactory,
) -> None:
    data = pattern(BIG)
    srv = await raw_server(answer(response(200, data)))
    async with closing(undipy.Client(srv.origin)) as client:
        h = Recorder(pause_on_headers=True)
        client.dispatch(h, path="/", method="GET")
        await h.wait_for("headers")
        await settle()
        await settle()
        assert squash(h.kinds) == ["connect", "headers"]
        assert h.resume is not None
        h.resume()
        await h.wait()
    assert h.body == data
    assert squash(h.kinds) == ["connect", "headers", "data", "complete"]


async def test_a_paused_handler_applies_backpressure_to_the_server(
    raw_server: RawServerFactory,
) -> None:
    """64 MiB cannot all fit in socket buffers: while paused, the server must be stuck
    part way; after resume() the whole body arrives."""
    progress: list[int] = []
    srv = await raw_server(streamer(64, progress))
    async with closing(undipy.Client(srv.origin)) as client:
        h = Recorder(pause_on_headers=True)
        client.dispatch(h, path="/", method="GET")
        await h.wait_for("headers")
        for _ in range(5):
            await settle()
        assert len(progress) < 64
        assert "data" not in h.kinds
        assert h.resume is not None
        h.resume()
        await h.wait(20.0)
    assert len(progress) == 64
    assert h.body == pattern(1 << 20) * 64


async def test_on_headers_false_holds_back_a_small_whole_response(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(answer(response(200, b"tiny")))
    async with closing(undipy.Client(srv.origin)) as client:
        h = Recorder(pause_on_headers=True)
        client.dispatch(h, path="/", method="GET")
        await h.wait_for("headers")
        await settle()
        assert squash(h.kinds) == ["connect", "headers"]
        assert h.resume is not None
        h.resume()
        await h.wait()
    assert h.body == b"tiny"
    assert h.events[-1] == ("complete", [])


async def test_pausing_on_every_chunk_still_delivers_the_whole_body(
    http_server: HttpServer,
) -> None:
    data = pattern(BIG)

    async def big(req: Request) -> Response:
        return Response(body=data)

    http_server.route("/big", big)
    loop = asyncio.get_running_loop()

    class PauseAlways(Recorder):
        def on_data(self, chunk: bytes) -> bool:
            super().on_data(chunk)
            assert self.resume is not None
            loop.call_soon(self.resume)
            return False

    async with closing(undipy.Client(http_server.origin)) as client:
        h = await dispatch(client, PauseAlways(), path="/big")
        # The connection is still good for the next request.
        h2 = await dispatch(client, Recorder())
    assert h.body == data
    assert h.terminals == [("complete", [])]
    assert h2.body == b"hello"
    assert http_server.connections == 1


# --------------------------------------------------------------------------- abort


class AbortOnConnect(Recorder):
    def __init__(self, error: BaseException | None = None) -> None:
        super().__init__()
        self.error_to_use = error

    def on_connect(self, abort: Any, context: Any) -> None:
        super().on_connect(abort, context)
        if self.error_to_use is None:
            abort()
        else:
            abort(self.error_to_use)


async def test_abort_in_on_connect_fails_with_request_aborted_and_sends_nothing(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin)) as client:
        h = AbortOnConnect()
        client.dispatch(h, path="/aborted", method="GET")
        await h.wait()
        await settle()
        assert h.kinds == ["connect", "error"]
        assert isinstance(h.only_error, RequestAbortedError)
        assert h.only_error.code == "UND_ERR_ABORTED"
        ok = await dispatch(client, Recorder(), path="/next")
        assert ok.body == b"ok"
    await srv.wait_closed(1)
    assert srv.received == [
        head("GET /next HTTP/1.1", f"host: {host_of(srv)}", "connection: keep-alive")
    ]


async def test_abort_with_an_error_delivers_that_error(raw_server: RawServerFactory) -> None:
    srv = await raw_server(answer())
    reason = Boom("stop")
    async with closing(undipy.Client(srv.origin)) as client:
        h = AbortOnConnect(reason)
        client.dispatch(h, path="/", method="GET")
        await h.wait()
        await settle()
    assert h.kinds == ["connect", "error"]
    assert h.only_error is reason
    assert srv.connections == 0


async def test_abort_after_headers_ends_with_one_error_and_the_client_recovers(
    raw_server: RawServerFactory,
) -> None:
    data = pattern(BIG)
    srv = await raw_server(answer(response(200, data)))

    class AbortOnHeaders(Recorder):
        def on_headers(self, status: int, headers: list[bytes], resume: Any, text: str) -> bool:
            super().on_headers(status, headers, resume, text)
            assert self.abort is not None
            self.abort()
            return True

    async with closing(undipy.Client(srv.origin)) as client:
        h = AbortOnHeaders()
        client.dispatch(h, path="/", method="GET")
        await h.wait()
        await settle()
        assert squash(h.kinds) == ["connect", "headers", "error"]
        assert isinstance(h.only_error, RequestAbortedError)
        h2 = await dispatch(client, Recorder())
        assert h2.body == data


async def test_abort_from_on_data_with_an_error_ends_with_exactly_that_error(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(answer(response(200, pattern(BIG))))
    reason = Boom("enough")

    class AbortOnData(Recorder):
        def on_data(self, chunk: bytes) -> bool:
            super().on_data(chunk)
            assert self.abort is not None
            self.abort(reason)
            self.abort(reason)  # a second abort changes nothing
            return True

    async with closing(undipy.Client(srv.origin)) as client:
        h = AbortOnData()
        client.dispatch(h, path="/", method="GET")
        await h.wait()
        await settle()
    assert h.kinds.count("data") == 1
    assert h.terminals == [("error", reason)]


async def test_abort_after_on_complete_changes_nothing(raw_server: RawServerFactory) -> None:
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin)) as client:
        h = await dispatch(client, Recorder())
        assert h.abort is not None
        h.abort()
        h.abort(Boom("late"))
        await settle()
        assert h.terminals == [("complete", [])]
        h2 = await dispatch(client, Recorder())  # and the connection is still good
        assert h2.body == b"ok"
    assert srv.connections == 1


async def test_resume_when_not_paused_is_harmless(raw_server: RawServerFactory) -> None:
    srv = await raw_server(answer(response(200, b"abc")))

    class ResumeEagerly(Recorder):
        def on_headers(self, status: int, headers: list[bytes], resume: Any, text: str) -> bool:
            super().on_headers(status, headers, resume, text)
            resume()
            resume()
            return True

    async with closing(undipy.Client(srv.origin)) as client:
        h = await dispatch(client, ResumeEagerly())
        await settle()
    assert h.body == b"abc"
    assert squash(h.kinds) == ["connect", "headers", "data", "complete"]


async def test_only_false_pauses_none_and_truthy_values_do_not(
    raw_server: RawServerFactory,
) -> None:
    """undici pauses only on a strict ``false``: a handler returning None must not stall."""
    srv = await raw_server(answer(response(200, pattern(1 << 20))))

    class ReturnsNone(Recorder):
        def on_headers(self, *args: Any) -> Any:
            super().on_headers(*args)
            return None

        def on_data(self, chunk: bytes) -> Any:
            super().on_data(chunk)
            return 1

    async with closing(undipy.Client(srv.origin)) as client:
        h = await dispatch(client, ReturnsNone())
    assert h.body == pattern(1 << 20)
    assert h.terminals == [("complete", [])]


# --------------------------------------------------------------------------- raising handlers


@pytest.mark.parametrize("method_name", ["on_headers", "on_data"])
async def test_a_raising_handler_method_ends_the_request_with_that_exception(
    raw_server: RawServerFactory, method_name: str
) -> None:
    srv = await raw_server(answer(response(200, b"some body")))
    boom = Boom(method_name)
    async with closing(undipy.Client(srv.origin)) as client:
        h = Recorder(raise_in={method_name: boom})
        client.dispatch(h, path="/", method="GET")
        await h.wait()
        await settle()
        assert h.only_error is boom
        assert h.kinds[-1] == "error"
        assert h.kinds.count(method_name.removeprefix("on_")) == 1
        assert "complete" not in h.kinds
        # The client is still usable.
        h2 = await dispatch(client, Recorder())
        assert h2.body == b"some body"


async def test_on_connect_raising_fails_the_request_without_sending_it(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(answer())
    boom = Boom("connect")
    async with closing(undipy.Client(srv.origin)) as client:
        h = Recorder(raise_in={"on_connect": boom})
        client.dispatch(h, path="/", method="GET")
        await h.wait()
        await settle()
        assert h.kinds == ["connect", "error"]
        assert h.only_error is boom
    assert srv.connections == 0


# --------------------------------------------------------------------------- terminal errors


async def test_truncated_response_ends_with_one_error_after_the_data(
    raw_server: RawServerFactory,
) -> None:
    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await conn.close()

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin)) as client:
        h = await dispatch(client, Recorder())
        await settle()
    assert isinstance(h.only_error, ResponseContentLengthMismatchError)
    assert h.only_error.code == "UND_ERR_RES_CONTENT_LENGTH_MISMATCH"
    assert squash(h.kinds) in (
        ["connect", "headers", "data", "error"],
        ["connect", "headers", "error"],
    )
    assert b"abc".startswith(h.body)


# --------------------------------------------------------------------------- busy and drain


async def test_dispatch_returns_false_when_busy_and_drain_fires_later(
    http_server: HttpServer,
) -> None:
    release = slow_route(http_server)
    drained = asyncio.Event()
    drains: list[tuple[Any, ...]] = []

    def on_drain(*args: Any) -> None:
        drains.append(args)
        drained.set()

    async with closing(undipy.Client(http_server.origin, pipelining=1)) as client:
        client.on("drain", on_drain)
        h1, h2 = Recorder(), Recorder()
        client.dispatch(h1, path="/slow", method="GET")
        await http_server.wait_requests(1)
        assert client.dispatch(h2, path="/", method="GET") is False
        await settle()
        assert drains == []
        release.set()
        await h1.wait()
        await h2.wait()
        await within(drained.wait())
    assert drains == [(client.origin,)]
    assert (h1.body, h2.body) == (b"slow", b"hello")


async def test_connected_idle_client_has_room_for_pipelining_requests(
    raw_server: RawServerFactory,
) -> None:
    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(response(200, b"first"))
        # Both pipelined requests arrive before either is answered.
        assert await conn.read_request()
        assert await conn.read_request()
        await conn.send(response(200, b"a") + response(200, b"b"))
        await conn.wait_closed_by_peer()

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin, pipelining=2)) as client:
        await dispatch(client, Recorder())  # connected, now idle
        h1, h2 = Recorder(), Recorder()
        assert client.dispatch(h1, path="/a", method="GET", blocking=False) is True
        assert client.dispatch(h2, path="/b", method="GET", blocking=False) is False
        await h1.wait()
        await h2.wait()
    assert (h1.body, h2.body) == (b"a", b"b")
    assert srv.connections == 1


async def test_unbounded_pool_dispatch_is_never_busy(http_server: HttpServer) -> None:
    release = slow_route(http_server)
    async with closing(undipy.Pool(http_server.origin)) as pool:
        handlers = [Recorder() for _ in range(3)]
        assert [pool.dispatch(h, path="/slow", method="GET") for h in handlers] == [True] * 3
        await http_server.wait_requests(3)
        release.set()
        for h in handlers:
            await h.wait()
    assert [h.body for h in handlers] == [b"slow"] * 3
    assert http_server.connections == 3


# --------------------------------------------------------------------------- closed / destroyed


async def test_dispatch_after_close_reports_client_closed_error_asynchronously(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(answer())
    client = undipy.Client(srv.origin)
    await within(client.close())
    h = Recorder()
    assert client.dispatch(h, path="/", method="GET") is False
    assert h.terminals == []  # not delivered from inside dispatch()
    await h.wait()
    await settle()
    assert isinstance(h.only_error, ClientClosedError)
    assert h.only_error.code == "UND_ERR_CLOSED"
    assert srv.connections == 0


async def test_dispatch_after_close_does_not_call_on_connect(raw_server: RawServerFactory) -> None:
    """undici rejects a closed dispatcher before the request exists: only on_error runs."""
    srv = await raw_server(answer())
    client = undipy.Client(srv.origin)
    await within(client.close())
    h = Recorder()
    client.dispatch(h, path="/", method="GET")
    await h.wait()
    await settle()
    assert h.kinds == ["error"]


async def test_dispatch_after_destroy_reports_client_destroyed_error(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(answer())
    client = undipy.Client(srv.origin)
    await within(client.destroy())
    h = Recorder()
    assert client.dispatch(h, path="/", method="GET") is False
    assert h.terminals == []
    await h.wait()
    assert isinstance(h.only_error, ClientDestroyedError)
    assert h.only_error.code == "UND_ERR_DESTROYED"


# --------------------------------------------------------------------------- seed examples


@pytest.mark.loops
async def test_seed_dispatch_get_request(http_server: HttpServer) -> None:
    """Dispatcher.md, "Example 1 - Dispatch GET request"."""

    async def hello(req: Request) -> Response:
        return Response(body=b"Hello, World!")

    http_server.route("/", hello)
    client = undipy.Client(http_server.origin)
    h = await dispatch(client, Recorder(), path="/", method="GET", headers={"x-foo": "bar"})
    await within(client.close())
    assert squash(h.kinds) == ["connect", "headers", "data", "complete"]
    assert h.events[1][1] == 200
    assert h.body.decode("utf-8") == "Hello, World!"
    assert h.events[-1] == ("complete", [])
    assert http_server.requests[0].header("x-foo") == "bar"
    assert client.closed


async def websocket_handshake(conn: RawConn) -> None:
    """The seed's upgrade server: answer 101 and end the socket at once."""
    assert await conn.read_request()
    await conn.send(
        b"HTTP/1.1 101 Web Socket Protocol Handshake\r\n"
        b"Upgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n"
    )
    await conn.shutdown_write()
    await conn.wait_closed_by_peer()


async def test_seed_dispatch_upgrade_request(raw_server: RawServerFactory) -> None:
    """Dispatcher.md, "Example 2 - Dispatch Upgrade Request"."""
    srv = await raw_server(websocket_handshake)
    client = undipy.Client(srv.origin)
    h = await dispatch(client, Recorder(), path="/", method="GET", upgrade="websocket")
    await settle()
    assert h.kinds == ["connect", "upgrade"]
    _, status, headers, sock = h.events[-1]
    assert status == 101
    assert headers == [b"Upgrade", b"WebSocket", b"Connection", b"Upgrade"]
    assert await within(sock.read()) == b""  # the server ended its side
    await within(sock.write_eof())
    await within(sock.close())
    await within(client.close())
    assert srv.received == [
        head("GET / HTTP/1.1", f"host: {host_of(srv)}", "connection: upgrade", "upgrade: websocket")
    ]


@pytest.mark.loops
async def test_seed_dispatch_post_request(http_server: HttpServer) -> None:
    """Dispatcher.md, "Example 3 - Dispatch POST request": the server echoes the JSON
    body with message set to World."""

    async def echo(req: Request) -> Response:
        body = json.loads(req.body)
        body["message"] = "World"
        return Response(body=json.dumps(body).encode())

    http_server.route("/", echo, method="POST")
    client = undipy.Client(http_server.origin)
    h = await dispatch(
        client,
        Recorder(),
        path="/",
        method="POST",
        headers={"content-type": "application/json"},
        body=json.dumps({"message": "Hello"}),
    )
    await within(client.close())
    assert squash(h.kinds) == ["connect", "body_sent", "headers", "data", "complete"]
    assert json.loads(h.body) == {"message": "World"}
    req = http_server.requests[0]
    assert req.header("content-type") == "application/json"
    assert json.loads(req.body) == {"message": "Hello"}


# --------------------------------------------------------------------------- events


class Listener:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.called = asyncio.Event()

    def __call__(self, *args: Any) -> None:
        self.calls.append(args)
        self.called.set()

    async def wait(self) -> None:
        await within(self.called.wait())


@pytest.mark.loops
async def test_connect_event_gets_origin_and_the_client(raw_server: RawServerFactory) -> None:
    srv = await raw_server(answer())
    on_connect = Listener()
    async with closing(undipy.Client(srv.origin)) as client:
        client.on("connect", on_connect)
        for _ in range(2):
            await dispatch(client, Recorder())
        await on_connect.wait()
        assert len(on_connect.calls) == 1
        origin, targets = on_connect.calls[0]
        assert origin == client.origin == srv.origin
        assert len(targets) == 1 and targets[0] is client


async def test_pool_connect_event_names_the_pool(raw_server: RawServerFactory) -> None:
    srv = await raw_server(answer())
    on_connect = Listener()
    async with closing(undipy.Pool(srv.origin)) as pool:
        pool.on("connect", on_connect)
        await dispatch(pool, Recorder())
        await on_connect.wait()
    origin, targets = on_connect.calls[0]
    assert origin == pool.origin
    assert targets[0] is pool


async def test_disconnect_event_when_the_server_closes_an_idle_connection(
    raw_server: RawServerFactory,
) -> None:
    async def one_then_close(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(response(200, b"ok"))

    srv = await raw_server(one_then_close)
    on_disconnect = Listener()
    async with closing(undipy.Client(srv.origin)) as client:
        client.on("disconnect", on_disconnect)
        await dispatch(client, Recorder())
        await on_disconnect.wait()
        origin, targets, error = on_disconnect.calls[0]
        assert origin == client.origin
        assert len(targets) == 1 and targets[0] is client
        assert isinstance(error, SocketError)
        assert error.code == "UND_ERR_SOCKET"
        # The next request reconnects.
        h = await dispatch(client, Recorder())
        assert h.body == b"ok"
    assert srv.connections == 2


async def test_disconnect_after_a_connection_close_response_is_informational(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(answer(response(200, b"bye", [("Connection", "close")])))
    on_disconnect = Listener()
    async with closing(undipy.Client(srv.origin)) as client:
        client.on("disconnect", on_disconnect)
        h = await dispatch(client, Recorder())
        assert h.body == b"bye"
        await on_disconnect.wait()
    (origin, targets, error), *_ = on_disconnect.calls
    assert origin == client.origin and targets == [client]
    assert isinstance(error, InformationalError)
    assert error.code == "UND_ERR_INFO"


async def test_disconnect_fires_before_destroy_resolves_with_client_destroyed_error(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(answer())
    on_disconnect = Listener()
    client = undipy.Client(srv.origin)
    client.on("disconnect", on_disconnect)
    await dispatch(client, Recorder())
    await within(client.destroy())
    assert len(on_disconnect.calls) == 1
    origin, targets, error = on_disconnect.calls[0]
    assert (origin, targets) == (client.origin, [client])
    assert isinstance(error, ClientDestroyedError)


async def test_disconnect_on_close_reports_client_destroyed_error_like_undici(
    raw_server: RawServerFactory,
) -> None:
    """undici's close() ends with destroy(), so the socket goes down with
    ClientDestroyedError and 'disconnect' carries it."""
    srv = await raw_server(answer())
    on_disconnect = Listener()
    client = undipy.Client(srv.origin)
    client.on("disconnect", on_disconnect)
    await dispatch(client, Recorder())
    await within(client.close())
    assert len(on_disconnect.calls) == 1
    origin, targets, error = on_disconnect.calls[0]
    assert (origin, targets) == (client.origin, [client])
    assert isinstance(error, ClientDestroyedError)


async def test_connection_error_event_and_request_error_on_a_refused_connection() -> None:
    with socket.socket() as s:  # a port that was just free: nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    on_error = Listener()
    on_connect = Listener()
    async with closing(undipy.Client(f"http://127.0.0.1:{port}")) as client:
        client.on("connection_error", on_error)
        client.on("connect", on_connect)
        h = await dispatch(client, Recorder())
        await on_error.wait()
    assert h.kinds == ["connect", "error"] or h.kinds == ["error"]
    assert isinstance(h.only_error, ConnectionError)
    origin, targets, error = on_error.calls[0]
    assert (origin, targets) == (client.origin, [client])
    assert isinstance(error, ConnectionError)
    assert on_connect.calls == []


async def test_once_listener_runs_once_and_off_removes_a_listener(
    raw_server: RawServerFactory,
) -> None:
    async def one_then_close(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(response(200, b"ok"))

    srv = await raw_server(one_then_close)
    once, removed, always = Listener(), Listener(), Listener()
    async with closing(undipy.Client(srv.origin)) as client:
        client.once("connect", once)
        client.on("connect", removed)
        client.on("connect", always)
        client.off("connect", removed)
        for n in (1, 2):
            await dispatch(client, Recorder())
            await srv.wait_closed(n)
        await within(_until(lambda: len(always.calls) == 2))
    assert len(once.calls) == 1
    assert removed.calls == []


async def _until(cond: Any) -> None:
    while not cond():
        await asyncio.sleep(0.01)
