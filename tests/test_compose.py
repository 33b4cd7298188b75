"""compose() and interceptors (issue 13's seam): undici's order (the last
listed sees the request first), DecoratorHandler, and the first built-ins
(dump, response_error), against a real loopback server."""

from __future__ import annotations

from typing import Any

import pytest
import undipy
from helpers import within
from servers import HttpServer, Request, Response
from undipy.interceptors import dump, response_error


@pytest.fixture
async def server(http_server: HttpServer) -> HttpServer:
    async def big(req: Request) -> Response:
        return Response(body=b"b" * 100_000)

    async def echo_headers(req: Request) -> Response:
        return Response(body=",".join(f"{n}={v}" for n, v in req.headers if n.startswith("x-"))
                        .encode())

    async def json_error(req: Request) -> Response:
        return Response(
            status=422, body=b'{"why": "bad"}', headers=[("content-type", "application/json")]
        )

    async def text_error(req: Request) -> Response:
        return Response(status=503, body=b"busy", headers=[("content-type", "text/plain")])

    async def chunked(req: Request) -> Response:
        return Response(body=[b"x" * 1000] * 50, chunked=True)

    for path, h in [
        ("/big", big),
        ("/headers", echo_headers),
        ("/json-error", json_error),
        ("/text-error", text_error),
        ("/chunked", chunked),
    ]:
        http_server.route(path, h)
    return http_server


def tag(name: str, log: list[str]) -> undipy.dispatcher.Interceptor:
    """An interceptor that records its turn and adds ``x-<name>: <position>``."""

    def interceptor(dispatch: Any) -> Any:
        def tagged(handler: Any, **opts: Any) -> bool:
            log.append(name)
            headers = list(opts.get("headers") or [])
            headers.append((f"x-{name}", str(len(log))))
            return bool(dispatch(handler, **dict(opts, headers=headers)))

        return tagged

    return interceptor


async def test_the_last_interceptor_sees_the_request_first(server: HttpServer) -> None:
    log: list[str] = []
    async with undipy.Client(server.origin) as client:
        composed = client.compose(tag("a", log), tag("b", log), tag("c", log))
        resp = await within(composed.request(path="/headers", method="GET"))
        assert await within(resp.body.text()) == "x-c=1,x-b=2,x-a=3"
        assert log == ["c", "b", "a"]
        # compose() of a composed dispatcher stacks on top.
        again = composed.compose(tag("d", log))
        resp = await within(again.request(path="/headers", method="GET"))
        assert await within(resp.body.text()) == "x-d=4,x-c=5,x-b=6,x-a=7"
        # Events and lifecycle are the underlying client's.
        seen: list[str] = []
        composed.on("disconnect", lambda *a: seen.append("disconnect"))
    assert client.closed and composed.closed and seen == ["disconnect"]


async def test_every_convenience_goes_through_the_interceptors(server: HttpServer) -> None:
    log: list[str] = []
    async with undipy.Pool(server.origin) as pool:
        d = pool.compose(tag("t", log))
        resp = await within(d.request(path="/", method="GET"))
        assert await within(resp.body.text()) == "hello"

        class Sink:
            def __init__(self) -> None:
                self.data = b""

            def write(self, chunk: bytes) -> None:
                self.data += chunk

        sink = Sink()
        await within(d.stream(lambda info: sink, path="/chunked", method="GET"))
        assert sink.data == b"x" * 50_000
        dup = d.pipeline(lambda data: data.body, path="/", method="GET")
        await within(dup.end())
        assert b"".join([c async for c in dup]) == b"hello"
        # Through the top level too.
        resp = await within(undipy.request(server.url("/"), dispatcher=d))
        await within(resp.body.dump())
    assert log == ["t"] * 4


async def test_bad_interceptors_are_refused(server: HttpServer) -> None:
    async with undipy.Client(server.origin) as client:
        with pytest.raises(undipy.InvalidArgumentError):
            client.compose(3)  # type: ignore[arg-type]
        with pytest.raises(undipy.InvalidArgumentError):
            client.compose(lambda dispatch: None)  # type: ignore[arg-type,return-value]


