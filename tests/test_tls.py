"""https:// origins (issue 10): real TLS servers on loopback with certificates
made in the test run (trustme), and undipy's rustls client against them."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import undipy
from helpers import within
from servers import HttpServer, RawConn, RawServer, Request, Response, TlsPair


@pytest.fixture
def ca(tls_pair: TlsPair) -> trustme.CA:
    return tls_pair.authority


@pytest.fixture
def server_ctx(tls_pair: TlsPair) -> ssl.SSLContext:
    """A server certificate for localhost and 127.0.0.1 from ``ca``."""
    return tls_pair.server


@pytest.fixture
async def https(server_ctx: ssl.SSLContext) -> AsyncIterator[HttpServer]:
    async with HttpServer(tls=server_ctx) as srv:
        yield srv


@pytest.fixture
def ca_pem(tls_pair: TlsPair) -> bytes:
    return tls_pair.ca


@pytest.fixture
def ca_path(ca: trustme.CA, tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    yield str(path)


async def get(d: undipy.Dispatcher, path: str = "/") -> bytes:
    resp = await within(d.request(path=path, method="GET"))
    assert resp.status_code == 200
    return await within(resp.body.bytes())


@pytest.mark.loops
@pytest.mark.parametrize("form", ["bytes", "path", "list", "text"])
async def test_a_custom_ca_in_every_form(
    https: HttpServer, ca_pem: bytes, ca_path: str, form: str
) -> None:
    other = trustme.CA().cert_pem.bytes()
    ca: Any = {
        "bytes": ca_pem,
        "path": ca_path,
        "list": [other, ca_path],
        "text": ca_pem.decode(),
    }[form]
    async with undipy.Client(https.origin, tls={"ca": ca}) as c:
        assert await get(c) == b"hello"
        assert await get(c) == b"hello"
    assert https.connections == 1, "the second request reused the TLS connection"


async def test_an_unknown_issuer_fails_and_says_so(https: HttpServer) -> None:
    events: list[Any] = []
    async with undipy.Client(https.origin, tls={"ca": trustme.CA().cert_pem.bytes()}) as c:
        c.on("connection_error", lambda *a: events.append(a))
        with pytest.raises(undipy.SocketError, match="UnknownIssuer"):
            await within(c.request(path="/", method="GET"))
    assert events, "connection_error fired"


async def test_the_system_store_is_the_default_and_honours_ssl_cert_file(
    https: HttpServer, ca_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with undipy.Client(https.origin) as c:
        with pytest.raises(undipy.SocketError, match="UnknownIssuer"):
            await within(c.request(path="/", method="GET"))
    monkeypatch.setenv("SSL_CERT_FILE", ca_path)
    async with undipy.Client(https.origin) as c:
        assert await get(c) == b"hello"


async def test_a_name_the_certificate_does_not_cover_fails(
    ca: trustme.CA, ca_pem: bytes
) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("example.test").configure_cert(ctx)
    async with HttpServer(tls=ctx) as srv:
        async with undipy.Client(srv.origin, tls={"ca": ca_pem}) as c:
            with pytest.raises(undipy.SocketError, match="NotValidForName|not valid for name"):
                await within(c.request(path="/", method="GET"))
        tls = {"ca": ca_pem, "server_name": "example.test"}
        async with undipy.Client(srv.origin, tls=tls) as c:
            assert await get(c) == b"hello"


async def test_an_ip_origin_is_checked_against_the_ip_san(
    https: HttpServer, ca_pem: bytes
) -> None:
    assert https.origin.startswith("https://127.0.0.1:")
    async with undipy.Client(https.origin, tls={"ca": ca_pem}) as c:
        assert await get(c) == b"hello"


async def test_an_expired_certificate_fails(ca: trustme.CA, ca_pem: bytes) -> None:
    import datetime

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    old = datetime.datetime(2000, 1, 1)
    leaf = ca.issue_cert("127.0.0.1", not_before=old, not_after=old + datetime.timedelta(days=1))
    leaf.configure_cert(ctx)
    async with HttpServer(tls=ctx) as srv:
        async with undipy.Client(srv.origin, tls={"ca": ca_pem}) as c:
            with pytest.raises(undipy.SocketError, match="Expired|expired"):
                await within(c.request(path="/", method="GET"))


async def test_verify_false_accepts_a_self_signed_server() -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("elsewhere.test").configure_cert(ctx)
    async with HttpServer(tls=ctx) as srv:
        async with undipy.Client(srv.origin, tls={"verify": False}) as c:
            assert await get(c) == b"hello"


async def test_mutual_tls(ca: trustme.CA, ca_pem: bytes) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    ca.configure_trust(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED
    client_cert = ca.issue_cert("client.test")
    async with HttpServer(tls=ctx) as srv:
        tls = {
            "ca": ca_pem,
            "cert": client_cert.cert_chain_pems[0].bytes(),
            "key": client_cert.private_key_pem.bytes(),
        }
        async with undipy.Client(srv.origin, tls=tls) as c:
            assert await get(c) == b"hello"
        async with undipy.Client(srv.origin, tls={"ca": ca_pem}) as c:
            with pytest.raises(undipy.UndiciError):
                await within(c.request(path="/", method="GET"))


@pytest.mark.parametrize(("server", "client", "works"), [
    (ssl.TLSVersion.TLSv1_2, "1.2", True),
    (ssl.TLSVersion.TLSv1_2, "1.3", False),
    (ssl.TLSVersion.TLSv1_3, "1.2", True),
    (ssl.TLSVersion.TLSv1_3, "1.3", True),
])
async def test_versions(
    ca: trustme.CA, ca_pem: bytes, server: ssl.TLSVersion, client: str, works: bool
) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    ctx.minimum_version = ctx.maximum_version = server
    seen: list[str | None] = []

    async def version(req: Request) -> Response:
        seen.append(req.writer.get_extra_info("ssl_object").version())
        return Response(body=b"v")

    async with HttpServer(tls=ctx) as srv:
        srv.route("/v", version)
        async with undipy.Client(srv.origin, tls={"ca": ca_pem, "min_version": client}) as c:
            if works:
                assert await get(c, "/v") == b"v"
                assert seen == [server.name.replace("_", ".")]
            else:
                with pytest.raises(undipy.SocketError):
                    await within(c.request(path="/v", method="GET"))


@pytest.mark.parametrize("server", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_aes_128_gcm_is_offered_first(
    ca: trustme.CA, ca_pem: bytes, server: ssl.TLSVersion
) -> None:
    """A server that follows the client's order picks AES-128-GCM (docs/choices.md)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    ctx.minimum_version = ctx.maximum_version = server
    ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    seen: list[str] = []

    async def cipher(req: Request) -> Response:
        seen.append(req.writer.get_extra_info("ssl_object").cipher()[0])
        return Response(body=b"c")

    async with HttpServer(tls=ctx) as srv:
        srv.route("/c", cipher)
        async with undipy.Client(srv.origin, tls={"ca": ca_pem}) as c:
            assert await get(c, "/c") == b"c"
    # OpenSSL's names: TLS_AES_128_GCM_SHA256 (1.3), ECDHE-...-AES128-GCM-SHA256 (1.2)
    assert len(seen) == 1 and seen[0].endswith(("_AES_128_GCM_SHA256", "-AES128-GCM-SHA256")), seen


