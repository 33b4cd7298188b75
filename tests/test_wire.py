"""The request bytes undipy puts on the wire, checked byte for byte against a RawServer,
and the validation that must reject a request before any byte of it is sent."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import undipy
from helpers import (
    RawServerFactory,
    Recorder,
    answer,
    assert_rejected_before_sending,
    closing,
    head,
    host_of,
    sent_bytes,
    within,
)
from servers import HttpServer, RawConn, RawServer, response
from undipy import (
    InvalidArgumentError,
    NotSupportedError,
    RequestContentLengthMismatchError,
)

# --------------------------------------------------------------------------- request line, host


@pytest.mark.loops
async def test_get_sends_request_line_host_and_keep_alive(raw_server: RawServerFactory) -> None:
    sent, srv = await sent_bytes(raw_server, path="/a/b?c=d", method="GET")
    assert sent == head("GET /a/b?c=d HTTP/1.1", f"host: {host_of(srv)}", "connection: keep-alive")


@pytest.mark.parametrize("method", ["GET", "DELETE", "OPTIONS", "PURGE", "M-SEARCH"])
async def test_method_is_sent_verbatim(raw_server: RawServerFactory, method: str) -> None:
    sent, srv = await sent_bytes(raw_server, method=method)
    assert sent == head(f"{method} / HTTP/1.1", f"host: {host_of(srv)}", "connection: keep-alive")


@pytest.mark.parametrize(
    "headers",
    [{"host": "example.com"}, {"Host": "example.com"}, ["HOST", "example.com"]],
    ids=["dict", "dict-capitalised", "flat-list"],
)
async def test_user_host_header_replaces_the_origin_host(
    raw_server: RawServerFactory, headers: Any
) -> None:
    sent, _ = await sent_bytes(raw_server, headers=headers)
    assert sent == head("GET / HTTP/1.1", "host: example.com", "connection: keep-alive")


async def test_two_requests_reuse_one_keep_alive_connection(raw_server: RawServerFactory) -> None:
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin)) as client:
        for path in ("/1", "/2"):
            resp = await within(client.request(path=path, method="GET"))
            assert await within(resp.body.text()) == "ok"
    await srv.wait_closed(1)
    host = host_of(srv)
    assert srv.received == [
        head("GET /1 HTTP/1.1", f"host: {host}", "connection: keep-alive")
        + head("GET /2 HTTP/1.1", f"host: {host}", "connection: keep-alive")
    ]


# --------------------------------------------------------------------------- connection: close


@pytest.mark.parametrize(
    ("client_opts", "request_opts"),
    [
        ({}, {"reset": True}),
        ({}, {"headers": {"connection": "close"}}),
        ({}, {"headers": {"Connection": "Close"}}),
        ({}, {"headers": ["connection", "close"]}),
        ({"pipelining": 0}, {}),
    ],
    ids=["reset", "header", "header-any-case", "flat-list", "pipelining-0"],
)
async def test_connection_close_is_sent_once_and_the_socket_is_not_reused(
    raw_server: RawServerFactory, client_opts: dict[str, Any], request_opts: dict[str, Any]
) -> None:
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin, **client_opts)) as client:
        for path in ("/1", "/2"):
            resp = await within(client.request(path=path, method="GET", **request_opts))
            assert await within(resp.body.text()) == "ok"
    await srv.wait_closed(2)
    host = host_of(srv)
    assert srv.connections == 2
    assert srv.received == [
        head(f"GET {path} HTTP/1.1", f"host: {host}", "connection: close") for path in ("/1", "/2")
    ]


async def test_head_sends_connection_close_and_is_not_reused(raw_server: RawServerFactory) -> None:
    """undici closes after HEAD (interop with servers that send a body anyway)."""
    srv = await raw_server(answer(response(200, headers=[("Content-Length", "0")])))
    async with closing(undipy.Client(srv.origin)) as client:
        for _ in range(2):
            resp = await within(client.request(path="/", method="HEAD"))
            assert await within(resp.body.bytes()) == b""
    await srv.wait_closed(2)
    assert (
        srv.received == [head("HEAD / HTTP/1.1", f"host: {host_of(srv)}", "connection: close")] * 2
    )


async def test_head_with_reset_false_keeps_the_connection(raw_server: RawServerFactory) -> None:
    srv = await raw_server(answer(response(200, headers=[("Content-Length", "0")])))
    async with closing(undipy.Client(srv.origin)) as client:
        for _ in range(2):
            resp = await within(client.request(path="/", method="HEAD", reset=False))
            assert await within(resp.body.bytes()) == b""
    await srv.wait_closed(1)
    line = head("HEAD / HTTP/1.1", f"host: {host_of(srv)}", "connection: keep-alive")
    assert srv.received == [line * 2]


async def test_max_requests_per_client_closes_after_the_last_allowed_request(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin, max_requests_per_client=2)) as client:
        for n in range(4):
            resp = await within(client.request(path=f"/{n}", method="GET"))
            assert await within(resp.body.text()) == "ok"
    await srv.wait_closed(2)
    host = host_of(srv)
    assert srv.received == [
        head("GET /0 HTTP/1.1", f"host: {host}", "connection: keep-alive")
        + head("GET /1 HTTP/1.1", f"host: {host}", "connection: close"),
        head("GET /2 HTTP/1.1", f"host: {host}", "connection: keep-alive")
        + head("GET /3 HTTP/1.1", f"host: {host}", "connection: close"),
    ]


async def test_upgrade_request_sends_connection_upgrade_and_the_protocol(
    raw_server: RawServerFactory,
) -> None:
    async def handshake(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n"
        )
        await conn.wait_closed_by_peer()

    srv = await raw_server(handshake)
    async with closing(undipy.Client(srv.origin)) as client:
        h = Recorder()
        client.dispatch(h, path="/ws", method="GET", upgrade="x-proto", headers={"x": "1"})
        await h.wait()
        for event in h.events:  # whatever the outcome, let go of an upgraded socket
            if event[0] == "upgrade":
                await within(event[3].close())
    assert srv.received[0] == head(
        "GET /ws HTTP/1.1",
        f"host: {host_of(srv)}",
        "connection: upgrade",
        "upgrade: x-proto",
        "x: 1",
    )


async def test_user_connection_keep_alive_header_is_not_duplicated(
    raw_server: RawServerFactory,
) -> None:
    sent, srv = await sent_bytes(raw_server, headers={"connection": "keep-alive", "x": "1"})
    assert sent == head("GET / HTTP/1.1", f"host: {host_of(srv)}", "connection: keep-alive", "x: 1")


# --------------------------------------------------------------------------- user headers


EXPECTED_USER_LINES = ["x-a: 1", "X-B: 2", "X-B: 3", "x-c: four, five"]

HEADER_FORMS = {
    "dict": {"x-a": "1", "X-B": ["2", "3"], "x-skip": None, "x-c": "four, five"},
    "flat-list": ["x-a", "1", "X-B", "2", "X-B", "3", "x-c", "four, five"],
    "pairs": [("x-a", "1"), ("X-B", "2"), ("X-B", "3"), ("x-c", "four, five")],
    "pairs-as-lists": [["x-a", "1"], ["X-B", "2"], ["X-B", "3"], ["x-c", "four, five"]],
    "bytes-dict": {b"x-a": b"1", b"X-B": [b"2", b"3"], b"x-c": b"four, five"},
    "bytes-flat-list": [b"x-a", b"1", b"X-B", b"2", b"X-B", b"3", b"x-c", b"four, five"],
    "bytes-pairs": [(b"x-a", b"1"), (b"X-B", b"2"), (b"X-B", b"3"), (b"x-c", b"four, five")],
    "mixed-str-bytes": [(b"x-a", "1"), ("X-B", b"2"), (b"X-B", "3"), ("x-c", b"four, five")],
}


@pytest.mark.loops
@pytest.mark.parametrize("headers", HEADER_FORMS.values(), ids=HEADER_FORMS.keys())
async def test_user_headers_are_sent_in_order_given(
    raw_server: RawServerFactory, headers: Any
) -> None:
    sent, srv = await sent_bytes(raw_server, headers=headers)
    assert sent == head(
        "GET / HTTP/1.1", f"host: {host_of(srv)}", "connection: keep-alive", *EXPECTED_USER_LINES
    )


async def test_header_with_none_in_a_list_value_is_skipped(raw_server: RawServerFactory) -> None:
    sent, srv = await sent_bytes(raw_server, headers={"x-a": [None, "1", None], "x-b": None})
    assert sent == head(
        "GET / HTTP/1.1", f"host: {host_of(srv)}", "connection: keep-alive", "x-a: 1"
    )


async def test_header_values_keep_inner_spaces_tabs_and_latin1_bytes(
    raw_server: RawServerFactory,
) -> None:
    sent, srv = await sent_bytes(raw_server, headers=[(b"x-a", b"a \tb"), (b"x-b", b"\xe9\xff")])
    start = head("GET / HTTP/1.1", f"host: {host_of(srv)}", "connection: keep-alive")[:-2]
    assert sent == start + b"x-a: a \tb\r\nx-b: \xe9\xff\r\n\r\n"


async def test_empty_header_value_is_sent(raw_server: RawServerFactory) -> None:
    sent, srv = await sent_bytes(raw_server, headers={"x-empty": ""})
    start = head("GET / HTTP/1.1", f"host: {host_of(srv)}", "connection: keep-alive")[:-2]
    assert sent == start + b"x-empty: \r\n\r\n"


# --------------------------------------------------------------------------- known-length bodies


KNOWN_LENGTH_BODIES = {
    "bytes": (b"hello", b"hello"),
    "bytearray": (bytearray(b"hello"), b"hello"),
    "memoryview": (memoryview(b"xhellox")[1:6], b"hello"),
    "str-utf8": ("h\u00e9llo \u20ac", "h\u00e9llo \u20ac".encode()),
    "large-bytes": (bytes(range(256)) * 300, bytes(range(256)) * 300),
}


@pytest.mark.parametrize(
    ("body", "expected"), KNOWN_LENGTH_BODIES.values(), ids=KNOWN_LENGTH_BODIES.keys()
)
async def test_known_length_body_sends_content_length(
    raw_server: RawServerFactory, body: Any, expected: bytes
) -> None:
    sent, srv = await sent_bytes(
        raw_server, method="POST", body=body, headers={"content-type": "text/plain"}
    )
    assert (
        sent
        == head(
            "POST / HTTP/1.1",
            f"host: {host_of(srv)}",
            "connection: keep-alive",
            "content-type: text/plain",
            f"content-length: {len(expected)}",
        )
        + expected
    )


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_payload_method_without_body_sends_content_length_zero(
    raw_server: RawServerFactory, method: str
) -> None:
    sent, srv = await sent_bytes(raw_server, method=method)
    assert sent == head(
        f"{method} / HTTP/1.1",
        f"host: {host_of(srv)}",
        "connection: keep-alive",
        "content-length: 0",
    )


async def test_post_with_empty_bytes_body_sends_content_length_zero(
    raw_server: RawServerFactory,
) -> None:
    sent, srv = await sent_bytes(raw_server, method="POST", body=b"")
    assert sent == head(
        "POST / HTTP/1.1", f"host: {host_of(srv)}", "connection: keep-alive", "content-length: 0"
    )


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
async def test_bodyless_request_sends_no_content_length(
    raw_server: RawServerFactory, method: str
) -> None:
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin)) as client:
        resp = await within(client.request(path="/", method=method))
        await within(resp.body.dump())
    await srv.wait_closed(1)
    assert b"content-length" not in srv.received[0].lower()
    assert b"transfer-encoding" not in srv.received[0].lower()


async def test_user_content_length_matching_the_body_is_sent_once(
    raw_server: RawServerFactory,
) -> None:
    sent, srv = await sent_bytes(
        raw_server, method="PUT", body=b"abc", headers={"Content-Length": "3"}
    )
    assert sent.count(b"ontent-length") == 1
    assert sent.endswith(b"ength: 3\r\n\r\nabc")


async def test_put_with_user_content_length_zero_and_no_body_sends_it(
    raw_server: RawServerFactory,
) -> None:
    sent, srv = await sent_bytes(raw_server, method="PUT", headers={"content-length": "0"})
    assert sent.lower().count(b"content-length: 0\r\n") == 1
    assert sent.endswith(b"\r\n\r\n")


async def test_post_with_user_content_length_but_no_body_sends_content_length_zero(
    raw_server: RawServerFactory,
) -> None:
    """undici frames what it actually sends: no body means content-length 0, whatever the
    header said (otherwise the server would wait forever for the promised bytes)."""
    sent, srv = await sent_bytes(raw_server, method="POST", headers={"content-length": "5"})
    assert sent == head(
        "POST / HTTP/1.1", f"host: {host_of(srv)}", "connection: keep-alive", "content-length: 0"
    )


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_bodyless_get_or_head_drops_a_user_content_length_zero(
    raw_server: RawServerFactory, method: str
) -> None:
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin)) as client:
        resp = await within(
            client.request(path="/", method=method, headers={"content-length": "0", "x": "1"})
        )
        await within(resp.body.dump())
    await srv.wait_closed(1)
    assert b"content-length" not in srv.received[0].lower()
    assert srv.received[0].endswith(b"\r\nx: 1\r\n\r\n")


async def test_get_with_a_body_sends_it_and_does_not_reuse_the_connection(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin)) as client:
        for _ in range(2):
            resp = await within(client.request(path="/", method="GET", body=b"abc"))
            assert await within(resp.body.text()) == "ok"
    await srv.wait_closed(2)
    assert srv.connections == 2
    for received in srv.received:
        assert received.startswith(b"GET / HTTP/1.1\r\n")
        assert received.endswith(b"\r\ncontent-length: 3\r\n\r\nabc")


# --------------------------------------------------------------------------- chunked bodies


def gen_body() -> Iterator[bytes]:
    yield b"ab"
    yield b"cde"


async def agen_body() -> AsyncIterator[bytes]:
    yield b"ab"
    yield b"cde"


CHUNKED_BODIES = {
    "list": lambda: [b"ab", b"cde"],
    "tuple": lambda: (b"ab", b"cde"),
    "iterator": lambda: iter([b"ab", b"cde"]),
    "generator": gen_body,
    "async-generator": agen_body,
    "bytearray-and-memoryview-chunks": lambda: [bytearray(b"ab"), memoryview(b"cde")],
}

CHUNKED_ABCDE = b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"


def chunked_head(srv: RawServer, *extra: str) -> bytes:
    return head(
        "POST / HTTP/1.1",
        f"host: {host_of(srv)}",
        "connection: keep-alive",
        *extra,
        "transfer-encoding: chunked",
    )


@pytest.mark.loops
@pytest.mark.parametrize("make_body", CHUNKED_BODIES.values(), ids=CHUNKED_BODIES.keys())
async def test_iterable_body_is_sent_chunked_one_chunk_per_item(
    raw_server: RawServerFactory, make_body: Any
) -> None:
    sent, srv = await sent_bytes(raw_server, method="POST", body=make_body(), headers={"x": "1"})
    assert sent == chunked_head(srv, "x: 1") + CHUNKED_ABCDE


async def test_str_chunks_of_an_iterable_are_sent_as_utf8(raw_server: RawServerFactory) -> None:
    sent, srv = await sent_bytes(raw_server, method="POST", body=["\u00e9", "ab"])
    assert sent == chunked_head(srv) + b"2\r\n\xc3\xa9\r\n2\r\nab\r\n0\r\n\r\n"


async def test_empty_chunks_of_an_iterable_do_not_end_the_body(
    raw_server: RawServerFactory,
) -> None:
    sent, srv = await sent_bytes(raw_server, method="POST", body=[b"", b"a", b"", b"bc", b""])
    assert sent == chunked_head(srv) + b"1\r\na\r\n2\r\nbc\r\n0\r\n\r\n"


async def test_empty_iterable_sends_only_the_last_chunk(raw_server: RawServerFactory) -> None:
    sent, srv = await sent_bytes(raw_server, method="POST", body=iter([]))
    assert sent == chunked_head(srv) + b"0\r\n\r\n"


def length_head(srv: RawServer, method: str, n: int) -> bytes:
    return head(
        f"{method} / HTTP/1.1",
        f"host: {host_of(srv)}",
        "connection: keep-alive",
        f"content-length: {n}",
    )


async def test_seekable_binary_file_object_is_sent_with_content_length(
    raw_server: RawServerFactory,
) -> None:
    data = b"file contents\n" * 3
    f = io.BytesIO(data)
    f.read(5)  # what is left from the current position is sent
    sent, srv = await sent_bytes(raw_server, method="POST", body=f)
    assert sent == length_head(srv, "POST", len(data) - 5) + data[5:]


async def test_real_file_is_sent_whole_with_content_length(
    raw_server: RawServerFactory, tmp_path: Any
) -> None:
    data = os.urandom(200_000)
    path = tmp_path / "body.bin"
    path.write_bytes(data)
    with open(path, "rb") as f:
        sent, srv = await sent_bytes(raw_server, method="PUT", body=f)
    assert sent == length_head(srv, "PUT", len(data)) + data


async def test_a_pipe_is_sent_chunked(raw_server: RawServerFactory) -> None:
    """No size is known: chunked framing, as for an iterable."""
    r, w = os.pipe()
    os.write(w, b"from a pipe")
    os.close(w)
    with open(r, "rb") as f:
        sent, srv = await sent_bytes(raw_server, method="POST", body=f)
    start = chunked_head(srv)
    assert sent.startswith(start)
    assert decode_chunked(sent[len(start) :]) == b"from a pipe"


async def test_a_text_file_is_sent_chunked(raw_server: RawServerFactory, tmp_path: Any) -> None:
    """Text mode: the bytes sent (UTF-8 of what read() returns) are not the file size."""
    path = tmp_path / "body.txt"
    path.write_text("caf\u00e9\n", encoding="latin-1")
    with open(path, encoding="latin-1") as f:
        sent, srv = await sent_bytes(raw_server, method="POST", body=f)
    start = chunked_head(srv)
    assert decode_chunked(sent[len(start) :]) == "caf\u00e9\n".encode()


async def test_header_values_are_sent_without_surrounding_spaces(
    raw_server: RawServerFactory,
) -> None:
    sent, srv = await sent_bytes(
        raw_server, headers=[("x-a", "  v w \t"), ("x-b", "\t"), ("host", " example.com ")]
    )
    assert sent == head(
        "GET / HTTP/1.1", "host: example.com", "connection: keep-alive", "x-a: v w", "x-b: "
    )


def decode_chunked(data: bytes) -> bytes:
    """Strictly decode a chunked body (no trailers) that must be complete."""
    out = bytearray()
    pos = 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end], 16)
        pos = end + 2
        if size == 0:
            assert data[pos:] == b"\r\n"
            return bytes(out)
        out += data[pos : pos + size]
        assert data[pos + size : pos + size + 2] == b"\r\n"
        pos += size + 2


async def test_iterable_with_declared_content_length_is_sent_unchunked(
    raw_server: RawServerFactory,
) -> None:
    sent, srv = await sent_bytes(
        raw_server, method="POST", body=agen_body(), headers={"content-length": "5"}
    )
    assert (
        sent
        == head(
            "POST / HTTP/1.1",
            f"host: {host_of(srv)}",
            "connection: keep-alive",
            "content-length: 5",
        )
        + b"abcde"
    )


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lax"])
@pytest.mark.parametrize("declared", [4, 6], ids=["body-longer", "body-shorter"])
async def test_iterable_length_mismatch_fails_the_request_and_drops_the_connection(
    raw_server: RawServerFactory, declared: int, strict: bool
) -> None:
    """The body's length is only known as it streams: bytes may already be out, so the
    connection must be dropped (never completed into a wrong request, never reused).
    ``strict_content_length=False`` does not change this (a surplus would be read as
    another request: docs/choices.md)."""
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin, strict_content_length=strict)) as client:
        with pytest.raises(RequestContentLengthMismatchError) as info:
            resp = await within(
                client.request(
                    path="/",
                    method="POST",
                    body=gen_body(),
                    headers={"content-length": str(declared)},
                )
            )
            await resp.body.aclose()
        assert info.value.code == "UND_ERR_REQ_CONTENT_LENGTH_MISMATCH"
        await srv.wait_closed(1)
        assert srv.conns[0].eof  # the client closed it
        head_sent, _, body_sent = srv.received[0].partition(b"\r\n\r\n")
        assert head_sent.endswith(b"\r\ncontent-length: %d" % declared)
        assert len(body_sent) < declared
        assert b"abcde".startswith(body_sent)
        ok = await within(client.request(path="/next", method="GET"))
        assert await within(ok.body.text()) == "ok"
    assert srv.connections == 2
    assert srv.received[1] == head(
        "GET /next HTTP/1.1", f"host: {host_of(srv)}", "connection: keep-alive"
    )


@pytest.mark.parametrize(
    ("body", "declared"),
    [(b"abc", "10"), (b"abc", "2"), ("abc", "4"), (bytearray(b"abcdefghijk"), "10")],
    ids=["bytes-short", "bytes-long", "str", "bytearray"],
)
async def test_known_length_mismatch_is_rejected_before_sending(
    raw_server: RawServerFactory, body: Any, declared: str
) -> None:
    exc = await assert_rejected_before_sending(
        raw_server,
        RequestContentLengthMismatchError,
        method="POST",
        body=body,
        headers={"content-length": declared},
    )
    assert exc.code == "UND_ERR_REQ_CONTENT_LENGTH_MISMATCH"


async def test_iterable_yielding_a_non_bytes_item_fails_with_type_error(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(TypeError):
            resp = await within(client.request(path="/", method="POST", body=[b"a", 42]))
            await resp.body.aclose()


async def test_iterable_body_that_raises_fails_the_request_with_that_error(
    raw_server: RawServerFactory,
) -> None:
    boom = ValueError("body source failed")

    def failing() -> Iterator[bytes]:
        yield b"ab"
        raise boom

    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(ValueError) as info:
            resp = await within(client.request(path="/", method="POST", body=failing()))
            await resp.body.aclose()
        assert info.value is boom
        await srv.wait_closed(1)
        assert srv.conns[0].eof  # the half-sent request was never completed
        assert not srv.received[0].endswith(b"0\r\n\r\n")
        ok = await within(client.request(path="/next", method="GET"))
        assert await within(ok.body.text()) == "ok"
    assert srv.connections == 2


async def test_abort_while_the_body_streams_fails_and_drops_the_connection(
    raw_server: RawServerFactory,
) -> None:
    sent_first = asyncio.Event()
    never = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield b"first"
        sent_first.set()
        await never.wait()
        yield b"never"

    srv = await raw_server(answer())
    controller = undipy.AbortController()
    async with closing(undipy.Client(srv.origin)) as client:
        task = asyncio.ensure_future(
            client.request(path="/", method="PUT", body=stalls(), signal=controller.signal)
        )
        await within(sent_first.wait())
        controller.abort()
        with pytest.raises(undipy.RequestAbortedError):
            await within(task)
        await srv.wait_closed(1)
        assert srv.conns[0].eof
        ok = await within(client.request(path="/next", method="GET"))
        assert await within(ok.body.text()) == "ok"
    assert srv.received[0].startswith(b"PUT / HTTP/1.1\r\n")
    assert b"never" not in srv.received[0]


async def test_get_body_length_wins_over_a_user_content_length(
    raw_server: RawServerFactory,
) -> None:
    """undici does not check content-length for GET; it frames the body it really sends."""
    sent, srv = await sent_bytes(
        raw_server, method="GET", body=b"abc", headers={"content-length": "10"}
    )
    assert sent.endswith(b"\r\ncontent-length: 3\r\n\r\nabc")
    assert sent.lower().count(b"content-length") == 1


# --------------------------------------------------------------------------- query


QUERIES = [
    ({"a": "b"}, "/p?a=b"),
    ({"a": "b c", "d": "e&f=g"}, "/p?a=b%20c&d=e%26f%3Dg"),
    ({"unreserved": "-_.!~*'()"}, "/p?unreserved=-_.!~*'()"),
    ({"reserved": ":/?#[]@$,;+"}, "/p?reserved=%3A%2F%3F%23%5B%5D%40%24%2C%3B%2B"),
    ({"utf8": "\u00e9\u20ac"}, "/p?utf8=%C3%A9%E2%82%AC"),
    ({"k e/y": "v"}, "/p?k%20e%2Fy=v"),
    ({"list": ["1", "2", "3"], "x": "y"}, "/p?list=1&list=2&list=3&x=y"),
    ({"none": None, "a": "b"}, "/p?none=&a=b"),
    ({"empty": ""}, "/p?empty="),
    ({"n": 1}, "/p?n=1"),
    ({}, "/p"),
]


@pytest.mark.parametrize(("query", "target"), QUERIES, ids=[t for _, t in QUERIES])
async def test_query_is_encoded_like_encode_uri_component(
    raw_server: RawServerFactory, query: dict[str, Any], target: str
) -> None:
    sent, srv = await sent_bytes(raw_server, path="/p", query=query)
    assert sent == head(f"GET {target} HTTP/1.1", f"host: {host_of(srv)}", "connection: keep-alive")


# --------------------------------------------------------------------------- validation


REJECTED: dict[str, tuple[type[BaseException], dict[str, Any]]] = {
    # header values
    "value-crlf": (InvalidArgumentError, {"headers": {"x": "a\r\nb"}}),
    "value-lf": (InvalidArgumentError, {"headers": {"x": "a\nb"}}),
    "value-cr": (InvalidArgumentError, {"headers": {"x": "a\rb"}}),
    "value-nul": (InvalidArgumentError, {"headers": {"x": "a\0b"}}),
    "value-bytes-lf": (InvalidArgumentError, {"headers": [(b"x", b"a\nb")]}),
    "value-in-list-crlf": (InvalidArgumentError, {"headers": {"x": ["ok", "a\r\nb"]}}),
    "value-injects-request": (
        InvalidArgumentError,
        {"headers": {"x": "1\r\n\r\nGET /evil HTTP/1.1\r\nhost: x"}},
    ),
    "value-object": (InvalidArgumentError, {"headers": {"x": object()}}),
    "value-dict": (InvalidArgumentError, {"headers": {"x": {"a": "b"}}}),
    # header names
    "name-space": (InvalidArgumentError, {"headers": {"x y": "1"}}),
    "name-colon": (InvalidArgumentError, {"headers": {"x:y": "1"}}),
    "name-empty": (InvalidArgumentError, {"headers": {"": "1"}}),
    "name-lf": (InvalidArgumentError, {"headers": {"x\n": "1"}}),
    "name-nul": (InvalidArgumentError, {"headers": [(b"x\0", b"1")]}),
    "name-non-ascii": (InvalidArgumentError, {"headers": {"\u00e9": "1"}}),
    "name-not-str": (InvalidArgumentError, {"headers": [(object(), "1")]}),
    # methods and paths
    "method-lf": (InvalidArgumentError, {"method": "GET\n"}),
    "method-crlf": (InvalidArgumentError, {"method": "GET\r\n"}),
    "method-space": (InvalidArgumentError, {"method": "G ET"}),
    "method-empty": (InvalidArgumentError, {"method": ""}),
    "method-not-str": (InvalidArgumentError, {"method": 1}),
    "path-space": (InvalidArgumentError, {"path": "/a b"}),
    "path-crlf": (InvalidArgumentError, {"path": "/a\r\nx: y"}),
    "path-nul": (InvalidArgumentError, {"path": "/a\0"}),
    "path-relative": (InvalidArgumentError, {"path": "aaa"}),
    "path-empty": (InvalidArgumentError, {"path": ""}),
    "path-not-str": (InvalidArgumentError, {"path": 1}),
    # forbidden headers
    "transfer-encoding": (InvalidArgumentError, {"headers": {"transfer-encoding": "chunked"}}),
    "Transfer-Encoding": (InvalidArgumentError, {"headers": [("Transfer-Encoding", "chunked")]}),
    "keep-alive": (InvalidArgumentError, {"headers": {"keep-alive": "timeout=5"}}),
    "Keep-Alive": (InvalidArgumentError, {"headers": ["Keep-Alive", "timeout=5"]}),
    "upgrade": (InvalidArgumentError, {"headers": {"upgrade": "websocket"}}),
    "UPGRADE": (InvalidArgumentError, {"headers": {"UPGRADE": "websocket"}}),
    "connection-upgrade": (InvalidArgumentError, {"headers": {"connection": "upgrade"}}),
    "connection-foo": (InvalidArgumentError, {"headers": {"connection": "foo"}}),
    "connection-list": (InvalidArgumentError, {"headers": {"connection": "keep-alive, x"}}),
    "expect": (NotSupportedError, {"headers": {"expect": "100-continue"}}),
    "Expect": (NotSupportedError, {"headers": [("Expect", "100-continue")]}),
    "EXPECT": (NotSupportedError, {"headers": ["EXPECT", "100-continue"]}),
    # content-length
    "cl-letters": (InvalidArgumentError, {"method": "POST", "headers": {"content-length": "asd"}}),
    "cl-decimal": (InvalidArgumentError, {"method": "POST", "headers": {"content-length": "1.1"}}),
    "cl-suffix": (InvalidArgumentError, {"method": "POST", "headers": {"content-length": "10abc"}}),
    "cl-negative": (InvalidArgumentError, {"method": "POST", "headers": {"content-length": "-1"}}),
    "cl-plus": (InvalidArgumentError, {"method": "POST", "headers": {"content-length": "+5"}}),
    "cl-empty": (InvalidArgumentError, {"method": "POST", "headers": {"content-length": ""}}),
    "cl-dup-dict": (
        InvalidArgumentError,
        {
            "method": "POST",
            "body": b"abc",
            "headers": {"content-length": "3", "Content-Length": "3"},
        },
    ),
    "cl-dup-dict-list": (
        InvalidArgumentError,
        {"method": "POST", "body": b"abc", "headers": {"content-length": ["3", "3"]}},
    ),
    "cl-dup-flat": (
        InvalidArgumentError,
        {
            "method": "POST",
            "body": b"abc",
            "headers": ["Content-Length", "3", "CONTENT-LENGTH", "3"],
        },
    ),
    "cl-dup-pairs": (
        InvalidArgumentError,
        {"method": "POST", "body": b"abc", "headers": [("content-length", "3")] * 2},
    ),
    # header containers
    "flat-list-odd": (InvalidArgumentError, {"headers": ["a", "1", "b"]}),
    "pair-of-three": (InvalidArgumentError, {"headers": [("a", "1", "2")]}),
    "headers-int": (InvalidArgumentError, {"headers": 42}),
    "headers-str": (InvalidArgumentError, {"headers": "x: y"}),
    "host-dup-dict": (InvalidArgumentError, {"headers": {"host": "a", "Host": "b"}}),
    "host-dup-list-value": (InvalidArgumentError, {"headers": {"host": ["a", "b"]}}),
    "host-dup-pairs": (InvalidArgumentError, {"headers": [("host", "a"), ("HOST", "a")]}),
    "host-crlf": (InvalidArgumentError, {"headers": {"host": "a\r\nx: y"}}),
    # query
    "query-with-question-mark": (InvalidArgumentError, {"path": "/?a=1", "query": {"b": "2"}}),
    "query-with-hash": (InvalidArgumentError, {"path": "/#frag", "query": {"b": "2"}}),
    "query-not-dict": (InvalidArgumentError, {"query": "a=b"}),
    # options
    "unknown-option": (InvalidArgumentError, {"foo": 1}),
    "camel-case-option": (InvalidArgumentError, {"headersTimeout": 1}),
    "headers-timeout-str": (InvalidArgumentError, {"headers_timeout": "x"}),
    "headers-timeout-negative": (InvalidArgumentError, {"headers_timeout": -1}),
    "headers-timeout-nan": (InvalidArgumentError, {"headers_timeout": float("nan")}),
    "body-timeout-str": (InvalidArgumentError, {"body_timeout": "1"}),
    "body-timeout-negative": (InvalidArgumentError, {"body_timeout": -0.5}),
    "reset-str": (InvalidArgumentError, {"reset": "yes"}),
    "idempotent-int": (InvalidArgumentError, {"idempotent": 1}),
    "blocking-str": (InvalidArgumentError, {"blocking": "no"}),
    "throw-on-error-str": (InvalidArgumentError, {"throw_on_error": "yes"}),
    "upgrade-int": (InvalidArgumentError, {"upgrade": 1}),
    "on-info-not-callable": (InvalidArgumentError, {"on_info": 1}),
    "expect-continue-str": (InvalidArgumentError, {"expect_continue": "yes"}),
    # bodies
    "body-int": (InvalidArgumentError, {"method": "POST", "body": 42}),
    "body-float": (InvalidArgumentError, {"method": "POST", "body": 1.5}),
    "body-dict": (InvalidArgumentError, {"method": "POST", "body": {"a": 1}}),
    "body-object": (InvalidArgumentError, {"method": "POST", "body": object()}),
}


@pytest.mark.parametrize(("error", "opts"), REJECTED.values(), ids=REJECTED.keys())
async def test_invalid_request_is_rejected_before_any_byte_is_sent(
    raw_server: RawServerFactory, error: type[BaseException], opts: dict[str, Any]
) -> None:
    exc = await assert_rejected_before_sending(raw_server, error, **opts)
    assert isinstance(exc, undipy.UndiciError)
    assert (
        exc.code
        == {
            InvalidArgumentError: "UND_ERR_INVALID_ARG",
            NotSupportedError: "UND_ERR_NOT_SUPPORTED",
        }[error]
    )


async def test_invalid_argument_error_is_a_value_error(raw_server: RawServerFactory) -> None:
    exc = await assert_rejected_before_sending(
        raw_server, InvalidArgumentError, headers={"x": "a\nb"}
    )
    assert isinstance(exc, ValueError)


async def test_missing_path_or_method_is_rejected(raw_server: RawServerFactory) -> None:
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(InvalidArgumentError):
            await within(client.request(method="GET"))
        with pytest.raises(InvalidArgumentError):
            await within(client.request(path="/"))
    assert srv.connections == 0


async def test_invalid_dispatch_options_never_reach_the_server(
    raw_server: RawServerFactory,
) -> None:
    """dispatch() with invalid options raises or reports InvalidArgumentError via on_error,
    and nothing is sent."""
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin)) as client:
        handler = Recorder()
        try:
            client.dispatch(handler, path="/", method="GET", headers={"x": "a\r\nb"})
        except InvalidArgumentError:
            pass
        else:
            await handler.wait()
            assert isinstance(handler.only_error, InvalidArgumentError)
            assert "connect" not in handler.kinds
        ok = await within(client.request(path="/next", method="GET"))
        assert await within(ok.body.bytes()) == b"ok"
    await srv.wait_closed(1)
    assert srv.received == [
        head("GET /next HTTP/1.1", f"host: {host_of(srv)}", "connection: keep-alive")
    ]


# --------------------------------------------------------------------------- constructors


BAD_CONSTRUCTOR_OPTIONS: dict[str, dict[str, Any]] = {
    "unknown": {"foo": 1},
    "camel-case": {"keepAliveTimeout": 1},
    "pipelining-negative": {"pipelining": -1},
    "pipelining-str": {"pipelining": "1"},
    "pipelining-float": {"pipelining": 1.5},
    "keep-alive-timeout-str": {"keep_alive_timeout": "x"},
    "keep-alive-timeout-negative": {"keep_alive_timeout": -1},
    "headers-timeout-str": {"headers_timeout": "x"},
    "headers-timeout-negative": {"headers_timeout": -1},
    "body-timeout-inf": {"body_timeout": float("inf")},
    "connect-timeout-none": {"connect_timeout": None},
    "max-header-size-zero": {"max_header_size": 0},
    "max-header-size-str": {"max_header_size": "16384"},
    "max-response-size-minus-two": {"max_response_size": -2},
    "max-response-size-str": {"max_response_size": "hello"},
    "socket-path-int": {"socket_path": 1},
    "strict-content-length-str": {"strict_content_length": "yes"},
    "local-address-bad": {"local_address": "not an ip"},
}


@pytest.mark.parametrize("cls", [undipy.Client, undipy.Pool])
@pytest.mark.parametrize(
    "opts", BAD_CONSTRUCTOR_OPTIONS.values(), ids=BAD_CONSTRUCTOR_OPTIONS.keys()
)
def test_constructor_rejects_unknown_or_ill_typed_options(
    cls: type[undipy.Dispatcher], opts: dict[str, Any]
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        cls("http://127.0.0.1:1", **opts)
    assert info.value.code == "UND_ERR_INVALID_ARG"


BAD_ORIGINS = {
    "path": "http://127.0.0.1:1/path",
    "query": "http://127.0.0.1:1/?a=b",
    "fragment": "http://127.0.0.1:1/#x",
    "scheme": "ftp://127.0.0.1:1",
    "no-host": "http://",
    "bad-port": "http://127.0.0.1:99999",
    "not-a-url": "127.0.0.1:1",
    "not-a-str": 8080,
}


@pytest.mark.parametrize("cls", [undipy.Client, undipy.Pool])
@pytest.mark.parametrize("origin", BAD_ORIGINS.values(), ids=BAD_ORIGINS.keys())
def test_constructor_rejects_an_origin_that_is_not_scheme_host_port(
    cls: type[undipy.Dispatcher], origin: Any
) -> None:
    with pytest.raises(InvalidArgumentError):
        cls(origin)


@pytest.mark.parametrize("connections", [0, -1, "2", 1.5])
def test_pool_rejects_bad_connections(connections: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        undipy.Pool("http://127.0.0.1:1", connections=connections)


async def test_origin_with_trailing_slash_is_accepted(raw_server: RawServerFactory) -> None:
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin + "/")) as client:
        resp = await within(client.request(path="/", method="GET"))
        assert await within(resp.body.text()) == "ok"
    await srv.wait_closed(1)
    assert srv.received == [
        head("GET / HTTP/1.1", f"host: {host_of(srv)}", "connection: keep-alive")
    ]


async def test_default_port_is_omitted_from_host(
    raw_server: RawServerFactory, tmp_path: Any
) -> None:
    """undici derives host from the origin: an explicit default port is not repeated.
    The request goes to a RawServer through socket_path, so no real port 80 is needed."""
    path = sock_path(tmp_path, "default-port.sock")
    srv = await raw_server(answer(), unix_path=path)
    async with closing(undipy.Client("http://example.test:80", socket_path=path)) as client:
        resp = await within(client.request(path="/", method="GET"))
        assert await within(resp.body.text()) == "ok"
    await srv.wait_closed(1)
    assert srv.received == [head("GET / HTTP/1.1", "host: example.test", "connection: keep-alive")]


# --------------------------------------------------------------------------- unix sockets


def sock_path(tmp_path: Any, name: str) -> str:
    # AF_UNIX paths are limited to ~107 bytes: pytest's tmp_path can be longer.
    path = str(tmp_path / name)
    if len(path) > 100:
        path = f"/tmp/undipy-{os.getpid()}-{name}"
    return path


@pytest.mark.loops
async def test_client_over_unix_socket_to_http_server(tmp_path: Any) -> None:
    path = sock_path(tmp_path, "http.sock")
    async with HttpServer(unix_path=path) as srv:
        async with closing(undipy.Client("http://localhost", socket_path=path)) as client:
            for _ in range(2):
                resp = await within(client.request(path="/x", method="GET"))
                assert resp.status_code == 200
                assert await within(resp.body.text()) == "hello"
        assert [r.header("host") for r in srv.requests] == ["localhost", "localhost"]
        assert srv.connections == 1


async def test_unix_socket_request_bytes(raw_server: RawServerFactory, tmp_path: Any) -> None:
    path = sock_path(tmp_path, "raw.sock")
    srv = await raw_server(answer(), unix_path=path)
    async with closing(undipy.Client("http://localhost", socket_path=path)) as client:
        resp = await within(client.request(path="/u", method="POST", body=b"hi"))
        assert await within(resp.body.text()) == "ok"
    await srv.wait_closed(1)
    assert srv.received == [
        head("POST /u HTTP/1.1", "host: localhost", "connection: keep-alive", "content-length: 2")
        + b"hi"
    ]


async def test_pool_over_unix_socket(tmp_path: Any) -> None:
    path = sock_path(tmp_path, "pool.sock")
    async with HttpServer(unix_path=path) as srv:
        async with closing(undipy.Pool("http://localhost", socket_path=path)) as pool:
            resp = await within(pool.request(path="/", method="GET"))
            assert await within(resp.body.text()) == "hello"
        assert srv.requests[0].header("host") == "localhost"


@pytest.mark.loops
@pytest.mark.parametrize(
    "make", [lambda: io.BytesIO(b"abcde"), lambda: iter([b"ab", b"cde"])], ids=["file", "iterable"]
)
async def test_a_quick_answer_to_a_streamed_body_keeps_the_connection(
    raw_server: RawServerFactory, make: Any
) -> None:
    """The server answers the moment it has the declared bytes: the body's last
    chunk went out together with its end, so the request is complete and the
    connection stays (not reset as "answered before the body was sent")."""

    async def quick(conn: RawConn) -> None:
        while await conn.read_request():
            await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    srv = await raw_server(quick)
    async with closing(undipy.Client(srv.origin)) as client:
        for _ in range(50):
            resp = await within(
                client.request(
                    path="/", method="POST", body=make(), headers={"content-length": "5"}
                )
            )
            assert await within(resp.body.text()) == "ok"
    assert srv.connections == 1
