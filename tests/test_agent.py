"""Dispatchers for many origins (issue 12): ``Agent``, the top-level functions
and the global dispatcher, ``BalancedPool``. Real servers on loopback, http
and https."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trustme
import undipy
from helpers import within
from servers import HttpServer, Request, Response, TlsPair


async def _whoami(name: str, req: Request) -> Response:
    return Response(body=f"{name} {req.method} {req.path} {req.body.decode()}".encode())


@contextlib.asynccontextmanager
async def _servers(n: int, tls: ssl.SSLContext | None = None) -> AsyncIterator[list[HttpServer]]:
    async with contextlib.AsyncExitStack() as stack:
        servers = []
        for i in range(n):
            srv = await stack.enter_async_context(HttpServer(tls=tls))
            name = f"{'s' if tls else ''}{i}"
            srv.route("/", lambda req, name=name: _whoami(name, req))
            servers.append(srv)
        yield servers


async def _text(d: Any, **opts: Any) -> str:
    resp = await within(d.request(**opts))
    return str(await within(resp.body.text()))


# --------------------------------------------------------------------------- Agent


async def test_agent_routes_by_origin_over_http_and_https(tls_pair: TlsPair) -> None:
    async with (
        _servers(2) as plain,
        _servers(1, tls_pair.server) as secure,
        undipy.Agent(connections=2, tls={"ca": tls_pair.ca}) as agent,
    ):
        for _ in range(3):
            assert await _text(agent, origin=plain[0].origin, path="/", method="GET") == "0 GET / "
            assert await _text(agent, origin=plain[1].origin + "/", path="/", method="GET") == (
                "1 GET / "
            )
            got = await _text(agent, origin=secure[0].origin, path="/", method="POST", body=b"x")
            assert got == "s0 POST / x"
        # One pool per origin, whatever spelling of the origin was used.
        assert sorted(agent.stats) == sorted(s.origin for s in plain + secure)
        assert all(isinstance(s, undipy.PoolStats) for s in agent.stats.values())
        assert [s.connections for s in plain + secure] == [1, 1, 1]  # kept alive


async def test_agent_factory_builds_each_origin_with_its_own_tls(tls_pair: TlsPair) -> None:
    """Two https origins whose certificates come from different CAs: the factory gives
    each origin the CA it needs; one agent serves both."""
    other_ca = trustme.CA()
    other_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    other_ca.issue_cert("127.0.0.1").configure_cert(other_ctx)
    made: list[str] = []
    async with _servers(1, tls_pair.server) as a, _servers(1, other_ctx) as b:
        cas = {a[0].origin: tls_pair.ca, b[0].origin: other_ca.cert_pem.bytes()}

        def factory(origin: str, **opts: Any) -> undipy.Dispatcher:
            made.append(origin)
            return undipy.Pool(origin, **dict(opts, tls={"ca": cas[origin]}))

        async with undipy.Agent(factory=factory) as agent:
            assert await _text(agent, origin=a[0].origin, path="/", method="GET") == "s0 GET / "
            assert await _text(agent, origin=b[0].origin, path="/", method="GET") == "s0 GET / "
            assert await _text(agent, origin=a[0].origin, path="/", method="GET") == "s0 GET / "
    assert made == [a[0].origin, b[0].origin]


async def test_agent_needs_an_origin_and_checks_its_options() -> None:
    async with undipy.Agent() as agent:
        with pytest.raises(undipy.InvalidArgumentError, match="origin"):
            await within(agent.request(path="/", method="GET"))
        with pytest.raises(undipy.InvalidArgumentError, match="origin"):
            await within(agent.request(origin="ftp://x", path="/", method="GET"))
        with pytest.raises(undipy.InvalidArgumentError, match="origin"):
            agent.dispatch(undipy.DispatchHandler(), path="/", method="GET")
    for bad in [
        {"connections": 0},
        {"max_origins": 0},
        {"factory": 3},
        {"pipelining": -1},
        {"no_such_option": 1},
    ]:
        with pytest.raises(undipy.InvalidArgumentError):
            undipy.Agent(**bad)


async def test_agent_max_origins() -> None:
    async with _servers(3) as s, undipy.Agent(max_origins=2) as agent:
        await _text(agent, origin=s[0].origin, path="/", method="GET")
        await _text(agent, origin=s[1].origin, path="/", method="GET")
        with pytest.raises(undipy.MaxOriginsReachedError) as info:
            await within(agent.request(origin=s[2].origin, path="/", method="GET"))
        assert info.value.code == "UND_ERR_MAX_ORIGINS_REACHED"
        await _text(agent, origin=s[0].origin, path="/", method="GET")  # known ones still go


async def test_agent_drops_an_idle_origin_and_makes_it_again() -> None:
    async with (
        HttpServer(idle_timeout=0.2) as srv,
        undipy.Agent(max_origins=1) as agent,
    ):
        await _text(agent, origin=srv.origin, path="/", method="GET")
        assert list(agent.stats) == [srv.origin]
        # The server closes the idle connection: the origin goes, and the
        # max_origins budget with it.
        for _ in range(100):
            if not agent.stats:
                break
            await asyncio.sleep(0.02)
        assert agent.stats == {}
        async with _servers(1) as other:
            assert await _text(agent, origin=other[0].origin, path="/", method="GET") == (
                "0 GET / "
            )


async def test_agent_events_name_the_origin_and_the_agent_first() -> None:
    async with _servers(1) as s:
        agent = undipy.Agent()
        seen: list[tuple[Any, ...]] = []
        agent.on("connect", lambda origin, targets: seen.append(("connect", origin, targets)))
        agent.on(
            "disconnect",
            lambda origin, targets, err: seen.append(("disconnect", origin, targets, err)),
        )
        await _text(agent, origin=s[0].origin, path="/", method="GET")
        await within(agent.close())
    assert seen[0][:2] == ("connect", s[0].origin)
    assert seen[0][2][0] is agent and isinstance(seen[0][2][1], undipy.Pool)
    assert seen[1][:2] == ("disconnect", s[0].origin) and seen[1][2][0] is agent


async def test_agent_close_and_destroy_reach_every_origin() -> None:
    async with _servers(3) as s:
        agent = undipy.Agent()
        for srv in s:
            await _text(agent, origin=srv.origin, path="/", method="GET")
        assert [srv.open_connections for srv in s] == [1, 1, 1]
        await within(agent.close())
        assert agent.closed and not agent.destroyed
        for srv in s:
            await srv.wait_closed(1)
        with pytest.raises(undipy.ClientClosedError):
            await within(agent.request(origin=s[0].origin, path="/", method="GET"))

        agent = undipy.Agent()
        slow = asyncio.Event()

        async def hang(req: Request) -> Response:
            await slow.wait()
            return Response()

        for srv in s:
            srv.route("/hang", hang)
        calls = [
            asyncio.ensure_future(agent.request(origin=srv.origin, path="/hang", method="GET"))
            for srv in s
        ]
        await asyncio.sleep(0.1)
        await within(agent.destroy())
        for call in calls:
            with pytest.raises(undipy.ClientDestroyedError):
                await within(call)
        assert agent.destroyed
        slow.set()


# --------------------------------------------------------------------------- top level


@pytest.fixture
async def fresh_global() -> AsyncIterator[None]:
    """Each test gets its own default Agent, closed afterwards."""
    before = undipy.get_global_dispatcher()
    default = undipy.Agent()
    undipy.set_global_dispatcher(default)
    try:
        yield
    finally:
        undipy.set_global_dispatcher(before)
        if not default.destroyed:
            await within(default.close())


@pytest.mark.usefixtures("fresh_global")
async def test_top_level_functions_use_the_global_agent() -> None:
    async with _servers(2) as s:
        resp = await within(undipy.request(s[0].url("/")))
        assert await within(resp.body.text()) == "0 GET / "
        # A body makes the default method PUT; the URL's query joins query=.
        resp = await within(undipy.request(s[1].url("/?a=1"), body=b"b", query={"c": "d e"}))
        assert await within(resp.body.text()) == "1 PUT /?a=1&c=d%20e b"
        assert sorted(undipy.get_global_dispatcher().stats) == sorted(x.origin for x in s)

        chunks: list[bytes] = []

        class Sink:
            def write(self, chunk: bytes) -> None:
                chunks.append(chunk)

        data = await within(undipy.stream(s[0].url("/"), lambda info: Sink(), opaque=1))
        assert data.opaque == 1 and b"".join(chunks) == b"0 GET / "

        dup = undipy.pipeline(s[1].url("/"), lambda data: data.body, method="POST")
        await within(dup.write(b"p"))
        await within(dup.end())
        assert b"".join([c async for c in dup]) == b"1 POST / p"


async def test_top_level_dispatcher_option_and_bad_urls(http_server: HttpServer) -> None:
    async with undipy.Pool(http_server.origin) as pool:
        resp = await within(undipy.request(http_server.url("/x"), dispatcher=pool))
        assert await within(resp.body.text()) == "hello"
        assert pool.stats.connected == 1
    for bad in ["/relative", "ftp://x/", 3, "http://"]:
        with pytest.raises(undipy.InvalidArgumentError):
            await within(undipy.request(bad))  # type: ignore[arg-type]
    with pytest.raises(undipy.InvalidArgumentError):
        undipy.set_global_dispatcher(object())  # type: ignore[arg-type]


def _fork_child(url: str, w: int) -> None:
    code = 0
    try:
        signal.alarm(20)

        async def run() -> str:
            resp = await asyncio.wait_for(undipy.request(url), 5)
            text = str(await resp.body.text())
            await undipy.get_global_dispatcher().close()
            return text

        with asyncio.Runner() as runner:
            os.write(w, json.dumps(runner.run(run())).encode())
    except BaseException as e:  # noqa: BLE001 - the child reports everything
        os.write(w, json.dumps(repr(e)).encode())
        code = 1
    finally:
        os._exit(code)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
async def test_the_default_global_agent_is_made_again_after_fork(
    http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import undipy.toplevel as top

    monkeypatch.setattr(top, "_global", None)
    monkeypatch.setattr(top, "_made_here", False)
    resp = await within(undipy.request(http_server.url("/")))
    assert await within(resp.body.text()) == "hello"
    parent_agent = undipy.get_global_dispatcher()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _fork_child(http_server.url("/"), w)
    os.close(w)
    end = time.monotonic() + 30
    while not (done := os.waitpid(pid, os.WNOHANG))[0] and time.monotonic() < end:
        await asyncio.sleep(0.02)
    if not done[0]:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    with os.fdopen(r, "rb") as pipe:
        said = json.loads(pipe.read() or b"null")
    assert said == "hello" and done[0] and os.WEXITSTATUS(done[1]) == 0
    assert undipy.get_global_dispatcher() is parent_agent  # the parent's is untouched
    resp = await within(undipy.request(http_server.url("/")))
    assert await within(resp.body.text()) == "hello"
    await within(parent_agent.close())


# --------------------------------------------------------------------------- BalancedPool


async def test_balanced_pool_spreads_requests_over_its_upstreams() -> None:
    async with _servers(3) as s:
        async with undipy.BalancedPool([x.origin for x in s]) as bp:
            assert bp.upstreams == [x.origin for x in s]
            got = [await _text(bp, path="/", method="GET") for _ in range(30)]
        counts = {name: sum(g.startswith(name) for g in got) for name in ("0", "1", "2")}
        assert counts == {"0": 10, "1": 10, "2": 10}


async def test_balanced_pool_penalises_a_failing_upstream_and_recovers() -> None:
    async with _servers(2) as s:
        # An upstream that refuses connections: a port nobody listens on.
        dead = HttpServer()
        await dead.start()
        dead_origin = dead.origin
        await dead.stop()
        async with undipy.BalancedPool([s[0].origin, dead_origin, s[1].origin]) as bp:
            outcomes: list[str] = []
            for _ in range(60):
                try:
                    outcomes.append((await _text(bp, path="/", method="GET"))[0])
                except undipy.UndiciError:
                    outcomes.append("x")
            # The dead upstream is tried, penalised, and then rarely chosen.
            assert 1 <= outcomes.count("x") <= 10, outcomes
            assert outcomes[-20:].count("x") <= 2, outcomes
            bp.remove_upstream(dead_origin)
            assert bp.upstreams == [s[0].origin, s[1].origin]
            got = [await _text(bp, path="/", method="GET") for _ in range(10)]
            assert {g[0] for g in got} == {"0", "1"}


async def test_balanced_pool_upstreams_can_come_and_go() -> None:
    async with _servers(2) as s:
        bp = undipy.BalancedPool()
        with pytest.raises(undipy.BalancedPoolMissingUpstreamError) as info:
            await within(bp.request(path="/", method="GET"))
        assert info.value.code == "UND_ERR_BPL_MISSING_UPSTREAM"
        bp.add_upstream(s[0].origin).add_upstream(s[0].origin + "/")  # once only
        assert bp.upstreams == [s[0].origin]
        assert await _text(bp, path="/", method="GET") == "0 GET / "
        bp.add_upstream(s[1].origin)
        got = {(await _text(bp, path="/", method="GET"))[0] for _ in range(6)}
        assert got == {"0", "1"}
        bp.remove_upstream(s[0].origin)
        got = {(await _text(bp, path="/", method="GET"))[0] for _ in range(4)}
        assert got == {"1"}
        await within(bp.close())
        await s[0].wait_closed(1)


async def test_balanced_pool_gives_a_recovered_upstream_its_share_back() -> None:
    """An upstream refusing connections is penalised down to a trickle of requests;
    once it listens again, each new connection wins weight back (Connection: close
    makes every request a new connection) until it gets its share again."""
    async with _servers(2) as s:
        probe = HttpServer()
        await probe.start()
        port, revived_origin = probe.port, probe.origin
        await probe.stop()
        served: list[str] = []

        async def revived(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                await reader.readuntil(b"\r\n\r\n")
                served.append("r")
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\n\r\nr")
                await writer.drain()
            writer.close()

        upstreams = [s[0].origin, revived_origin, s[1].origin]
        async with undipy.BalancedPool(upstreams) as bp:

            async def one() -> str:
                try:
                    return (await _text(bp, path="/", method="GET", reset=True))[0]
                except undipy.UndiciError:
                    return "x"

            down = [await one() for _ in range(60)]
            assert "x" in down and down[-20:].count("x") <= 2, down
            server = await asyncio.start_server(revived, "127.0.0.1", port, reuse_address=True)
            try:
                up = [await one() for _ in range(120)]
            finally:
                server.close()
        assert "x" not in up
        # Back to (nearly) a third of the requests at the end.
        assert up[-30:].count("r") >= 8, "".join(up)


async def test_an_agent_subclass_overriding_dispatch_sees_request_and_stream() -> None:
    seen: list[str] = []

    class Counting(undipy.Agent):
        def dispatch(self, handler: Any, **opts: Any) -> bool:
            seen.append(opts["path"])
            return super().dispatch(handler, **opts)

    async with _servers(1) as s, Counting() as agent:
        assert await _text(agent, origin=s[0].origin, path="/", method="GET") == "0 GET / "
        sink: list[bytes] = []

        class Sink:
            def write(self, chunk: bytes) -> None:
                sink.append(chunk)

        await within(
            agent.stream(lambda info: Sink(), origin=s[0].origin, path="/?s=1", method="GET")
        )
    assert b"".join(sink) == b"0 GET /?s=1 " and seen == ["/", "/?s=1"]
