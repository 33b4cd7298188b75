"""The ``redirect`` interceptor against real loopback servers: two origins
(127.0.0.1 on two ports) behind an Agent, one behind a Client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import undipy
from helpers import within
from servers import HttpServer, Request, Response
from undipy.interceptors import redirect


def moved(status: int, location: str | None, body: bytes = b"moved") -> Response:
    headers = [] if location is None else [("location", location)]
    return Response(status=status, body=body, headers=headers)


async def echo(req: Request) -> Response:
    """The request as JSON: method, target, body, headers (lower-case names)."""
    seen = {
        "method": req.method,
        "path": req.path,
        "body": req.body.decode(),
        "headers": {n.lower(): v for n, v in req.headers},
    }
    return Response(body=json.dumps(seen).encode(), headers=[("content-type", "application/json")])


def route_to(location: str | None, status: int = 302) -> Callable[[Request], Any]:
    async def handler(req: Request) -> Response:
        return moved(status, location)

    return handler


@pytest.fixture
async def a(http_server: HttpServer) -> HttpServer:
    http_server.route("/echo", echo)
    return http_server


@pytest.fixture
async def b() -> AsyncIterator[HttpServer]:
    async with HttpServer() as srv:  # another port: another origin
        srv.route("/echo", echo)
        yield srv


async def body_json(resp: Any) -> Any:
    return json.loads(await within(resp.body.text()))


class Recorder(undipy.DispatchHandler):
    """Every call, in order, and the end as a future."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.context: dict[str, Any] = {}
        self.abort: Callable[..., None] | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.body = b""

    def on_connect(self, abort: Callable[..., None], context: dict[str, Any]) -> None:
        self.events.append("connect")
        self.abort, self.context = abort, context

    def on_headers(self, status_code: int, headers: list[bytes], resume: Any, text: str) -> bool:
        self.events.append(status_code)
        return True

    def on_data(self, chunk: bytes) -> bool:
        self.body += chunk
        return True

    def on_complete(self, trailers: list[bytes]) -> None:
        self.events.append("complete")
        self.done.set_result(None)

    def on_error(self, error: BaseException) -> None:
        self.events.append(error)
        self.done.set_result(None)


async def test_every_redirect_status_is_followed_across_origins(
    a: HttpServer, b: HttpServer
) -> None:
    for status in (300, 301, 302, 303, 307, 308):
        a.route(f"/{status}", route_to(b.url("/echo"), status))
    async with undipy.Agent() as agent:
        d = agent.compose(redirect(max_redirections=3))
        for status in (300, 301, 302, 303, 307, 308):
            resp = await within(d.request(origin=a.origin, path=f"/{status}", method="GET"))
            assert resp.status_code == 200
            seen = await body_json(resp)
            assert (seen["method"], seen["path"]) == ("GET", "/echo")
            assert seen["headers"]["host"] == b.origin.removeprefix("http://")
        # Other 3xx are answers: 304 and friends are not redirects.
        a.route("/304", route_to(b.url("/echo"), 304))
        a.route("/305", route_to(b.url("/echo"), 305))
        for status in (304, 305):
            resp = await within(d.request(origin=a.origin, path=f"/{status}", method="GET"))
            assert resp.status_code == status
            await within(resp.body.dump())
        # Through the top-level functions too.
        resp = await within(undipy.request(a.url("/302"), dispatcher=d))
        assert (resp.status_code, (await body_json(resp))["path"]) == (200, "/echo")


async def test_methods_and_bodies(a: HttpServer, b: HttpServer) -> None:
    for status in (301, 302, 303, 307, 308):
        a.route(f"/{status}", route_to(b.url("/echo"), status))
    async with undipy.Agent() as agent:
        d = agent.compose(redirect(max_redirections=1))

        async def send(status: int, method: str, body: Any = b"data") -> Any:
            headers = {"content-type": "text/plain", "content-language": "en", "x-keep": "1"}
            resp = await within(
                d.request(origin=a.origin, path=f"/{status}", method=method, body=body,
                          headers=headers)
            )
            assert resp.status_code == 200
            return await body_json(resp) if method != "HEAD" else None

        # 301/302: POST becomes GET, without its body and content-* headers.
        for status in (301, 302):
            seen = await send(status, "POST")
            assert (seen["method"], seen["body"]) == ("GET", "")
            assert "content-type" not in seen["headers"]
            assert "content-language" not in seen["headers"]
            assert "content-length" not in seen["headers"]
            assert seen["headers"]["x-keep"] == "1"
            # Other methods are kept, with their body.
            seen = await send(status, "PUT")
            assert (seen["method"], seen["body"]) == ("PUT", "data")
            assert seen["headers"]["content-type"] == "text/plain"
        # 303: everything but HEAD becomes GET.
        for method in ("POST", "PUT", "DELETE", "GET"):
            seen = await send(303, method)
            assert (seen["method"], seen["body"]) == ("GET", "")
            assert "content-type" not in seen["headers"]
        assert await send(303, "HEAD", None) is None
        assert [r.method for r in b.requests][-1] == "HEAD"
        # 307/308 keep method and body (bytes and text are sent again).
        for status in (307, 308):
            for body in (b"data", "data", bytearray(b"data")):
                seen = await send(status, "POST", body)
                assert (seen["method"], seen["body"]) == ("POST", "data")
                assert seen["headers"]["content-type"] == "text/plain"


