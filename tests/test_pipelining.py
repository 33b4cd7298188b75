"""Pipelining and scheduling (undici.md §2.1-2.6, §5 scenarios 1-30): one queue per client,
requests written in queue order and responses matched first in first out, the admission
rules of undici's ``busy()``, ``client.pipelining`` at run time, what ends a pipeline,
``dispatch()``'s return value and ``"drain"``, which requests fail and which are re-sent
when a connection dies, aborts, and the stats.

Each test drives its server connection step by step (``Hand``): the server reads, checks,
answers or closes exactly when the scenario says, so "not answered yet" is a fact. Bytes
are asserted exactly; every wait is bounded; no assertion is about time.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import undipy
from pipelining_helpers import (
    SETTLE,
    Events,
    Hand,
    Ledger,
    StalledServer,
    T,
    closing,
    nothing_more,
    one_read,
    read_requests,
    req,
    request_lines,
    wait_until,
    within,
)
from servers import RawConn, RawServer, chunked, response
from undipy import (
    ClientStats,
    InformationalError,
    PoolStats,
    RequestAbortedError,
    SocketError,
    UndiciError,
)


def echo(*paths: str) -> bytes:
    """Responses (200, body = the path) for ``paths``, concatenated."""
    return b"".join(response(200, p.encode()) for p in paths)


def path_of(raw_request: bytes) -> str:
    return raw_request.split(b" ", 2)[1].decode()


async def stalled(hand: Hand) -> StalledServer:
    return await StalledServer(hand).start()


async def echo_script(conn: RawConn) -> None:
    """Answer every request with its path until the client closes."""
    with contextlib.suppress(TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        while r := await conn.read_request(timeout=T):
            await conn.send(echo(path_of(r)))


# --------------------------------------------------------------------------- queue order, FIFO


@pytest.mark.loops
async def test_pipelined_gets_all_reach_the_server_before_the_first_answer(raw_server) -> None:
    """undici 'N times GET with pipelining N': four blocking=False GETs are all written
    before the server answers anything, in queue order; each answer completes exactly the
    request at the head of the pipeline, and only it."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Client(srv.origin, pipelining=4)) as c:
        probes = [ledger.dispatch(c, f"/{i}", blocking=False) for i in range(4)]
        conn = await hand.next()
        assert await read_requests(conn, 4) == [req(srv, f"/{i}") for i in range(4)]
        assert c.stats == ClientStats(connected=1, pending=0, running=4, size=4)
        for i, p in enumerate(probes):
            await asyncio.sleep(SETTLE if i == 0 else 0)
            assert [q.done.done() for q in probes] == [True] * i + [False] * (4 - i)
            await conn.send(echo(f"/{i}"))
            await p.wait()
        await ledger.all_ended()
        assert [p.outcome for p in probes] == [(200, f"/{i}".encode()) for i in range(4)]
        assert [p.connects for p in probes] == [1] * 4
        assert c.stats == ClientStats(connected=1, pending=0, running=0, size=0)
    assert srv.connections == 1


STATUSES = (200, 201, 202, 203, 206)


def _framed(i: int) -> bytes:
    """Response ``i``: status STATUSES[i], body "/i"; odd ones chunked with a trailer."""
    body = f"/{i}".encode()
    if i % 2:
        return response(
            STATUSES[i],
            chunked(body[:1], body[1:], trailers=[("X-N", str(i))]),
            [("Transfer-Encoding", "chunked")],
        )
    return response(STATUSES[i], body)


@pytest.mark.loops
@pytest.mark.parametrize("delivery", ["one-send", "7-byte-pieces", "bytewise"])
async def test_responses_split_anywhere_are_matched_in_order(raw_server, delivery: str) -> None:
    """Five pipelined responses (content-length and chunked) sent together, or cut at
    boundaries that fall inside heads, bodies and chunk framing: each request gets its own
    status and body (its path)."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Client(srv.origin, pipelining=5)) as c:
        probes = [ledger.dispatch(c, f"/{i}", blocking=False) for i in range(5)]
        conn = await hand.next()
        assert await read_requests(conn, 5) == [req(srv, f"/{i}") for i in range(5)]
        wire = b"".join(_framed(i) for i in range(5))
        if delivery == "one-send":
            await conn.send(wire)
        else:
            await conn.send_split(wire, 7 if delivery == "7-byte-pieces" else 1)
        await ledger.all_ended()
        assert [p.outcome for p in probes] == [(STATUSES[i], f"/{i}".encode()) for i in range(5)]
    assert srv.connections == 1


# --------------------------------------------------------------------------- admission (busy)


NON_IDEMPOTENT = {
    "post": {"method": "POST", "body": b"data"},
    "put": {"method": "PUT", "body": b"data"},
    "delete": {"method": "DELETE"},
    "get-idempotent-false": {"method": "GET", "idempotent": False},
}


@pytest.mark.parametrize("opts", NON_IDEMPOTENT.values(), ids=NON_IDEMPOTENT.keys())
async def test_non_idempotent_request_waits_for_an_empty_pipeline(
    raw_server, opts: dict[str, Any]
) -> None:
    """undici 'pipelining non-idempotent': with two GETs running, a non-idempotent request
    is not written until both responses are in; a GET queued behind it is then pipelined
    right behind it (in the same write), before it is answered."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    method = opts["method"]
    x_bytes = req(srv, "/x", method, body=opts.get("body"))
    async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
        p1 = ledger.dispatch(c, "/1", blocking=False)
        p2 = ledger.dispatch(c, "/2", blocking=False)
        px = ledger.dispatch(c, "/x", **opts)
        p3 = ledger.dispatch(c, "/3", blocking=False)
        conn = await hand.next()
        assert await read_requests(conn, 2) == [req(srv, "/1"), req(srv, "/2")]
        await nothing_more(conn)
        assert c.stats == ClientStats(connected=1, pending=2, running=2, size=4)
        await conn.send(echo("/1"))
        await p1.wait()
        await nothing_more(conn)  # /2 still runs
        await conn.send(echo("/2"))
        assert await one_read(conn) == x_bytes + req(srv, "/3")
        await conn.send(echo("/x", "/3"))
        await ledger.all_ended()
        assert [p.outcome for p in (p1, p2, px, p3)] == [
            (200, b"/1"), (200, b"/2"), (200, b"/x"), (200, b"/3")
        ]
    assert srv.connections == 1


