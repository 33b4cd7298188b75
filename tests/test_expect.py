"""``expect_continue=True``: the body waits for the server's 100 Continue."""

from __future__ import annotations

import asyncio

import undipy
from helpers import RawServerFactory, closing, within
from servers import RawConn, response

HEAD_END = b"\r\n\r\n"


async def test_body_is_sent_after_100_continue(raw_server: RawServerFactory) -> None:
    seen: dict[str, bytes] = {}

    async def script(conn: RawConn) -> None:
        seen["head"] = await conn.read_until(HEAD_END)
        # Nothing of the body may arrive before the 100.
        seen["early"] = await conn.read_available(0.2)
        await conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        seen["body"] = await conn.read_exactly(5)
        await conn.send(response(200, b"stored"))

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin)) as client:
        resp = await within(
            client.request(path="/up", method="PUT", body=b"hello", expect_continue=True)
        )
        assert (resp.status_code, await resp.body.text()) == (200, "stored")
    assert b"\r\nexpect: 100-continue\r\ncontent-length: 5\r\n" in seen["head"]
    assert seen["early"] == b""
    assert seen["body"] == b"hello"


async def test_final_answer_without_100_skips_the_body(raw_server: RawServerFactory) -> None:
    """A 417 (or any final status) instead of 100: the response is delivered, the body is
    never sent, and the connection is not reused (the request was left incomplete)."""

    async def refuse(conn: RawConn) -> None:
        await conn.read_until(HEAD_END)
        await conn.send(response(417, b"no"))
        assert await conn.wait_closed_by_peer(2.0)

    async def ok(conn: RawConn) -> None:
        await conn.read_request()
        await conn.send(response(200, b"fine"))

    srv = await raw_server([refuse, ok])
    async with closing(undipy.Client(srv.origin)) as client:
        resp = await within(
            client.request(path="/", method="POST", body=b"x" * 10, expect_continue=True)
        )
        assert (resp.status_code, await resp.body.text()) == (417, "no")
        resp = await within(client.request(path="/", method="GET"))
        assert await resp.body.text() == "fine"
    assert srv.connections == 2
    assert srv.received[0].endswith(HEAD_END)


async def test_body_goes_anyway_when_no_100_comes(raw_server: RawServerFactory) -> None:
    """Servers that ignore Expect: after a short wait the client sends the body."""

    async def script(conn: RawConn) -> None:
        await conn.read_request(timeout=3.0)
        await conn.send(response(200, b"late"))

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin)) as client:
        resp = await within(
            client.request(path="/", method="POST", body=b"abc", expect_continue=True)
        )
        assert await resp.body.text() == "late"
    assert srv.received[0].endswith(b"content-length: 3\r\n\r\nabc")


async def test_an_expect_header_is_refused_before_sending(raw_server: RawServerFactory) -> None:
    srv = await raw_server()
    async with closing(undipy.Client(srv.origin)) as client:
        try:
            await client.request(path="/", method="POST", body=b"a", headers={"Expect": "x"})
        except undipy.NotSupportedError as e:
            assert e.code == "UND_ERR_NOT_SUPPORTED"
        else:
            raise AssertionError("expect header accepted")
    await asyncio.sleep(0.05)
    assert srv.connections == 0


async def test_an_expect_continue_request_is_never_pipelined(
    raw_server: RawServerFactory,
) -> None:
    """Even idempotent, it waits for an empty connection: written behind a running
    request, its wait for the 100 would be lost (and against a server that waits for
    the body, it would never end)."""
    seen: dict[str, bytes] = {}

    async def script(conn: RawConn) -> None:
        await conn.read_request()
        # The second request must not arrive while the first is unanswered.
        seen["early"] = await conn.read_available(0.3)
        await conn.send(response(200, b"first"))
        seen["head"] = await conn.read_until(HEAD_END)
        await conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        seen["body"] = await conn.read_exactly(3)
        await conn.send(response(200, b"second"))

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin, pipelining=4)) as client:
        first = asyncio.ensure_future(client.request(path="/1", method="GET"))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(
            client.request(
                path="/2", method="PUT", body=b"abc", idempotent=True, expect_continue=True
            )
        )
        assert await within((await within(first)).body.text()) == "first"
        assert await within((await within(second)).body.text()) == "second"
    assert seen["early"] == b""
    assert seen["head"].startswith(b"PUT /2 ") and seen["body"] == b"abc"
