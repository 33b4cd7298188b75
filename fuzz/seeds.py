#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets under fuzz/corpus/<target>/.

Two sources:

* the hostile-server rows of tests/test_hostile.py (``CASES``: exact response
  bytes), imported as a module (the test environment: undipy installed);
  if that import fails, the module is loaded with stand-ins for ``undipy`` and
  ``pytest``, which only the test functions need;
* hand-written facts in the spirit of llhttp's response fixtures and the
  request-side rules of reliability.md §3 (our own byte strings).

Seed files are named ``hostile-*`` and ``fact-*``; files of those names not
written by this run are removed, anything else in the corpus directories
(inputs the fuzzer found and that were merged in) is left alone.
Each seed is at most ``MAX_SEED`` bytes: longer rows are cut and their
limits scaled down so they keep their meaning (an oversized head stays
oversized).

Usage: python3 fuzz/seeds.py
"""

from __future__ import annotations

import importlib
import re
import struct
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = HERE / "corpus"
MAX_SEED = 4096
"""libFuzzer's default -max_len: a longer seed would be cut anyway."""

SPLIT_SEEDS = [0x0000, 0x2001, 0x6002, 0xA003, 0xE004, 0x4005, 0x8006, 0xC007]
"""Seeds for the read splitter (see fuzz/src/lib.rs): 0 is one byte per read."""


# --------------------------------------------------------------------------- hostile rows


def load_hostile_cases() -> list:
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    try:
        return importlib.import_module("test_hostile").CASES
    except ImportError:
        pass

    # Stand-ins: the rows only use the error classes as markers.
    class Anything(types.ModuleType):
        """Any attribute: a class for CapitalisedNames, else another stand-in;
        calling a stand-in (a decorator, say) gives it back."""

        def __getattr__(self, name: str):
            if name.startswith("__"):
                raise AttributeError(name)
            if name[:1].isupper():
                return type(name, (Exception,), {})
            return Anything(f"{self.__name__}.{name}")

        def __call__(self, *a, **k):
            return self

    for name in ("undipy", "pytest", "pytest_asyncio"):
        sys.modules.setdefault(name, Anything(name))
    for name in ("test_hostile", "hostile_helpers", "servers"):
        sys.modules.pop(name, None)
    return importlib.import_module("test_hostile").CASES


# --------------------------------------------------------------------------- writers


class Corpus:
    def __init__(self, target: str) -> None:
        self.dir = CORPUS / target
        self.files: dict[str, bytes] = {}

    def add(self, name: str, data: bytes) -> None:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
        assert len(data) <= MAX_SEED, (name, len(data))
        assert name not in self.files, f"duplicate seed name {name}"
        self.files[name] = data

    def write(self) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in self.dir.iterdir():
            if old.name.startswith(("hostile-", "fact-")) and old.name not in self.files:
                old.unlink()
        for name, data in self.files.items():
            path = self.dir / name
            if not path.exists() or path.read_bytes() != data:
                path.write_bytes(data)
        return len(self.files)


# --- response_head: [flags, lim_lo, lim_hi, split_lo, split_hi] + wire


def head_seed(
    wire: bytes,
    *,
    head_method: bool = False,
    connect: bool = False,
    upgrade: bool = False,
    max_header_size: int | None = None,
    split: int = 0,
) -> bytes:
    flags = (1 if head_method else 0) | (2 if connect else 0) | (4 if upgrade else 0)
    room = MAX_SEED - 5
    if max_header_size is None and len(wire) > room:
        # Cut, and scale the limit so the head is still too large for it.
        max_header_size = 2048
    if len(wire) > room:
        wire = wire[:room]
    if max_header_size is None:
        sel, lim = 0, 0
    elif max_header_size < 256:
        sel, lim = 1, max_header_size
    else:
        sel, lim = 2, min(max_header_size, 0xFFFF)
    flags |= sel << 3
    return bytes([flags]) + struct.pack("<H", lim) + struct.pack("<H", split) + wire


# --- response_body: [kind, trailer_sel, split_lo, split_hi, u64 length] + wire

EMPTY, LENGTH, CHUNKED, CLOSE = 0, 1, 2, 3
TRAILER_LIMITS = [0, 1, 7, 64, 256, 1024, 16 * 1024, 2**64 - 1]


def body_seed(
    framing: int,
    wire: bytes,
    *,
    length: int = 0,
    eof: bool = True,
    trailer_sel: int = 6,
    split: int = 0,
) -> bytes:
    room = MAX_SEED - 12
    if len(wire) > room:
        wire = wire[:room]
        trailer_sel = min(trailer_sel, 4)
    kind = framing | (8 if eof else 0)
    return bytes([kind, trailer_sel]) + struct.pack("<H", split) + struct.pack("<Q", length) + wire