def _gen_body() -> Iterator[bytes]:
    yield b"ab"
    yield b"cde"


async def _agen_body() -> AsyncIterator[bytes]:
    yield b"ab"
    yield b"cde"


CHUNKED = "transfer-encoding: chunked"
STREAM_BODIES = {
    "iterable": (_gen_body, CHUNKED, chunked(b"ab", b"cde")),
    "async-iterable": (_agen_body, CHUNKED, chunked(b"ab", b"cde")),
    "file": (lambda: io.BytesIO(b"abcde"), "content-length: 5", b"abcde"),  # its size is known
}


@pytest.mark.parametrize(
    ("make", "framing", "framed"), STREAM_BODIES.values(), ids=STREAM_BODIES.keys()
)
async def test_streaming_body_request_waits_for_an_empty_pipeline(
    raw_server, make: Any, framing: str, framed: bytes
) -> None:
    """undici 'only one streaming req at a time': a request whose body is streamed (even
    an idempotent one) is not written while another request runs; it goes out once the
    running response is in, and the GET queued behind it is served after it."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
        p1 = ledger.dispatch(c, "/1", blocking=False)
        conn = await hand.next()
        assert await read_requests(conn, 1) == [req(srv, "/1")]
        ps = ledger.dispatch(c, "/s", method="POST", idempotent=True, body=make())
        p2 = ledger.dispatch(c, "/2", blocking=False)
        await nothing_more(conn)
        await conn.send(echo("/1"))
        stream_head = req(srv, "/s", "POST", headers=[framing])
        assert await read_requests(conn, 1) == [stream_head + framed]
        await conn.send(echo("/s"))
        assert await read_requests(conn, 1) == [req(srv, "/2")]
        await conn.send(echo("/2"))
        await ledger.all_ended()
        assert [p.outcome for p in (p1, ps, p2)] == [(200, b"/1"), (200, b"/s"), (200, b"/2")]
    assert srv.connections == 1


async def test_nothing_is_written_while_a_request_body_is_still_streaming(raw_server) -> None:
    """undici's socket-level busy (kWriting): while a streamed body is still going out,
    a GET queued behind it is not written; it follows the last chunk, before the streamed
    request is answered (undici resumes the queue when the body has been written)."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    gate = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"one"
        await gate.wait()
        yield b"two"

    async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
        ps = ledger.dispatch(c, "/s", method="POST", body=body())
        p2 = ledger.dispatch(c, "/2", blocking=False)
        conn = await hand.next()
        stream_head = req(srv, "/s", "POST", headers=[CHUNKED])
        assert await conn.read_until(b"3\r\none\r\n") == stream_head + b"3\r\none\r\n"
        await nothing_more(conn)
        gate.set()
        assert await conn.read_exactly(len(b"3\r\ntwo\r\n0\r\n\r\n")) == b"3\r\ntwo\r\n0\r\n\r\n"
        assert await read_requests(conn, 1) == [req(srv, "/2")]
        await conn.send(echo("/s", "/2"))
        await ledger.all_ended()
        assert [p.outcome for p in (ps, p2)] == [(200, b"/s"), (200, b"/2")]


async def test_blocking_request_holds_the_pipeline_until_its_headers(raw_server) -> None:
    """undici 'pipelining blocked': nothing is written behind a blocking=True request
    until its response head arrives; then the queued GETs go out together, while its
    body is still outstanding."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
        p1 = ledger.dispatch(c, "/1", blocking=True)
        p2 = ledger.dispatch(c, "/2", blocking=False)
        p3 = ledger.dispatch(c, "/3", blocking=False)
        conn = await hand.next()
        assert await read_requests(conn, 1) == [req(srv, "/1")]
        await nothing_more(conn)
        assert c.stats == ClientStats(connected=1, pending=2, running=1, size=3)
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
        assert await one_read(conn) == req(srv, "/2") + req(srv, "/3")
        assert not p1.done.done()
        await conn.send(b"/1" + echo("/2", "/3"))
        await ledger.all_ended()
        assert [p.outcome for p in (p1, p2, p3)] == [(200, b"/1"), (200, b"/2"), (200, b"/3")]
    assert srv.connections == 1


async def test_upgrade_waits_for_an_empty_pipeline_and_nothing_follows_it(raw_server) -> None:
    """undici 'upgrade wait for empty pipeline': an upgrade request is written only once
    the running GET is answered, and no request is pipelined behind it. The server then
    drops the connection: the upgrade fails (it is the head), the queued GET is sent on a
    new connection."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
        p1 = ledger.dispatch(c, "/1", blocking=False)
        conn0 = await hand.next()
        assert await read_requests(conn0, 1) == [req(srv, "/1")]
        pu = ledger.dispatch(c, "/ws", upgrade="websocket")
        p2 = ledger.dispatch(c, "/2", blocking=False)
        await nothing_more(conn0)
        await conn0.send(echo("/1"))
        upgrade = req(srv, "/ws", connection="upgrade", headers=["upgrade: websocket"])
        assert await read_requests(conn0, 1) == [upgrade]
        await nothing_more(conn0)
        await conn0.close()
        conn1 = await hand.next()
        assert await one_read(conn1) == req(srv, "/2")
        await conn1.send(echo("/2"))
        await ledger.all_ended()
        assert [p1.outcome, pu.outcome, p2.outcome] == [(200, b"/1"), (SocketError,), (200, b"/2")]
        assert [p.connects for p in (p1, pu, p2)] == [1, 1, 1]
    assert srv.connections == 2


# --------------------------------------------------------------------------- client.pipelining


