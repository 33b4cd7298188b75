"""ProxyAgent and EnvHttpProxyAgent (issue 12) against a proxy written for
the suite (tests/proxy.py, recording what it saw) and Debian's tinyproxy;
origins are real loopback servers, http and https."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trustme
import undipy
from helpers import within
from proxy import TestProxy
from servers import HttpServer, Request, Response, TlsPair


async def _whoami(req: Request) -> Response:
    return Response(body=f"{req.method} {req.path} host={req.header('host')}".encode())


@contextlib.asynccontextmanager
async def _origins(tls_pair: TlsPair) -> AsyncIterator[tuple[HttpServer, HttpServer]]:
    async with HttpServer() as plain, HttpServer(tls=tls_pair.server) as secure:
        for srv in (plain, secure):
            srv.route("/", _whoami)
            srv.route("/who", _whoami)
        yield plain, secure


async def _text(d: Any, **opts: Any) -> str:
    resp = await within(d.request(**opts))
    return str(await within(resp.body.text()))


def _host(origin: str) -> str:
    return origin.split("://", 1)[1]


async def test_http_targets_go_in_absolute_form_and_https_through_a_tunnel(
    tls_pair: TlsPair,
) -> None:
    async with _origins(tls_pair) as (plain, secure), TestProxy() as proxy:
        async with undipy.ProxyAgent(proxy.origin, request_tls={"ca": tls_pair.ca}) as agent:
            for _ in range(2):
                got = await _text(agent, origin=plain.origin, path="/who?a=1", method="GET")
                assert got == f"GET /who?a=1 host={_host(plain.origin)}"
                got = await _text(agent, origin=secure.origin, path="/who", method="GET")
                assert got == f"GET /who host={_host(secure.origin)}"
        methods = [(s.method, s.target) for s in proxy.seen]
        assert methods == [
            ("GET", plain.origin + "/who?a=1"),
            ("CONNECT", _host(secure.origin)),
            ("GET", plain.origin + "/who?a=1"),
        ]
        # One tunnel, kept alive for both https requests; one proxy connection
        # for the absolute-form requests.
        assert proxy.tunnels == 1 and secure.connections == 1
        assert proxy.connections == 2


async def test_pipelined_requests_share_one_tunnel(tls_pair: TlsPair) -> None:
    async with _origins(tls_pair) as (_, secure), TestProxy() as proxy:
        agent = undipy.ProxyAgent(
            proxy.origin, request_tls={"ca": tls_pair.ca}, connections=1, pipelining=4
        )
        async with agent:
            got = await within(
                asyncio.gather(
                    *[
                        _text(agent, origin=secure.origin, path=f"/?n={i}", method="GET")
                        for i in range(12)
                    ]
                )
            )
        assert got == [f"GET /?n={i} host={_host(secure.origin)}" for i in range(12)]
        assert proxy.tunnels == 1 and secure.connections == 1
        assert {r.conn_id for r in secure.requests} == {0}


async def test_proxy_tunnel_true_tunnels_http_targets(tls_pair: TlsPair) -> None:
    async with _origins(tls_pair) as (plain, _), TestProxy() as proxy:
        async with undipy.ProxyAgent(proxy.origin, proxy_tunnel=True) as agent:
            got = await _text(agent, origin=plain.origin, path="/", method="POST", body=b"x")
        assert got == f"POST / host={_host(plain.origin)}"
        assert [(s.method, s.target) for s in proxy.seen] == [("CONNECT", _host(plain.origin))]


@pytest.mark.parametrize(
    ("kwargs", "userinfo", "expected"),
    [
        ({"token": "Bearer t0k"}, "", "Bearer t0k"),
        ({}, "us%40er:p%3Ass@", "Basic " + base64.b64encode(b"us@er:p:ss").decode()),
    ],
    ids=["token", "uri-credentials"],
)
async def test_proxy_auth_on_absolute_form_and_connect(
    tls_pair: TlsPair, kwargs: dict[str, Any], userinfo: str, expected: str
) -> None:
    async with _origins(tls_pair) as (plain, secure), TestProxy(auth=expected) as proxy:
        uri = proxy.origin.replace("://", "://" + userinfo)
        agent = undipy.ProxyAgent(uri, request_tls={"ca": tls_pair.ca}, **kwargs)
        async with agent:
            assert (await _text(agent, origin=plain.origin, path="/", method="GET")).startswith(
                "GET /"
            )
            assert (await _text(agent, origin=secure.origin, path="/", method="GET")).startswith(
                "GET /"
            )
        for s in proxy.seen:
            assert ("proxy-authorization", expected) in [(n.lower(), v) for n, v in s.headers]
        # The origin never sees the proxy's credentials.
        for srv in (plain, secure):
            assert all(
                n.lower() != "proxy-authorization" for r in srv.requests for n, _ in r.headers
            )


async def test_missing_auth_and_refused_connect(tls_pair: TlsPair) -> None:
    async with _origins(tls_pair) as (plain, secure):
        async with TestProxy(auth="Bearer right") as proxy:
            async with undipy.ProxyAgent(proxy.origin, request_tls={"ca": tls_pair.ca}) as agent:
                resp = await within(agent.request(origin=plain.origin, path="/", method="GET"))
                assert resp.status_code == 407  # the proxy's answer, as undici gives it
                await within(resp.body.dump())
                with pytest.raises(undipy.SocketError) as info:
                    await within(agent.request(origin=secure.origin, path="/", method="GET"))
                assert info.value.status_code == 407
                assert "Proxy response (407) !== 200 when HTTP Tunneling" in str(info.value)
        async with TestProxy(refuse_connect=403) as proxy:
            async with undipy.ProxyAgent(proxy.origin, request_tls={"ca": tls_pair.ca}) as agent:
                errors: list[Any] = []
                agent.on("connection_error", lambda origin, targets, err: errors.append(err))
                with pytest.raises(undipy.SocketError) as info:
                    await within(agent.request(origin=secure.origin, path="/", method="GET"))
                assert info.value.status_code == 403
                assert len(errors) == 1 and errors[0].status_code == 403


async def test_bad_proxy_options_and_per_request_credentials() -> None:
    for bad in [
        {"uri": "ftp://proxy"},
        {"uri": 3},
        {"uri": "http://u:p@proxy:1", "token": "Bearer x"},
        {"uri": "http://proxy:1", "proxy_tunnel": "yes"},
        {"uri": "http://proxy:1", "headers": {"bad name": "x"}},
        {"uri": "http://proxy:1", "headers": {"x": "a\r\nb"}},
        {"uri": "http://proxy:1", "tls": {}},
    ]:
        with pytest.raises(undipy.InvalidArgumentError):
            undipy.ProxyAgent(**bad)
    async with TestProxy() as proxy, undipy.ProxyAgent(proxy.origin) as agent:
        for headers in [
            {"Proxy-Authorization": "Basic eA=="},
            [("proxy-authorization", "x")],
            ["proxy-authorization", "x"],
        ]:
            with pytest.raises(undipy.InvalidArgumentError, match="proxy-authorization"):
                await within(
                    agent.request(
                        origin="http://127.0.0.1:1", path="/", method="GET", headers=headers
                    )
                )
        with pytest.raises(undipy.InvalidArgumentError, match="origin"):
            await within(agent.request(path="/", method="GET"))
    assert proxy.seen == []


async def test_an_https_proxy_for_http_and_https_targets(tls_pair: TlsPair) -> None:
    """TLS to the proxy; https targets through a tunnel inside it, with a second TLS
    session to the target inside that (pipelined, kept alive)."""
    async with _origins(tls_pair) as (plain, secure), TestProxy(tls=tls_pair.server) as proxy:
        assert proxy.origin.startswith("https://")
        agent = undipy.ProxyAgent(
            proxy.origin,
            token="Bearer t",
            proxy_tls={"ca": tls_pair.ca},
            request_tls={"ca": tls_pair.ca},
            pipelining=3,
        )
        async with agent:
            got = await _text(agent, origin=plain.origin, path="/", method="GET")
            assert got == f"GET / host={_host(plain.origin)}"
            got = await within(
                asyncio.gather(
                    *[
                        _text(agent, origin=secure.origin, path=f"/?n={i}", method="GET")
                        for i in range(6)
                    ]
                )
            )
            assert got == [f"GET /?n={i} host={_host(secure.origin)}" for i in range(6)]
            resp = await within(
                agent.request(origin=secure.origin, path="/", method="POST", body=b"x" * 300_000)
            )
            assert await within(resp.body.text()) == f"POST / host={_host(secure.origin)}"
        assert [s.method for s in proxy.seen].count("CONNECT") == proxy.tunnels >= 1
        assert ("proxy-authorization", "Bearer t") in [
            (n.lower(), v) for s in proxy.seen for n, v in s.headers
        ]


async def test_an_https_proxy_whose_certificate_fails(tls_pair: TlsPair) -> None:
    """The proxy's certificate is not trusted: SecureProxyConnectionError says why."""
    async with _origins(tls_pair) as (_, secure), TestProxy(tls=tls_pair.server) as proxy:
        other_ca = trustme.CA().cert_pem.bytes()
        agent = undipy.ProxyAgent(
            proxy.origin, proxy_tls={"ca": other_ca}, request_tls={"ca": tls_pair.ca}
        )
        async with agent:
            with pytest.raises(undipy.SecureProxyConnectionError, match="unknown issuer") as info:
                await within(agent.request(origin=secure.origin, path="/", method="GET"))
            assert info.value.code == "UND_ERR_PRX_TLS"
        assert proxy.seen == []