async def test_a_streamed_body_is_never_sent_twice(a: HttpServer, b: HttpServer) -> None:
    for status in (302, 303, 307, 308):
        a.route(f"/{status}", route_to(b.url("/echo"), status))

    async def chunks() -> AsyncIterator[bytes]:
        yield b"da"
        yield b"ta"

    async with undipy.Agent() as agent:
        d = agent.compose(redirect(max_redirections=1))
        # Would be replayed (307/308, 302 for PUT): the 3xx is the answer.
        for status, method, body in [
            (307, "POST", chunks()),
            (308, "PUT", iter([b"data"])),
            (302, "PUT", chunks()),
        ]:
            resp = await within(
                d.request(origin=a.origin, path=f"/{status}", method=method, body=body)
            )
            assert resp.status_code == status
            assert resp.headers["location"] == b.url("/echo")
            assert await within(resp.body.text()) == "moved"
        # Dropped anyway (303, POST on 302): followed as a GET.
        for status in (303, 302):
            resp = await within(
                d.request(origin=a.origin, path=f"/{status}", method="POST", body=chunks())
            )
            assert resp.status_code == 200
            assert (await body_json(resp))["method"] == "GET"
    assert [r.body for r in a.requests] == [b"data"] * 5


async def test_headers_stripped_on_redirect(a: HttpServer, b: HttpServer) -> None:
    a.route("/cross", route_to(b.url("/echo")))
    a.route("/same", route_to(a.url("/echo")))
    sent = {
        "authorization": "Bearer t",
        "Cookie": "c=1",
        "proxy-authorization": "Basic x",
        "host": "example.test",
        "x-strip": "1",
        "x-cross": "1",
        "x-keep": "1",
    }
    always = {"host"}
    cross = {"authorization", "cookie", "proxy-authorization", "x-cross", *always, "x-strip"}
    async with undipy.Agent() as agent:
        d = agent.compose(
            redirect(
                max_redirections=1,
                strip_headers_on_redirect=["X-Strip"],
                strip_headers_on_cross_origin_redirect=["x-cross"],
            )
        )
        # Each of the three forms of headers=, names as str or bytes.
        forms: list[Any] = [
            sent,
            [x.encode() for kv in sent.items() for x in kv],
            list(sent.items()),
        ]
        for headers in forms:
            same = always | {"x-strip"}
            for path, server, stripped in [("/cross", b, cross), ("/same", a, same)]:
                resp = await within(
                    d.request(origin=a.origin, path=path, method="GET", headers=headers)
                )
                got = (await body_json(resp))["headers"]
                first = [r for r in a.requests if r.path == path][-1]  # it got the 302
                assert first.header("host") == "example.test"
                assert first.header("x-strip") == "1"
                kept = {k.lower() for k in sent} - stripped
                assert {k: got[k] for k in kept} == {k.lower(): v for k, v in sent.items()
                                                     if k.lower() in kept}
                assert not stripped - always & set(got)
                assert got["host"] == server.origin.removeprefix("http://")


async def test_an_origin_is_scheme_host_and_port(a: HttpServer) -> None:
    # Same host, another port: another origin, credentials dropped.
    async with HttpServer() as other:
        other.route("/echo", echo)
        a.route("/port", route_to(other.url("/echo")))
        async with undipy.Agent() as agent:
            d = agent.compose(redirect(max_redirections=1))
            resp = await within(
                d.request(origin=a.origin, path="/port", method="GET",
                          headers={"authorization": "x"})
            )
            assert "authorization" not in (await body_json(resp))["headers"]
            # Scheme and host compare case-insensitively.
            a.route("/same", route_to(a.url("/echo").replace("http:", "HTTP:")))
            resp = await within(
                d.request(origin=a.origin, path="/same", method="GET",
                          headers={"authorization": "x"})
            )
            assert (await body_json(resp))["headers"]["authorization"] == "x"