async def test_a_decorator_handler_forwards_what_it_does_not_change(server: HttpServer) -> None:
    class Upper(undipy.DecoratorHandler):
        def on_data(self, chunk: bytes) -> object:
            return super().on_data(chunk.upper())

    def upper(dispatch: Any) -> Any:
        return lambda handler, **opts: dispatch(Upper(handler), **opts)

    async with undipy.Client(server.origin) as client:
        d = client.compose(upper)
        resp = await within(d.request(path="/", method="GET"))
        assert (resp.status_code, await within(resp.body.text())) == (200, "HELLO")
        # on_body_sent is forwarded only to handlers that have one.
        assert not hasattr(Upper(undipy.DispatchHandler()), "on_body_sent")

        class Sent(undipy.DispatchHandler):
            def on_body_sent(self, chunk: bytes) -> None: ...

        assert hasattr(Upper(Sent()), "on_body_sent")


async def test_dump_reads_and_drops_bodies(server: HttpServer) -> None:
    async with undipy.Client(server.origin, pipelining=4) as client:
        d = client.compose(dump())
        for path in ("/big", "/chunked"):
            resp = await within(d.request(path=path, method="GET"))
            assert resp.status_code == 200
            assert await within(resp.body.bytes()) == b""
        # Past max_size (given by header or as it streams): the request is aborted.
        small = client.compose(dump(max_size=10_000))
        for path in ("/big", "/chunked"):
            with pytest.raises(undipy.RequestAbortedError, match="larger than max_size"):
                resp = await within(small.request(path=path, method="GET"))
                await within(resp.body.bytes())
        too_big = r"\(100000\) larger than max_size \(5\)"
        with pytest.raises(undipy.RequestAbortedError, match=too_big):
            opts: dict[str, Any] = {"dump_max_size": 5}  # a per-request option
            await within(d.request(path="/big", method="GET", **opts))
        # The client is fine afterwards.
        resp = await within(client.request(path="/", method="GET"))
        assert await within(resp.body.text()) == "hello"
    with pytest.raises(undipy.InvalidArgumentError):
        dump(max_size=-1)


async def test_response_error_fails_error_statuses_with_the_parsed_body(
    server: HttpServer,
) -> None:
    async with undipy.Client(server.origin) as client:
        d = client.compose(response_error())
        with pytest.raises(undipy.ResponseError) as info:
            await within(d.request(path="/json-error", method="GET"))
        e = info.value
        assert (e.code, e.status_code, e.body) == ("UND_ERR_RESPONSE", 422, {"why": "bad"})
        assert e.headers["content-type"] == "application/json"
        with pytest.raises(undipy.ResponseError) as info:
            await within(d.request(path="/text-error", method="GET"))
        assert (info.value.status_code, info.value.body) == (503, "busy")
        resp = await within(d.request(path="/", method="GET"))
        assert await within(resp.body.text()) == "hello"


async def test_interceptors_compose_over_an_agent(server: HttpServer) -> None:
    """Order matters. The interceptor listed last sees the request first, so it
    wraps the handler last, and its handler sees the response first: with
    response_error listed first, dump's handler reads the response before it and
    drops the error body; listed the other way round, the body is read whole."""
    async with undipy.Agent() as agent:
        body_kept = agent.compose(response_error(), dump())
        with pytest.raises(undipy.ResponseError) as info:
            await within(body_kept.request(origin=server.origin, path="/json-error", method="GET"))
        assert info.value.body == {"why": "bad"}
        body_dropped = agent.compose(dump(), response_error())
        with pytest.raises(undipy.ResponseError) as info:
            await within(
                body_dropped.request(origin=server.origin, path="/json-error", method="GET")
            )
        assert info.value.body == ""
        resp = await within(body_kept.request(origin=server.origin, path="/big", method="GET"))
        assert await within(resp.body.bytes()) == b""