async def test_stream_and_the_top_level_through_a_proxy(tls_pair: TlsPair) -> None:
    async with _origins(tls_pair) as (plain, secure), TestProxy() as proxy:
        async with undipy.ProxyAgent(proxy.origin, request_tls={"ca": tls_pair.ca}) as agent:
            chunks: list[bytes] = []

            class Sink:
                def write(self, chunk: bytes) -> None:
                    chunks.append(chunk)

            await within(
                agent.stream(lambda info: Sink(), origin=secure.origin, path="/", method="GET")
            )
            assert b"".join(chunks) == f"GET / host={_host(secure.origin)}".encode()
            resp = await within(undipy.request(plain.url("/who"), dispatcher=agent))
            assert await within(resp.body.text()) == f"GET /who host={_host(plain.origin)}"
        assert len(proxy.seen) == 2


async def test_through_tinyproxy(tls_pair: TlsPair, tinyproxy: Any) -> None:
    async with _origins(tls_pair) as (plain, secure):
        async with undipy.ProxyAgent(tinyproxy.origin, request_tls={"ca": tls_pair.ca}) as agent:
            for _ in range(2):
                got = await _text(agent, origin=plain.origin, path="/who", method="GET")
                assert got == f"GET /who host={_host(plain.origin)}"
                got = await _text(agent, origin=secure.origin, path="/who", method="GET")
                assert got == f"GET /who host={_host(secure.origin)}"
        assert secure.connections == 1  # the tunnel was kept alive