@pytest.mark.loops
async def test_raising_pipelining_writes_the_queued_requests_at_once(raw_server) -> None:
    """undici 'increase pipelining': with pipelining 1, /2 and /3 wait behind /1; setting
    client.pipelining = 3 writes both at once (one write), before /1 is answered."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Client(srv.origin, pipelining=1)) as c:
        probes = [ledger.dispatch(c, f"/{i}", blocking=False) for i in (1, 2, 3)]
        conn = await hand.next()
        assert await read_requests(conn, 1) == [req(srv, "/1")]
        await nothing_more(conn)
        assert c.stats == ClientStats(connected=1, pending=2, running=1, size=3)
        c.pipelining = 3
        assert c.pipelining == 3
        assert await one_read(conn) == req(srv, "/2") + req(srv, "/3")
        assert c.stats == ClientStats(connected=1, pending=0, running=3, size=3)
        await conn.send(echo("/1", "/2", "/3"))
        await ledger.all_ended()
        assert [p.outcome for p in probes] == [(200, b"/1"), (200, b"/2"), (200, b"/3")]
    assert srv.connections == 1


async def test_lowering_pipelining_holds_queued_requests_until_there_is_room(raw_server) -> None:
    """Lowering client.pipelining from 3 to 1 while three requests run: nothing more is
    written until all three are answered, then one request at a time."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
        first = [ledger.dispatch(c, f"/{i}", blocking=False) for i in (1, 2, 3)]
        conn = await hand.next()
        assert await read_requests(conn, 3) == [req(srv, f"/{i}") for i in (1, 2, 3)]
        c.pipelining = 1
        later = [ledger.dispatch(c, f"/{i}", blocking=False) for i in (4, 5)]
        assert [p.accepted for p in later] == [False, False]
        await conn.send(echo("/1", "/2"))
        await first[1].wait()
        await nothing_more(conn)  # /3 still runs: 1 running >= pipelining 1
        await conn.send(echo("/3"))
        assert await read_requests(conn, 1) == [req(srv, "/4")]
        await nothing_more(conn)
        await conn.send(echo("/4"))
        assert await read_requests(conn, 1) == [req(srv, "/5")]
        await conn.send(echo("/5"))
        await ledger.all_ended()
        assert [p.outcome for p in first + later] == [
            (200, f"/{i}".encode()) for i in (1, 2, 3, 4, 5)
        ]
    assert srv.connections == 1


