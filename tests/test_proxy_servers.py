"""Tests of the proxies the ProxyAgent tests go through, using plain asyncio stream clients.

``TestProxy`` (tests/proxy.py) and the ``tinyproxy`` fixture are checked independently of
undipy, against the origin servers of ``servers.py``: if a proxy were wrong, every proxy
test of the client built on it would be meaningless.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from proxy import ProxyProcess, Seen, TestProxy
from servers import HttpServer, Request, Response, TlsPair

T = 5.0
"""Bound, in seconds, for any single client-side wait."""

AUTH = "Basic dXNlcjpwYXNz"  # user:pass

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


# --------------------------------------------------------------------------- client helpers


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)


def request(method: str, target: str, *headers: str, body: bytes = b"") -> bytes:
    """Exact request bytes: the request line, ``headers`` as given, then ``body``."""
    lines = [f"{method} {target} HTTP/1.1", *headers]
    return "".join(f"{line}\r\n" for line in lines).encode("latin-1") + b"\r\n" + body


def host_of(origin: str) -> str:
    return origin.split("://", 1)[1]


@asynccontextmanager
async def connect(origin: str, tls: ssl.SSLContext | None = None) -> AsyncIterator[Conn]:
    """A connection to ``origin`` (a proxy), closed afterwards."""
    host, port = host_of(origin).rsplit(":", 1)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port), ssl=tls), T)
    try:
        yield reader, writer
    finally:
        writer.transport.abort()


async def read_reply(reader: asyncio.StreamReader, method: str = "GET") -> Reply:
    """One response: Content-Length, chunked or close-delimited body (none for CONNECT's 2xx)."""
    async with asyncio.timeout(T):
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *fields = head[:-4].split("\r\n")
        status = int(status_line.split(" ")[1])
        headers = [(n, v.strip()) for n, _, v in (f.partition(":") for f in fields)]
        reply = Reply(status, headers, b"")
        if (method == "CONNECT" and status // 100 == 2) or status in (204, 304):
            return reply
        if reply.header("transfer-encoding") == "chunked":
            reply.body = await read_chunked(reader)
        elif (length := reply.header("content-length")) is not None:
            reply.body = await reader.readexactly(int(length))
        else:
            reply.body = await reader.read()
        return reply


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        body += (await reader.readexactly(size + 2))[:-2]
    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
        pass
    return body


async def exchange(conn: Conn, data: bytes, method: str = "GET") -> Reply:
    reader, writer = conn
    writer.write(data)
    await asyncio.wait_for(writer.drain(), T)
    return await read_reply(reader, method)


async def at_eof(reader: asyncio.StreamReader) -> bool:
    """Whether the peer closed (or reset) without sending anything more."""
    try:
        return await asyncio.wait_for(reader.read(), T) == b""
    except ConnectionError:
        return True


def client_tls(tls_pair: TlsPair) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=tls_pair.ca.decode())


async def whoami(req: Request) -> Response:
    return Response(body=f"{req.method} {req.path} host={req.header('host')}".encode())


async def echo_chunked(req: Request) -> Response:
    return Response(body=[b"got:", req.body], chunked=True)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------- absolute-form


async def test_absolute_form_is_forwarded_in_origin_form_and_recorded(
    http_server: HttpServer,
) -> None:
    http_server.route("/who", whoami)
    target = http_server.url("/who?a=1")
    sent = [
        ("Host", host_of(http_server.origin)),
        ("Proxy-Connection", "keep-alive"),
        ("proxy-authorization", "Basic eA=="),
        ("X-Test", "1"),
    ]
    async with TestProxy() as proxy, connect(proxy.origin) as conn:
        reply = await exchange(conn, request("GET", target, *(f"{n}: {v}" for n, v in sent)))
    assert reply.status == 200
    assert reply.body == f"GET /who?a=1 host={host_of(http_server.origin)}".encode()
    assert proxy.seen == [Seen("GET", target, sent, 0)]
    (req,) = http_server.requests
    assert req.headers == [("Host", host_of(http_server.origin)), ("X-Test", "1")]
    assert (proxy.connections, proxy.tunnels, proxy.open_connections) == (1, 0, 0)


async def test_sequential_and_pipelined_requests_share_one_connection_each_way(
    http_server: HttpServer,
) -> None:
    http_server.route("/who", whoami)
    http_server.route("/echo", echo_chunked)
    host = f"Host: {host_of(http_server.origin)}"
    async with TestProxy() as proxy, connect(proxy.origin) as conn:
        first = await exchange(conn, request("GET", http_server.url("/who?n=1"), host))
        assert first.body.startswith(b"GET /who?n=1 ")
        # Two requests in one write, the first with a chunked body: answered in order.
        post = request(
            "POST",
            http_server.url("/echo"),
            host,
            "Transfer-Encoding: chunked",
            body=b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        conn[1].write(post + request("GET", http_server.url("/who?n=3"), host))
        second, third = await read_reply(conn[0]), await read_reply(conn[0])
    assert (second.status, second.header("transfer-encoding")) == (200, "chunked")
    assert second.body == b"got:abcde"
    assert third.body.startswith(b"GET /who?n=3 ")
    assert [r.body for r in http_server.requests] == [b"", b"abcde", b""]
    assert [s.conn_id for s in proxy.seen] == [0, 0, 0]
    assert proxy.connections == 1 and http_server.connections == 1  # kept alive both ways


async def test_connection_close_from_the_client_closes_after_the_response(
    http_server: HttpServer,
) -> None:
    host = f"Host: {host_of(http_server.origin)}"
    async with TestProxy() as proxy:
        async with connect(proxy.origin) as conn:
            close = request("GET", http_server.url("/"), host, "Connection: close")
            reply = await exchange(conn, close)
            assert (reply.status, reply.body) == (200, b"hello")
            assert await at_eof(conn[0])
        await proxy.wait_idle()  # it waited for the client's close (no RST on unread input)


async def test_requests_that_are_not_absolute_form_get_400(http_server: HttpServer) -> None:
    async with TestProxy() as proxy, connect(proxy.origin) as conn:
        reply = await exchange(conn, request("GET", "/", "Host: x"))
        assert (reply.status, reply.header("connection")) == (400, "close")
        assert await at_eof(conn[0])
    assert [(s.method, s.target) for s in proxy.seen] == [("GET", "/")]
    assert http_server.connections == 0


async def test_an_unreachable_target_gets_502() -> None:
    target = f"http://127.0.0.1:{closed_port()}/"
    async with TestProxy() as proxy, connect(proxy.origin) as conn:
        reply = await exchange(conn, request("GET", target, "Host: x"))
        assert reply.status == 502


# --------------------------------------------------------------------------- CONNECT


async def test_connect_tunnel_carries_plain_http_and_half_closes(
    http_server: HttpServer,
) -> None:
    authority = host_of(http_server.origin)
    async with TestProxy() as proxy, connect(proxy.origin) as conn:
        connect_request = request("CONNECT", authority, f"Host: {authority}")
        connected = await exchange(conn, connect_request, "CONNECT")
        assert connected.status == 200 and proxy.tunnels == 1
        reader, writer = conn
        writer.write(request("GET", "/tunnelled", f"Host: {authority}"))
        writer.write_eof()  # the answer must still come back through the tunnel
        reply = await read_reply(reader)
        assert (reply.status, reply.body) == (200, b"hello")
        assert await at_eof(reader)  # the origin closed; the tunnel passed that on
        await proxy.wait_idle()
    assert proxy.seen == [Seen("CONNECT", authority, [("Host", authority)], 0)]
    assert [r.path for r in http_server.requests] == ["/tunnelled"]


async def test_connect_then_tls_to_an_https_origin(tls_pair: TlsPair) -> None:
    async with HttpServer(tls=tls_pair.server) as origin, TestProxy() as proxy:
        origin.route("/who", whoami)
        authority = host_of(origin.origin)
        async with connect(proxy.origin) as conn:
            connected = await exchange(conn, request("CONNECT", authority), "CONNECT")
            assert connected.status == 200
            reader, writer = conn
            await writer.start_tls(
                client_tls(tls_pair), server_hostname="127.0.0.1", ssl_handshake_timeout=T
            )
            for n in range(2):
                reply = await exchange(conn, request("GET", f"/who?n={n}", f"Host: {authority}"))
                assert reply.body == f"GET /who?n={n} host={authority}".encode()
        assert proxy.tunnels == 1 and origin.connections == 1


async def test_refuse_connect_answers_that_status_and_closes(http_server: HttpServer) -> None:
    authority = host_of(http_server.origin)
    async with TestProxy(refuse_connect=403) as proxy, connect(proxy.origin) as conn:
        reply = await exchange(conn, request("CONNECT", authority), "CONNECT")
        assert (reply.status, reply.header("content-length")) == (403, "0")
        assert await at_eof(conn[0])
    assert proxy.tunnels == 0 and http_server.connections == 0
    assert [s.method for s in proxy.seen] == ["CONNECT"]


async def test_targets_outside_loopback_get_403_without_a_connection_attempt() -> None:
    async with TestProxy() as proxy:
        async with connect(proxy.origin) as conn:
            reply = await exchange(conn, request("CONNECT", "example.com:443"), "CONNECT")
            assert reply.status == 403 and await at_eof(conn[0])
        async with connect(proxy.origin) as conn:
            # Refused absolute-form requests leave the connection usable.
            for target in ("http://192.0.2.1/", "http://[2001:db8::1]:8080/x"):
                reply = await exchange(conn, request("GET", target, "Host: x"))
                assert (reply.status, reply.header("connection")) == (403, None)
        assert proxy.tunnels == 0 and len(proxy.seen) == 3


# --------------------------------------------------------------------------- auth


async def test_auth_required_for_absolute_form_keeps_the_connection(
    http_server: HttpServer,
) -> None:
    host = f"Host: {host_of(http_server.origin)}"
    url = http_server.url("/")
    async with TestProxy(auth=AUTH) as proxy, connect(proxy.origin) as conn:
        missing = await exchange(conn, request("POST", url, host, "Content-Length: 3", body=b"abc"))
        wrong = await exchange(conn, request("GET", url, host, "Proxy-Authorization: Bearer x"))
        right = await exchange(conn, request("GET", url, host, f"Proxy-Authorization: {AUTH}"))
    for refused in (missing, wrong):
        assert refused.status == 407
        assert refused.header("proxy-authenticate") == 'Basic realm="test"'
        assert refused.header("content-length") == "0"
    assert (right.status, right.body) == (200, b"hello")
    assert proxy.connections == 1 and len(http_server.requests) == 1
    assert all(n.lower() != "proxy-authorization" for n, _ in http_server.requests[0].headers)


async def test_auth_required_for_connect_closes_on_407(http_server: HttpServer) -> None:
    authority = host_of(http_server.origin)
    async with TestProxy(auth="Bearer tok") as proxy:
        async with connect(proxy.origin) as conn:
            reply = await exchange(conn, request("CONNECT", authority), "CONNECT")
            assert reply.status == 407 and await at_eof(conn[0])
        async with connect(proxy.origin) as conn:
            good = request("CONNECT", authority, "Proxy-Authorization: Bearer tok")
            assert (await exchange(conn, good, "CONNECT")).status == 200
            reply = await exchange(conn, request("GET", "/", f"Host: {authority}"))
            assert reply.body == b"hello"
        assert proxy.tunnels == 1


# --------------------------------------------------------------------------- https proxy


async def test_an_https_proxy_accepts_absolute_form_and_connect(
    tls_pair: TlsPair, http_server: HttpServer
) -> None:
    http_server.route("/who", whoami)
    host = f"Host: {host_of(http_server.origin)}"
    async with TestProxy(tls=tls_pair.server) as proxy:
        assert proxy.origin == f"https://127.0.0.1:{proxy.port}"
        async with connect(proxy.origin, client_tls(tls_pair)) as conn:
            for n in range(2):
                reply = await exchange(conn, request("GET", http_server.url(f"/who?{n}"), host))
                assert reply.body.startswith(f"GET /who?{n} ".encode())
        async with connect(proxy.origin, client_tls(tls_pair)) as conn:
            authority = host_of(http_server.origin)
            assert (await exchange(conn, request("CONNECT", authority), "CONNECT")).status == 200
            # TLS cannot half-close: the origin's close ends the whole tunnel.
            reply = await exchange(conn, request("GET", "/", host, "Connection: close"))
            assert reply.body == b"hello" and await at_eof(conn[0])
        assert proxy.connections == 2 and proxy.tunnels == 1


async def test_stop_closes_tunnels_and_idle_connections_promptly(
    http_server: HttpServer,
) -> None:
    authority = host_of(http_server.origin)
    proxy = await TestProxy().start()
    async with connect(proxy.origin) as tunnel, connect(proxy.origin) as idle:
        assert (await exchange(tunnel, request("CONNECT", authority), "CONNECT")).status == 200
        reply = await exchange(idle, request("GET", http_server.url("/"), f"Host: {authority}"))
        assert reply.status == 200
        started = time.monotonic()
        await asyncio.wait_for(proxy.stop(), T)
        assert time.monotonic() - started < 1.0
        assert await at_eof(tunnel[0]) and await at_eof(idle[0])
    assert proxy.open_connections == 0


# --------------------------------------------------------------------------- tinyproxy


async def test_tinyproxy_tunnels_connect(
    tinyproxy: ProxyProcess, http_server: HttpServer, tls_pair: TlsPair
) -> None:
    async with HttpServer(tls=tls_pair.server) as secure:
        for origin in (http_server, secure):
            authority = host_of(origin.origin)
            async with connect(tinyproxy.origin) as conn:
                connected = await exchange(conn, request("CONNECT", authority), "CONNECT")
                assert connected.status == 200, tinyproxy.log_path.read_text()
                if origin is secure:
                    await conn[1].start_tls(
                        client_tls(tls_pair), server_hostname="127.0.0.1", ssl_handshake_timeout=T
                    )
                for _ in range(2):
                    reply = await exchange(conn, request("GET", "/", f"Host: {authority}"))
                    assert (reply.status, reply.body) == (200, b"hello")
            assert origin.connections == 1


async def test_tinyproxy_forwards_absolute_form(
    tinyproxy: ProxyProcess, http_server: HttpServer
) -> None:
    http_server.route("/who", whoami)
    authority = host_of(http_server.origin)
    async with connect(tinyproxy.origin) as conn:
        reply = await exchange(
            conn, request("GET", http_server.url("/who?a=1"), f"Host: {authority}")
        )
    assert reply.status == 200, tinyproxy.log_path.read_text()
    assert reply.body == f"GET /who?a=1 host={authority}".encode()
    (req,) = http_server.requests
    assert all(n.lower() != "via" for n, _ in req.headers)  # DisableViaHeader


async def test_tinyproxy_allows_connect_to_any_port(tinyproxy: ProxyProcess) -> None:
    """500 (could not connect), not 403 (a ConnectPort rule): tinyproxy tried the port."""
    for port in (1, closed_port()):
        async with connect(tinyproxy.origin) as conn:
            reply = await exchange(conn, request("CONNECT", f"127.0.0.1:{port}"), "CONNECT")
        assert reply.status == 500, reply
