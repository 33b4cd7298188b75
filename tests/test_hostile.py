"""Hostile and broken servers (reliability.md §2.7): clear error, no hang, no reuse.

Each row of ``CASES`` is exact response bytes a RawServer sends to the first request on
its first connection, and what the client must make of them. Every row runs twice: the
bytes in one write, and one byte per write (row 66: split invariance). After the first
request, a second one on the same ``Client`` must succeed, and:

* after an error, or a response that leaves the connection unusable, on a NEW connection,
  the first one having been closed by the client (the server sees EOF) and never sent
  another request;
* after a clean keep-alive response, on the SAME connection.

Error classes and codes are undici's (``HTTPParserError.code`` is llhttp's ``HPE_*``).
"""

from __future__ import annotations

import asyncio
import fcntl
import resource
import socket
import struct
import termios
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
import undipy
from hostile_helpers import (
    DELIVERIES,
    Clients,
    Events,
    Outcome,
    Recorder,
    T,
    WireConn,
    assert_error,
    fetch,
    head,
    ok,
    raw_socket,
    wait_event,
)
from servers import RawConn, RawServer, TlsPair, chunked, hello_script, response
from undipy import (
    BodyTimeoutError,
    HeadersOverflowError,
    HTTPParserError,
    InformationalError,
    ResponseContentLengthMismatchError,
    ResponseExceededMaxSizeError,
    SocketError,
)

pytestmark = pytest.mark.loops



# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Err:
    """The request fails with ``cls`` (exact class), ``code`` and, if given, ``message``."""

    cls: type[BaseException]
    code: str
    message: str | None = None


def P(code: str) -> Err:
    """HTTPParserError with llhttp's ``code``."""
    return Err(HTTPParserError, code)


OVERFLOW = Err(HeadersOverflowError, "UND_ERR_HEADERS_OVERFLOW")
CL_MISMATCH = Err(ResponseContentLengthMismatchError, "UND_ERR_RES_CONTENT_LENGTH_MISMATCH")


@dataclass(frozen=True)
class Res:
    """The request succeeds with this status and body (and, if given, these extras).

    ``reuse``: the connection stays usable and the next request goes on it.
    """

    body: bytes
    status: int = 200
    reuse: bool = True
    status_text: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    """Must be present with these values."""
    absent_headers: tuple[str, ...] = ()
    header_count: int | None = None
    """If given, ``len(resp.headers)``."""
    trailers: dict[str, Any] | None = None
    infos: tuple[int, ...] = ()


@dataclass(frozen=True)
class Case:
    id: str
    wire: bytes
    expect: Err | Res
    then: Literal["keep", "close", "reset"] = "keep"
    method: str = "GET"
    client: dict[str, Any] = field(default_factory=dict)
    request: dict[str, Any] = field(default_factory=dict)


def cases_for(
    prefix: str, wires: list[tuple[str, bytes]], expect: Err | Res, **kw: Any
) -> list[Case]:
    return [Case(f"{prefix}-{name}", wire, expect, **kw) for name, wire in wires]


CHUNKED = b"Transfer-Encoding: chunked"
HELLO_CHUNKED = b"5\r\nhello\r\n0\r\n\r\n"


def te_body(*chunk_lines: bytes) -> bytes:
    """A chunked 200 whose body is exactly the given bytes (joined, nothing added)."""
    return ok(CHUNKED, body=b"".join(chunk_lines))


MAX_HEADER_SIZE = 16384
"""The default ``max_header_size``."""


def many_fields(n: int, size: int) -> tuple[bytes, dict[str, str]]:
    """A 200 head of exactly ``size`` bytes: ``Content-Length: 2`` and ``n`` fields
    ``X-000: 0`` ... (the last value padded to reach ``size``), then the body ``ok``.
    Returns the bytes and the fields as ``request()``'s headers must show them."""
    fields = [b"X-%03d: %d" % (i, i) for i in range(n)]
    fields[-1] += b"p" * (size - len(ok(b"Content-Length: 2", *fields)))
    wire = ok(b"Content-Length: 2", *fields)
    assert len(wire) == size
    headers = dict(f.decode().lower().split(": ", 1) for f in fields)
    return wire + b"ok", {"content-length": "2", **headers}


FIELDS_500_AT_LIMIT, HEADERS_500_AT_LIMIT = many_fields(500, MAX_HEADER_SIZE)
FIELDS_500_UNDER_LIMIT, HEADERS_500_UNDER_LIMIT = many_fields(500, MAX_HEADER_SIZE - 384)