async def test_pipelining_zero_means_one_request_per_connection(raw_server) -> None:
    """undici 'Disable keep alive': pipelining 0 sends ``connection: close`` and uses a new
    socket per request, one at a time. The server answers keep-alive and never closes:
    the client closes each connection itself."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Client(srv.origin, pipelining=0)) as c:
        probes = [ledger.dispatch(c, f"/{i}", blocking=False) for i in range(3)]
        for i in range(3):
            conn = await hand.next()
            assert await read_requests(conn, 1) == [req(srv, f"/{i}", connection="close")]
            await nothing_more(conn)
            assert hand.no_new_connection() and srv.connections == i + 1
            assert c.stats.running == 1
            await conn.send(echo(f"/{i}"))
            assert await conn.wait_closed_by_peer(T), f"the client kept connection {i} open"
        await ledger.all_ended()
        assert [p.outcome for p in probes] == [(200, f"/{i}".encode()) for i in range(3)]
    assert srv.connections == 3


# --------------------------------------------------------------------------- what ends a pipeline


CLOSERS: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    # id: (client options, closer's dispatch options, closer's method)
    "head": ({}, {"method": "HEAD"}, "HEAD"),
    "reset-true": ({}, {"reset": True}, "GET"),
    "connection-close-header": ({}, {"headers": {"connection": "close"}}, "GET"),
    "body-on-get": ({}, {"body": b"x"}, "GET"),
    "max-requests-per-client": ({"max_requests_per_client": 2}, {}, "GET"),
}


def _closer_bytes(srv: RawServer, case: str, method: str) -> bytes | None:
    """Exact bytes of the closer, or None where undici's and undipy's differ harmlessly
    (undici says keep-alive for a GET with a body, then closes anyway)."""
    if case == "body-on-get":
        return None
    return req(srv, "/c", method, connection="close")


async def _ends_the_pipeline(case: str, server_closes: bool) -> None:
    client_opts, closer_opts, method = CLOSERS[case]
    hand = Hand()
    srv = await stalled(hand)
    try:
        ledger = Ledger()
        c = undipy.Client(srv.origin, pipelining=4, **client_opts)
        async with closing(c):
            events = Events(c)
            # All four are queued before the connection is up, so all four are assigned
            # to it at once (no race with the connect).
            p1 = ledger.dispatch(c, "/1", blocking=False)
            pc = ledger.dispatch(c, "/c", blocking=False, **closer_opts)
            p2 = ledger.dispatch(c, "/2", blocking=False)
            p3 = ledger.dispatch(c, "/3", blocking=False)
            await srv.release()
            conn0 = await hand.next()
            got = await read_requests(conn0, 2)
            assert got[0] == req(srv, "/1")
            expected = _closer_bytes(srv, case, method)
            if expected is None:
                assert request_lines(got[1]) == [b"GET /c HTTP/1.1"]
                assert got[1].endswith(b"\r\ncontent-length: 1\r\n\r\nx")
            else:
                assert got[1] == expected
            await nothing_more(conn0)  # nothing is written behind the closer
            closer_response = (
                response(200, headers=[("Content-Length", "2")]) if method == "HEAD" else echo("/c")
            )
            await conn0.send(echo("/1") + closer_response)
            if server_closes:
                await conn0.close()
            else:
                assert await conn0.wait_closed_by_peer(T), "the client kept the connection"
            conn1 = await hand.next()
            last = "close" if case == "max-requests-per-client" else "keep-alive"
            assert await one_read(conn1) == req(srv, "/2") + req(srv, "/3", connection=last)
            await conn1.send(echo("/2", "/3"))
            await ledger.all_ended()
            closer_body = b"" if method == "HEAD" else b"/c"
            assert [p.outcome for p in (p1, pc, p2, p3)] == [
                (200, b"/1"), (200, closer_body), (200, b"/2"), (200, b"/3")
            ]
            assert [p.connects for p in (p1, pc, p2, p3)] == [1, 1, 1, 1]
            if not server_closes:
                await events.wait_for("disconnect")
                err = events.named("disconnect")[0]
                assert isinstance(err, InformationalError), err
        assert srv.connections == 2
    finally:
        await srv.stop()


@pytest.mark.parametrize("case", CLOSERS.keys())
async def test_closing_request_ends_the_pipeline_and_the_server_closes(case: str) -> None:
    """HEAD, reset=True, ``connection: close``, a body on GET, or the last request
    allowed by max_requests_per_client may be pipelined behind a running GET, but nothing
    is written behind it; once the server has answered both and closed, the two GETs
    queued behind it go out together on a new connection, and nobody fails."""
    await _ends_the_pipeline(case, server_closes=True)


@pytest.mark.parametrize("case", CLOSERS.keys())
async def test_closing_request_ends_the_pipeline_and_the_client_closes(case: str) -> None:
    """Same, with a server that answers keep-alive and leaves the connection open: the
    client itself closes it once the responses are in (undici: 'reset is set and nothing
    else runs -> destroy'), then sends the queued GETs on a new connection."""
    await _ends_the_pipeline(case, server_closes=False)


async def test_head_with_reset_false_is_pipelined_like_a_get(raw_server) -> None:
    """undici 'HEAD keep-alive ... reset:false': a HEAD with reset=False keeps the
    connection, so requests are pipelined behind it on the same socket."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
        p1 = ledger.dispatch(c, "/1", blocking=False)
        ph = ledger.dispatch(c, "/h", method="HEAD", reset=False)
        p2 = ledger.dispatch(c, "/2", blocking=False)
        conn = await hand.next()
        assert await read_requests(conn, 3) == [
            req(srv, "/1"), req(srv, "/h", "HEAD"), req(srv, "/2")
        ]
        await conn.send(echo("/1") + response(200, headers=[("Content-Length", "5")]) + echo("/2"))
        await ledger.all_ended()
        assert [p.outcome for p in (p1, ph, p2)] == [(200, b"/1"), (200, b""), (200, b"/2")]
    assert srv.connections == 1


# --------------------------------------------------------------------------- dispatch() and drain


async def test_dispatch_is_false_while_full_and_drain_fires_once_there_is_room(
    raw_server,
) -> None:
    """undici §2.3: dispatch() returns False once size >= pipelining (and while requests
    are pending); the request is still queued and sent. 'drain' fires once, when the
    client can take more again, not while it is still full."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Client(srv.origin, pipelining=2)) as c:
        warm = ledger.dispatch(c, "/w")
        conn = await hand.next()
        assert await read_requests(conn, 1) == [req(srv, "/w")]
        await conn.send(echo("/w"))
        await warm.wait()
        await wait_until(lambda: c.stats.size == 0, "the warm-up request to leave the queue")
        await asyncio.sleep(SETTLE)
        events = Events(c)  # from here on: connected, idle, nothing owed

        pa = ledger.dispatch(c, "/a", blocking=False)
        pb = ledger.dispatch(c, "/b", blocking=False)
        pc = ledger.dispatch(c, "/c", blocking=False)
        assert [pa.accepted, pb.accepted, pc.accepted] == [True, False, False]
        assert await read_requests(conn, 2) == [req(srv, "/a"), req(srv, "/b")]
        await nothing_more(conn)
        assert c.stats == ClientStats(connected=1, pending=1, running=2, size=3)
        await conn.send(echo("/a"))
        assert await read_requests(conn, 1) == [req(srv, "/c")]  # /c takes /a's place
        await asyncio.sleep(SETTLE)
        assert events.named("drain") == [], "drain while the pipeline is still full"
        await conn.send(echo("/b"))
        await events.wait_for("drain")
        await conn.send(echo("/c"))
        await ledger.all_ended()
        assert len(events.named("drain")) == 1
        assert [p.outcome for p in (pa, pb, pc)] == [(200, b"/a"), (200, b"/b"), (200, b"/c")]
        pd = ledger.dispatch(c, "/d", blocking=False)
        assert pd.accepted is True
        assert await read_requests(conn, 1) == [req(srv, "/d")]
        await conn.send(echo("/d"))
        await ledger.all_ended()
        assert pd.outcome == (200, b"/d")
    assert srv.connections == 1


SOCKET_BLOCKERS = {
    "blocking-true": ({"blocking": True}, "GET"),
    "head": ({"method": "HEAD"}, "HEAD"),
    "reset-true": ({"reset": True}, "GET"),
    "streaming-body": ({"method": "POST", "body": [b"ab", b"cde"]}, "POST"),
}


@pytest.mark.parametrize(("opts", "method"), SOCKET_BLOCKERS.values(), ids=SOCKET_BLOCKERS.keys())
async def test_dispatch_is_false_for_a_request_that_blocks_its_socket(
    raw_server, opts: dict[str, Any], method: str
) -> None:
    """undici kBusy includes the socket's own busy state: once a blocking request, a HEAD
    (reset), a reset=True request or a streamed body is written, the socket takes nothing
    more (kBlocking / kReset / kWriting), so dispatch() of that very request returns False
    on an idle connected client with pipelining 3; 'drain' follows, once."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
        warm = ledger.dispatch(c, "/w")
        conn = await hand.next()
        assert await read_requests(conn, 1) == [req(srv, "/w")]
        await conn.send(echo("/w"))
        await warm.wait()
        await wait_until(lambda: c.stats.size == 0, "the warm-up request to leave the queue")
        await asyncio.sleep(SETTLE)
        events = Events(c)
        px = ledger.dispatch(c, "/x", **opts)
        assert px.accepted is False
        got = await read_requests(conn, 1)
        assert request_lines(got[0]) == [f"{method} /x HTTP/1.1".encode()]
        await conn.send(response(200, headers=[("Content-Length", "0")]))
        await ledger.all_ended()
        assert px.outcome == (200, b"")
        await events.wait_for("drain")
        await asyncio.sleep(SETTLE)
        assert len(events.named("drain")) == 1


async def test_queued_requests_before_the_connection_is_up() -> None:
    """Requests dispatched while the connection is still being made are all pending (none
    running); once it is up they go out in one write, and all complete."""
    hand = Hand()
    srv = await stalled(hand)
    try:
        ledger = Ledger()
        async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
            probes = [ledger.dispatch(c, f"/{i}", blocking=False) for i in range(3)]
            await asyncio.sleep(SETTLE)
            s = c.stats
            assert (s.pending, s.running, s.size) == (3, 0, 3)
            await srv.release()
            conn = await hand.next()
            assert await one_read(conn) == b"".join(req(srv, f"/{i}") for i in range(3))
            await conn.send(echo("/0", "/1", "/2"))
            await ledger.all_ended()
            assert [p.outcome for p in probes] == [(200, f"/{i}".encode()) for i in range(3)]
        assert srv.connections == 1
    finally:
        await srv.stop()


async def test_stats_connected_is_zero_while_connecting() -> None:
    """undici ClientStats.connected is the client's kConnected: a socket that is up. While
    the connect is still pending it is 0 (undici pool 'busy' test: connected 0)."""
    hand = Hand()
    srv = await stalled(hand)
    try:
        async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
            ledger = Ledger()
            ledger.dispatch(c, "/0", blocking=False)
            await asyncio.sleep(SETTLE)
            assert c.stats == ClientStats(connected=0, pending=1, running=0, size=1)
            await srv.release()
            conn = await hand.next()
            assert await read_requests(conn, 1) == [req(srv, "/0")]
            await conn.send(echo("/0"))
            await ledger.all_ended()
            assert c.stats == ClientStats(connected=1, pending=0, running=0, size=0)
    finally:
        await srv.stop()


async def test_dispatch_is_false_while_requests_wait_for_the_connection() -> None:
    """undici kBusy includes ``pending > 0``: before the socket is up every request is
    pending, so every dispatch() returns False; 'drain' fires once they are written and
    the pipeline has room again."""
    hand = Hand()
    srv = await stalled(hand)
    try:
        async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
            events = Events(c)
            ledger = Ledger()
            probes = [ledger.dispatch(c, f"/{i}", blocking=False) for i in range(3)]
            assert [p.accepted for p in probes] == [False, False, False]
            await srv.release()
            conn = await hand.next()
            assert await read_requests(conn, 3) == [req(srv, f"/{i}") for i in range(3)]
            await conn.send(echo("/0", "/1", "/2"))
            await ledger.all_ended()
            await events.wait_for("drain")
            assert len(events.named("drain")) == 1
    finally:
        await srv.stop()


async def test_pool_busy_before_connecting_like_undici() -> None:
    """undici test/pool.js 'busy': Pool(connections 2, pipelining 2), 8 requests before any
    connection is up: after the n-th, pending = size = n, queued = max(n - 2, 0), running
    and connected 0, and dispatch() is busy from the 2nd on."""
    srv = await StalledServer(echo_script).start()
    try:
        async with closing(undipy.Pool(srv.origin, connections=2, pipelining=2)) as pool:
            ledger = Ledger()
            for n in range(1, 9):
                p = ledger.dispatch(pool, f"/{n}", blocking=False)
                assert p.accepted is (n == 1), n
                assert pool.stats == PoolStats(
                    connected=0, free=0, pending=n, queued=max(n - 2, 0), running=0, size=n
                ), n
            await srv.release()
            await ledger.all_ended(timeout=2 * T)
            assert [p.outcome for p in ledger.probes] == [
                (200, f"/{n}".encode()) for n in range(1, 9)
            ]
        assert srv.connections == 2
    finally:
        await srv.stop()


@pytest.mark.parametrize("kind", ["non-idempotent", "streaming-body"])
async def test_dispatch_is_false_for_a_request_that_must_wait_for_the_pipeline(
    raw_server, kind: str
) -> None:
    """undici: a request that busy(request) keeps off the wire stays pending, and
    ``pending > 0`` makes the client busy: dispatch() returns False for it (pipelining 3,
    one GET running), and 'drain' follows once it has been written."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    body: Any = b"data" if kind == "non-idempotent" else _gen_body()
    async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
        events = Events(c)
        p1 = ledger.dispatch(c, "/1", blocking=False)
        conn = await hand.next()
        assert await read_requests(conn, 1) == [req(srv, "/1")]
        await asyncio.sleep(SETTLE)
        drains = len(events.named("drain"))  # one may be owed for /1 itself
        px = ledger.dispatch(c, "/x", method="POST", body=body)
        assert px.accepted is False
        await conn.send(echo("/1"))
        assert request_lines((await read_requests(conn, 1))[0]) == [b"POST /x HTTP/1.1"]
        await events.wait_for("drain", drains + 1)
        await conn.send(echo("/x"))
        await ledger.all_ended()
        assert [p.outcome for p in (p1, px)] == [(200, b"/1"), (200, b"/x")]
        assert len(events.named("drain")) == drains + 1


async def test_pool_does_not_queue_behind_a_request_waiting_for_the_pipeline(
    raw_server,
) -> None:
    """Pool(connections=2, pipelining=3): /1 runs on the first connection, a POST must wait
    there for /1. undici's client then reports busy (pending > 0), so the next GET goes to
    a second connection and is answered while /1 is still outstanding."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Pool(srv.origin, connections=2, pipelining=3)) as pool:
        p1 = ledger.dispatch(pool, "/1", blocking=False)
        conn0 = await hand.next()
        assert await read_requests(conn0, 1) == [req(srv, "/1")]
        pp = ledger.dispatch(pool, "/p", method="POST", body=b"data")
        p2 = ledger.dispatch(pool, "/2", blocking=False)
        conn1 = await hand.next()
        assert await read_requests(conn1, 1) == [req(srv, "/2")]
        await conn1.send(echo("/2"))
        await p2.wait()
        assert not p1.done.done()
        await nothing_more(conn0)
        await conn0.send(echo("/1"))
        assert await read_requests(conn0, 1) == [req(srv, "/p", "POST", body=b"data")]
        await conn0.send(echo("/p"))
        await ledger.all_ended()
        assert [p.outcome for p in (p1, pp, p2)] == [(200, b"/1"), (200, b"/p"), (200, b"/2")]
    assert srv.connections == 2


# --------------------------------------------------------------------------- failures and re-sends


@pytest.mark.parametrize("how", ["fin", "rst"])
async def test_connection_loss_fails_only_the_head_and_resends_the_rest(
    raw_server, how: str
) -> None:
    """undici §2.4: three pipelined GETs on a fresh connection; the server drops it without
    answering. Only the head (/1) fails; /2 and /3 are re-sent (and only they) on a new
    connection, in one write, on_connect being called again for each."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
        probes = [ledger.dispatch(c, f"/{i}", blocking=False) for i in (1, 2, 3)]
        conn0 = await hand.next()
        assert await read_requests(conn0, 3) == [req(srv, f"/{i}") for i in (1, 2, 3)]
        if how == "rst":
            conn0.reset()
        else:
            await conn0.close()
        conn1 = await hand.next()
        assert await one_read(conn1) == req(srv, "/2") + req(srv, "/3")
        await conn1.send(echo("/2", "/3"))
        await ledger.all_ended()
        assert [p.outcome for p in probes] == [(SocketError,), (200, b"/2"), (200, b"/3")]
        assert probes[0].kinds == ["connect", "error"]
        assert [p.connects for p in probes] == [1, 2, 2]
        await nothing_more(conn1)
    assert srv.connections == 2


async def test_headers_timeout_fails_the_head_and_resends_the_rest(raw_server) -> None:
    """undici 'Timeout with pipelining' / 'timeout with pipelining 1': the server never
    answers; the headers timeout destroys the connection and fails the head request only;
    the other two are re-sent together on a new connection and answered there."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Client(srv.origin, pipelining=3, headers_timeout=0.3)) as c:
        probes = [ledger.dispatch(c, f"/{i}", blocking=False) for i in (1, 2, 3)]
        conn0 = await hand.next()
        assert await read_requests(conn0, 3) == [req(srv, f"/{i}") for i in (1, 2, 3)]
        assert await conn0.wait_closed_by_peer(T), "the headers timeout never fired"
        conn1 = await hand.next()
        assert await one_read(conn1) == req(srv, "/2") + req(srv, "/3")
        await conn1.send(echo("/2", "/3"))
        await ledger.all_ended()
        assert [p.outcome for p in probes] == [
            (undipy.HeadersTimeoutError,), (200, b"/2"), (200, b"/3")
        ]
        assert [p.connects for p in probes] == [1, 2, 2]
    assert srv.connections == 2


async def test_resent_requests_carry_their_whole_body(raw_server) -> None:
    """undici 'idempotent retry': pipelined idempotent PUTs with bytes bodies; the server
    drops the connection after reading them. The head fails; the others are re-sent, each
    with its complete body, exactly as first written."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    bodies = {i: f"body-{i}".encode() * (i * 1000) for i in (1, 2, 3)}
    sent = {i: req(srv, f"/{i}", "PUT", body=bodies[i]) for i in (1, 2, 3)}
    async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
        probes = [
            ledger.dispatch(c, f"/{i}", method="PUT", idempotent=True, body=bodies[i])
            for i in (1, 2, 3)
        ]
        conn0 = await hand.next()
        assert await read_requests(conn0, 3) == [sent[1], sent[2], sent[3]]
        await conn0.close()
        conn1 = await hand.next()
        assert await read_requests(conn1, 2) == [sent[2], sent[3]]
        await conn1.send(echo("/2", "/3"))
        await ledger.all_ended()
        assert [p.outcome for p in probes] == [(SocketError,), (200, b"/2"), (200, b"/3")]
        assert [p.connects for p in probes] == [1, 2, 2]
    assert srv.connections == 2


class Boom(Exception):
    pass


async def test_failing_streamed_body_fails_only_its_request(raw_server) -> None:
    """undici 'retry idempotent inflight': a POST whose streamed body raises after its
    first chunk fails with that error; its half-written socket is closed; the GETs queued
    behind it go out on a new connection and succeed."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()

    def body() -> Iterator[bytes]:
        yield b"ab"
        raise Boom("kaboom")

    async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
        pp = ledger.dispatch(c, "/p", method="POST", body=body())
        p1 = ledger.dispatch(c, "/1", blocking=False)
        p2 = ledger.dispatch(c, "/2", blocking=False)
        conn0 = await hand.next()
        stream_head = req(srv, "/p", "POST", headers=["transfer-encoding: chunked"])
        assert await conn0.read_until(b"2\r\nab\r\n") == stream_head + b"2\r\nab\r\n"
        assert await conn0.wait_closed_by_peer(T), "the half-written request's socket stayed open"
        assert await conn0.read_available() == b""  # nothing written after the chunk
        conn1 = await hand.next()
        assert await one_read(conn1) == req(srv, "/1") + req(srv, "/2")
        await conn1.send(echo("/1", "/2"))
        await ledger.all_ended()
        assert isinstance(pp.error, Boom) and str(pp.error) == "kaboom", pp
        assert [p1.outcome, p2.outcome] == [(200, b"/1"), (200, b"/2")]
        assert [p.connects for p in (pp, p1, p2)] == [1, 1, 1]
    assert srv.connections == 2


@pytest.mark.parametrize("cut", ["in-head", "in-body"])
async def test_connection_loss_mid_response_fails_that_response_only(
    raw_server, cut: str
) -> None:
    """/1 is answered; the server sends part of /2's response and closes. /2 (the head
    now, with response bytes received) fails and is not re-sent; /3 is re-sent alone."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    partial = (
        b"HTTP/1.1 200 OK\r\nContent-Le"
        if cut == "in-head"
        else b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n/2"
    )
    async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
        probes = [ledger.dispatch(c, f"/{i}", blocking=False) for i in (1, 2, 3)]
        conn0 = await hand.next()
        assert await read_requests(conn0, 3) == [req(srv, f"/{i}") for i in (1, 2, 3)]
        await conn0.send(echo("/1") + partial)
        await probes[0].wait()
        await conn0.close()
        conn1 = await hand.next()
        assert await one_read(conn1) == req(srv, "/3")
        await conn1.send(echo("/3"))
        await ledger.all_ended()
        p1, p2, p3 = probes
        assert (p1.outcome, p3.outcome) == ((200, b"/1"), (200, b"/3"))
        assert isinstance(p2.error, UndiciError), p2
        if cut == "in-head":
            assert isinstance(p2.error, SocketError), p2
        assert [p.connects for p in probes] == [1, 1, 2]
        await nothing_more(conn1)
    assert srv.connections == 2
    assert sum(r.count(b"GET /2 ") for r in srv.received) == 1


