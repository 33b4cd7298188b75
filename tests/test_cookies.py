"""The ``cookies`` interceptor against real loopback servers: two hosts
(127.0.0.1 and ::1: cookies ignore ports) behind an Agent, one behind a Client, and
composed with ``redirect`` in both orders."""

from __future__ import annotations

import http.cookiejar
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import undipy
from helpers import within
from servers import HttpServer, Request, Response
from undipy.interceptors import cookies, redirect


async def show_cookie(req: Request) -> Response:
    """The request's cookie header as the body ("-" for none)."""
    return Response(body=(req.header("cookie") or "-").encode())


def set_cookie(*cookies: str, status: int = 200, location: str | None = None) -> Any:
    async def handler(req: Request) -> Response:
        headers = [("set-cookie", c) for c in cookies]
        if location is not None:
            headers.append(("location", location))
        return Response(status=status, body=b"set", headers=headers)

    return handler


@pytest.fixture
async def a(http_server: HttpServer) -> HttpServer:
    http_server.route("/show*", show_cookie)
    return http_server


@pytest.fixture
async def b() -> AsyncIterator[HttpServer]:
    try:
        srv = await HttpServer(host="::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback")
    srv.route("/show*", show_cookie)
    try:
        yield srv
    finally:
        await srv.stop()


def getter(d: undipy.Dispatcher) -> Callable[..., Any]:
    async def get(server: HttpServer, path: str, **opts: Any) -> str:
        resp = await within(d.request(origin=server.origin, path=path, method="GET", **opts))
        return str(await within(resp.body.text()))

    return get


async def test_stored_and_sent_by_the_jar_rules(a: HttpServer, b: HttpServer) -> None:
    a.route("/login", set_cookie("s=1", "p=2; Path=/show/p", "gone=1; Max-Age=0"))
    a.route("/logout", set_cookie("s=; Max-Age=0"))
    jar = http.cookiejar.CookieJar()
    async with undipy.Agent() as agent:
        get = getter(agent.compose(cookies(jar)))
        assert await get(a, "/show") == "-"
        assert await get(a, "/login") == "set"
        assert {c.name for c in jar} == {"s", "p"}
        assert await get(a, "/show") == "s=1"
        # Path rules, longest path first.
        assert await get(a, "/show/p/x") == "p=2; s=1"
        # Another host does not get them.
        assert await get(b, "/show") == "-"
        # The caller's own cookie header comes first, on the one line.
        assert await get(a, "/show", headers={"Cookie": "mine=0"}) == "mine=0; s=1"
        assert await get(a, "/show", headers=[b"cookie", b"mine=0"]) == "mine=0; s=1"
        assert a.requests[-1].header_all("cookie") == ["mine=0; s=1"]
        # Deleting by expiry.
        await get(a, "/logout")
        assert await get(a, "/show") == "-"
        # Through the top-level functions and stream() too.
        await get(a, "/login")
        resp = await within(undipy.request(a.url("/show"), dispatcher=agent.compose(cookies(jar))))
        assert await within(resp.body.text()) == "s=1"

        class Sink:
            data = b""

            def write(self, chunk: bytes) -> None:
                self.data += chunk

        sink = Sink()
        d = agent.compose(cookies(jar))
        await within(d.stream(lambda info: sink, origin=a.origin, path="/show", method="GET"))
        assert sink.data == b"s=1"


async def test_a_fresh_jar_each_and_bad_jars(a: HttpServer) -> None:
    a.route("/login", set_cookie("s=1"))
    async with undipy.Agent() as agent:
        one, two = getter(agent.compose(cookies())), getter(agent.compose(cookies()))
        await one(a, "/login")
        assert (await one(a, "/show"), await two(a, "/show")) == ("s=1", "-")
    with pytest.raises(undipy.InvalidArgumentError):
        cookies({})  # type: ignore[arg-type]


async def test_on_a_client(a: HttpServer) -> None:
    a.route("/login", set_cookie("s=1"))
    async with undipy.Client(a.origin) as client:
        d = client.compose(cookies())
        resp = await within(d.request(path="/login", method="GET"))
        await within(resp.body.dump())
        resp = await within(d.request(path="/show", method="GET"))
        assert await within(resp.body.text()) == "s=1"
        # With redirect: a cookie set on a same-origin 302 goes with the next hop.
        a.route("/hop", set_cookie("h=1", status=302, location="/show"))
        both = client.compose(cookies(), redirect(max_redirections=2))
        resp = await within(both.request(path="/hop", method="GET"))
        assert await within(resp.body.text()) == "h=1"


async def test_with_redirect_listed_after_it_sees_every_hop(a: HttpServer, b: HttpServer) -> None:
    """``compose(cookies(), redirect())``: redirect sees the request first and
    sends each hop through cookies, so cookies set on a 3xx go with the
    next request, and each origin gets its own."""
    a.route("/login", set_cookie("s=1", status=302, location="/show"))
    b.route("/hop", set_cookie("b=2", status=303, location="/show"))
    jar = http.cookiejar.CookieJar()
    async with undipy.Agent() as agent:
        get = getter(agent.compose(cookies(jar), redirect(max_redirections=3)))
        assert await get(a, "/login") == "s=1"
        # Across origins: A's cookies stay with A, B's own are sent to B.
        a.route("/away", set_cookie("a=1", status=302, location=b.url("/hop")))
        assert await get(a, "/away") == "b=2"
        assert b.requests[0].header("cookie") is None
        assert sorted((await get(a, "/show")).split("; ")) == ["a=1", "s=1"]
        # A cookie header of the caller is not carried to another origin.
        assert await get(a, "/away", headers={"cookie": "mine=0"}) == "b=2"


async def test_with_redirect_listed_before_it_sees_the_first_and_last(
    a: HttpServer, b: HttpServer
) -> None:
    """``compose(redirect(), cookies())``: cookies sees the first request and
    the final answer only: a cookie set on a 3xx is lost, and the final
    answer's are stored for the URL it came from (not the first)."""
    a.route("/login", set_cookie("s=1", status=302, location="/show"))
    b.route("/final", set_cookie("b=2"))
    a.route("/away", set_cookie("a=1", status=302, location=b.url("/final")))
    jar = http.cookiejar.CookieJar()
    async with undipy.Agent() as agent:
        get = getter(agent.compose(redirect(max_redirections=3), cookies(jar)))
        assert await get(a, "/login") == "-"
        assert await get(a, "/away") == "set"
        assert {(c.domain, c.name) for c in jar} == {("[::1].local", "b")}
        assert (await get(a, "/show"), await get(b, "/show")) == ("-", "b=2")