async def test_an_ssl_context_is_accepted(https: HttpServer, ca_path: str) -> None:
    async with undipy.Client(https.origin, tls=ssl.create_default_context(cafile=ca_path)) as c:
        assert await get(c) == b"hello"
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    async with undipy.Client(https.origin, tls=unverified) as c:
        assert await get(c) == b"hello"


@pytest.mark.loops
async def test_pipelining_over_tls(https: HttpServer, ca_pem: bytes) -> None:
    async def echo(req: Request) -> Response:
        return Response(body=req.path.encode())

    https.route("/p/*", echo)
    async with undipy.Client(https.origin, tls={"ca": ca_pem}, pipelining=10) as c:
        bodies = await within(asyncio.gather(*(get(c, f"/p/{i}") for i in range(50))))
    assert bodies == [f"/p/{i}".encode() for i in range(50)]
    assert https.connections == 1


@pytest.mark.loops
async def test_a_big_body_over_tls(https: HttpServer, ca_pem: bytes) -> None:
    big = bytes(range(256)) * 40_000  # ~10 MB, many records

    async def large(req: Request) -> Response:
        return Response(body=big)

    https.route("/big", large)
    async with undipy.Client(https.origin, tls={"ca": ca_pem}) as c:
        assert await get(c, "/big") == big
        resp = await within(c.request(path="/echo", method="POST", body=big))
        await resp.body.dump()
    assert https.requests[-1].body == big