async def test_relative_missing_and_invalid_locations(a: HttpServer) -> None:
    a.route("/dir/rel", route_to("../echo?x=1"))
    a.route("/none", route_to("", 302))
    a.route("/nowhere", route_to(None))
    a.route("/bad", route_to("http://[::1"))
    a.route("/ftp", route_to("ftp://example.test/file"))
    a.route("/port", route_to("http://127.0.0.1:99999/"))
    async with undipy.Agent() as agent:
        d = agent.compose(redirect(max_redirections=2))
        resp = await within(d.request(origin=a.origin, path="/dir/rel", method="GET"))
        assert (await body_json(resp))["path"] == "/echo?x=1"
        # Nothing to follow: the 3xx is the answer, body included.
        for path in ("/none", "/nowhere", "/bad", "/ftp", "/port"):
            resp = await within(d.request(origin=a.origin, path=path, method="GET"))
            assert (resp.status_code, await within(resp.body.text())) == (302, "moved")


async def test_loops_are_detected(a: HttpServer, b: HttpServer) -> None:
    a.route("/self", route_to("/self"))
    a.route("/ping", route_to(b.url("/pong")))
    b.route("/pong", route_to(a.url("/ping")))
    async with undipy.Agent() as agent:
        d = agent.compose(redirect(max_redirections=10))
        for path in ("/self", "/ping"):
            with pytest.raises(undipy.InvalidArgumentError, match="Redirect loop detected"):
                await within(d.request(origin=a.origin, path=path, method="GET"))
        assert [r.path for r in a.requests] == ["/self", "/ping"]
        assert [r.path for r in b.requests] == ["/pong"]
        # The connection was kept: the 3xx body was read before failing.
        resp = await within(d.request(origin=a.origin, path="/echo", method="GET"))
        await within(resp.body.dump())
        assert a.connections == 1


async def test_the_limit(a: HttpServer) -> None:
    async def hop(req: Request) -> Response:
        n = int(req.path.rsplit("/", 1)[1])
        return moved(302, f"/hop/{n + 1}", body=f"hop {n}".encode())

    a.route("/hop/*", hop)
    async with undipy.Agent() as agent:
        d = agent.compose(redirect(max_redirections=2))
        resp = await within(d.request(origin=a.origin, path="/hop/0", method="GET"))
        # Two followed; the third 3xx is the answer.
        assert (resp.status_code, await within(resp.body.text())) == (302, "hop 2")
        assert resp.headers["location"] == "/hop/3"
        # Per request: more, or none at all.
        opts: dict[str, Any] = {"max_redirections": 4}
        resp = await within(d.request(origin=a.origin, path="/hop/0", method="GET", **opts))
        assert await within(resp.body.text()) == "hop 4"
        opts = {"max_redirections": 0}
        resp = await within(d.request(origin=a.origin, path="/hop/0", method="GET", **opts))
        assert await within(resp.body.text()) == "hop 0"
        # Past the limit, as an error.
        strict = agent.compose(redirect(max_redirections=2, throw_on_max_redirect=True))
        with pytest.raises(undipy.UndiciError, match="max redirects"):
            await within(strict.request(origin=a.origin, path="/hop/0", method="GET"))
        opts = {"throw_on_max_redirect": True}
        with pytest.raises(undipy.UndiciError, match="max redirects"):
            await within(d.request(origin=a.origin, path="/hop/0", method="GET", **opts))
        # None or 0: off, the interceptor passes everything through.
        for off in (None, 0):
            resp = await within(
                agent.compose(redirect(max_redirections=off)).request(
                    origin=a.origin, path="/hop/0", method="GET"
                )
            )
            assert await within(resp.body.text()) == "hop 0"
        # Bad options.
        with pytest.raises(undipy.InvalidArgumentError):
            redirect(max_redirections=-1)
        with pytest.raises(undipy.InvalidArgumentError):
            redirect(strip_headers_on_redirect="authorization")
        with pytest.raises(undipy.InvalidArgumentError):
            opts = {"max_redirections": "3"}
            await within(d.request(origin=a.origin, path="/hop/0", method="GET", **opts))


