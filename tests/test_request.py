"""request(): ResponseData, the body mixin, errors, aborting, lifecycle and pools."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import undipy
from helpers import (
    RawServerFactory,
    answer,
    closing,
    pattern,
    settle,
    slow_route,
    streamer,
    within,
)
from servers import HttpServer, RawConn, Request, Response, chunked, response
from undipy import (
    AbortController,
    ClientClosedError,
    ClientDestroyedError,
    RequestAbortedError,
    ResponseStatusCodeError,
)

BIG = 4 << 20


class Boom(Exception):
    """A caller's own error, passed as an abort reason or a destroy error."""


async def get(d: undipy.Dispatcher, path: str = "/", **opts: Any) -> undipy.ResponseData:
    return await within(d.request(path=path, method=opts.pop("method", "GET"), **opts))


async def text(d: undipy.Dispatcher, path: str = "/", **opts: Any) -> str:
    resp = await get(d, path, **opts)
    return await within(resp.body.text())


def big_route(srv: HttpServer, data: bytes, path: str = "/big") -> None:
    async def big(req: Request) -> Response:
        return Response(body=data)

    srv.route(path, big)


# --------------------------------------------------------------------------- ResponseData


@pytest.mark.loops
async def test_response_data_has_status_lower_case_headers_and_repeated_names_as_lists(
    raw_server: RawServerFactory,
) -> None:
    raw = response(
        200,
        b"hi",
        [
            ("Content-Type", "text/plain"),
            ("Set-Cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("SET-COOKIE", "c=3"),
            ("X-Upper", "Value"),
        ],
    )
    srv = await raw_server(answer(raw))
    async with closing(undipy.Client(srv.origin)) as client:
        resp = await get(client)
        assert resp.status_code == 200
        assert resp.headers == {
            "content-type": "text/plain",
            "set-cookie": ["a=1", "b=2", "c=3"],
            "x-upper": "Value",
            "content-length": "2",
        }
        assert all(type(k) is str for k in resp.headers)
        assert await within(resp.body.text()) == "hi"


async def test_header_values_are_latin1_strings(raw_server: RawServerFactory) -> None:
    raw = b"HTTP/1.1 200 OK\r\nX-Latin: caf\xe9\r\nContent-Length: 0\r\n\r\n"
    srv = await raw_server(answer(raw))
    async with closing(undipy.Client(srv.origin)) as client:
        resp = await get(client)
        assert resp.headers["x-latin"] == "caf\u00e9"
        await within(resp.body.dump())


async def test_opaque_is_passed_through_and_context_is_a_dict(http_server: HttpServer) -> None:
    marker = object()
    async with closing(undipy.Client(http_server.origin)) as client:
        resp = await get(client, opaque=marker)
        assert resp.opaque is marker
        assert isinstance(resp.context, dict)
        await within(resp.body.dump())
        resp = await get(client)
        assert resp.opaque is None
        await within(resp.body.dump())


async def test_trailers_are_empty_until_the_body_ends_then_filled(
    raw_server: RawServerFactory,
) -> None:
    rest = asyncio.Event()

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await within(rest.wait())
        await conn.send(b"2\r\nde\r\n0\r\nX-Checksum: sum\r\nX-Other: o\r\n\r\n")
        await conn.wait_closed_by_peer()

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin)) as client:
        resp = await get(client)
        assert resp.trailers == {}
        rest.set()
        assert await within(resp.body.bytes()) == b"abcde"
        assert resp.trailers == {"x-checksum": "sum", "x-other": "o"}


async def test_trailers_of_a_response_read_at_once(raw_server: RawServerFactory) -> None:
    body = chunked(b"a", b"b", trailers=[("Content-MD5", "test")])
    srv = await raw_server(answer(response(200, body, [("Transfer-Encoding", "chunked")])))
    async with closing(undipy.Client(srv.origin)) as client:
        resp = await get(client)
        assert await within(resp.body.text()) == "ab"
        assert resp.trailers == {"content-md5": "test"}