def framing_of(head: bytes, method: str) -> tuple[int, int] | None:
    """A short reading of a head's framing, good enough to label seeds."""
    lines = head.split(b"\r\n")
    status_line = lines[1] if lines[0] == b"" else lines[0]
    m = re.match(rb"HTTP/1\.[01] (\d{3})", status_line)
    if not m:
        return None
    status = int(m.group(1))
    if method == "HEAD" or status < 200 or status in (204, 304):
        return EMPTY, 0
    te: list[bytes] = []
    cl: list[bytes] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        if name.lower() == b"transfer-encoding":
            te += [c.strip().lower() for c in value.split(b",")]
        elif name.lower() == b"content-length":
            cl.append(value.strip())
    if te:
        return (CHUNKED, 0) if te[-1] == b"chunked" else (CLOSE, 0)
    if len(cl) == 1 and cl[0].isdigit() and len(cl[0]) <= 19:
        return LENGTH, int(cl[0])
    return CLOSE, 0


def split_head(wire: bytes) -> tuple[bytes, bytes] | None:
    at = wire.find(b"\r\n\r\n", 2 if wire.startswith(b"\r\n") else 0)
    if at < 0:
        return None
    return wire[: at + 4], wire[at + 4 :]


# --- request_encoder: [flags, host] + records (tag, len, data)


def rec(tag: bytes, data: bytes) -> bytes:
    out = b""
    # Long data is split into several records of the same tag; `B` and `S`
    # append, so a body survives; other tags keep their last record.
    while True:
        piece, data = data[:255], data[255:]
        out += tag + bytes([len(piece)]) + piece
        if not data:
            return out


def header(name: bytes, value: bytes) -> bytes:
    return rec(b"H", bytes([len(name)]) + name + value)


def request_seed(
    method: bytes = b"GET",
    path: bytes = b"/",
    headers: list[tuple[bytes, bytes]] = (),
    *,
    query: bytes | None = None,
    body: bytes | None = None,
    empty_body: bool = False,
    stream: list[bytes] | None = None,
    declared: int | None | str = None,
    upgrade: bytes | None = None,
    expect: bool = False,
    strict: bool = True,
    closes: bool = False,
    reset: bool | None = None,
    host: int = 0,
) -> bytes:
    flags = (1 if expect else 0) | (2 if strict else 0) | (4 if closes else 0)
    flags |= {None: 0, False: 1, True: 2}[reset] << 3
    out = bytes([flags, host]) + rec(b"M", method) + rec(b"P", path)
    if query is not None:
        out += rec(b"Q", query)
    for n, v in headers:
        out += header(n, v)
    if empty_body:
        out += rec(b"E", b"")
    if body is not None:
        out += rec(b"B", body)
    if stream is not None:
        for chunk in stream:
            out += rec(b"S", chunk)
        if declared == "exact":
            out += rec(b"L", b"")
        elif isinstance(declared, int):
            out += rec(b"L", struct.pack("<Q", declared))
    if upgrade is not None:
        out += rec(b"U", upgrade)
    return out


# --------------------------------------------------------------------------- facts

CRLF = b"\r\n"


def resp(status_line: bytes, *fields: bytes, body: bytes = b"") -> bytes:
    return status_line + CRLF + b"".join(f + CRLF for f in fields) + CRLF + body


OK = b"HTTP/1.1 200 OK"

