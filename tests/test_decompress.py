"""The decompress interceptor against real loopback servers: every coding,
bodies split into many chunks, a large body read slowly (bounded pieces,
nothing handed on while paused), chains of codings, what is left alone,
corrupt and cut-short bodies, and composition with dump."""

from __future__ import annotations

import asyncio
import gzip
import sys
import zlib
from collections.abc import Callable
from typing import Any

import brotli  # type: ignore[import-untyped, import-not-found, unused-ignore]
import pytest
import undipy
import zstandard
from helpers import Recorder, within
from servers import HttpServer, Request, Response
from undipy.interceptors import DecompressionError, decompress, dump

DATA = b"".join(b"line %d: the quick brown fox jumps over the lazy dog\n" % i for i in range(4000))
CHUNK = 64 * 1024  # the interceptor's largest piece


def deflate_raw(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


def zstd_frames(data: bytes) -> bytes:
    """Several zstd frames back to back, one without a content size."""
    c = zstandard.ZstdCompressor()
    third = len(data) // 3
    obj = c.compressobj()
    streamed = obj.compress(data[third : 2 * third]) + obj.flush()
    return c.compress(data[:third]) + streamed + c.compress(data[2 * third :])


CODINGS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "x-gzip": ("x-gzip", gzip.compress),
    "gzip-members": ("gzip", lambda d: gzip.compress(d[:1000]) + gzip.compress(d[1000:])),
    "deflate-zlib": ("deflate", zlib.compress),
    "deflate-raw": ("deflate", deflate_raw),
    "br": ("br", brotli.compress),
    "zstd": ("zstd", zstandard.ZstdCompressor().compress),
    "zstd-frames": ("zstd", zstd_frames),
    "upper-case": ("GZip", gzip.compress),
}