@pytest.mark.parametrize("connection", ["fresh", "reused"])
@pytest.mark.parametrize("how", ["fin", "rst"])
async def test_post_at_the_head_is_never_resent_but_the_get_behind_it_is(
    raw_server, connection: str, how: str
) -> None:
    """A POST and a GET pipelined behind it; the server drops the connection without
    answering. The POST fails with SocketError and the server saw it exactly once, even on
    a reused connection (the keep-alive race); the GET is re-sent and succeeds."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Client(srv.origin, pipelining=2)) as c:
        if connection == "reused":
            warm = ledger.dispatch(c, "/w")
            conn0 = await hand.next()
            assert await read_requests(conn0, 1) == [req(srv, "/w")]
            await conn0.send(echo("/w"))
            await warm.wait()
        pp = ledger.dispatch(c, "/p", method="POST", body=b"data")
        pg = ledger.dispatch(c, "/g", blocking=False)
        if connection == "fresh":
            conn0 = await hand.next()
        assert await read_requests(conn0, 2) == [
            req(srv, "/p", "POST", body=b"data"), req(srv, "/g")
        ]
        if how == "rst":
            conn0.reset()
        else:
            await conn0.close()
        conn1 = await hand.next()
        assert await one_read(conn1) == req(srv, "/g")
        await conn1.send(echo("/g"))
        await ledger.all_ended()
        assert (pp.outcome, pg.outcome) == ((SocketError,), (200, b"/g"))
        assert (pp.connects, pg.connects) == (1, 2)
        await nothing_more(conn1)
    assert sum(r.count(b"POST /p ") for r in srv.received) == 1
    assert srv.connections == 2


async def test_non_idempotent_request_queued_behind_a_lost_pipeline_is_written_once(
    raw_server,
) -> None:
    """/1 and /2 run, a POST waits behind them; the server drops the connection. /1
    fails, /2 is re-sent on the new connection, and the POST, never written before, is
    written there exactly once, after /2's response (it still waits for an empty
    pipeline)."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
        p1 = ledger.dispatch(c, "/1", blocking=False)
        p2 = ledger.dispatch(c, "/2", blocking=False)
        pp = ledger.dispatch(c, "/p", method="POST", body=b"data")
        conn0 = await hand.next()
        assert await read_requests(conn0, 2) == [req(srv, "/1"), req(srv, "/2")]
        await nothing_more(conn0)
        await conn0.close()
        conn1 = await hand.next()
        assert await one_read(conn1) == req(srv, "/2")
        await nothing_more(conn1)
        await conn1.send(echo("/2"))
        assert await read_requests(conn1, 1) == [req(srv, "/p", "POST", body=b"data")]
        await conn1.send(echo("/p"))
        await ledger.all_ended()
        assert [p.outcome for p in (p1, p2, pp)] == [(SocketError,), (200, b"/2"), (200, b"/p")]
        assert [p.connects for p in (p1, p2, pp)] == [1, 2, 1]
    assert request_lines(srv.received[0]) == [b"GET /1 HTTP/1.1", b"GET /2 HTTP/1.1"]
    assert sum(r.count(b"POST /p ") for r in srv.received) == 1