async def test_a_body_cut_short_without_close_notify_is_an_error(
    server_ctx: ssl.SSLContext, ca_pem: bytes
) -> None:
    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\npartial body")
        conn.writer.transport.abort()  # TCP close, no close_notify

    async with RawServer(script, tls=server_ctx) as srv:
        async with undipy.Client(srv.origin, tls={"ca": ca_pem}) as c:
            resp = await within(c.request(path="/", method="GET"))
            with pytest.raises(undipy.SocketError, match="close_notify"):
                await within(resp.body.bytes())


async def test_session_resumption_across_connections(https: HttpServer, ca_pem: bytes) -> None:
    reused: list[bool] = []

    async def check(req: Request) -> Response:
        reused.append(req.writer.get_extra_info("ssl_object").session_reused)
        return Response(body=b"r", close=True)  # the next request needs a new connection

    https.route("/r", check)
    async with undipy.Client(https.origin, tls={"ca": ca_pem}) as c:
        for _ in range(3):
            assert await get(c, "/r") == b"r"
    assert reused[0] is False
    assert all(reused[1:]), reused


@pytest.mark.parametrize(
    ("tls", "says"),
    [
        ({"verify": "no"}, "verify"),
        ({"min_version": "1.1"}, "min_version"),
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"cert": b"x"}, "cert and key go together"),
        ({"ca": b"not pem"}, "ca"),
        ({"ca": "/nonexistent/ca.pem"}, "ca"),
        ("yes", "a dict or an ssl.SSLContext"),
    ],
)
def test_bad_tls_options_raise_at_construction(tls: Any, says: str) -> None:
    with pytest.raises(undipy.InvalidArgumentError, match=says):
        undipy.Client("https://127.0.0.1:1", tls=tls)


async def switch_and_echo(conn: RawConn) -> None:
    """101, two bytes right behind the head, then echo until the client ends."""
    assert await conn.read_request()
    await conn.send(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\nhi"
    )
    while data := await conn.read_available(timeout=2.0):
        await conn.send(data)
    await conn.shutdown_write()


@pytest.mark.loops
async def test_upgrade_over_tls(server_ctx: ssl.SSLContext, ca_pem: bytes) -> None:
    async with RawServer(switch_and_echo, tls=server_ctx) as srv:
        async with undipy.Client(srv.origin, tls={"ca": ca_pem}) as c:
            up = await within(c.upgrade(path="/", protocol="echo"))
            sock = up.socket
            assert await within(sock.read(2)) == b"hi"
            big = bytes(range(256)) * 1024
            await within(sock.write(big))
            got = bytearray()
            while len(got) < len(big):
                got += await within(sock.read())
            assert bytes(got) == big
            await within(sock.write_eof())
            assert await within(sock.read()) == b""
            await within(sock.close())


@pytest.mark.loops
async def test_requests_really_are_pipelined_over_tls(
    server_ctx: ssl.SSLContext, ca_pem: bytes
) -> None:
    """The server reads ten requests before it answers any: only a client that
    wrote them back to back, on one TLS connection, gets its answers."""

    async def script(conn: RawConn) -> None:
        paths = []
        for _ in range(10):
            raw = await conn.read_request(timeout=3.0)
            paths.append(raw.split(b" ")[1])
        await conn.send(b"".join(
            b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(p), p) for p in paths
        ))
        await conn.wait_closed_by_peer(timeout=3.0)

    async with RawServer(script, tls=server_ctx) as srv:
        async with undipy.Client(srv.origin, tls={"ca": ca_pem}, pipelining=10) as c:
            bodies = await within(asyncio.gather(*(get(c, f"/{i}") for i in range(10))))
    assert bodies == [f"/{i}".encode() for i in range(10)]
    assert srv.connections == 1


@pytest.mark.loops
async def test_stream_and_pipeline_over_tls(https: HttpServer, ca_pem: bytes) -> None:
    async def echo(req: Request) -> Response:
        return Response(body=req.body or b"streamed")

    https.route("/e", echo)
    async with undipy.Client(https.origin, tls={"ca": ca_pem}) as c:
        chunks: list[bytes] = []

        class Sink:
            def write(self, chunk: bytes) -> None:
                chunks.append(chunk)

        await within(c.stream(lambda data: Sink(), path="/e", method="GET"))
        assert b"".join(chunks) == b"streamed"

        dup = c.pipeline(lambda data: data.body, path="/e", method="POST")

        async def produce() -> None:
            await dup.write(b"through ")
            await dup.end(b"the pipeline")

        got = bytearray()

        async def consume() -> None:
            async for chunk in dup:
                got.extend(chunk)

        await within(asyncio.gather(produce(), consume()))
        assert bytes(got) == b"through the pipeline"