# --------------------------------------------------------------------------- environment


@pytest.mark.parametrize(
    ("no_proxy", "direct"),
    [
        ("", False),
        ("*", True),
        ("127.0.0.1", True),
        ("localhost,127.0.0.2", False),
        ("127.0.0.1:{port}", True),
        ("127.0.0.1:1", False),
        (".0.0.1", True),
        ("*.0.1", True),
        ("example.com  127.0.0.1", True),
    ],
)
async def test_env_http_proxy_agent_no_proxy_rules(
    tls_pair: TlsPair, monkeypatch: pytest.MonkeyPatch, no_proxy: str, direct: bool
) -> None:
    async with _origins(tls_pair) as (plain, _), TestProxy() as proxy:
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")  # lower case wins
        monkeypatch.setenv("http_proxy", proxy.origin)
        monkeypatch.setenv("NO_PROXY", no_proxy.format(port=plain.port))
        async with undipy.EnvHttpProxyAgent() as agent:
            got = await _text(agent, origin=plain.origin, path="/", method="GET")
        assert got.startswith("GET /")
        assert (proxy.seen == []) is direct


async def test_env_http_proxy_agent_arguments_and_https(tls_pair: TlsPair) -> None:
    async with _origins(tls_pair) as (plain, secure), TestProxy() as http, TestProxy() as https:
        agent = undipy.EnvHttpProxyAgent(
            http_proxy=http.origin,
            https_proxy=https.origin,
            no_proxy="",
            request_tls={"ca": tls_pair.ca},
        )
        async with agent:
            await _text(agent, origin=plain.origin, path="/", method="GET")
            await _text(agent, origin=secure.origin, path="/", method="GET")
        assert [s.method for s in http.seen] == ["GET"]
        assert [s.method for s in https.seen] == ["CONNECT"]