async def test_connect_error_fails_every_queued_request_once() -> None:
    """undici §2.4: a connect error (refused) with nothing running fails every pending
    request, those already assigned to the connection and those still queued."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    ledger = Ledger()
    async with closing(undipy.Client(f"http://127.0.0.1:{port}", pipelining=2)) as c:
        events = Events(c)
        probes = [ledger.dispatch(c, f"/{i}", blocking=False) for i in range(5)]
        await ledger.all_ended()
        assert [p.outcome for p in probes] == [(SocketError,)] * 5
        assert [p.kinds for p in probes] == [["connect", "error"]] * 5
        assert len(events.named("connection_error")) >= 1
        assert events.named("connect") == events.named("disconnect") == []
        assert c.stats == ClientStats(connected=0, pending=0, running=0, size=0)


@pytest.mark.loops
async def test_unsolicited_response_after_a_pipelined_batch_is_never_matched(raw_server) -> None:
    """Response-queue poisoning: the server sends a fourth response after the three that
    were asked for, in the same write. The three complete; the extra one makes the client
    drop the connection, and the next batch gets its own responses on a new one."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
        events = Events(c)
        first = [ledger.dispatch(c, f"/{i}", blocking=False) for i in (1, 2, 3)]
        conn0 = await hand.next()
        assert await read_requests(conn0, 3) == [req(srv, f"/{i}") for i in (1, 2, 3)]
        await conn0.send(echo("/1", "/2", "/3") + response(200, b"POISON"))
        await ledger.all_ended()
        assert [p.outcome for p in first] == [(200, b"/1"), (200, b"/2"), (200, b"/3")]
        assert await conn0.wait_closed_by_peer(T), "the client kept the poisoned connection"
        await events.wait_for("disconnect")
        assert isinstance(events.named("disconnect")[0], SocketError)
        second = [ledger.dispatch(c, f"/{i}", blocking=False) for i in (4, 5)]
        conn1 = await hand.next()
        assert await read_requests(conn1, 2) == [req(srv, "/4"), req(srv, "/5")]
        await conn1.send(echo("/4", "/5"))
        await ledger.all_ended()
        assert [p.outcome for p in second] == [(200, b"/4"), (200, b"/5")]
    assert request_lines(srv.received[0]) == [b"GET /1 HTTP/1.1", b"GET /2 HTTP/1.1",
                                              b"GET /3 HTTP/1.1"]
    assert srv.connections == 2


