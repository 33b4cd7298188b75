"""The dns interceptor over an Agent against real loopback servers: rotation
over a host's IPv4 and IPv6 addresses with the name kept in ``host``, the
cache and its TTL, one family only, the next address after a refusal, https
verified against the name (not the address), a failed lookup, an aborted
lookup, and what it leaves alone."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
import undipy
from helpers import within
from servers import HttpServer, Request, Response, TlsPair
from undipy.interceptors import dns, retry


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback")


class Lookups:
    """A lookup answering from a table, counting its calls."""

    def __init__(self, table: dict[str, list[tuple[str, int]]]) -> None:
        self.table = table
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, family: int) -> Iterable[tuple[str, int]]:
        self.calls.append((host, family))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [a for a in self.table[host] if family in (0, a[1])]


async def echo_host(req: Request) -> Response:
    return Response(body=f"{req.header('host')}".encode())


@pytest.fixture
async def both() -> AsyncIterator[tuple[HttpServer, HttpServer]]:
    """Two servers on one port: 127.0.0.1 and ::1."""
    v4 = await HttpServer().start()
    v6 = HttpServer(host="::1")
    v6.port = v4.port
    try:
        await v6.start()
    except OSError:
        await v4.stop()
        pytest.skip("the port is taken on ::1")
    for srv in (v4, v6):
        srv.route("/", echo_host)
    yield v4, v6
    await v4.stop()
    await v6.stop()


async def get(d: undipy.Dispatcher, origin: str, **opts: Any) -> bytes:
    resp = await within(d.request(origin=origin, path="/", method="GET", **opts))
    return await within(resp.body.bytes())


@needs_ipv6
async def test_rotation_over_both_families(both: tuple[HttpServer, HttpServer]) -> None:
    v4, v6 = both
    lookups = Lookups({"svc.test": [("127.0.0.1", 4), ("::1", 6)]})
    origin = f"http://svc.test:{v4.port}"
    async with undipy.Agent() as agent:
        d = agent.compose(dns(lookup=lookups))
        bodies = [await get(d, origin) for _ in range(4)]
        assert set(agent.stats) == {f"http://127.0.0.1:{v4.port}", f"http://[::1]:{v4.port}"}
    assert bodies == [f"svc.test:{v4.port}".encode()] * 4
    assert len(v4.requests) == 2 and len(v6.requests) == 2
    assert lookups.calls == [("svc.test", 0)]  # cached for the next three


@needs_ipv6
async def test_one_family_only(both: tuple[HttpServer, HttpServer]) -> None:
    v4, v6 = both
    lookups = Lookups({"svc.test": [("127.0.0.1", 4), ("::1", 6)]})
    async with undipy.Agent() as agent:
        d = agent.compose(dns(lookup=lookups, dual_stack=False, affinity=6))
        for _ in range(3):
            await get(d, f"http://svc.test:{v4.port}")
    assert len(v6.requests) == 3 and not v4.requests
    assert lookups.calls == [("svc.test", 6)]


async def test_the_cache_lasts_max_ttl(http_server: HttpServer) -> None:
    lookups = Lookups({"svc.test": [("127.0.0.1", 4)]})
    origin = f"http://svc.test:{http_server.port}"
    async with undipy.Agent() as agent:
        await get(agent.compose(dns(lookup=lookups, max_ttl=0)), origin)
        await get(agent.compose(dns(lookup=lookups, max_ttl=0)), origin)
        assert len(lookups.calls) == 2
        d = agent.compose(dns(lookup=lookups, max_ttl=0.2))
        await get(d, origin)
        await get(d, origin)
        assert len(lookups.calls) == 3
        await asyncio.sleep(0.3)
        await get(d, origin)
        assert len(lookups.calls) == 4


async def test_past_max_items_hosts_are_left_alone(http_server: HttpServer) -> None:
    lookups = Lookups({"a.test": [("127.0.0.1", 4)], "localhost": [("127.0.0.1", 4)]})
    async with undipy.Agent() as agent:
        d = agent.compose(dns(lookup=lookups, max_items=1))
        await get(d, f"http://a.test:{http_server.port}")
        # Full: localhost goes to the connection's own lookup, unchanged.
        assert await get(d, f"http://localhost:{http_server.port}") == b"hello"
        assert lookups.calls == [("a.test", 0)]
        assert f"http://localhost:{http_server.port}" in agent.stats


@needs_ipv6
async def test_a_refused_address_tries_the_next(http_server: HttpServer) -> None:
    # Nothing listens on ::1 at that port: the IPv6 pick is refused.
    http_server.route("/", echo_host)
    lookups = Lookups({"svc.test": [("127.0.0.1", 4), ("::1", 6)]})
    async with undipy.Agent() as agent:
        d = agent.compose(dns(lookup=lookups))
        for _ in range(4):
            assert await get(d, f"http://svc.test:{http_server.port}") == (
                f"svc.test:{http_server.port}".encode()
            )
    assert len(http_server.requests) == 4


async def test_https_is_verified_against_the_name(tls_pair: TlsPair) -> None:
    async with HttpServer(tls=tls_pair.server) as srv:
        srv.route("/", echo_host)
        lookups = Lookups({"localhost": [("127.0.0.1", 4)], "elsewhere.test": [("127.0.0.1", 4)]})
        async with undipy.Agent(tls={"ca": tls_pair.ca}) as agent:
            d = agent.compose(dns(lookup=lookups))
            assert await get(d, f"https://localhost:{srv.port}") == f"localhost:{srv.port}".encode()
            assert f"https://127.0.0.1:{srv.port} (localhost)" in agent.stats
            # The certificate covers localhost and 127.0.0.1, not this name.
            with pytest.raises(undipy.errors.UndiciError, match="elsewhere.test"):
                await get(d, f"https://elsewhere.test:{srv.port}")


async def test_a_failed_lookup(http_server: HttpServer) -> None:
    lookups = Lookups({})
    async with undipy.Agent() as agent:
        d = agent.compose(dns(lookup=lookups))
        with pytest.raises(undipy.SocketError, match="failed to lookup address.*nowhere.test"):
            await get(d, "http://nowhere.test:1")
        # retry counts it as ENOTFOUND.
        r = agent.compose(dns(lookup=lookups), retry(min_timeout=0.001, max_retries=2))
        with pytest.raises(undipy.SocketError):
            await get(r, "http://nowhere.test:1")
    assert len(lookups.calls) == 1 + 3


async def test_an_aborted_lookup(http_server: HttpServer) -> None:
    started = asyncio.Event()

    async def never(host: str, family: int) -> list[tuple[str, int]]:
        started.set()
        await asyncio.sleep(60)
        return []

    async with undipy.Agent() as agent:
        d = agent.compose(dns(lookup=never))
        task = asyncio.ensure_future(get(d, "http://slow.test:1"))
        await within(started.wait())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        signal = undipy.AbortController()
        started.clear()
        call = asyncio.ensure_future(get(d, "http://slow.test:1", signal=signal.signal))
        await within(started.wait())
        signal.abort()
        with pytest.raises(undipy.errors.RequestAbortedError):
            await within(call)


async def test_what_it_leaves_alone(http_server: HttpServer) -> None:
    http_server.route("/", echo_host)
    lookups = Lookups({})
    async with undipy.Agent() as agent:
        d = agent.compose(dns(lookup=lookups))
        # An address, and a host the caller named itself.
        assert await get(d, http_server.origin) == f"127.0.0.1:{http_server.port}".encode()
    async with undipy.Pool(http_server.origin) as pool:
        # One origin's dispatcher: no origin= to rewrite.
        resp = await within(pool.compose(dns(lookup=lookups)).request(path="/", method="GET"))
        assert await within(resp.body.bytes()) == f"127.0.0.1:{http_server.port}".encode()
    assert lookups.calls == []


@pytest.mark.parametrize(
    "bad",
    [
        {"max_ttl": -1},
        {"max_ttl": "10"},
        {"max_items": 0},
        {"max_items": 1.5},
        {"dual_stack": 1},
        {"affinity": 5},
        {"lookup": "dns"},
    ],
)
def test_bad_options(bad: dict[str, Any]) -> None:
    with pytest.raises(undipy.InvalidArgumentError):
        dns(**bad)