# --------------------------------------------------------------------------- body mixin


@pytest.mark.parametrize(
    ("method", "payload", "expected"),
    [
        ("text", "h\u00e9llo \u20ac".encode(), "h\u00e9llo \u20ac"),
        ("bytes", b"\x00\xffraw", b"\x00\xffraw"),
        ("json", b'{"a": [1, 2], "b": null}', {"a": [1, 2], "b": None}),
        ("text", b"", ""),
        ("bytes", b"", b""),
    ],
    ids=["text", "bytes", "json", "empty-text", "empty-bytes"],
)
async def test_body_mixin_methods(
    raw_server: RawServerFactory, method: str, payload: bytes, expected: Any
) -> None:
    srv = await raw_server(answer(response(200, payload)))
    async with closing(undipy.Client(srv.origin)) as client:
        resp = await get(client)
        assert resp.body.body_used is False
        result = await within(getattr(resp.body, method)())
        assert result == expected
        assert type(result) is type(expected)
        assert resp.body.body_used is True


@pytest.mark.parametrize("payload", [b"not json", b""], ids=["garbage", "empty"])
async def test_json_of_an_invalid_body_raises(raw_server: RawServerFactory, payload: bytes) -> None:
    srv = await raw_server(answer(response(200, payload)))
    async with closing(undipy.Client(srv.origin)) as client:
        resp = await get(client)
        with pytest.raises(ValueError):
            await within(resp.body.json())


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("text", "json"),
        ("bytes", "bytes"),
        ("json", "text"),
        ("text", "iterate"),
        ("iterate", "text"),
    ],
)
async def test_a_body_can_be_consumed_only_once(
    raw_server: RawServerFactory, first: str, second: str
) -> None:
    srv = await raw_server(answer(response(200, b'"x"')))

    async def consume(body: undipy.Body, how: str) -> Any:
        if how == "iterate":
            return b"".join([chunk async for chunk in body])
        return await within(getattr(body, how)())

    async with closing(undipy.Client(srv.origin)) as client:
        resp = await get(client)
        await consume(resp.body, first)
        with pytest.raises(TypeError):
            await consume(resp.body, second)


@pytest.mark.loops
async def test_async_for_yields_a_multi_mib_body_in_order(http_server: HttpServer) -> None:
    data = pattern(BIG)
    big_route(http_server, data)
    async with closing(undipy.Client(http_server.origin)) as client:
        resp = await get(client, "/big")
        chunks = []
        async for chunk in resp.body:
            assert type(chunk) is bytes
            chunks.append(chunk)
        assert len(chunks) > 1
        assert b"".join(chunks) == data
        assert resp.body.body_used


async def test_big_body_read_after_a_delay_arrives_intact(http_server: HttpServer) -> None:
    """The body buffers at most a high-water mark, then the socket is paused: nothing lost."""
    data = pattern(BIG)
    big_route(http_server, data)
    async with closing(undipy.Client(http_server.origin)) as client:
        resp = await get(client, "/big")
        await settle()
        assert await within(resp.body.bytes()) == data
        assert await text(client) == "hello"
    assert http_server.connections == 1


async def test_dump_reads_a_small_body_and_keeps_the_connection(http_server: HttpServer) -> None:
    async with closing(undipy.Client(http_server.origin)) as client:
        resp = await get(client)
        assert await within(resp.body.dump()) is None
        assert resp.body.body_used
        assert await text(client) == "hello"
    assert http_server.connections == 1
    assert http_server.request_counts == [2]


async def test_dump_with_a_limit_below_a_big_body_closes_the_connection(
    raw_server: RawServerFactory,
) -> None:
    progress: list[int] = []
    srv = await raw_server([streamer(64, progress), answer()])
    async with closing(undipy.Client(srv.origin)) as client:
        resp = await get(client)
        await within(resp.body.dump(limit=1024))
        assert resp.body.body_used
        assert await text(client) == "ok"
    assert srv.connections == 2
    assert srv.conns[0].eof
    assert len(progress) < 64


