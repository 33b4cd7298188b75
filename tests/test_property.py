"""Property: whatever a server answers, every request ends once (issue 11).

Hypothesis generates responses, valid and broken (status lines, header
fields, framing, bodies cut short or running over, 1xx heads, bytes after the
response, the connection closed or kept), how they are delivered (split at
any points, with or without pauses), and the request that gets them (method,
body, pipelining, timeouts). Against a scripted server on loopback:

* the request ends in exactly one way, a response whose body reads to its end
  or an undipy error (``UndiciError``), within a bound: nothing hangs;
* the next request on the same client succeeds.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import pytest
import undipy
from helpers import within
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from servers import RawConn, RawServer

HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

# --- responses ------------------------------------------------------------------

status_lines = st.one_of(
    st.sampled_from([200, 201, 204, 206, 301, 304, 400, 404, 500, 503]).map(
        lambda s: b"HTTP/1.1 %d Reason\r\n" % s
    ),
    st.sampled_from(
        [
            b"HTTP/1.0 200 OK\r\n",
            b"HTTP/1.1 200\r\n",
            b"HTTP/1.1 200 OK\n",  # bare LF
            b"HTTP/2 200 OK\r\n",
            b"HTTP/1.1 2000 OK\r\n",
            b"HTTP/1.1 20 OK\r\n",
            b"HTTP/1.1 -200 OK\r\n",
            b"http/1.1 200 OK\r\n",
            b"HTTP/1.1 200 O\x00K\r\n",
            b"ICY 200 OK\r\n",
            b"\r\n",
            b"",
        ]
    ),
)

TOKEN = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
known_names = st.sampled_from(
    [b"X-A", b"Server", b"Set-Cookie", b"Keep-Alive", b"Connection", b"Trailer"]
)
token_names = st.text(TOKEN, min_size=1, max_size=12).map(str.encode)
# Mostly valid names and values; now and then anything at all (CTLs, separators).
field_names = st.one_of(known_names, token_names, token_names, st.binary(max_size=12))
field_values = st.one_of(
    st.sampled_from([b"v", b"", b" padded ", b"a, b", b"close", b"keep-alive", b"timeout=1"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30).map(str.encode),
    st.binary(max_size=40),
)
fields = st.lists(st.tuples(field_names, field_values), max_size=6).map(
    lambda fs: b"".join(n + b": " + v + b"\r\n" for n, v in fs)
)


@st.composite
def framed_bodies(draw: Any) -> bytes:
    """Framing fields, the blank line and a body that may or may not match them."""
    body = draw(st.binary(max_size=300))
    kind = draw(st.sampled_from(["length", "bad-length", "chunked", "bad-chunked", "eof", "both"]))
    if kind == "length":
        return b"Content-Length: %d\r\n\r\n" % len(body) + body
    if kind == "bad-length":
        declared = draw(
            st.one_of(
                st.integers(0, 400).map(lambda n: b"%d" % n),
                st.sampled_from([b"-1", b"1e3", b"0x10", b"5, 6", b"", b"99999999999999999999999"]),
            )
        )
        return b"Content-Length: " + declared + b"\r\n\r\n" + body
    if kind in ("chunked", "both"):
        sizes = draw(st.lists(st.integers(1, 60), max_size=4))
        out, at = b"", 0
        for n in sizes:
            piece = body[at : at + n]
            at += n
            if piece:
                out += b"%x\r\n" % len(piece) + piece + b"\r\n"
        out += b"0\r\n" + draw(fields) + b"\r\n"
        te = b"Transfer-Encoding: chunked\r\n"
        extra = b"Content-Length: 3\r\n" if kind == "both" else b""
        return te + extra + b"\r\n" + out
    if kind == "bad-chunked":
        garbage = draw(
            st.sampled_from(
                [
                    b"zz\r\n",
                    b"5\r\nab\r\n",
                    b"-1\r\n",
                    b"fffffffffffffffff\r\n",
                    b"5;\x01\r\nhello\r\n",
                ]
            )
        )
        return b"Transfer-Encoding: chunked\r\n\r\n" + garbage + body
    return b"\r\n" + body  # eof: no framing; the body runs until the connection closes


@st.composite
def responses(draw: Any) -> bytes:
    interim = draw(
        st.sampled_from([b"", b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Hints\r\n\r\n"])
    )
    head = draw(status_lines) + draw(fields)
    trailing = draw(st.sampled_from([b"", b"", b"HTTP/1.1 200 OK\r\n", b"junk"]))
    return interim + head + draw(framed_bodies()) + trailing


@dataclass(frozen=True)
class Delivery:
    sizes: tuple[int, ...]  # piece sizes; the rest goes in the last piece
    pause: float  # between pieces
    then: str  # "close" the connection after sending, or "keep" it open


deliveries = st.builds(
    Delivery,
    sizes=st.lists(st.integers(1, 64), max_size=6).map(tuple),
    pause=st.sampled_from([0.0, 0.0, 0.002, 0.02]),
    then=st.sampled_from(["close", "keep"]),
)


@dataclass(frozen=True)
class Ask:
    method: str
    body: str  # "none", "bytes" or "iterable"
    pipelining: int
    body_timeout: float


asks = st.builds(
    Ask,
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE"]),
    body=st.sampled_from(["none", "bytes", "iterable"]),
    pipelining=st.sampled_from([1, 3]),
    body_timeout=st.sampled_from([0.3, 2.0]),
)


def request_body(kind: str) -> Any:
    if kind == "bytes":
        return b"payload"
    if kind == "iterable":
        return iter([b"pay", b"load"])
    return None


def first_then_hello(wire: bytes, how: Delivery) -> Any:
    """Connection 0 answers its first request with ``wire``; anything after
    that, and every later connection, is answered correctly."""

    async def script(conn: RawConn) -> None:
        try:
            await serve(conn)
        except (ConnectionError, TimeoutError):
            pass  # the client gave up on a response it could not use: its right

    async def serve(conn: RawConn) -> None:
        if not await conn.read_request():
            return
        if conn.index == 0:
            at = 0
            for n in how.sizes:
                if at >= len(wire):
                    break
                await conn.send(wire[at : at + n])
                at += n
                if how.pause:
                    await asyncio.sleep(how.pause)
            if at < len(wire):
                await conn.send(wire[at:])
            if how.then == "close":
                return
        else:
            await conn.send(HELLO)
        while await conn.read_request(timeout=30):  # past any client timeout
            await conn.send(HELLO)

    return script


async def outcome(c: undipy.Client, ask: Ask) -> str:
    """How the request ended: "response" (body read to its end) or the error's class."""
    try:
        resp = await c.request(
            path="/",
            method=ask.method,
            body=request_body(ask.body),
            body_timeout=ask.body_timeout,
        )
        await resp.body.bytes()
    except undipy.UndiciError as exc:
        return type(exc).__name__
    return "response"


@pytest.mark.timeout(300)
@settings(
    # CI runs 150; a longer hunt: UNDIPY_PROPERTY_EXAMPLES=5000
    max_examples=int(os.environ.get("UNDIPY_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(wire=responses(), how=deliveries, ask=asks)
async def test_every_request_ends_once_and_the_next_succeeds(
    wire: bytes, how: Delivery, ask: Ask
) -> None:
    async with RawServer(first_then_hello(wire, how)) as srv:
        async with undipy.Client(srv.origin, pipelining=ask.pipelining, headers_timeout=2.0) as c:
            # An error that is not an UndiciError escapes and fails the example;
            # a hang fails it through `within`.
            event(await within(outcome(c, ask), 10))  # --hypothesis-show-statistics
            resp = await within(c.request(path="/", method="GET"))
            assert resp.status_code == 200
            assert await within(resp.body.bytes()) == b"hello"