# (name, wire, context) for response_head; the wire may hold body bytes after.
HEAD_FACTS: list[tuple[str, bytes, dict]] = [
    # valid status lines
    ("status-200", resp(OK, b"Content-Length: 0"), {}),
    ("status-http10", resp(b"HTTP/1.0 200 OK", b"Content-Length: 2", body=b"ok"), {}),
    ("status-no-reason", resp(b"HTTP/1.1 200", b"Content-Length: 0"), {}),
    ("status-empty-reason", resp(b"HTTP/1.1 200 ", b"Content-Length: 0"), {}),
    ("status-reason-spaces", resp(b"HTTP/1.1 200  OK ", b"Content-Length: 0"), {}),
    (
        "status-reason-non-ascii",
        resp(b"HTTP/1.1 500 \xd0\x9e\xd1\x88\xd0\xb8\xd0\xb1\xd0\xba\xd0\xb0"),
        {},
    ),
    ("status-reason-tab", resp(b"HTTP/1.1 200 O\tK", b"Content-Length: 0"), {}),
    ("status-999", resp(b"HTTP/1.1 999 Odd"), {}),
    ("status-100", resp(b"HTTP/1.1 100 Continue"), {}),
    ("status-103-link", resp(b"HTTP/1.1 103 Early Hints", b"Link: </a.css>; rel=preload"), {}),
    (
        "status-101-upgrade",
        resp(
            b"HTTP/1.1 101 Switching Protocols",
            b"Upgrade: websocket",
            b"Connection: Upgrade",
            body=b"\x81\x00",
        ),
        {"upgrade": True},
    ),
    ("status-101-unasked", resp(b"HTTP/1.1 101 Switching Protocols", b"Upgrade: h2c"), {}),
    ("status-204-cl", resp(b"HTTP/1.1 204 No Content", b"Content-Length: 5", body=b"hello"), {}),
    ("status-304-te", resp(b"HTTP/1.1 304 Not Modified", b"Transfer-Encoding: chunked"), {}),
    (
        "status-304-cl-te",
        resp(b"HTTP/1.1 304 Not Modified", b"Content-Length: 1", b"Transfer-Encoding: chunked"),
        {},
    ),
    (
        "head-cl-te",
        resp(OK, b"Content-Length: 3", b"Transfer-Encoding: chunked"),
        {"head_method": True},
    ),
    (
        "connect-200-cl",
        resp(b"HTTP/1.1 200 Connection established", b"Content-Length: 10"),
        {"connect": True},
    ),
    (
        "connect-407",
        resp(b"HTTP/1.1 407 Proxy Authentication Required", b"Content-Length: 2", body=b"no"),
        {"connect": True},
    ),
    ("leading-crlf", CRLF + resp(OK, b"Content-Length: 0"), {}),
    ("two-leading-crlf", CRLF + CRLF + resp(OK, b"Content-Length: 0"), {}),
    ("underscore-name", resp(OK, b"X_Forwarded: 1", b"Content-Length: 0"), {}),
    ("empty-value", resp(OK, b"X-Empty:", b"Y:   ", b"Content-Length: 0"), {}),
    ("value-obs-text", resp(OK, b"X: \x80\xff caf\xc3\xa9", b"Content-Length: 0"), {}),
    (
        "keep-alive-hint",
        resp(
            b"HTTP/1.0 200 OK",
            b"Connection: keep-alive",
            b"Keep-Alive: timeout=5, max=100",
            b"Content-Length: 0",
        ),
        {},
    ),
    (
        "keep-alive-hint-odd",
        resp(OK, b"Keep-Alive: max=1, TIMEOUT=99999999999999999999", b"Content-Length: 0"),
        {},
    ),
    ("proxy-connection", resp(OK, b"Proxy-Connection: close", b"Content-Length: 0"), {}),
    (
        "connection-close-then-data",
        resp(OK, b"Connection: close", b"Content-Length: 1", body=b"xHTTP/1.1 200 OK\r\n\r\n"),
        {},
    ),
    ("connection-list", resp(OK, b"Connection: upgrade, close", b"Content-Length: 0"), {}),
    (
        "http10-keep-alive-eof-body",
        resp(b"HTTP/1.0 200 OK", b"Connection: keep-alive", body=b"to eof"),
        {},
    ),
    ("http11-eof-body", resp(OK, body=b"until close"), {}),
    # invalid status lines
    ("status-htp", resp(b"HTP/1.1 200 OK"), {}),
    ("status-http-01.1", resp(b"HTTP/01.1 200 OK"), {}),
    ("status-http-11.1", resp(b"HTTP/11.1 200 OK"), {}),
    ("status-http-1.01", resp(b"HTTP/1.01 200 OK"), {}),
    ("status-tab-after-version", resp(b"HTTP/1.1\t200 OK"), {}),
    ("status-http-5.6", resp(b"HTTP/5.6 200 OK"), {}),
    ("status-http-2", resp(b"HTTP/2 200"), {}),
    ("status-http-0.9", resp(b"HTTP/0.9 200 OK"), {}),
    ("status-extra-space", resp(b"HTTP/1.1  200 OK"), {}),
    ("status-one-digit", resp(b"HTTP/1.1 2 OK"), {}),
    ("status-four-digits", resp(b"HTTP/1.1 2000 OK"), {}),
    ("status-000", resp(b"HTTP/1.1 000 OK"), {}),
    ("status-letters", resp(b"HTTP/1.1 2OO OK"), {}),
    ("status-lowercase-http", resp(b"http/1.1 200 OK"), {}),
    ("status-icy", resp(b"ICY 200 OK"), {}),
    ("status-rtsp", resp(b"RTSP/1.0 200 OK"), {}),
    ("status-leading-space", resp(b" HTTP/1.1 200 OK"), {}),
    ("status-reason-nul", resp(b"HTTP/1.1 200 O\x00K"), {}),
    ("status-reason-del", resp(b"HTTP/1.1 200 O\x7fK"), {}),
    ("http09-body", b"<!doctype html><html></html>", {}),
    # line endings
    ("lf-only", b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", {}),
    ("lf-after-status", b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", {}),
    ("lf-last-line", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n", {}),
    ("cr-separated-fields", b"HTTP/1.1 200 OK\r\nA: 1\rB: 2\r\n\r\n", {}),
    ("cr-only", b"HTTP/1.1 200 OK\rContent-Length: 0\r\r", {}),
    ("head-ends-cr-x", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\rX", {}),
    ("crcrlf", b"HTTP/1.1 200 OK\r\r\n\r\n", {}),
    ("cr-at-end-waits", b"HTTP/1.1 200 OK\r\nX: 1\r\n\r", {}),
    # field lines
    ("obs-fold", resp(OK, b"X: a", b" b", b"Content-Length: 0"), {}),
    ("obs-fold-tab", resp(OK, b"X: a", b"\tb", b"Content-Length: 0"), {}),
    ("obs-fold-te", resp(OK, b"Transfer-Encoding: chunked", b" , identity"), {}),
    ("obs-fold-cl", resp(OK, b"Content-Length: 1", b" 0"), {}),
    ("space-before-first-field", resp(OK, b" X: y"), {}),
    ("space-before-colon", resp(OK, b"Content-Length : 5", body=b"hello"), {}),
    ("tab-before-colon", resp(OK, b"Content-Length\t: 5", body=b"hello"), {}),
    ("space-in-name", resp(OK, b"Foo Bar: x"), {}),
    ("empty-name", resp(OK, b": x"), {}),
    ("no-colon", resp(OK, b"NoColon"), {}),
    ("quote-in-name", resp(OK, b'Fo"o: x'), {}),
    ("non-ascii-name", resp(OK, b"F\xc3\xa9: x"), {}),
    ("nul-in-value", resp(OK, b"X: a\x00b"), {}),
    ("ctl-in-value", resp(OK, b"X: a\x0bb"), {}),
    ("del-in-value", resp(OK, b"X: \x7f"), {}),
    ("long-value-ctl", resp(OK, b"X: " + b"v" * 80 + b"\x01" + b"v" * 20), {}),
    (
        "many-fields",
        resp(OK, *(b"X-%d: %d" % (i, i) for i in range(150)), b"Content-Length: 0"),
        {},
    ),
    # Content-Length
    ("cl-tabs", resp(OK, b"Content-Length:\t 5 \t", body=b"hello"), {}),
    ("cl-leading-zeros", resp(OK, b"Content-Length: 0005", body=b"hello"), {}),
    ("cl-u64-max", resp(OK, b"Content-Length: 18446744073709551615"), {}),
    ("cl-19-digits", resp(OK, b"Content-Length: 9999999999999999999"), {}),
    ("cl-20-digits", resp(OK, b"Content-Length: 00000000000000000005"), {}),
    ("cl-overflow", resp(OK, b"Content-Length: 100000000000000000000"), {}),
    ("cl-duplicate-same", resp(OK, b"Content-Length: 2", b"Content-Length: 2", body=b"ok"), {}),
    ("cl-duplicate-differ", resp(OK, b"Content-Length: 1", b"content-length: 2", body=b"ok"), {}),
    ("cl-list", resp(OK, b"Content-Length: 2, 2", body=b"ok"), {}),
    ("cl-empty", resp(OK, b"Content-Length:"), {}),
    ("cl-plus", resp(OK, b"Content-Length: +1", body=b"x"), {}),
    ("cl-minus", resp(OK, b"Content-Length: -1"), {}),
    ("cl-hex", resp(OK, b"Content-Length: 0x1", body=b"x"), {}),
    ("cl-cr-instead-of-dash", b"HTTP/1.1 200 OK\r\nContent\rLength: 1\r\n\r\nx", {}),
    ("cl-x-suffix-name", resp(OK, b"Content-Length-X: 5", body=b"hello"), {}),
    (
        "cl-and-te-identity",
        resp(OK, b"Content-Length: 1", b"Transfer-Encoding: identity", body=b"x"),
        {},
    ),
    ("cl-in-103", resp(b"HTTP/1.1 103 Early Hints", b"Content-Length: 5"), {}),
    ("cl-0-in-100", resp(b"HTTP/1.1 100 Continue", b"Content-Length: 0"), {}),
    # Transfer-Encoding
    ("te-chunked", resp(OK, b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"), {}),
    ("te-gzip-chunked", resp(OK, b"Transfer-Encoding: gzip, chunked"), {}),
    ("te-two-lines", resp(OK, b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"), {}),
    ("te-chunked-deflate", resp(OK, b"Transfer-Encoding: chunked, deflate"), {}),
    (
        "te-chunked-identity",
        resp(OK, b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity"),
        {},
    ),
    ("te-chunkedchunked", resp(OK, b"Transfer-Encoding: chunkedchunked"), {}),
    ("te-chunked-twice", resp(OK, b"Transfer-Encoding: chunked, chunked"), {}),
    ("te-leading-comma", resp(OK, b"Transfer-Encoding: ,chunked"), {}),
    ("te-params", resp(OK, b"Transfer-Encoding: gzip;q=1 ,\tchunked"), {}),
    ("te-chunked-param", resp(OK, b"Transfer-Encoding: chunked;x=1"), {}),
    ("te-quoted", resp(OK, b'Transfer-Encoding: "chunked"'), {}),
    ("te-http10", resp(b"HTTP/1.0 200 OK", b"Transfer-Encoding: chunked"), {}),
    ("te-in-100", resp(b"HTTP/1.1 100 Continue", b"Transfer-Encoding: chunked"), {}),
    ("te-mixed-case", resp(OK, b"tRaNsFeR-eNcOdInG: ChUnKeD"), {}),
    # limits
    ("limit-exact", resp(OK, b"Content-Length: 2", body=b"ok"), {"max_header_size": 38}),
    ("limit-one-over", resp(OK, b"Content-Length: 2", body=b"ok"), {"max_header_size": 37}),
    ("limit-zero", resp(OK), {"max_header_size": 0}),
    ("limit-endless-line", b"HTTP/1.1 200 OK\r\nX: " + b"a" * 400, {"max_header_size": 255}),
    ("limit-endless-status", b"HTTP/1.1 200 " + b"r" * 400, {"max_header_size": 128}),
    ("limit-dense-fields", resp(OK, *([b"a:"] * 300)), {"max_header_size": 1024}),
]

# (name, framing, wire, extra) for response_body.
BODY_FACTS: list[tuple[str, int, bytes, dict]] = [
    ("empty", EMPTY, b"HTTP/1.1 200 OK\r\n", {}),
    ("length-exact", LENGTH, b"hello", {"length": 5}),
    ("length-more", LENGTH, b"helloHTTP/1.1 200 OK\r\n\r\n", {"length": 5}),
    ("length-short", LENGTH, b"abc", {"length": 10}),
    ("length-huge", LENGTH, b"0123456789", {"length": 10_000_000_000}),
    ("length-u64-max", LENGTH, b"x", {"length": 2**64 - 1}),
    ("close-body", CLOSE, b"until the end", {}),
    ("close-open", CLOSE, b"more to come", {"eof": False}),
    ("chunked-simple", CHUNKED, b"5\r\nhello\r\n0\r\n\r\n", {}),
    ("chunked-two", CHUNKED, b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", {}),
    ("chunked-upper-hex", CHUNKED, b"A\r\n0123456789\r\n0\r\n\r\n", {}),
    ("chunked-leading-zeros", CHUNKED, b"0005\r\nhello\r\n000\r\n\r\n", {}),
    ("chunked-16-digits", CHUNKED, b"0000000000000005\r\nhello\r\n0\r\n\r\n", {}),
    ("chunked-17-digits", CHUNKED, b"00000000000000005\r\nhello\r\n0\r\n\r\n", {}),
    ("chunked-size-u64-max", CHUNKED, b"ffffffffffffffff\r\nx", {}),
    ("chunked-size-overflow", CHUNKED, b"ffffffffffffffff1\r\nx\r\n0\r\n\r\n", {}),
    ("chunked-size-2-64", CHUNKED, b"10000000000000000\r\nx", {}),
    ("chunked-size-0x", CHUNKED, b"0x5\r\nhello\r\n0\r\n\r\n", {}),
    ("chunked-size-plus", CHUNKED, b"+5\r\nhello\r\n0\r\n\r\n", {}),
    ("chunked-size-minus", CHUNKED, b"-5\r\nhello\r\n0\r\n\r\n", {}),
    ("chunked-size-leading-space", CHUNKED, b" 5\r\nhello\r\n0\r\n\r\n", {}),
    ("chunked-size-trailing-space", CHUNKED, b"5 \r\nhello\r\n0\r\n\r\n", {}),
    ("chunked-size-trailing-tab", CHUNKED, b"5\t\r\nhello\r\n0\r\n\r\n", {}),
    ("chunked-size-underscore", CHUNKED, b"0_2\r\nab\r\n0\r\n\r\n", {}),
    ("chunked-size-empty", CHUNKED, b"\r\nhello\r\n0\r\n\r\n", {}),
    ("chunked-size-space-lf", CHUNKED, b"3 \nabc\r\n0\r\n\r\n", {}),
    ("chunked-size-bare-lf", CHUNKED, b"5\nhello\r\n0\r\n\r\n", {}),
    ("chunked-size-bare-cr", CHUNKED, b"5\rX\r\nhello\r\n0\r\n\r\n", {}),
    ("chunked-size-crcr", CHUNKED, b"5\r\r;x\r\nhello\r\n0\r\n\r\n", {}),
    ("ext-token", CHUNKED, b"5;name=value\r\nhello\r\n0;last\r\n\r\n", {}),
    ("ext-quoted", CHUNKED, b'5;a="b;c=d"\r\nhello\r\n0\r\n\r\n', {}),
    ("ext-quoted-escape", CHUNKED, b'5;a="x\\"y\\\\"\r\nhello\r\n0\r\n\r\n', {}),
    ("ext-many", CHUNKED, b'5;a;b=c;d="e"\r\nhello\r\n0\r\n\r\n', {}),
    ("ext-no-semicolon", CHUNKED, b"5 ext\r\nhello\r\n0\r\n\r\n", {}),
    ("ext-empty-name", CHUNKED, b"5;\r\nhello\r\n0\r\n\r\n", {}),
    ("ext-empty-value", CHUNKED, b"5;a=\r\nhello\r\n0\r\n\r\n", {}),
    ("ext-unbalanced-quote", CHUNKED, b'5;a="b\r\nhello\r\n0\r\n\r\n', {}),
    ("ext-space-around", CHUNKED, b"5 ; a = b\r\nhello\r\n0\r\n\r\n", {}),
    ("ext-bare-lf", CHUNKED, b"5;a\nhello\r\n0\r\n\r\n", {}),
    ("ext-bare-cr", CHUNKED, b"5;a\rb\r\nhello\r\n0\r\n\r\n", {}),
    ("ext-nul", CHUNKED, b'5;a="\x00"\r\nhello\r\n0\r\n\r\n', {}),
    ("ext-obs-text", CHUNKED, b'5;a="\xff"\r\nhello\r\n0\r\n\r\n', {}),
    ("ext-long", CHUNKED, b"1;e=" + b"x" * 2000 + b"\r\na\r\n0\r\n\r\n", {}),
    (
        "ext-many-chunks",
        CHUNKED,
        b"".join(b"1;e=" + b"x" * 100 + b"\r\na\r\n" for _ in range(30)) + b"0\r\n\r\n",
        {},
    ),
    ("data-no-crlf", CHUNKED, b"5\r\nhelloXX0\r\n\r\n", {}),
    ("data-cr-only", CHUNKED, b"5\r\nhello\rX0\r\n\r\n", {}),
    ("data-lf-only", CHUNKED, b"5\r\nhello\n0\r\n\r\n", {}),
    ("data-too-long", CHUNKED, b"3\r\nhello\r\n0\r\n\r\n", {}),
    ("missing-last-chunk", CHUNKED, b"5\r\nhello\r\n", {}),
    ("missing-last-chunk-open", CHUNKED, b"5\r\nhello\r\n", {"eof": False}),
    ("cut-mid-chunk", CHUNKED, b"a\r\nhello", {}),
    ("cut-in-size", CHUNKED, b"5\r\nhello\r\n1", {}),
    ("trailers", CHUNKED, b"5\r\nhello\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\nNEXT", {}),
    (
        "trailers-framing",
        CHUNKED,
        b"0\r\nContent-Length: 9\r\nTransfer-Encoding: gzip\r\nHost: evil\r\n\r\n",
        {},
    ),
    ("trailers-bare-lf", CHUNKED, b"0\r\nX: 1\n\r\n", {}),
    ("trailers-end-bare-lf", CHUNKED, b"0\r\n\n", {}),
    ("trailers-obs-fold", CHUNKED, b"0\r\nX: 1\r\n 2\r\n\r\n", {}),
    ("trailers-no-colon", CHUNKED, b"0\r\ngarbage\r\n\r\n", {}),
    ("trailers-cr-x", CHUNKED, b"0\r\n\rX", {}),
    ("trailers-nul", CHUNKED, b"0\r\nX: \x00\r\n\r\n", {}),
    ("trailers-cut", CHUNKED, b"5\r\nhello\r\n0\r\nX-T: 1\r\n", {}),
    (
        "trailers-over-limit",
        CHUNKED,
        b"0\r\n" + b"".join(b"T%d: v\r\n" % i for i in range(40)) + b"\r\n",
        {"trailer_sel": 4},
    ),
    (
        "trailers-exact-limit",
        CHUNKED,
        b"0\r\nA: 12345678901234567890123456789012345678901234567890123\r\n\r\n",
        {"trailer_sel": 3},
    ),
    ("trailers-limit-zero", CHUNKED, b"0\r\n\r\n", {"trailer_sel": 0}),
    ("trailers-endless", CHUNKED, b"0\r\nX: " + b"t" * 2000, {"trailer_sel": 5}),
    ("one-byte-chunks", CHUNKED, b"1\r\na\r\n" * 200 + b"0\r\n\r\n", {}),
    ("zero-then-more", CHUNKED, b"0\r\n\r\n5\r\nhello\r\n", {}),
]

# (name, request_seed kwargs) for request_encoder: reliability.md §3.
REQUEST_FACTS: list[tuple[str, dict]] = [
    ("get", {}),
    ("get-headers", {"headers": [(b"X-Foo", b"bar"), (b"accept", b"*/*")]}),
    ("get-query", {"path": b"/a", "query": b"q=a%20b"}),
    ("get-query-twice", {"path": b"/a?x", "query": b"y"}),
    ("get-fragment-query", {"path": b"/a#f", "query": b"y"}),
    ("post-bytes", {"method": b"POST", "body": b"abc"}),
    ("post-empty", {"method": b"POST", "empty_body": True}),
    ("post-no-body", {"method": b"POST"}),
    ("get-with-body", {"body": b"smuggled? GET / HTTP/1.1\r\n\r\n"}),
    ("head-with-body", {"method": b"HEAD", "body": b"x"}),
    ("put-stream-unknown", {"method": b"PUT", "stream": [b"ab", b"", b"cd"]}),
    ("put-stream-exact", {"method": b"PUT", "stream": [b"ab", b"cd"], "declared": "exact"}),
    ("put-stream-short", {"method": b"PUT", "stream": [b"ab"], "declared": 5}),
    (
        "put-stream-long-lax",
        {"method": b"PUT", "stream": [b"abcdef"], "declared": 2, "strict": False},
    ),
    ("get-stream-zero", {"stream": [], "declared": 0}),
    ("post-user-cl", {"method": b"POST", "headers": [(b"Content-Length", b"3")], "body": b"abc"}),
    (
        "post-user-cl-mismatch",
        {"method": b"POST", "headers": [(b"content-length", b"10")], "body": b"abc"},
    ),
    (
        "post-user-cl-mismatch-lax",
        {
            "method": b"POST",
            "headers": [(b"content-length", b"10")],
            "body": b"abc",
            "strict": False,
        },
    ),
    (
        "post-user-cl-stream",
        {"method": b"POST", "headers": [(b"content-length", b"4")], "stream": [b"ab", b"cd"]},
    ),
    ("cl-plus", {"method": b"POST", "headers": [(b"content-length", b"+5")]}),
    (
        "cl-duplicate-case",
        {"method": b"POST", "headers": [(b"Content-Length", b"1"), (b"content-length", b"2")]},
    ),
    ("cl-20-digits", {"headers": [(b"content-length", b"00000000000000000001")]}),
    ("cl-space", {"headers": [(b"content-length", b" 5")]}),
    ("cl-unicode-digit", {"headers": [(b"content-length", "٣".encode())]}),
    ("te-user", {"headers": [(b"Transfer-Encoding", b"chunked")]}),
    ("keep-alive-user", {"headers": [(b"Keep-Alive", b"timeout=5")]}),
    ("upgrade-user", {"headers": [(b"Upgrade", b"websocket")]}),
    ("expect-user", {"headers": [(b"Expect", b"100-continue")]}),
    ("expect-option", {"method": b"PUT", "body": b"x", "expect": True}),
    ("expect-option-no-body", {"method": b"PUT", "expect": True}),
    ("connection-close", {"headers": [(b"Connection", b"close")]}),
    ("connection-keep-alive", {"headers": [(b"connection", b" Keep-Alive ")]}),
    ("connection-upgrade", {"headers": [(b"Connection", b"upgrade")]}),
    ("host-user", {"headers": [(b"Host", b"other.example:81")]}),
    ("host-duplicate", {"headers": [(b"Host", b"a"), (b"host", b"b")]}),
    ("host-crlf", {"headers": [(b"host", b"a\r\nX-Injected: 1")]}),
    ("host-empty", {"headers": [(b"host", b"")]}),
    ("value-crlf", {"headers": [(b"x", b"a\r\nb: c")]}),
    ("value-lf", {"headers": [(b"x", b"a\nb")]}),
    ("value-cr", {"headers": [(b"x", b"a\rb")]}),
    ("value-nul", {"headers": [(b"x", b"a\x00b")]}),
    ("value-del", {"headers": [(b"x", b"\x7f")]}),
    ("value-obs-text", {"headers": [(b"x", b"caf\xc3\xa9 \xff")]}),
    ("value-leading-space", {"headers": [(b"x", b"  padded\t")]}),
    ("value-only-space", {"headers": [(b"x", b" \t ")]}),
    ("content-type-crlf", {"headers": [(b"content-type", b"text/plain\r\n\r\nGET /x HTTP/1.1")]}),
    ("name-space", {"headers": [(b"X Foo", b"1")]}),
    ("name-colon", {"headers": [(b"X:Foo", b"1")]}),
    ("name-empty", {"headers": [(b"", b"1")]}),
    ("name-crlf", {"headers": [(b"X\r\nY", b"1")]}),
    ("method-lower", {"method": b"get"}),
    ("method-crlf", {"method": b"GET\r\n"}),
    ("method-space", {"method": b"GET / HTTP/1.1\r\nX:"}),
    ("method-empty", {"method": b""}),
    ("method-connect", {"method": b"CONNECT", "path": b"example.com:443"}),
    ("method-connect-slash", {"method": b"CONNECT", "path": b"/x"}),
    ("method-m-search", {"method": b"M-SEARCH", "path": b"*"}),
    ("path-absolute", {"path": b"http://example.com/x"}),
    ("path-no-slash", {"path": b"example.com"}),
    ("path-space", {"path": b"/a b"}),
    ("path-crlf", {"path": b"/a\r\nX: y"}),
    ("path-non-ascii", {"path": "/é".encode()}),
    ("path-del", {"path": b"/\x7f"}),
    ("path-tab", {"path": b"/\t"}),
    ("query-crlf", {"query": b"a\r\nb"}),
    ("query-space", {"query": b"a b"}),
    ("upgrade-option", {"upgrade": b"websocket"}),
    ("upgrade-crlf", {"upgrade": b"websocket\r\nX: y"}),
    ("upgrade-empty", {"upgrade": b""}),
    ("upgrade-with-body", {"method": b"POST", "upgrade": b"h2c", "body": b"x"}),
    ("reset-true", {"reset": True}),
    ("reset-false-head", {"method": b"HEAD", "reset": False}),
    ("conn-closes", {"closes": True}),
    ("many-headers", {"headers": [(b"X-%d" % i, b"v%d" % i) for i in range(40)]}),
]


# --------------------------------------------------------------------------- main


def main() -> None:
    cases = load_hostile_cases()
    head = Corpus("response_head")
    body = Corpus("response_body")
    req = Corpus("request_encoder")

    for i, case in enumerate(cases):
        split = SPLIT_SEEDS[i % len(SPLIT_SEEDS)]
        wire: bytes = case.wire
        if not wire:
            continue
        head.add(
            f"hostile-{case.id}",
            head_seed(
                wire,
                head_method=case.method == "HEAD",
                max_header_size=case.client.get("max_header_size"),
                split=split,
            ),
        )
        parts = split_head(wire)
        if parts is None:
            continue
        h, rest = parts
        fr = framing_of(h, case.method)
        if fr is None or fr[0] == EMPTY and not rest:
            continue
        framing, length = fr
        body.add(
            f"hostile-{case.id}",
            body_seed(framing, rest, length=length, eof=case.then != "keep", split=split),
        )

    for i, (name, wire, ctx) in enumerate(HEAD_FACTS):
        head.add(f"fact-{name}", head_seed(wire, split=SPLIT_SEEDS[i % len(SPLIT_SEEDS)], **ctx))
    for i, (name, framing, wire, extra) in enumerate(BODY_FACTS):
        body.add(
            f"fact-{name}",
            body_seed(framing, wire, split=SPLIT_SEEDS[i % len(SPLIT_SEEDS)], **extra),
        )
        # The same bytes one byte per read.
        if i % 3 == 0:
            body.add(f"fact-{name}-bytewise", body_seed(framing, wire, split=0, **extra))
    for name, kw in REQUEST_FACTS:
        req.add(f"fact-{name}", request_seed(**kw))

    for c in (head, body, req):
        n = c.write()
        print(f"{c.dir.relative_to(ROOT)}: {n} seeds")


if __name__ == "__main__":
    main()