async def test_dump_default_limit_reads_a_body_under_256_kib(http_server: HttpServer) -> None:
    big_route(http_server, pattern(200_000))
    async with closing(undipy.Client(http_server.origin)) as client:
        resp = await get(client, "/big")
        await within(resp.body.dump())
        assert await text(client) == "hello"
    assert http_server.connections == 1


async def test_aclose_of_a_read_body_keeps_the_connection(raw_server: RawServerFactory) -> None:
    srv = await raw_server(answer(response(200, b"small")))
    async with closing(undipy.Client(srv.origin)) as client:
        resp = await get(client)
        await within(resp.body.aclose())
        assert await text(client) == "small"
    assert srv.connections == 1


async def test_aclose_of_an_unfinished_body_closes_its_connection_and_frees_the_client(
    raw_server: RawServerFactory,
) -> None:
    async def never_finishes(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
        await conn.wait_closed_by_peer()

    srv = await raw_server([never_finishes, answer()])
    async with closing(undipy.Client(srv.origin)) as client:
        resp = await get(client)
        await within(resp.body.aclose())
        assert await text(client) == "ok"
    assert srv.connections == 2
    assert srv.conns[0].eof


async def test_an_unread_body_applies_backpressure_to_the_server(
    raw_server: RawServerFactory,
) -> None:
    """64 MiB cannot all fit in socket buffers: while the body is not read, the server
    must be stuck part way; once it is read, everything arrives."""
    progress: list[int] = []
    srv = await raw_server(streamer(64, progress))
    async with closing(undipy.Client(srv.origin)) as client:
        resp = await get(client)
        for _ in range(5):
            await settle()
        assert len(progress) < 64
        data = await within(resp.body.bytes(), 20.0)
    assert len(data) == 64 << 20
    assert data == pattern(1 << 20) * 64
    assert len(progress) == 64


@pytest.mark.loops
async def test_async_with_request_releases_the_body(http_server: HttpServer) -> None:
    big_route(http_server, pattern(BIG))
    async with closing(undipy.Client(http_server.origin)) as client:
        async with client.request(path="/big", method="GET") as resp:
            assert resp.status_code == 200
            first = await within(resp.body.__anext__())
            assert first
        assert await text(client) == "hello"
        async with client.request(path="/", method="GET") as resp:
            assert resp.status_code == 200
        assert await text(client) == "hello"


async def test_async_with_request_releases_the_body_when_the_block_raises(
    raw_server: RawServerFactory,
) -> None:
    async def never_finishes(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\npartial")
        await conn.wait_closed_by_peer()

    srv = await raw_server([never_finishes, answer()])
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(Boom):
            async with client.request(path="/", method="GET") as resp:
                assert resp.status_code == 200
                raise Boom("in the block")
        assert await text(client) == "ok"
    assert srv.connections == 2


async def test_truncated_body_raises_response_content_length_mismatch(
    raw_server: RawServerFactory,
) -> None:
    async def truncated(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")

    srv = await raw_server([truncated, answer()])
    async with closing(undipy.Client(srv.origin)) as client:
        resp = await get(client)
        with pytest.raises(undipy.ResponseContentLengthMismatchError) as info:
            await within(resp.body.bytes())
        assert info.value.code == "UND_ERR_RES_CONTENT_LENGTH_MISMATCH"
        assert await text(client) == "ok"


# --------------------------------------------------------------------------- on_info


async def test_on_info_is_called_for_each_informational_response(
    raw_server: RawServerFactory,
) -> None:
    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(b"HTTP/1.1 102 Processing\r\n\r\n")
        await conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")
        await conn.send(response(200, b"done"))
        await conn.wait_closed_by_peer()

    srv = await raw_server(script)
    infos: list[dict[str, Any]] = []
    async with closing(undipy.Client(srv.origin)) as client:
        resp = await get(client, on_info=infos.append)
        assert resp.status_code == 200
        assert await within(resp.body.text()) == "done"
    assert infos == [
        {"status_code": 102, "headers": {}},
        {"status_code": 103, "headers": {"link": "</s.css>; rel=preload"}},
    ]


# --------------------------------------------------------------------------- throw_on_error


@pytest.mark.parametrize(
    ("status", "ctype", "payload", "expected_body"),
    [
        (404, "application/json", b'{"error": "nope"}', {"error": "nope"}),
        (500, "application/json; charset=utf-8", b"[1, 2]", [1, 2]),
        (503, "text/plain", b"try later", "try later"),
    ],
)
async def test_throw_on_error_raises_response_status_code_error(
    raw_server: RawServerFactory, status: int, ctype: str, payload: bytes, expected_body: Any
) -> None:
    srv = await raw_server(answer(response(status, payload, [("Content-Type", ctype)])))
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(ResponseStatusCodeError) as info:
            await get(client, throw_on_error=True)
        err = info.value
        assert err.code == "UND_ERR_RESPONSE_STATUS_CODE"
        assert err.status_code == status
        assert err.headers["content-type"] == ctype
        assert err.body == expected_body
        assert await text(client) == payload.decode()  # the connection is still good
    assert srv.connections == 1


async def test_throw_on_error_lets_success_and_redirects_through(http_server: HttpServer) -> None:
    async def moved(req: Request) -> Response:
        return Response(status=302, headers=[("Location", "/")], body=b"moved")

    http_server.route("/moved", moved)
    async with closing(undipy.Client(http_server.origin)) as client:
        assert await text(client, throw_on_error=True) == "hello"
        resp = await get(client, "/moved", throw_on_error=True)
        assert resp.status_code == 302
        assert await within(resp.body.text()) == "moved"


# --------------------------------------------------------------------------- abort signals


@pytest.mark.loops
async def test_abort_controller_aborted_before_fails_without_sending(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(answer())
    controller = AbortController()
    controller.abort()
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(RequestAbortedError) as info:
            await get(client, signal=controller.signal)
        assert info.value.code == "UND_ERR_ABORTED"
        assert srv.connections == 0
        assert await text(client) == "ok"
    assert len(srv.received) == 1 and srv.received[0].count(b"HTTP/1.1\r\n") == 1


async def test_abort_controller_reason_is_raised(raw_server: RawServerFactory) -> None:
    srv = await raw_server(answer())
    reason = Boom("my reason")
    controller = AbortController()
    controller.abort(reason)
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(Boom) as info:
            await get(client, signal=controller.signal)
        assert info.value is reason
    assert srv.connections == 0


@pytest.mark.loops
async def test_abort_during_a_slow_response_fails_and_the_client_stays_usable(
    http_server: HttpServer,
) -> None:
    release = slow_route(http_server)
    controller = AbortController()
    async with closing(undipy.Client(http_server.origin)) as client:
        task = asyncio.ensure_future(get(client, "/slow", signal=controller.signal))
        await http_server.wait_requests(1)
        controller.abort()
        with pytest.raises(RequestAbortedError):
            await within(task)
        assert await text(client) == "hello"
        release.set()
    assert [r.path for r in http_server.requests] == ["/slow", "/"]


async def test_abort_during_a_slow_response_with_a_reason_raises_it(
    http_server: HttpServer,
) -> None:
    release = slow_route(http_server)
    controller = AbortController()
    reason = Boom("late")
    async with closing(undipy.Client(http_server.origin)) as client:
        task = asyncio.ensure_future(get(client, "/slow", signal=controller.signal))
        await http_server.wait_requests(1)
        controller.abort(reason)
        with pytest.raises(Boom) as info:
            await within(task)
        assert info.value is reason
        release.set()
        assert await text(client) == "hello"


async def test_abort_while_reading_the_body_fails_the_body(raw_server: RawServerFactory) -> None:
    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
        await conn.wait_closed_by_peer()

    srv = await raw_server([script, answer()])
    controller = AbortController()
    async with closing(undipy.Client(srv.origin)) as client:
        resp = await get(client, signal=controller.signal)
        assert resp.status_code == 200
        controller.abort()
        with pytest.raises(RequestAbortedError):
            await within(resp.body.bytes())
        assert await text(client) == "ok"
    assert srv.connections == 2


async def test_asyncio_event_signal_set_before_fails_without_sending(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(answer())
    event = asyncio.Event()
    event.set()
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(RequestAbortedError):
            await get(client, signal=event)
        assert srv.connections == 0


@pytest.mark.loops
async def test_asyncio_event_signal_set_during_a_slow_response_aborts(
    http_server: HttpServer,
) -> None:
    release = slow_route(http_server)
    event = asyncio.Event()
    async with closing(undipy.Client(http_server.origin)) as client:
        task = asyncio.ensure_future(get(client, "/slow", signal=event))
        await http_server.wait_requests(1)
        event.set()
        with pytest.raises(RequestAbortedError):
            await within(task)
        assert await text(client) == "hello"
        release.set()


async def test_signal_of_the_wrong_type_is_an_invalid_argument(http_server: HttpServer) -> None:
    async with closing(undipy.Client(http_server.origin)) as client:
        with pytest.raises(undipy.InvalidArgumentError):
            await get(client, signal=object())


# --------------------------------------------------------------------------- cancellation


@pytest.mark.loops
async def test_wait_for_timeout_aborts_the_request_and_frees_the_connection(
    http_server: HttpServer,
) -> None:
    release = slow_route(http_server)
    async with closing(undipy.Client(http_server.origin)) as client:
        task = asyncio.ensure_future(
            asyncio.wait_for(client.request(path="/slow", method="GET"), 1.0)
        )
        await http_server.wait_requests(1)  # it was sent, and is waiting for its response
        with pytest.raises(TimeoutError):
            await within(task)
        assert await text(client) == "hello"
        release.set()
    assert http_server.connections == 2


async def test_cancelling_the_awaiting_task_aborts_the_request(http_server: HttpServer) -> None:
    release = slow_route(http_server)
    async with closing(undipy.Client(http_server.origin)) as client:
        task = asyncio.ensure_future(client.request(path="/slow", method="GET"))
        await http_server.wait_requests(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await within(task)
        assert await text(client) == "hello"
        release.set()


async def test_cancelling_a_queued_request_never_sends_it(http_server: HttpServer) -> None:
    release = slow_route(http_server)
    async with closing(undipy.Client(http_server.origin)) as client:
        first = asyncio.ensure_future(get(client, "/slow"))
        await http_server.wait_requests(1)
        queued = asyncio.ensure_future(client.request(path="/never", method="GET"))
        await settle()
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await within(queued)
        release.set()
        assert await within((await within(first)).body.text()) == "slow"
        assert await text(client, "/after") == "hello"
    assert [r.path for r in http_server.requests] == ["/slow", "/after"]


# --------------------------------------------------------------------------- callback forms


async def test_request_with_callback_returns_none_and_calls_back_with_data(
    http_server: HttpServer,
) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[Any, Any]] = loop.create_future()
    async with closing(undipy.Client(http_server.origin)) as client:
        result = client.request(
            lambda err, data: done.set_result((err, data)), path="/", method="GET"
        )
        assert result is None
        err, data = await within(done)
        assert err is None
        assert isinstance(data, undipy.ResponseData)
        assert await within(data.body.text()) == "hello"


async def test_request_callback_gets_the_error(http_server: HttpServer) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[Any, Any]] = loop.create_future()
    client = undipy.Client(http_server.origin)
    await within(client.close())
    client.request(lambda err, data: done.set_result((err, data)), path="/", method="GET")
    err, data = await within(done)
    assert isinstance(err, ClientClosedError)
    assert data is None


async def test_close_and_destroy_with_callbacks(http_server: HttpServer) -> None:
    loop = asyncio.get_running_loop()
    closed: asyncio.Future[tuple[Any, Any]] = loop.create_future()
    destroyed: asyncio.Future[tuple[Any, Any]] = loop.create_future()
    client = undipy.Client(http_server.origin)
    assert await text(client) == "hello"
    assert client.close(lambda err, data: closed.set_result((err, data))) is None
    assert await within(closed) == (None, None)
    assert client.closed

    other = undipy.Client(http_server.origin)
    assert other.destroy(lambda err, data: destroyed.set_result((err, data))) is None
    assert await within(destroyed) == (None, None)
    assert other.destroyed


async def test_destroy_with_error_and_callback(http_server: HttpServer) -> None:
    release = slow_route(http_server)
    loop = asyncio.get_running_loop()
    destroyed: asyncio.Future[tuple[Any, Any]] = loop.create_future()
    client = undipy.Client(http_server.origin)
    task = asyncio.ensure_future(get(client, "/slow"))
    await http_server.wait_requests(1)
    queued = asyncio.ensure_future(get(client))
    await settle()
    boom = Boom("destroyed")
    assert client.destroy(boom, lambda err, data: destroyed.set_result((err, data))) is None
    assert await within(destroyed) == (None, None)
    with pytest.raises(Boom) as info:
        await within(queued)
    assert info.value is boom
    with pytest.raises(Boom):  # the in-flight one fails with it too
        await within(task)
    release.set()


# --------------------------------------------------------------------------- seed examples


@pytest.mark.loops
async def test_seed_request_resolves_before_client_closes(http_server: HttpServer) -> None:
    """Dispatcher.md, "Example - Request resolves before Client closes"."""

    async def undici(req: Request) -> Response:
        return Response(body=b"undici")

    http_server.route("/", undici)
    client = undipy.Client(http_server.origin)
    resp = await get(client, "/")
    assert await within(resp.body.text()) == "undici"
    await within(client.close())
    assert client.closed


@pytest.mark.loops
async def test_seed_basic_get_request(http_server: HttpServer) -> None:
    """Dispatcher.md, "Example 1 - Basic GET Request"."""

    async def hello(req: Request) -> Response:
        return Response(body=b"Hello, World!")

    http_server.route("/", hello)
    client = undipy.Client(http_server.origin)
    resp = await get(client, "/")
    assert resp.status_code == 200
    assert resp.headers["content-length"] == "13"
    chunks = [chunk async for chunk in resp.body]
    assert b"".join(chunks).decode("utf-8") == "Hello, World!"
    assert resp.trailers == {}
    await within(client.close())


@pytest.mark.parametrize("kind", ["abort-controller", "asyncio-event"])
async def test_seed_aborting_a_request(http_server: HttpServer, kind: str) -> None:
    """Dispatcher.md, "Example 2 - Aborting a request", with an AbortController and with
    the Python stand-in for an EventEmitter emitting 'abort' (an asyncio.Event)."""

    async def hello(req: Request) -> Response:
        return Response(body=b"Hello, World!")

    http_server.route("/", hello)
    client = undipy.Client(http_server.origin)
    controller = AbortController()
    event = asyncio.Event()
    signal: Any = controller.signal if kind == "abort-controller" else event
    task = asyncio.ensure_future(client.request(path="/", method="GET", signal=signal))
    controller.abort()
    event.set()
    with pytest.raises(RequestAbortedError):
        await within(task)
    await within(client.close())


async def test_seed_request_is_aborted_when_client_is_destroyed(http_server: HttpServer) -> None:
    """Dispatcher.md, "Example - Request is aborted when Client is destroyed"."""
    client = undipy.Client(http_server.origin)
    request = client.request(path="/", method="GET")
    destroyed = asyncio.ensure_future(client.destroy())
    with pytest.raises(ClientDestroyedError) as info:
        await within(request)
    assert info.value.code == "UND_ERR_DESTROYED"
    await within(destroyed)
    assert client.destroyed


async def test_in_flight_request_fails_with_client_destroyed_error(
    http_server: HttpServer,
) -> None:
    release = slow_route(http_server)
    client = undipy.Client(http_server.origin)
    task = asyncio.ensure_future(get(client, "/slow"))
    await http_server.wait_requests(1)
    await within(client.destroy())
    with pytest.raises(ClientDestroyedError):
        await within(task)
    release.set()


# --------------------------------------------------------------------------- close / destroy


@pytest.mark.loops
async def test_close_waits_for_queued_requests(http_server: HttpServer) -> None:
    release = slow_route(http_server)
    client = undipy.Client(http_server.origin)
    tasks = [asyncio.ensure_future(text(client, "/slow")) for _ in range(4)]
    await http_server.wait_requests(1)
    closing_ = asyncio.ensure_future(client.close())
    await settle()
    assert not closing_.done()
    assert client.closed
    release.set()
    assert await within(asyncio.gather(*tasks)) == ["slow"] * 4
    await within(closing_)
    assert len(http_server.requests) == 4


async def test_destroy_fails_queued_requests_with_client_destroyed_error(
    http_server: HttpServer,
) -> None:
    release = slow_route(http_server)
    client = undipy.Client(http_server.origin)
    tasks = [asyncio.ensure_future(get(client, "/slow")) for _ in range(3)]
    await http_server.wait_requests(1)
    await within(client.destroy())
    results = await within(asyncio.gather(*tasks, return_exceptions=True))
    assert [type(r) for r in results] == [ClientDestroyedError] * 3
    release.set()
    assert len(http_server.requests) == 1


async def test_destroy_with_an_error_fails_queued_requests_with_it(
    http_server: HttpServer,
) -> None:
    release = slow_route(http_server)
    client = undipy.Client(http_server.origin)
    first = asyncio.ensure_future(get(client, "/slow"))
    await http_server.wait_requests(1)
    queued = [asyncio.ensure_future(get(client, "/slow")) for _ in range(2)]
    await settle()
    boom = Boom("gone")
    await within(client.destroy(boom))
    for task in queued:
        with pytest.raises(Boom) as info:
            await within(task)
        assert info.value is boom
    with pytest.raises(Boom):
        await within(first)
    release.set()


async def test_close_after_destroy_raises_client_destroyed_error(http_server: HttpServer) -> None:
    client = undipy.Client(http_server.origin)
    await within(client.destroy())
    with pytest.raises(ClientDestroyedError):
        await within(client.close())


@pytest.mark.parametrize(
    ("end", "error"),
    [("close", ClientClosedError), ("destroy", ClientDestroyedError)],
)
async def test_request_after_close_or_destroy_fails(
    http_server: HttpServer, end: str, error: type[Exception]
) -> None:
    client = undipy.Client(http_server.origin)
    assert await text(client) == "hello"
    await within(getattr(client, end)())
    with pytest.raises(error):
        await get(client)
    assert len(http_server.requests) == 1


async def test_close_twice_resolves_both(http_server: HttpServer) -> None:
    client = undipy.Client(http_server.origin)
    assert await text(client) == "hello"
    await within(asyncio.gather(client.close(), client.close()))
    await within(client.close())
    assert client.closed and not client.destroyed


@pytest.mark.loops
async def test_async_with_client_closes_it(http_server: HttpServer) -> None:
    async with undipy.Client(http_server.origin) as client:
        assert await text(client) == "hello"
        assert not client.closed
    assert client.closed
    await http_server.wait_closed(1)
    with pytest.raises(ClientClosedError):
        await get(client)


# --------------------------------------------------------------------------- pools and stats


@pytest.mark.loops
async def test_pool_spreads_concurrent_requests_over_its_connections_and_reuses_them(
    http_server: HttpServer,
) -> None:
    release = slow_route(http_server)
    async with closing(undipy.Pool(http_server.origin, connections=2)) as pool:
        tasks = [asyncio.ensure_future(text(pool, "/slow")) for _ in range(10)]
        await http_server.wait_requests(2)
        await settle()
        assert http_server.connections == 2
        release.set()
        assert await within(asyncio.gather(*tasks)) == ["slow"] * 10
        assert all(n >= 1 for n in http_server.request_counts)
        # Keep-alive: the same two connections serve the next batch.
        assert await within(asyncio.gather(*(text(pool) for _ in range(6)))) == ["hello"] * 6
    assert http_server.connections == 2
    assert sum(http_server.request_counts) == 16


@pytest.mark.loops
async def test_pipelined_responses_are_matched_to_their_requests_in_order(
    http_server: HttpServer,
) -> None:
    async def echo_path(req: Request) -> Response:
        return Response(body=req.path.encode())

    http_server.route("/echo/*", echo_path)
    async with closing(undipy.Client(http_server.origin, pipelining=10)) as client:
        paths = [f"/echo/{i}" for i in range(30)]
        bodies = await within(asyncio.gather(*(text(client, p, blocking=False) for p in paths)))
    assert bodies == paths
    assert http_server.connections == 1
    assert sorted(r.path for r in http_server.requests) == sorted(paths)


async def test_pool_stats(http_server: HttpServer) -> None:
    release = slow_route(http_server)
    async with closing(undipy.Pool(http_server.origin, connections=2)) as pool:
        tasks = [asyncio.ensure_future(text(pool, "/slow")) for _ in range(10)]
        await http_server.wait_requests(2)
        await settle()
        assert pool.stats == undipy.PoolStats(
            connected=2, free=0, pending=8, queued=8, running=2, size=10
        )
        release.set()
        await within(asyncio.gather(*tasks))
        assert pool.stats == undipy.PoolStats(
            connected=2, free=2, pending=0, queued=0, running=0, size=0
        )


async def test_client_stats(http_server: HttpServer) -> None:
    release = slow_route(http_server)
    async with closing(undipy.Client(http_server.origin)) as client:
        assert client.stats == undipy.ClientStats(connected=0, pending=0, running=0, size=0)
        tasks = [asyncio.ensure_future(text(client, "/slow")) for _ in range(3)]
        await http_server.wait_requests(1)
        await settle()
        assert client.stats == undipy.ClientStats(connected=1, pending=2, running=1, size=3)
        release.set()
        await within(asyncio.gather(*tasks))
        assert client.stats == undipy.ClientStats(connected=1, pending=0, running=0, size=0)


async def test_pool_close_waits_and_then_rejects(http_server: HttpServer) -> None:
    release = slow_route(http_server)
    pool = undipy.Pool(http_server.origin, connections=2)
    tasks = [asyncio.ensure_future(text(pool, "/slow")) for _ in range(4)]
    await http_server.wait_requests(2)
    closed = asyncio.gather(pool.close(), pool.close())
    release.set()
    assert await within(asyncio.gather(*tasks)) == ["slow"] * 4
    await within(closed)
    with pytest.raises(ClientClosedError):
        await get(pool)


async def test_pool_destroy_fails_queued_requests_with_the_error(http_server: HttpServer) -> None:
    release = slow_route(http_server)
    pool = undipy.Pool(http_server.origin, connections=1)
    first = asyncio.ensure_future(get(pool, "/slow"))
    await http_server.wait_requests(1)
    queued = [asyncio.ensure_future(get(pool, "/slow")) for _ in range(3)]
    await settle()
    boom = Boom("pool gone")
    await within(pool.destroy(boom))
    for task in queued:
        with pytest.raises(Boom):
            await within(task)
    with pytest.raises(Boom):
        await within(first)
    release.set()
    assert len(http_server.requests) == 1


@pytest.mark.loops
async def test_client_request_json_round_trip(http_server: HttpServer) -> None:
    async def echo(req: Request) -> Response:
        return Response(
            body=json.dumps({"got": json.loads(req.body)}).encode(),
            headers=[("Content-Type", "application/json")],
        )

    http_server.route("/echo", echo, method="POST")
    async with closing(undipy.Client(http_server.origin)) as client:
        resp = await get(client, "/echo", method="POST", body=json.dumps({"a": 1}))
        assert resp.headers["content-type"] == "application/json"
        assert await within(resp.body.json()) == {"got": {"a": 1}}