async def test_idle_timeout_teardown_fails_nobody(raw_server) -> None:
    """Internal teardown: the idle keep-alive timer closes the connection after a pipelined
    batch ('disconnect' with InformationalError); the next batch is pipelined on a new
    connection and nothing fails."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Client(srv.origin, pipelining=2, keep_alive_timeout=0.1)) as c:
        events = Events(c)
        first = [ledger.dispatch(c, f"/{i}", blocking=False) for i in (1, 2)]
        conn0 = await hand.next()
        assert await read_requests(conn0, 2) == [req(srv, "/1"), req(srv, "/2")]
        await conn0.send(echo("/1", "/2"))
        await ledger.all_ended()
        assert await conn0.wait_closed_by_peer(T), "the idle timeout never closed it"
        await events.wait_for("disconnect")
        assert isinstance(events.named("disconnect")[0], InformationalError)
        second = [ledger.dispatch(c, f"/{i}", blocking=False) for i in (3, 4)]
        conn1 = await hand.next()
        assert await read_requests(conn1, 2) == [req(srv, "/3"), req(srv, "/4")]
        await conn1.send(echo("/3", "/4"))
        await ledger.all_ended()
        assert [p.outcome for p in first + second] == [
            (200, f"/{i}".encode()) for i in (1, 2, 3, 4)
        ]
        assert [p.connects for p in first + second] == [1, 1, 1, 1]
    assert srv.connections == 2


# --------------------------------------------------------------------------- aborts


@pytest.mark.loops
@pytest.mark.parametrize("how", ["abort-controller", "asyncio-event", "task-cancel"])
async def test_aborting_a_running_request_destroys_the_socket_and_resends_the_others(
    raw_server, how: str
) -> None:
    """undici 'abort pipelined', through request(): the 2nd of 3 in-flight requests is
    aborted (signal, or by cancelling its task). Its bytes are on the wire, so the socket
    is closed; the 1st and 3rd are re-sent together on a new connection and succeed; the
    2nd fails with RequestAbortedError (CancelledError for the cancelled task)."""
    hand = Hand()
    srv = await raw_server(hand)
    controller = undipy.AbortController()
    event = asyncio.Event()
    async with closing(undipy.Client(srv.origin, pipelining=3)) as c:
        events = Events(c)

        async def get(path: str, **opts: Any) -> tuple[int, bytes]:
            resp = await c.request(path=path, method="GET", blocking=False, **opts)
            return resp.status_code, await resp.body.bytes()

        signal: dict[str, Any] = {
            "abort-controller": {"signal": controller.signal},
            "asyncio-event": {"signal": event},
            "task-cancel": {},
        }[how]
        t1 = asyncio.ensure_future(get("/1"))
        t2 = asyncio.ensure_future(get("/2", **signal))
        t3 = asyncio.ensure_future(get("/3"))
        conn0 = await hand.next()
        assert await read_requests(conn0, 3) == [req(srv, f"/{i}") for i in (1, 2, 3)]
        if how == "abort-controller":
            controller.abort()
        elif how == "asyncio-event":
            event.set()
        else:
            t2.cancel()
        expected = asyncio.CancelledError if how == "task-cancel" else RequestAbortedError
        with pytest.raises(expected):
            await within(t2)
        assert await conn0.wait_closed_by_peer(T), "the aborted request's socket stayed open"
        conn1 = await hand.next()
        assert await one_read(conn1) == req(srv, "/1") + req(srv, "/3")
        await conn1.send(echo("/1", "/3"))
        assert await within(t1) == (200, b"/1")
        assert await within(t3) == (200, b"/3")
        await events.wait_for("disconnect")
        assert isinstance(events.named("disconnect")[0], InformationalError)
        await nothing_more(conn1)
    assert srv.connections == 2
    assert sum(r.count(b"GET /2 ") for r in srv.received) == 1


async def test_aborting_a_queued_request_keeps_the_connection(raw_server) -> None:
    """Aborting a request that was never written fails only it: no socket is closed,
    nothing is re-sent, and the connection serves the next request."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Client(srv.origin, pipelining=2)) as c:
        events = Events(c)
        p1 = ledger.dispatch(c, "/1", blocking=False)
        p2 = ledger.dispatch(c, "/2", blocking=False)
        p3 = ledger.dispatch(c, "/3", blocking=False)
        conn = await hand.next()
        assert await read_requests(conn, 2) == [req(srv, "/1"), req(srv, "/2")]
        assert p3.abort is not None
        p3.abort()
        await p3.wait()
        await nothing_more(conn)
        assert not conn.eof, "the client closed the connection"
        await conn.send(echo("/1", "/2"))
        p4 = ledger.dispatch(c, "/4", blocking=False)
        assert await read_requests(conn, 1) == [req(srv, "/4")]
        await conn.send(echo("/4"))
        await ledger.all_ended()
        assert [p.outcome for p in (p1, p2, p3, p4)] == [
            (200, b"/1"), (200, b"/2"), (RequestAbortedError,), (200, b"/4")
        ]
        assert [p.connects for p in (p1, p2, p3, p4)] == [1, 1, 1, 1]
        assert events.named("disconnect") == []
        await wait_until(lambda: c.stats.size == 0, "an empty queue")
    assert srv.connections == 1
    assert b"GET /3 " not in srv.received[0]