CASES: list[Case] = [
    # ---- rows 1-3: Content-Length vs Transfer-Encoding, repeated Content-Length
    Case("r01-cl-then-te", ok(b"Content-Length: 5", CHUNKED, body=HELLO_CHUNKED),
         P("HPE_UNEXPECTED_CONTENT_LENGTH")),
    Case("r01-te-then-cl", ok(CHUNKED, b"Content-Length: 5", body=HELLO_CHUNKED),
         P("HPE_UNEXPECTED_CONTENT_LENGTH")),
    # ... on responses that have no body too, as llhttp (docs/choices.md).
    Case("r01-head-cl-te", ok(b"Content-Length: 5", CHUNKED),
         P("HPE_UNEXPECTED_CONTENT_LENGTH"), method="HEAD"),
    Case("r01-204-cl-te", head(b"HTTP/1.1 204 No Content", b"Content-Length: 5", CHUNKED),
         P("HPE_UNEXPECTED_CONTENT_LENGTH")),
    Case("r01-304-te-cl", head(b"HTTP/1.1 304 Not Modified", CHUNKED, b"Content-Length: 5"),
         P("HPE_UNEXPECTED_CONTENT_LENGTH")),
    Case("r02-two-cl-differ", ok(b"Content-Length: 1", b"Content-Length: 2", body=b"ab"),
         P("HPE_UNEXPECTED_CONTENT_LENGTH")),
    Case("r02-cl-list-differs", ok(b"Content-Length: 3, 4", body=b"abcd"),
         P("HPE_INVALID_CONTENT_LENGTH")),
    # Equal values too (llhttp: "Duplicate Content-Length"; a list is no number).
    *cases_for("r03", [
        ("two-cl-same", ok(b"Content-Length: 2", b"Content-Length: 2", body=b"ok")),
        ("two-cl-same-case-differs", ok(b"Content-Length: 2", b"X: y", b"content-length: 2",
                                        body=b"ok")),
    ], P("HPE_UNEXPECTED_CONTENT_LENGTH")),
    *cases_for("r03", [
        ("cl-list-same", ok(b"Content-Length: 2, 2", body=b"ok")),
        ("cl-list-same-no-space", ok(b"Content-Length: 3,3", body=b"abc")),
    ], P("HPE_INVALID_CONTENT_LENGTH")),
    # ---- rows 4-6: Content-Length syntax
    *cases_for("r04-cl", [
        ("minus-one", ok(b"Content-Length: -1", body=b"x")),
        ("plus", ok(b"Content-Length: +5", body=b"hello")),
        ("hex", ok(b"Content-Length: 0x5", body=b"hello")),
        ("two-numbers", ok(b"Content-Length: 5 5", body=b"hello")),
        ("empty", ok(b"Content-Length: ", body=b"hello")),
        ("arabic-digit", ok(b"Content-Length: \xd9\xa3", body=b"abc")),
        ("trailing-junk", ok(b"Content-Length: 5a", body=b"hello")),
        ("decimal-point", ok(b"Content-Length: 5.0", body=b"hello")),
    ], P("HPE_INVALID_CONTENT_LENGTH")),
    *cases_for("r05-cl", [
        ("21-digits", ok(b"Content-Length: 100000000000000000000", body=b"x")),
        ("u64-max-plus-one", ok(b"Content-Length: 18446744073709551616", body=b"x")),
        ("10k-digits", ok(b"Content-Length: " + b"9" * 10_000, body=b"x")),
    ], P("HPE_INVALID_CONTENT_LENGTH")),
    Case("r06-cl-leading-zeros", ok(b"Content-Length: 0005", body=b"hello"), Res(b"hello")),
    # ---- row 8: body cut short
    Case("r08-cl-10-sent-3-close", ok(b"Content-Length: 10", body=b"abc"), CL_MISMATCH,
         then="close"),
    Case("r08-cl-no-body-close", ok(b"Content-Length: 10"), CL_MISMATCH, then="close"),
    # ---- rows 9-10: TE not ending in chunked: body runs to close, never reused
    *cases_for("r09-te", [
        ("chunked-deflate", ok(b"Transfer-Encoding: chunked, deflate", body=HELLO_CHUNKED)),
        ("chunked-then-identity", ok(CHUNKED, b"Transfer-Encoding: identity",
                                     body=HELLO_CHUNKED)),
    ], Res(HELLO_CHUNKED, reuse=False), then="close"),
    *cases_for("r10-te", [
        ("chunkedchunked", ok(b"Transfer-Encoding: chunkedchunked", body=HELLO_CHUNKED)),
        ("xchunked", ok(b"Transfer-Encoding: xchunked", body=HELLO_CHUNKED)),
    ], Res(HELLO_CHUNKED, reuse=False), then="close"),
    Case("r10-te-leading-comma", ok(b"Transfer-Encoding: ,chunked", body=HELLO_CHUNKED),
         P("HPE_INVALID_TRANSFER_ENCODING")),
    # ---- rows 11-12
    Case("r11-two-te-chunked-lines", ok(CHUNKED, CHUNKED, body=HELLO_CHUNKED),
         P("HPE_INVALID_TRANSFER_ENCODING")),
    Case("r11-chunked-twice-in-list", ok(b"Transfer-Encoding: chunked, chunked",
                                         body=HELLO_CHUNKED),
         P("HPE_INVALID_TRANSFER_ENCODING")),
    Case("r12-te-in-http10", head(b"HTTP/1.0 200 OK", CHUNKED, body=HELLO_CHUNKED),
         P("HPE_INVALID_TRANSFER_ENCODING")),
    # ---- rows 13-16: chunk sizes
    *cases_for("r13-chunk-size", [
        ("17-hex-digits", te_body(b"ffffffffffffffff1\r\nx\r\n0\r\n\r\n")),
        ("17-digits-leading-zeros", te_body(b"00000000000000005\r\nhello\r\n0\r\n\r\n")),
    ], P("HPE_INVALID_CHUNK_SIZE")),
    *cases_for("r14-chunk-size", [
        ("0x-prefix", te_body(b"0x5\r\nhello\r\n0\r\n\r\n")),
        ("plus", te_body(b"+5\r\nhello\r\n0\r\n\r\n")),
        ("minus", te_body(b"-5\r\nhello\r\n0\r\n\r\n")),
        ("leading-space", te_body(b" 5\r\nhello\r\n0\r\n\r\n")),
        ("underscore", te_body(b"0_2e\r\n" + b"x" * 46 + b"\r\n0\r\n\r\n")),
    ], P("HPE_INVALID_CHUNK_SIZE")),
    Case("r15-empty-chunk-size-line", te_body(b"\r\nhello\r\n0\r\n\r\n"),
         P("HPE_INVALID_CHUNK_SIZE")),
    Case("r16-space-after-chunk-size", te_body(b"5 \r\nhello\r\n0\r\n\r\n"),
         P("HPE_INVALID_CHUNK_SIZE")),
    # ---- rows 17-21: extensions and chunk framing
    Case("r17-chunk-extensions", te_body(b'5;a=b;c="x;y"\r\nhello\r\n0;z\r\n\r\n'),
         Res(b"hello")),
    Case("r18-ext-bare-lf", te_body(b"5;a\nhello\r\n0\r\n\r\n"), P("HPE_INVALID_CHUNK_SIZE")),
    Case("r18-size-bare-cr", te_body(b"5\r\r;x\r\nhello\r\n0\r\n\r\n"), P("HPE_LF_EXPECTED")),
    Case("r19-extensions-over-16k", te_body(
        b"".join(b"1;e=" + b"x" * 1024 + b"\r\na\r\n" for _ in range(20)) + b"0\r\n\r\n"),
        P("HPE_CHUNK_EXTENSIONS_OVERFLOW")),
    Case("r19-one-huge-extension", te_body(b"1;e=" + b"x" * (1 << 20) + b"\r\na\r\n0\r\n\r\n"),
         P("HPE_CHUNK_EXTENSIONS_OVERFLOW")),
    Case("r20-chunk-data-no-crlf", te_body(b"5\r\nhelloXX0\r\n\r\n"), P("HPE_CR_EXPECTED")),
    Case("r20-chunk-data-cr-only", te_body(b"5\r\nhello\rX0\r\n\r\n"), P("HPE_LF_EXPECTED")),
    Case("r21-bare-lf-after-size", te_body(b"5\nhello\r\n0\r\n\r\n"),
         P("HPE_INVALID_CHUNK_SIZE")),
    Case("r21-bare-lf-after-data", te_body(b"5\r\nhello\n0\r\n\r\n"), P("HPE_CR_EXPECTED")),
    Case("r21-bare-lf-ending-trailers", te_body(b"5\r\nhello\r\n0\r\n\n"),
         P("HPE_CR_EXPECTED")),
    # ---- rows 22-23: chunked body cut
    Case("r22-no-last-chunk-close", te_body(b"5\r\nhello\r\n"), P("HPE_INVALID_EOF_STATE"),
         then="close"),
    Case("r22-cut-mid-chunk-close", te_body(b"a\r\nhello"), P("HPE_INVALID_EOF_STATE"),
         then="close"),
    Case("r22-cut-in-trailers-close", te_body(b"5\r\nhello\r\n0\r\nX-T: 1\r\n"),
         P("HPE_INVALID_EOF_STATE"), then="close"),
    Case("r23-no-last-chunk-stays-open", te_body(b"5\r\nhello\r\n"),
         Err(BodyTimeoutError, "UND_ERR_BODY_TIMEOUT"), client={"body_timeout": 0.3}),
    # ---- rows 24-26: trailers
    Case("r24-framing-trailers-kept-apart", te_body(
        b"5\r\nhello\r\n0\r\nContent-Length: 999\r\nTransfer-Encoding: gzip\r\n"
        b"Host: evil.example\r\nTrailer: x\r\nX-Sum: 42\r\n\r\n"),
        Res(b"hello", absent_headers=("content-length", "host", "x-sum"),
            headers={"transfer-encoding": "chunked"},
            trailers={"content-length": "999", "transfer-encoding": "gzip",
                      "host": "evil.example", "trailer": "x", "x-sum": "42"})),
    # Only bytes count: 1000 small trailers fit max_header_size, 2000 do not.
    Case("r25-1000-trailers", te_body(
        b"5\r\nhello\r\n0\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(1000)) + b"\r\n"),
        Res(b"hello", trailers={f"x-{i}": "v" for i in range(1000)})),
    Case("r25-2000-trailers", te_body(
        b"5\r\nhello\r\n0\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(2000)) + b"\r\n"),
        OVERFLOW),
    Case("r25-endless-trailer-line", te_body(b"5\r\nhello\r\n0\r\nX-T: " + b"t" * 40_000),
         OVERFLOW),
    Case("r26-trailer-bare-lf", te_body(b"5\r\nhello\r\n0\r\nX-T: 1\n\r\n"),
         P("HPE_CR_EXPECTED")),
    Case("r26-trailer-without-colon", te_body(b"5\r\nhello\r\n0\r\ngarbage\r\n\r\n"),
         P("HPE_INVALID_HEADER_TOKEN")),
    # ---- rows 27-34: header lines
    *cases_for("r27-value-ctl", [
        ("nul", ok(b"Content-Length: 0", b"X: a\x00b")),
        ("soh", ok(b"Content-Length: 0", b"X: a\x01b")),
        ("esc", ok(b"Content-Length: 0", b"X: \x1b")),
        ("del", ok(b"Content-Length: 0", b"X: a\x7fb")),
        ("nul-in-long-value", ok(b"Content-Length: 0", b"X: " + b"v" * 70 + b"\x00" + b"v" * 30)),
    ], P("HPE_INVALID_HEADER_TOKEN")),
    Case("r28-bare-cr-between-fields", ok(b"Content-Length: 0", b"Foo: 1\rBar: 2"),
         P("HPE_LF_EXPECTED")),
    Case("r29-head-ends-crcr", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\rX",
         P("HPE_LF_EXPECTED")),
    *cases_for("r30-space-before-colon", [
        ("space", ok(b"Content-Length : 5", body=b"hello")),
        ("tab", ok(b"Content-Length\t: 5", body=b"hello")),
    ], P("HPE_INVALID_HEADER_TOKEN")),
    *cases_for("r31-bad-name", [
        ("empty-name", ok(b"Content-Length: 0", b": x")),
        ("no-colon", ok(b"Content-Length: 0", b"NoColon")),
        ("space-in-name", ok(b"Content-Length: 0", b"Foo Bar: x")),
    ], P("HPE_INVALID_HEADER_TOKEN")),
    *cases_for("r32-33-obs-fold", [
        ("ordinary-header", ok(b"Content-Length: 0", b"X: a", b" b")),
        ("transfer-encoding", ok(CHUNKED, b" , identity", body=HELLO_CHUNKED)),
        ("content-length", ok(b"Content-Length: 1", b" 0", body=b"x" * 10)),
    ], P("HPE_INVALID_HEADER_TOKEN")),
    *cases_for("r34-lf-only", [
        ("everywhere", b"HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
        ("status-line", b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"),
        ("last-line", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n"),
    ], P("HPE_CR_EXPECTED")),
    # ---- rows 35-40: status line
    *[Case(f"r35-status-{name}", head(line, b"Content-Length: 0"), P(code))
      for name, line, code in [
        ("htp", b"HTP/1.1 200 OK", "HPE_INVALID_CONSTANT"),
        ("version-01.1", b"HTTP/01.1 200 OK", "HPE_INVALID_VERSION"),
        ("tab-separator", b"HTTP/1.1\t200 OK", "HPE_INVALID_VERSION"),
        ("http-5.6", b"HTTP/5.6 200 OK", "HPE_INVALID_VERSION"),
        ("status-2000", b"HTTP/1.1 2000 OK", "HPE_INVALID_STATUS"),
        ("status-20", b"HTTP/1.1 20 OK", "HPE_INVALID_STATUS"),
        ("double-space", b"HTTP/1.1  200 OK", "HPE_INVALID_STATUS"),
        ("reason-ctl", b"HTTP/1.1 200 O\x01K", "HPE_INVALID_STATUS"),
    ]],
    *cases_for("r36-status", [
        ("001", head(b"HTTP/1.1 001 Odd", b"Content-Length: 0")),
        ("099", head(b"HTTP/1.1 099 Odd", b"Content-Length: 0")),
    ], P("HPE_INVALID_STATUS")),
    Case("r37-http2", head(b"HTTP/2.0 200 OK", b"Content-Length: 0"), P("HPE_INVALID_VERSION")),
    Case("r37-http09-no-status-line", b"<html>hello</html>", P("HPE_INVALID_CONSTANT"),
         then="close"),
    Case("r37-rtsp", head(b"RTSP/1.0 200 OK", b"Content-Length: 0"), P("HPE_INVALID_CONSTANT")),
    Case("r37-ice", head(b"ICE/1.0 200 OK", b"Content-Length: 0"), P("HPE_INVALID_CONSTANT")),
    Case("r38-no-reason", head(b"HTTP/1.1 200", b"Content-Length: 2", body=b"ok"),
         Res(b"ok", status_text="")),
    Case("r38-empty-reason", head(b"HTTP/1.1 200 ", b"Content-Length: 2", body=b"ok"),
         Res(b"ok", status_text="")),
    Case("r39-reason-obs-text", head(b"HTTP/1.1 200 \xc3\xa9t\xe9 \xff", b"Content-Length: 2",
                                     body=b"ok"),
         Res(b"ok", status_text="\xc3\xa9t\xe9 \xff")),
    Case("r40-value-invalid-utf8", ok(b"Content-Length: 2", b"X-Bin: \xff\xfe\x80", body=b"ok"),
         Res(b"ok", headers={"x-bin": "\xff\xfe\x80"})),
    # ---- rows 41-42: oversized heads (default max_header_size 16 KiB)
    Case("r41-head-never-ends", b"HTTP/1.1 200 OK\r\nX-Endless: " + b"a" * 40_000, OVERFLOW),
    Case("r41-endless-status-line", b"HTTP/1.1 200 " + b"r" * 40_000, OVERFLOW),
    # The field count is no limit, only the bytes are (undici).
    Case("r42-1000-small-headers",
         ok(*(b"X-%d: v" % i for i in range(1000)), b"Content-Length: 0"),
         Res(b"", headers={f"x-{i}": "v" for i in range(1000)}, header_count=1001)),
    Case("r42-2000-small-headers",
         ok(*(b"X-%d: v" % i for i in range(2000)), b"Content-Length: 0"), OVERFLOW),
    Case("r42-500-headers-under-max-header-size", FIELDS_500_UNDER_LIMIT,
         Res(b"ok", headers=HEADERS_500_UNDER_LIMIT, header_count=501)),
    Case("r42-500-headers-at-max-header-size", FIELDS_500_AT_LIMIT,
         Res(b"ok", headers=HEADERS_500_AT_LIMIT, header_count=501)),
    Case("r42-500-headers-one-byte-over", many_fields(500, MAX_HEADER_SIZE + 1)[0], OVERFLOW),
    Case("r42-500k-header", ok(b"X-Big: " + b"b" * 500_000, b"Content-Length: 0"), OVERFLOW),
    Case("r42-max-header-size-small", ok(b"Content-Length: 0", b"X-Pad: " + b"p" * 100),
         OVERFLOW, client={"max_header_size": 64}),
    Case("r42-head-fits-max-header-size", ok(b"Content-Length: 2", body=b"ok"),
         Res(b"ok"), client={"max_header_size": len(ok(b"Content-Length: 2"))}),
    # ---- row 47: nothing before the close
    Case("r47-close-before-any-byte", b"",
         Err(SocketError, "UND_ERR_SOCKET", "other side closed"), then="close"),
    Case("r47-reset-before-any-byte", b"", Err(SocketError, "UND_ERR_SOCKET"), then="reset"),
    Case("r47-close-mid-head", b"HTTP/1.1 200 OK\r\nContent-Le",
         Err(SocketError, "UND_ERR_SOCKET", "other side closed"), then="close"),
    # ---- rows 50-52: bytes after a complete response, close-delimited bodies
    Case("r50-second-response-in-same-write",
         response(200, b"one") + response(200, b"POISON"), Res(b"one", reuse=False)),
    Case("r50-garbage-after-response", response(200, b"one") + b"XYZ\r\n",
         Res(b"one", reuse=False)),
    Case("r50-chunked-then-extra-response",
         ok(CHUNKED, body=HELLO_CHUNKED) + response(200, b"POISON"), Res(b"hello", reuse=False)),
    Case("r51-connection-close-then-data",
         ok(b"Content-Length: 3", b"Connection: close", body=b"one") + response(200, b"POISON"),
         Res(b"one", reuse=False)),
    Case("r51-connection-close-server-keeps-open",
         ok(b"Content-Length: 3", b"Connection: close", body=b"one"), Res(b"one", reuse=False)),
    Case("r52-http10-body-to-eof", head(b"HTTP/1.0 200 OK", b"X: y", body=b"until the end"),
         Res(b"until the end", reuse=False), then="close"),
    Case("r52-http11-no-length-body-to-eof", ok(b"X: y", body=b"until the end"),
         Res(b"until the end", reuse=False), then="close"),
    # ---- rows 54-55: responses that have no body, followed by body bytes
    Case("r54-head-cl-with-body-bytes", ok(b"Content-Length: 5", body=b"hello"),
         Res(b"", reuse=False, headers={"content-length": "5"}), method="HEAD"),
    Case("r54-head-reset-false-with-body-bytes", ok(b"Content-Length: 5", body=b"hello"),
         Res(b"", reuse=False), method="HEAD", request={"reset": False}),
    Case("r54-head-reset-false-clean", ok(b"Content-Length: 5"), Res(b""), method="HEAD",
         request={"reset": False}),
    Case("r55-204-cl-with-body-bytes",
         head(b"HTTP/1.1 204 No Content", b"Content-Length: 5", body=b"hello"),
         Res(b"", status=204, reuse=False)),
    Case("r55-304-te-with-body-bytes",
         head(b"HTTP/1.1 304 Not Modified", CHUNKED, body=HELLO_CHUNKED),
         Res(b"", status=304, reuse=False)),
    Case("r55-204-clean", head(b"HTTP/1.1 204 No Content", b"Content-Length: 5"),
         Res(b"", status=204)),
    # ---- rows 56-59: interim responses
    Case("r56-103-then-200",
         head(b"HTTP/1.1 103 Early Hints", b"Link: </s.css>; rel=preload")
         + response(200, b"final"), Res(b"final", infos=(103,))),
    Case("r56-102-103-then-200",
         head(b"HTTP/1.1 102 Processing") + head(b"HTTP/1.1 103 Early Hints")
         + response(200, b"final"), Res(b"final", infos=(102, 103))),
    Case("r58-103-with-body", head(b"HTTP/1.1 103 Early Hints", b"Content-Length: 5",
                                   body=b"hello") + response(200, b"final"),
         P("HPE_UNEXPECTED_CONTENT_LENGTH")),
    Case("r58-100-without-expect", head(b"HTTP/1.1 100 Continue") + response(200, b"final"),
         Err(SocketError, "UND_ERR_SOCKET", "bad response")),
    Case("r59-101-without-upgrade",
         head(b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket",
              b"Connection: Upgrade") + b"\x81\x05hello",
         Err(SocketError, "UND_ERR_SOCKET", "bad upgrade")),
    # ---- row 63: RST right after a complete response
    Case("r63-reset-after-complete-response", response(200, b"done"),
         Res(b"done", reuse=False), then="reset"),
    Case("r63-reset-after-chunked-response", ok(CHUNKED, body=HELLO_CHUNKED),
         Res(b"hello", reuse=False), then="reset"),
    # ---- limits
    Case("max-response-size-exceeded", response(200, b"hello!"),
         Err(ResponseExceededMaxSizeError, "UND_ERR_RES_EXCEEDED_MAX_SIZE"),
         client={"max_response_size": 5}),
    Case("max-response-size-exceeded-chunked", ok(CHUNKED, body=chunked(b"hel", b"lo!")),
         Err(ResponseExceededMaxSizeError, "UND_ERR_RES_EXCEEDED_MAX_SIZE"),
         client={"max_response_size": 5}),
    Case("max-response-size-exceeded-close-delimited", ok(body=b"hello!"),
         Err(ResponseExceededMaxSizeError, "UND_ERR_RES_EXCEEDED_MAX_SIZE"),
         then="close", client={"max_response_size": 5}),
    Case("max-response-size-exact", response(200, b"hello"), Res(b"hello"),
         client={"max_response_size": 5}),
]

_ids = [c.id for c in CASES]
assert len(_ids) == len(set(_ids)), "duplicate case ids"


def check(out: Outcome, expect: Err | Res) -> None:
    if isinstance(expect, Err):
        assert_error(out, expect.cls, expect.code)
        assert type(out.error) is expect.cls, f"{out.error!r} is a subclass of {expect.cls}"
        if expect.message is not None:
            assert str(out.error) == expect.message
        return
    out.raise_if_error()
    assert out.status == expect.status
    assert out.body == expect.body
    if expect.status_text is not None:
        assert out.status_text == expect.status_text
    assert out.headers is not None
    for name, value in expect.headers.items():
        assert out.headers.get(name) == value, (name, out.headers)
    for name in expect.absent_headers:
        assert name not in out.headers, (name, out.headers)
    if expect.header_count is not None:
        assert len(out.headers) == expect.header_count
    if expect.trailers is not None:
        assert out.trailers == expect.trailers
    assert tuple(i["status_code"] for i in out.infos) == expect.infos


@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize("case", CASES, ids=_ids)
async def test_hostile_response(raw_server, clients: Clients, case: Case, delivery) -> None:
    await run_case(raw_server, clients, case, delivery)


@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize("case", CASES[::5], ids=_ids[::5])
async def test_hostile_response_over_tls(
    raw_server, clients: Clients, case: Case, delivery, tls_pair: TlsPair
) -> None:
    """Every fifth row, over TLS: the engine reads through the session."""
    await run_case(raw_server, clients, case, delivery, tls_pair)


async def run_case(
    raw_server, clients: Clients, case: Case, delivery, tls: TlsPair | None = None
) -> None:
    first = WireConn(case.wire, delivery, case.then)
    server_tls = {} if tls is None else {"tls": tls.server}
    srv: RawServer = await raw_server([first, hello_script], **server_tls)
    client_tls = {} if tls is None else {"tls": {"ca": tls.ca}}
    c = clients.client(srv.origin, **client_tls, **case.client)
    events = Events(c)

    out = await fetch(c, method=case.method, **case.request)
    check(out, case.expect)
    await wait_event(first.finished if case.then != "keep" else first.sent,
                     "the server to finish sending")

    reuse = isinstance(case.expect, Res) and case.expect.reuse
    assert case.then == "keep" or not reuse, "a closed connection cannot be reused"
    if case.then == "keep" and not reuse:
        # The client must close a connection it cannot use any more, on its own.
        await wait_event(first.finished, "the client to close the failed connection")
        assert first.closed_by_peer, "the client neither closed nor reused the connection"
    if case.then != "keep":
        # The server closed or reset: wait until the client noticed, so the next request
        # does not race the FIN/RST (that race is test_r48's subject).
        await events.wait_for("disconnect")

    second = (await fetch(c)).raise_if_error()
    if reuse:
        assert (second.body, srv.connections, first.reused) == (WireConn.REUSED_BODY, 1, 1)
    else:
        assert (second.body, srv.connections, first.reused) == (b"hello", 2, 0)
    assert first.first_request.startswith(f"{case.method} / HTTP/1.1\r\n".encode())

    await asyncio.wait_for(c.close(), T)
    await srv.wait_closed(srv.connections, timeout=T)
    assert srv.open_connections == 0


async def test_max_response_size_zero_allows_only_empty_bodies(
    raw_server, clients: Clients
) -> None:
    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(response(204))
        assert await conn.read_request()
        await conn.send(response(200, b"x"))
        assert await conn.wait_closed_by_peer(T)

    srv = await raw_server([script, hello_script])
    c = clients.client(srv.origin, max_response_size=0)
    assert (await fetch(c)).raise_if_error().status == 204
    assert_error(await fetch(c), ResponseExceededMaxSizeError, "UND_ERR_RES_EXCEEDED_MAX_SIZE")
    assert srv.connections == 1


# --------------------------------------------------------------------------- row 7


def vm_peak_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmPeak:"):
                return int(line.split()[1])
    raise AssertionError("no VmPeak in /proc/self/status")


@pytest.mark.parametrize("delivery", DELIVERIES)
async def test_r07_10gb_content_length_then_close(raw_server, clients: Clients, delivery) -> None:
    """10 GB announced, 10 bytes sent, then close: a mismatch error, and memory stays O(read)."""
    wire = ok(b"Content-Length: 10000000000", body=b"0123456789")
    first = WireConn(wire, delivery, "close")
    srv = await raw_server([first, hello_script])
    c = clients.client(srv.origin)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    vm_before = vm_peak_kib()

    resp = await asyncio.wait_for(c.request(method="GET", path="/"), T)
    assert resp.headers["content-length"] == "10000000000"
    received = bytearray()
    with pytest.raises(ResponseContentLengthMismatchError) as info:
        async with asyncio.timeout(T):
            async for chunk in resp.body:
                received += chunk
    assert info.value.code == "UND_ERR_RES_CONTENT_LENGTH_MISMATCH"
    assert bytes(received) == b"0123456789"
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown_kib < 64 * 1024, f"peak RSS grew by {grown_kib} KiB"
    # An untouched 10 GB reservation would not show in RSS, but does in VmPeak.
    vm_grown_kib = vm_peak_kib() - vm_before
    assert vm_grown_kib < 1024 * 1024, f"peak virtual size grew by {vm_grown_kib} KiB"

    assert (await fetch(c)).raise_if_error().body == b"hello"
    assert srv.connections == 2


# --------------------------------------------------------------------------- row 49


async def test_r49_unsolicited_response_on_idle_socket(raw_server, clients: Clients) -> None:
    """The server sends a full extra response while the connection is idle: the client
    drops the connection, and the next request gets its own response on a new one."""
    unsolicited = asyncio.Event()

    async def first(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(response(200, b"one"))
        await asyncio.sleep(0.05)  # the client is idle now
        await conn.send(response(200, b"POISON"))
        unsolicited.set()
        assert await conn.wait_closed_by_peer(T), "client kept the poisoned connection"
        assert conn.received.count(b"GET /") == 1

    srv = await raw_server([first, hello_script])
    c = clients.client(srv.origin)
    events = Events(c)
    assert (await fetch(c, path="/1")).raise_if_error().body == b"one"
    await wait_event(unsolicited, "the unsolicited response")
    await events.wait_for("disconnect")
    assert (await fetch(c, path="/2")).raise_if_error().body == b"hello"
    assert srv.connections == 2
    err = events.named("disconnect")[0]
    assert isinstance(err, SocketError) and err.code == "UND_ERR_SOCKET"


ROUNDS = 40
BUSY_BODY = b"b" * (2 << 20)


def spin_until_acked(sock: socket.socket, limit: float = 1.0) -> None:
    """Busy-waits (no await) until the kernel has nothing of ours unacknowledged."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        (queued,) = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))
        if queued == 0:
            return
    raise AssertionError("the peer did not acknowledge within 1 s")


class IdleReuseRace:
    """Bytes (or a FIN) reach an idle keep-alive connection's socket buffer, then the next
    request is dispatched, in one synchronous step of the test's loop.

    To make "before" mean something to the engine, its runtime thread is kept busy at that
    moment: a 2 MiB upload on another client is dispatched just before. A client that checks
    an idle connection for pending bytes/EOF before reusing it (undici's idle-socket
    validation, the fix of GHSA-35p6-xmwp-9g52) passes every round whatever the timing; one
    that does not takes the bait in most rounds (>= 1 in 2)."""

    def __init__(self, busy: undipy.Client, c: undipy.Client, act: Any) -> None:
        self.busy, self.c, self.act = busy, c, act
        self.go, self.dispatched = asyncio.Event(), asyncio.Event()
        self.upload = Recorder("upload")
        self.second = Recorder("/2")

    async def script(self, conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(response(200, b"one"))
        await wait_event(self.go, "the test to start the race")
        self.busy.dispatch(self.upload, method="POST", path="/upload", body=BUSY_BODY)
        with raw_socket(conn) as sock:
            self.act(sock)
            # Loopback delivery is asynchronous by microseconds: spin (without yielding to
            # the loop) until the peer acknowledged it, so "already buffered" is true.
            spin_until_acked(sock)
        self.c.dispatch(self.second, method="GET", path="/2")
        self.dispatched.set()
        await conn.wait_closed_by_peer(T)


async def run_idle_reuse_races(raw_server, http_server, clients: Clients, act: Any) -> None:
    busy = clients.client(http_server.origin)
    assert (await fetch(busy)).raise_if_error().body == b"hello"
    for i in range(ROUNDS):
        c_holder: list[IdleReuseRace] = []

        async def first(conn: RawConn, c_holder=c_holder) -> None:
            await c_holder[0].script(conn)

        srv = await raw_server([first, hello_script])
        c = clients.client(srv.origin)
        race = IdleReuseRace(busy, c, act)
        c_holder.append(race)
        assert (await fetch(c, path="/1")).raise_if_error().body == b"one"
        race.go.set()
        await wait_event(race.dispatched, "request 2 to be dispatched")
        rec = await race.second.wait()
        assert (rec.error, rec.body) == (None, b"hello"), f"round {i}: request 2 got {rec!r}"
        assert srv.connections == 2
        assert (await race.upload.wait()).error is None
        await asyncio.wait_for(c.close(), T)


async def test_r49_unsolicited_bytes_already_buffered_when_request_is_dispatched(
    raw_server, http_server, clients: Clients
) -> None:
    """GHSA-35p6-xmwp-9g52: a full unsolicited response is already in the client's receive
    buffer when the next request is dispatched on the idle connection. It must never be
    taken as that request's response: request 2 gets "hello" from a new connection."""
    await run_idle_reuse_races(
        raw_server, http_server, clients, lambda sock: sock.sendall(response(200, b"POISON"))
    )


async def test_r48_fin_on_idle_socket_before_request_is_dispatched(
    raw_server, http_server, clients: Clients
) -> None:
    """The server has closed the idle keep-alive connection (its FIN is in the client's
    buffer) when the next request is dispatched: the request goes on a new connection
    instead of failing with 'other side closed' (undici's idle-socket validation)."""
    await run_idle_reuse_races(
        raw_server, http_server, clients, lambda sock: sock.shutdown(socket.SHUT_WR)
    )


# --------------------------------------------------------------------------- row 57


async def test_r57_interim_response_flood_is_capped(raw_server, clients: Clients) -> None:
    """10 000 × 103 before the final response: the interim heads are counted against a
    cap (undipy's choice: the head-size limit), not delivered without end."""
    flood = head(b"HTTP/1.1 103 Early Hints", b"Link: </x>") * 10_000
    first = WireConn(flood + response(200, b"final"))
    srv = await raw_server([first, hello_script])
    c = clients.client(srv.origin)
    infos: list[dict[str, Any]] = []
    out = await fetch(c, on_info=infos.append)
    assert_error(out, HeadersOverflowError, "UND_ERR_HEADERS_OVERFLOW")
    assert len(infos) < 10_000
    assert (await fetch(c)).raise_if_error().body == b"hello"


# --------------------------------------------------------------------------- row 62


@pytest.mark.parametrize("close", [True, False], ids=["connection-close", "keep-alive"])
@pytest.mark.parametrize("body_kind", ["bytes", "async-iterable"])
async def test_r62_response_before_request_body_finished(
    raw_server, clients: Clients, body_kind: str, close: bool
) -> None:
    """The server answers 413 after reading only the head of a 32 MiB upload (with
    ``Connection: close`` and a half-close, or as if keep-alive): the caller gets the 413,
    the upload stops, the client closes that connection ('disconnect' with an
    InformationalError: no request failed) and the next request uses a new one."""
    size = 32 << 20

    async def first(conn: RawConn) -> None:
        head_bytes = await conn.read_until(b"\r\n\r\n")
        assert head_bytes.startswith(b"POST /upload HTTP/1.1\r\n")
        await conn.send(response(413, b"too big", [("Connection", "close")] if close else []))
        if close:
            await conn.shutdown_write()
        # Keep reading (a close with unread data would be a RST that could destroy the
        # 413 before the client read it); the client must stop sending and close.
        assert await conn.wait_closed_by_peer(T)
        assert len(conn.received) < len(head_bytes) + size

    async def chunks():
        for _ in range(size // 65536):
            yield b"u" * 65536

    srv = await raw_server([first, hello_script])
    c = clients.client(srv.origin)
    events = Events(c)
    body: Any = b"u" * size if body_kind == "bytes" else chunks()
    out = await fetch(c, method="POST", path="/upload", body=body)
    out.raise_if_error()
    assert (out.status, out.body) == (413, b"too big")
    await events.wait_for("disconnect")
    err = events.named("disconnect")[0]
    assert type(err) is InformationalError and err.code == "UND_ERR_INFO", err
    assert (await fetch(c)).raise_if_error().body == b"hello"
    assert srv.connections == 2