def pieces(data: bytes, n: int = 40) -> list[bytes]:
    size = max(1, len(data) // n)
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.fixture
async def server(http_server: HttpServer) -> HttpServer:
    """``/c?<coding>[&status=N][&chunks=N]`` answers DATA so encoded;
    ``/raw?<hex>`` sends the given bytes as ``gzip``."""

    async def coded(req: Request) -> Response:
        query = dict(p.partition("=")[::2] for p in req.path.partition("?")[2].split("&"))
        name = next(iter(query))
        header, encode = CODINGS.get(name, (name, lambda d: d))
        body = encode(DATA)
        status = int(query.get("status", "200"))
        return Response(
            status=status,
            body=pieces(body, int(query.get("chunks", "40"))),
            chunked=True,
            headers=[("content-encoding", header), ("x-kept", "yes")],
            trailers=[("x-trailer", "t")],
        )

    async def length(req: Request) -> Response:  # content-length framed, for HEAD
        return Response(body=gzip.compress(DATA), headers=[("content-encoding", "gzip")])

    http_server.route("/c", coded)
    http_server.route("/len", length)
    return http_server


async def get(d: undipy.Dispatcher, path: str, **opts: Any) -> tuple[int, dict[str, Any], bytes]:
    resp = await within(d.request(path=path, method=opts.pop("method", "GET"), **opts))
    return resp.status_code, resp.headers, await within(resp.body.bytes())


def serve(
    srv: HttpServer,
    path: str,
    body: bytes | list[bytes],
    *headers: tuple[str, str],
    status: int = 200,
) -> None:
    async def h(req: Request) -> Response:
        return Response(
            status=status, body=body, chunked=isinstance(body, list), headers=list(headers)
        )

    srv.route(path, h)


@pytest.mark.parametrize("name", list(CODINGS))
async def test_each_coding_decodes_across_many_chunks(server: HttpServer, name: str) -> None:
    async with undipy.Client(server.origin) as client:
        d = client.compose(decompress())
        status, headers, body = await get(d, f"/c?{name}")
        assert (status, body) == (200, DATA)
        assert "content-encoding" not in headers and "content-length" not in headers
        assert headers["x-kept"] == "yes"
        # Tiny pieces (a byte or two each) decode the same.
        _, _, body = await get(d, f"/c?{name}&chunks=2000")
        assert body == DATA
        # The trailers still arrive.
        resp = await within(d.request(path=f"/c?{name}", method="GET"))
        await within(resp.body.bytes())
        assert resp.trailers == {"x-trailer": "t"}


class SlowReader(undipy.DispatchHandler):
    """Pauses after every piece and resumes a little later; records sizes
    and whether anything came while paused."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.headers: list[bytes] = []
        self.paused = False
        self.while_paused = 0
        self.resume: Callable[[], None] | None = None
        self.done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def on_headers(self, status: int, headers: list[bytes], resume: Any, text: str) -> bool:
        self.headers, self.resume = headers, resume
        return True

    def on_data(self, chunk: bytes) -> bool:
        self.while_paused += self.paused
        self.sizes.append(len(chunk))
        self.paused = True
        asyncio.get_running_loop().call_later(0.001, self._go)
        return False

    def _go(self) -> None:
        self.paused = False
        assert self.resume is not None
        self.resume()

    def on_complete(self, trailers: list[bytes]) -> None:
        self.done.set_result(None)

    def on_error(self, error: BaseException) -> None:
        self.done.set_result(error)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
async def test_a_large_body_is_handed_on_in_bounded_pieces(
    http_server: HttpServer, coding: str
) -> None:
    big = DATA * 40  # about 8 MiB, very compressible
    encode = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "br": brotli.compress,
        "zstd": zstandard.ZstdCompressor().compress,
    }[coding]
    compressed = encode(big)
    assert len(compressed) < len(big) // 20
    serve(http_server, "/big", pieces(compressed, 12), ("content-encoding", coding))
    async with undipy.Client(http_server.origin) as client:
        d = client.compose(decompress())
        reader = SlowReader()
        d.dispatch(reader, path="/big", method="GET")
        assert await within(reader.done, 30) is None
        assert sum(reader.sizes) == len(big)
        assert max(reader.sizes) <= CHUNK
        assert reader.while_paused == 0
        # request() reads it with its own backpressure, the same.
        _, _, body = await get(d, "/big")
        assert body == big


async def test_several_codings_are_undone_last_first(http_server: HttpServer) -> None:
    both = brotli.compress(gzip.compress(DATA))  # gzip applied, then br
    serve(http_server, "/one-line", pieces(both), ("content-encoding", "gzip, br"))
    serve(
        http_server,
        "/two-lines",
        pieces(both),
        ("content-encoding", "gzip"),
        ("Content-Encoding", "br"),
    )
    six = DATA
    for _ in range(6):
        six = gzip.compress(six)
    serve(http_server, "/six", six, ("content-encoding", ",".join(["gzip"] * 6)))
    five = gzip.compress(gzip.compress(gzip.compress(gzip.compress(gzip.compress(DATA)))))
    serve(http_server, "/five", five, ("content-encoding", "gzip," * 5))
    async with undipy.Client(http_server.origin) as client:
        d = client.compose(decompress())
        for path in ("/one-line", "/two-lines", "/five"):
            status, headers, body = await get(d, path)
            assert body == DATA and "content-encoding" not in headers, path
        # More than five codings (undici's limit) fail the request.
        with pytest.raises(DecompressionError, match="too many content-encodings"):
            await get(d, "/six")
        assert (await get(d, "/five"))[2] == DATA


async def test_unknown_codings_pass_through_untouched(
    http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    gz = gzip.compress(DATA)
    serve(http_server, "/unknown", gz, ("content-encoding", "gzip, foo"))
    serve(http_server, "/identity", DATA, ("content-encoding", "identity"))
    serve(http_server, "/br", brotli.compress(DATA), ("content-encoding", "br"))
    async with undipy.Client(http_server.origin) as client:
        d = client.compose(decompress())
        _, headers, body = await get(d, "/unknown")
        assert body == gz
        assert headers["content-encoding"] == "gzip, foo"
        assert headers["content-length"] == str(len(gz))
        assert (await get(d, "/identity"))[2] == DATA
        # Without its library, a coding is unknown (here: as if Brotli were missing).
        module = sys.modules["undipy.interceptors.decompress"]
        monkeypatch.delitem(module._KNOWN, "br")
        _, headers, body = await get(d, "/br")
        assert body == brotli.compress(DATA) and headers["content-encoding"] == "br"


async def test_what_is_skipped(server: HttpServer) -> None:
    gz = gzip.compress(DATA)
    for status in (204, 304):
        serve(server, f"/s{status}", b"", ("content-encoding", "gzip"), status=status)
    async with undipy.Client(server.origin) as client:
        d = client.compose(decompress())
        for status in (204, 304):
            got, headers, body = await get(d, f"/s{status}")
            assert (got, body, headers["content-encoding"]) == (status, b"", "gzip")
        # HEAD: no body, and its headers describe the GET's.
        got, headers, body = await get(d, "/len", method="HEAD")
        assert (got, body) == (200, b"")
        assert headers["content-encoding"] == "gzip"
        assert headers["content-length"] == str(len(gz))
        # Error responses are left encoded, unless asked.
        got, headers, body = await get(d, "/c?gzip&status=404")
        assert (got, headers["content-encoding"]) == (404, "gzip")
        assert gzip.decompress(body) == DATA
        d2 = client.compose(decompress(skip_error_responses=False))
        got, headers, body = await get(d2, "/c?gzip&status=500")
        assert (got, body) == (500, DATA) and "content-encoding" not in headers
        # skip_status_codes is the caller's.
        d3 = client.compose(decompress(skip_status_codes=[200]))
        assert gzip.decompress((await get(d3, "/c?gzip"))[2]) == DATA
        assert (await get(d3, "/c?gzip&status=201"))[2] == DATA


@pytest.mark.parametrize(
    ("coding", "broken", "code"),
    [
        ("gzip", lambda b: b[:30] + bytes(40) + b[70:], "Z_DATA_ERROR"),
        ("gzip", lambda b: b[:-8], "Z_BUF_ERROR"),  # no trailer
        ("gzip", lambda b: b + b"garbage", "Z_DATA_ERROR"),
        ("deflate", lambda b: b[:-4], "Z_BUF_ERROR"),
        ("br", lambda b: b[:10] + b"\xff" * 20 + b[30:], "Z_DATA_ERROR"),
        ("br", lambda b: b[: len(b) // 2], "Z_BUF_ERROR"),
        ("zstd", lambda b: b[:20] + b"\xff" * 20 + b[40:], "Z_DATA_ERROR"),
        ("zstd", lambda b: b[:-10], "Z_BUF_ERROR"),
    ],
)
async def test_a_body_that_does_not_decode_fails_once(
    http_server: HttpServer, coding: str, broken: Callable[[bytes], bytes], code: str
) -> None:
    encode = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "br": brotli.compress,
        "zstd": zstandard.ZstdCompressor().compress,
    }[coding]
    serve(http_server, "/bad", pieces(broken(encode(DATA)), 20), ("content-encoding", coding))
    serve(http_server, "/good", pieces(encode(DATA), 20), ("content-encoding", coding))
    async with undipy.Client(http_server.origin) as client:
        d = client.compose(decompress())
        rec = Recorder()
        d.dispatch(rec, path="/bad", method="GET")
        await rec.wait()
        err = rec.only_error
        assert isinstance(err, DecompressionError) and err.code == code
        assert isinstance(err, undipy.UndiciError)
        with pytest.raises(DecompressionError):
            await get(d, "/bad")
        # The client goes on (the broken connection was not reused mid-body).
        assert (await get(d, "/good"))[2] == DATA


async def test_request_and_stream_through_it(server: HttpServer) -> None:
    async with undipy.Pool(server.origin) as pool:
        d = pool.compose(decompress())
        resp = await within(d.request(path="/c?br", method="GET"))
        assert b"".join([c async for c in resp.body]) == DATA

        class Sink:
            def __init__(self) -> None:
                self.data = b""
                self.headers: dict[str, Any] = {}

            async def write(self, chunk: bytes) -> None:
                await asyncio.sleep(0)
                self.data += chunk

        sink = Sink()

        def factory(info: Any) -> Sink:
            sink.headers = info.headers
            return sink

        data = await within(d.stream(factory, path="/c?zstd-frames", method="GET"))
        assert sink.data == DATA and "content-encoding" not in sink.headers
        assert data.trailers == {"x-trailer": "t"}


async def test_composed_with_dump_in_both_orders(server: HttpServer) -> None:
    async with undipy.Client(server.origin) as client:
        # dump listed last sees the request first, so it gets the decoded
        # body: it counts decoded bytes against max_size.
        inner = client.compose(decompress(), dump(max_size=1000))
        with pytest.raises(undipy.RequestAbortedError, match="larger than max_size"):
            await get(inner, "/c?gzip")
        assert (await get(client.compose(decompress(), dump()), "/c?gzip"))[2] == b""
        # decompress listed last: dump reads the encoded body and drops it, so
        # decompress sees no body at all (an empty body decodes to nothing).
        outer = client.compose(dump(max_size=1_000_000), decompress())
        status, headers, body = await get(outer, "/c?gzip")
        assert (status, body) == (200, b"")
        assert "content-encoding" not in headers
        # And the connection serves the next request.
        assert (await get(client.compose(decompress()), "/c?gzip"))[2] == DATA


async def test_pausing_on_the_head(server: HttpServer) -> None:
    async with undipy.Client(server.origin) as client:
        rec = Recorder(pause_on_headers=True)
        client.compose(decompress()).dispatch(rec, path="/c?gzip", method="GET")
        await rec.wait_for("headers")
        await asyncio.sleep(0.05)
        assert rec.kinds == ["connect", "headers"]
        assert rec.resume is not None
        rec.resume()
        await rec.wait()
        assert rec.body == DATA and rec.kinds[-1] == "complete"


def test_bad_options_are_refused() -> None:
    with pytest.raises(undipy.InvalidArgumentError):
        decompress(skip_status_codes=204)  # type: ignore[arg-type]
    with pytest.raises(undipy.InvalidArgumentError):
        decompress(skip_status_codes=["204"])  # type: ignore[list-item]
    with pytest.raises(undipy.InvalidArgumentError):
        decompress(skip_error_responses=1)  # type: ignore[arg-type]
