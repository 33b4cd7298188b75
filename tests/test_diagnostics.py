"""undipy.diagnostics: undici's channels, per attempt below retry and
redirect, request:create in the caller's task with add_header, nothing when
nobody subscribes; against real loopback servers."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator
from typing import Any

import pytest
import undipy
from helpers import within
from servers import HttpServer, Request, Response, TlsPair
from undipy import diagnostics
from undipy.interceptors import redirect, retry

CHANNELS = sorted(diagnostics.CHANNELS)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    callbacks = {name: (lambda m, name=name: rec.events.append((name, m))) for name in CHANNELS}
    for name, cb in callbacks.items():
        diagnostics.subscribe(name, cb)
    try:
        yield rec
    finally:
        for name, cb in callbacks.items():
            assert diagnostics.unsubscribe(name, cb)
    assert not diagnostics.observing


async def test_a_request_in_order_with_one_shared_request_object(
    http_server: HttpServer, recorder: Recorder
) -> None:
    async with undipy.Client(http_server.origin) as client:
        resp = await within(client.request(path="/?a=1", method="POST", body=b"abc"))
        assert await within(resp.body.text()) == "hello"
    assert recorder.names() == [
        "request:create",
        "client:connected",
        "request:body_sent",
        "request:headers",
        "request:trailers",
    ]
    requests = {id(m["request"]) for name, m in recorder.events if name.startswith("request:")}
    assert len(requests) == 1
    req = recorder.events[0][1]["request"]
    assert (req.origin, req.method, req.path) == (http_server.origin, "POST", "/?a=1")
    headers = dict(recorder.events)["request:headers"]
    assert (headers["status_code"], headers["status_text"]) == (200, "OK")
    assert dict(recorder.events)["request:body_sent"]["chunk"] == b"abc"


@pytest.fixture
def connected() -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    diagnostics.subscribe("client:connected", seen.append)
    yield seen
    diagnostics.unsubscribe("client:connected", seen.append)


async def test_connected_says_what_the_connection_reached(
    http_server: HttpServer, connected: list[dict[str, Any]]
) -> None:
    async with undipy.Pool(http_server.origin) as pool:
        resp = await within(pool.request(path="/", method="GET"))
        await within(resp.body.dump())
    (m,) = connected
    assert m["origin"] == http_server.origin and m["dispatcher"] is pool
    assert (m["peer_address"], m["peer_port"]) == ("127.0.0.1", http_server.port)
    assert m["local_address"] == "127.0.0.1" and isinstance(m["local_port"], int)
    assert m["local_port"] != http_server.port
    assert (m["tls_version"], m["alpn"], m["reused"]) == (None, None, False)


async def test_connected_over_tls_and_a_resumed_session(
    tls_pair: TlsPair, connected: list[dict[str, Any]]
) -> None:
    async with HttpServer(tls=tls_pair.server) as srv:
        async with undipy.Client(srv.origin, tls={"ca": tls_pair.ca}) as client:
            for _ in range(2):  # reset=True: one connection each
                resp = await within(client.request(path="/", method="GET", reset=True))
                await within(resp.body.dump())
                await srv.wait_closed(len(connected))
    first, second = connected
    assert first["peer_port"] == second["peer_port"] == srv.port
    assert first["tls_version"] == "TLSv1.3" and first["reused"] is False
    assert second["reused"] is True  # the session ticket of the first


async def test_connected_over_a_unix_socket(
    unix_path: str, connected: list[dict[str, Any]]
) -> None:
    async with HttpServer(unix_path=unix_path) as srv:
        async with undipy.Client("http://localhost", socket_path=srv.unix_path) as client:
            resp = await within(client.request(path="/", method="GET"))
            await within(resp.body.dump())
    (m,) = connected
    assert (m["peer_address"], m["peer_port"]) == (unix_path, None)


async def test_create_runs_in_the_callers_task_and_add_header_reaches_the_server(
    http_server: HttpServer,
) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[str] = []

    def on_create(message: dict[str, Any]) -> None:
        seen.append(var.get())
        message["request"].add_header("traceparent", "00-abc-def-01")

    diagnostics.subscribe("request:create", on_create)
    try:
        async with undipy.Pool(http_server.origin) as pool:
            var.set("caller")
            resp = await within(pool.request(path="/", method="GET", headers={"x-a": "1"}))
            await within(resp.body.dump())
            await within(undipy.request(http_server.url("/"), dispatcher=pool))
    finally:
        diagnostics.unsubscribe("request:create", on_create)
    assert seen == ["caller", "caller"]
    for req in http_server.requests:
        assert req.header("traceparent") == "00-abc-def-01"
    assert http_server.requests[0].header("x-a") == "1"


async def test_errors_are_reported(recorder: Recorder) -> None:
    dead = HttpServer()
    await dead.start()
    origin = dead.origin
    await dead.stop()
    async with undipy.Client(origin) as client:
        with pytest.raises(undipy.SocketError):
            await within(client.request(path="/", method="GET"))
    assert recorder.names() == ["request:create", "client:connect_error", "request:error"]
    assert isinstance(dict(recorder.events)["request:error"]["error"], undipy.SocketError)


async def test_one_create_per_attempt_below_retry_and_redirect(
    http_server: HttpServer, recorder: Recorder
) -> None:
    calls = 0

    async def flaky(req: Request) -> Response:
        nonlocal calls
        calls += 1
        return Response(status=503 if calls == 1 else 200, body=b"ok")

    async def moved(req: Request) -> Response:
        return Response(status=302, headers=[("location", "/flaky")])

    http_server.route("/flaky", flaky)
    http_server.route("/moved", moved)
    async with undipy.Agent() as agent:
        d = agent.compose(retry(min_timeout=0.01), redirect(max_redirections=2))
        resp = await within(d.request(origin=http_server.origin, path="/moved", method="GET"))
        assert await within(resp.body.text()) == "ok"
    creates = [m["request"].path for name, m in recorder.events if name == "request:create"]
    assert creates == ["/moved", "/flaky", "/flaky"]
    statuses = [m["status_code"] for name, m in recorder.events if name == "request:headers"]
    assert statuses == [302, 503, 200]


async def test_a_raising_subscriber_disturbs_nothing(http_server: HttpServer) -> None:
    reported: list[BaseException] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, ctx: reported.append(ctx["exception"]))

    def boom(message: dict[str, Any]) -> None:
        raise RuntimeError("subscriber bug")

    diagnostics.subscribe("request:headers", boom)
    try:
        async with undipy.Client(http_server.origin) as client:
            resp = await within(client.request(path="/", method="GET"))
            assert await within(resp.body.text()) == "hello"
    finally:
        diagnostics.unsubscribe("request:headers", boom)
        loop.set_exception_handler(None)
    assert [str(e) for e in reported] == ["subscriber bug"]


async def test_nobody_subscribed_means_the_native_path(http_server: HttpServer) -> None:
    assert not diagnostics.observing
    assert not diagnostics.has_subscribers("request:create")
    async with undipy.Client(http_server.origin) as client:
        assert client._resolves_natively()
        cb = lambda m: None  # noqa: E731
        diagnostics.subscribe("client:connected", cb)  # not a request channel
        assert client._resolves_natively()
        diagnostics.subscribe("request:error", cb)
        assert not client._resolves_natively()
        diagnostics.unsubscribe("request:error", cb)
        diagnostics.unsubscribe("client:connected", cb)
        assert client._resolves_natively()
    with pytest.raises(undipy.InvalidArgumentError):
        diagnostics.subscribe("request:nope", cb)
    with pytest.raises(undipy.InvalidArgumentError):
        diagnostics.subscribe("request:create", 3)  # type: ignore[arg-type]
    assert not diagnostics.unsubscribe("request:create", cb)