# --------------------------------------------------------------------------- Pool


@pytest.mark.loops
async def test_pool_fills_each_connection_to_the_pipelining_depth(raw_server) -> None:
    """Pool(connections=2, pipelining=2), six requests: two connections carry two requests
    each, two wait in the pool; stats add up. When a connection has room again the next
    queued request goes there (and not to the full one); every response is matched."""
    hand = Hand()
    srv = await raw_server(hand)
    ledger = Ledger()
    async with closing(undipy.Pool(srv.origin, connections=2, pipelining=2)) as pool:
        probes = [ledger.dispatch(pool, f"/{i}", blocking=False) for i in range(6)]
        conns = [await hand.next(), await hand.next()]
        got = [await read_requests(conn, 2) for conn in conns]
        first = sorted(path_of(r) for g in got for r in g)
        assert first == ["/0", "/1", "/2", "/3"]
        for g in got:
            assert [r for r in g] == [req(srv, path_of(r)) for r in g]
        await nothing_more(conns[0])
        await nothing_more(conns[1])
        assert pool.stats == PoolStats(
            connected=2, free=0, pending=2, queued=2, running=4, size=6
        )
        await conns[0].send(echo(path_of(got[0][0])))
        assert await read_requests(conns[0], 1) == [req(srv, "/4")]
        await nothing_more(conns[1])
        await conns[1].send(echo(path_of(got[1][0])))
        assert await read_requests(conns[1], 1) == [req(srv, "/5")]
        await conns[0].send(echo(path_of(got[0][1]), "/4"))
        await conns[1].send(echo(path_of(got[1][1]), "/5"))
        await ledger.all_ended()
        assert [p.outcome for p in probes] == [(200, f"/{i}".encode()) for i in range(6)]
        assert pool.stats == PoolStats(
            connected=2, free=2, pending=0, queued=0, running=0, size=0
        )
    assert srv.connections == 2