async def test_the_handler_sees_one_request(a: HttpServer, b: HttpServer) -> None:
    a.route("/start", route_to(b.url("/next?q=1")))
    b.route("/next", route_to("/echo", 307))
    async with undipy.Agent() as agent:
        d = agent.compose(redirect(max_redirections=5))
        h = Recorder()
        d.dispatch(h, origin=a.origin, path="/start", method="GET")
        await within(h.done)
        # on_connect once, then the final answer only.
        assert h.events == ["connect", 200, "complete"]
        assert json.loads(h.body)["path"] == "/echo"
        assert h.context["history"] == [a.url("/start"), b.url("/next?q=1"), b.url("/echo")]
        # query= is part of the first URL, and not sent again.
        h = Recorder()
        d.dispatch(h, origin=a.origin, path="/start", method="GET", query={"k": "v"})
        await within(h.done)
        assert h.context["history"][0] == a.url("/start?k=v")
        assert b.requests[-2].path == "/next?q=1"


async def test_abort_reaches_the_request_running(a: HttpServer, b: HttpServer) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def stall(req: Request) -> Response:
        arrived.set()
        await release.wait()
        return Response()

    a.route("/start", route_to(b.url("/stall")))
    b.route("/stall", stall)
    async with undipy.Agent() as agent:
        d = agent.compose(redirect(max_redirections=5))
        h = Recorder()
        d.dispatch(h, origin=a.origin, path="/start", method="GET")
        await within(arrived.wait())
        assert h.abort is not None
        h.abort(undipy.RequestAbortedError("stop"))
        await within(h.done)
        assert h.events[0] == "connect"
        assert isinstance(h.events[-1], undipy.RequestAbortedError)
        release.set()


async def test_a_redirect_refused_at_dispatch_fails_the_request(
    a: HttpServer, b: HttpServer
) -> None:
    a.route("/cross", route_to(b.url("/echo")))
    async with undipy.Agent(max_origins=1) as agent:
        d = agent.compose(redirect(max_redirections=5))
        with pytest.raises(undipy.MaxOriginsReachedError):
            await within(d.request(origin=a.origin, path="/cross", method="GET"))


async def test_on_a_client_same_origin_only(a: HttpServer, b: HttpServer) -> None:
    a.route("/rel", route_to("/echo"))
    a.route("/abs", route_to(a.url("/echo")))
    a.route("/cross", route_to(b.url("/echo")))
    async with undipy.Client(a.origin) as client:
        d = client.compose(redirect(max_redirections=3))
        for path in ("/rel", "/abs"):
            resp = await within(d.request(path=path, method="GET"))
            assert (await body_json(resp))["path"] == "/echo"
            # With origin= as the top-level functions give it, the same.
            resp = await within(undipy.request(a.url(path), dispatcher=d))
            assert (await body_json(resp))["path"] == "/echo"
        # Another origin is out of a Client's reach: the 3xx is the answer.
        resp = await within(d.request(path="/cross", method="GET"))
        assert (resp.status_code, resp.headers["location"]) == (302, b.url("/echo"))
        await within(resp.body.dump())
        # Another interceptor in between hides the Client: relative Locations
        # are still followed, absolute ones cannot be placed without origin=.
        def between(dispatch: Any) -> Any:
            return lambda handler, **opts: dispatch(handler, **opts)

        tagged = client.compose(between, redirect(max_redirections=3))
        resp = await within(tagged.request(path="/rel", method="GET"))
        assert resp.status_code == 200
        await within(resp.body.dump())
        resp = await within(tagged.request(path="/abs", method="GET"))
        assert resp.status_code == 302
        await within(resp.body.dump())
        resp = await within(tagged.request(origin=a.origin, path="/abs", method="GET"))
        assert resp.status_code == 200
        await within(resp.body.dump())
    assert not b.requests


async def test_stream_through_redirect(a: HttpServer, b: HttpServer) -> None:
    a.route("/start", route_to(b.url("/echo"), 308))

    class Sink:
        def __init__(self) -> None:
            self.data = b""

        def write(self, chunk: bytes) -> None:
            self.data += chunk

    sink = Sink()
    async with undipy.Agent() as agent:
        d = agent.compose(redirect(max_redirections=1))
        data = await within(
            d.stream(lambda info: sink, origin=a.origin, path="/start", method="POST", body=b"x")
        )
        assert data is not None
    seen = json.loads(sink.data)
    assert (seen["method"], seen["path"], seen["body"]) == ("POST", "/echo", "x")
