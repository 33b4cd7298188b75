"""One benchmark measurement in a fresh process.

    python python/undipy/_bench/client.py --client aiohttp --loop uvloop --workload c64 \
        --url http://127.0.0.1:8080 --duration 5 [--warmup 1]
    python python/undipy/_bench/client.py --client aiohttp --workload hc64 \
        --url https://127.0.0.1:8443 --ca ca.pem --duration 5

prints one JSON line on stdout:

    {"client": ..., "loop": ..., "workload": ..., "requests": N, "bytes": N,
     "wall": s, "cpu": s, "cpu_user": s, "cpu_sys": s, "errors": N,
     "first_error": str | null}

`requests`, `bytes` (response body bytes) and the CPU times (getrusage
RUSAGE_SELF, user + sys, all threads of the process) cover the timed window
only: the clients run `--warmup` seconds first, then the counters and the
rusage are snapshotted, and again `--duration` seconds later.

The https workloads (`hseq`, `hc64`, `hbig`, `hpost`, `hconn`) need an
https:// `--url`; every client trusts the PEM file `--ca` (else the system
store). `hconn` opens a new connection for every request.

A client whose library cannot be imported prints {"unavailable": reason} and
exits with status 3. `--versions` prints a JSON object with every client's
library version (or "unavailable: reason") and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import json
import resource
import ssl
import sys
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# name -> (path, method, in-flight count, expected response body length)
WORKLOADS: dict[str, tuple[str, str, int, int]] = {
    "seq": ("/small", "GET", 1, 13),
    "c64": ("/small", "GET", 64, 13),
    "big": ("/1m", "GET", 8, 1 << 20),
    "post": ("/echo", "POST", 16, 2),
    "c64p4": ("/small", "GET", 64, 13),
    "c64p1": ("/small", "GET", 64, 13),
    # Streaming: the body goes into a sink that counts it, chunk by chunk.
    "s1m": ("/1m", "GET", 8, 1 << 20),
    # 4 in flight: one 100 MiB stream saturates a one-worker nginx, and the
    # server, not the client, would set the pace.
    "s100m": ("/100m", "GET", 4, 100 << 20),
    "s1g": ("/1g", "GET", 1, 1 << 30),
    # https (issue 10): the four plain workloads over TLS, and `hconn`, a new
    # TLS connection (resumed where the client can) for every request.
    "hseq": ("/small", "GET", 1, 13),
    "hc64": ("/small", "GET", 64, 13),
    "hbig": ("/1m", "GET", 8, 1 << 20),
    "hpost": ("/echo", "POST", 16, 2),
    "hconn": ("/small", "GET", 16, 13),
}
STREAMING = ("s1m", "s100m", "s1g")
# The https workloads -> the plain workload each repeats over TLS (None: hconn).
HTTPS: dict[str, str | None] = {
    "hseq": "seq",
    "hc64": "c64",
    "hbig": "big",
    "hpost": "post",
    "hconn": None,
}
# Workloads that open a new connection for every request: each client's way of
# sending `Connection: close` (the server closes after the response).
NEW_CONNECTION = ("hconn",)
CLOSE_HEADERS = {"connection": "close"}
# Pipelined workloads: name -> (connections, pipelining). Only undipy (and
# wrk with a pipelining script) can run them; the others get one connection
# per request in flight.
PIPELINED: dict[str, tuple[int, int]] = {"c64p4": (4, 10), "c64p1": (1, 10)}


def connections_for(workload: str) -> tuple[int, int]:
    """(connections, pipelining) of a workload."""
    return PIPELINED.get(workload, (WORKLOADS[workload][2], 1))


POST_BODY = b"x" * (64 * 1024)

CLIENT_MODULES = {
    "undipy-request": "undipy",
    "undipy-dispatch": "undipy",
    "undipy-global": "undipy",
    "undipy-composed": "undipy",
    "undipy-diag": "undipy",
    "aiohttp": "aiohttp",
    "httpx": "httpx",
    "aiosonic": "aiosonic",
    "pyreqwest": "pyreqwest",
}
CLIENTS = list(CLIENT_MODULES)
# The streaming workloads' clients: each hands every chunk to a counting sink
# as it arrives ("undipy-request" reads the whole body with bytes() instead).
STREAM_CLIENT_MODULES = {
    "undipy-stream": "undipy",
    "undipy-iter": "undipy",
    "undipy-request": "undipy",
    "aiohttp-iter": "aiohttp",
    "httpx-iter": "httpx",
    "aiosonic-iter": "aiosonic",
    "pyreqwest-iter": "pyreqwest",
}
STREAM_CLIENTS = list(STREAM_CLIENT_MODULES)
ALL_CLIENT_MODULES = {**CLIENT_MODULES, **STREAM_CLIENT_MODULES}
# aiohttp's iter_chunked(n) size: large enough that aiohttp's per-chunk cost
# does not dominate (its own read buffer is 2**16).
AIOHTTP_CHUNK = 1 << 18

# Give up on a run after this many failed requests (a broken client or server
# would otherwise spin at full speed for the whole window).
MAX_ERRORS = 1000


class Stats:
    __slots__ = ("requests", "bytes", "errors", "first_error", "stop")

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.errors = 0
        self.first_error: str | None = None
        self.stop = False

    def error(self, msg: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = msg
        if self.errors >= MAX_ERRORS:
            self.stop = True


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"[:500]


@dataclass(frozen=True)
class Conn:
    """How a client connects: `ca`, a PEM file to trust for https:// (None:
    the library's default store), and `close`, a new connection per request."""

    ca: str | None = None
    close: bool = False

    def ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=self.ca) if self.ca else None

    def undipy_options(self) -> dict[str, Any]:
        return {"tls": {"ca": self.ca}} if self.ca else {}


# A "client" is an async factory: make(origin, n, conn) -> (request, close), where
# `await request(path, method, body)` returns (status, body length) with the
# body fully read, and `await close()` releases everything.
Request = Callable[[str, str, "bytes | None"], Awaitable[tuple[int, int]]]
Close = Callable[[], Awaitable[None]]


# Each library's client with N connections kept alive (shared by the plain
# and the streaming factories).


def _aiohttp_session(n: int, conn: Conn) -> Any:
    import aiohttp

    connector = aiohttp.TCPConnector(
        limit=n, limit_per_host=n, ssl=conn.ssl_context() or True, force_close=conn.close
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=600),
        headers=CLOSE_HEADERS if conn.close else None,
    )


def _httpx_client(n: int, conn: Conn) -> Any:
    import httpx

    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
        timeout=600.0,
        verify=conn.ssl_context() or True,
        headers=CLOSE_HEADERS if conn.close else None,
    )


def _aiosonic_request_options(conn: Conn) -> dict[str, Any]:
    """aiosonic takes the SSL context and the headers per request (it sends
    its own `Connection: keep-alive` too: nginx goes by the last one)."""
    options: dict[str, Any] = {}
    if conn.ca:
        options["ssl"] = conn.ssl_context()
    if conn.close:
        options["headers"] = CLOSE_HEADERS
    return options


def _aiosonic_client(n: int) -> Any:
    import aiosonic
    from aiosonic.connectors import TCPConnector
    from aiosonic.pools import PoolConfig

    # max_conn_requests defaults to 1000 (a reconnect every 1000 requests);
    # lift it so every client keeps its connections for the whole run.
    connector = TCPConnector(pool_configs={":default": PoolConfig(size=n, max_conn_requests=None)})
    return aiosonic.HTTPClient(connector=connector)


def _pyreqwest_client(n: int, conn: Conn) -> Any:
    from pyreqwest.client import ClientBuilder

    builder = (
        ClientBuilder()
        .max_connections(n)  # max in-flight requests (a semaphore)
        .pool_max_idle_per_host(n)  # keep all n connections alive
    )
    if conn.ca:
        builder = builder.add_root_certificate_pem(Path(conn.ca).read_bytes())
    if conn.close:
        builder = builder.default_headers(CLOSE_HEADERS)
    return builder.build()


async def make_aiohttp(origin: str, n: int, conn: Conn) -> tuple[Request, Close]:
    session = _aiohttp_session(n, conn)

    async def request(path: str, method: str, body: bytes | None) -> tuple[int, int]:
        async with session.request(method, origin + path, data=body) as resp:
            data = await resp.read()
            return resp.status, len(data)

    return request, session.close


async def make_httpx(origin: str, n: int, conn: Conn) -> tuple[Request, Close]:
    client = _httpx_client(n, conn)

    async def request(path: str, method: str, body: bytes | None) -> tuple[int, int]:
        # AsyncClient.request reads the whole body before returning.
        resp = await client.request(method, origin + path, content=body)
        return resp.status_code, len(resp.content)

    return request, client.aclose


async def make_aiosonic(origin: str, n: int, conn: Conn) -> tuple[Request, Close]:
    client = _aiosonic_client(n)
    options = _aiosonic_request_options(conn)

    async def request(path: str, method: str, body: bytes | None) -> tuple[int, int]:
        resp = await client.request(origin + path, method=method, data=body, **options)
        data = await resp.content()
        return resp.status_code, len(data)

    return request, client.aclose


async def make_pyreqwest(origin: str, n: int, conn: Conn) -> tuple[Request, Close]:
    client = _pyreqwest_client(n, conn)

    async def request(path: str, method: str, body: bytes | None) -> tuple[int, int]:
        builder = client.request(method, origin + path)
        if body is not None:
            builder = builder.body_bytes(body)
        resp = await builder.build().send()
        data = await resp.bytes()
        return resp.status, len(data)

    return request, client.close


async def make_undipy_request(
    origin: str, n: int, conn: Conn, pipelining: int = 1
) -> tuple[Request, Close]:
    import undipy

    pool = undipy.Pool(origin, connections=n, pipelining=pipelining, **conn.undipy_options())
    return _reading(pool, conn), pool.close


def _reading(dispatcher: Any, conn: Conn) -> Request:
    """``dispatcher.request()``, its body read whole."""
    # reset=True: `Connection: close`, and the connection ends with the response.
    send = functools.partial(dispatcher.request, reset=True) if conn.close else dispatcher.request

    async def request(path: str, method: str, body: bytes | None) -> tuple[int, int]:
        resp = await send(path=path, method=method, body=body)
        data = await resp.body.bytes()
        return resp.status_code, len(data)

    return request


async def make_undipy_global(origin: str, n: int, conn: Conn) -> tuple[Request, Close]:
    """``undipy.request(url)`` through the global dispatcher: the default
    ``Agent`` (one given the connection options when there are any)."""
    import undipy

    if opts := conn.undipy_options():
        undipy.set_global_dispatcher(undipy.Agent(**opts))
    send = functools.partial(undipy.request, reset=True) if conn.close else undipy.request

    async def request(path: str, method: str, body: bytes | None) -> tuple[int, int]:
        resp = await send(origin + path, method=method, body=body)
        data = await resp.body.bytes()
        return resp.status_code, len(data)

    return request, undipy.get_global_dispatcher().close


async def make_undipy_composed(origin: str, n: int, conn: Conn) -> tuple[Request, Close]:
    """``Pool.request()`` through ``retry``, ``redirect`` and ``decompress``
    composed on the pool (none of them fires on the benchmark's responses)."""
    import undipy
    from undipy import interceptors

    pool = undipy.Pool(origin, connections=n, **conn.undipy_options())
    composed = pool.compose(
        interceptors.retry(), interceptors.redirect(max_redirections=3), interceptors.decompress()
    )
    return _reading(composed, conn), pool.close


async def make_undipy_diag(origin: str, n: int, conn: Conn) -> tuple[Request, Close]:
    """``Pool.request()`` with a no-op subscriber on every request channel of
    ``undipy.diagnostics``."""
    from undipy import diagnostics

    def ignore(message: dict[str, Any]) -> None:
        pass

    for name in sorted(diagnostics.CHANNELS):
        diagnostics.subscribe(name, ignore)
    return await make_undipy_request(origin, n, conn)


# A streaming client: make(origin, n, conn, stats) -> (fetch, close), where
# `await fetch(path)` streams the body into a sink that adds each chunk's
# length to stats.bytes as it arrives, and returns (status, body length).
Fetch = Callable[[str], Awaitable[tuple[int, int]]]


async def count(chunks: AsyncIterable[Any], stats: Stats) -> int:
    """The sink of the iterating clients: counts each chunk as it arrives."""
    length = 0
    async for chunk in chunks:
        length += len(chunk)
        stats.bytes += len(chunk)
    return length


async def make_undipy_stream(origin: str, n: int, conn: Conn, stats: Stats) -> tuple[Fetch, Close]:
    import undipy

    pool = undipy.Pool(origin, connections=n, **conn.undipy_options())

    class Sink:
        __slots__ = ("length",)

        def __init__(self) -> None:
            self.length = 0

        def write(self, chunk: bytes) -> None:
            self.length += len(chunk)
            stats.bytes += len(chunk)

    async def fetch(path: str) -> tuple[int, int]:
        sink = Sink()
        status = 0

        def factory(data: Any) -> Sink:
            nonlocal status
            status = data.status_code
            return sink

        await pool.stream(factory, path=path, method="GET")
        return status, sink.length

    return fetch, pool.close


async def make_undipy_iter(origin: str, n: int, conn: Conn, stats: Stats) -> tuple[Fetch, Close]:
    import undipy

    pool = undipy.Pool(origin, connections=n, **conn.undipy_options())

    async def fetch(path: str) -> tuple[int, int]:
        resp = await pool.request(path=path, method="GET")
        return resp.status_code, await count(resp.body, stats)

    return fetch, pool.close


async def make_undipy_bytes(origin: str, n: int, conn: Conn, stats: Stats) -> tuple[Fetch, Close]:
    request, close = await make_undipy_request(origin, n, conn)

    async def fetch(path: str) -> tuple[int, int]:
        status, length = await request(path, "GET", None)
        stats.bytes += length
        return status, length

    return fetch, close


async def make_aiohttp_iter(origin: str, n: int, conn: Conn, stats: Stats) -> tuple[Fetch, Close]:
    session = _aiohttp_session(n, conn)

    async def fetch(path: str) -> tuple[int, int]:
        async with session.get(origin + path) as resp:
            return resp.status, await count(resp.content.iter_chunked(AIOHTTP_CHUNK), stats)

    return fetch, session.close


async def make_httpx_iter(origin: str, n: int, conn: Conn, stats: Stats) -> tuple[Fetch, Close]:
    client = _httpx_client(n, conn)

    async def fetch(path: str) -> tuple[int, int]:
        async with client.stream("GET", origin + path) as resp:
            return resp.status_code, await count(resp.aiter_raw(), stats)

    return fetch, client.aclose


async def make_aiosonic_iter(origin: str, n: int, conn: Conn, stats: Stats) -> tuple[Fetch, Close]:
    client = _aiosonic_client(n)
    options = _aiosonic_request_options(conn)

    async def fetch(path: str) -> tuple[int, int]:
        resp = await client.request(origin + path, stream=True, **options)
        return resp.status_code, await count(resp.read_chunks(), stats)

    return fetch, client.aclose


async def make_pyreqwest_iter(origin: str, n: int, conn: Conn, stats: Stats) -> tuple[Fetch, Close]:
    client = _pyreqwest_client(n, conn)

    async def fetch(path: str) -> tuple[int, int]:
        length = 0
        async with client.get(origin + path).build_streamed() as resp:
            reader = resp.body_reader
            while (chunk := await reader.read_chunk()) is not None:
                length += len(chunk)
                stats.bytes += len(chunk)
            return resp.status, length

    return fetch, client.close


def _as_request(fetch: Fetch) -> Request:
    def request(path: str, method: str, body: bytes | None) -> Awaitable[tuple[int, int]]:
        return fetch(path)

    return request


STREAM_FACTORIES: dict[str, Callable[[str, int, Conn, Stats], Awaitable[tuple[Fetch, Close]]]] = {
    "undipy-stream": make_undipy_stream,
    "undipy-iter": make_undipy_iter,
    "undipy-request": make_undipy_bytes,
    "aiohttp-iter": make_aiohttp_iter,
    "httpx-iter": make_httpx_iter,
    "aiosonic-iter": make_aiosonic_iter,
    "pyreqwest-iter": make_pyreqwest_iter,
}


FACTORIES: dict[str, Callable[[str, int, Conn], Awaitable[tuple[Request, Close]]]] = {
    "aiohttp": make_aiohttp,
    "httpx": make_httpx,
    "aiosonic": make_aiosonic,
    "pyreqwest": make_pyreqwest,
    "undipy-request": make_undipy_request,
    "undipy-global": make_undipy_global,
    "undipy-composed": make_undipy_composed,
    "undipy-diag": make_undipy_diag,
}


async def run_tasks(
    client: str,
    origin: str,
    workload: str,
    conn: Conn,
    stats: Stats,
    stopped: asyncio.Future[None],
) -> Close:
    """Starts N worker tasks, each sending requests back to back until
    stats.stop; resolves `stopped` when all are done."""
    path, method, n, expect_len = WORKLOADS[workload]
    body = POST_BODY if method == "POST" else None
    conns, pipelining = connections_for(workload)
    streaming = workload in STREAMING
    if streaming:
        fetch, close = await STREAM_FACTORIES[client](origin, n, conn, stats)
        request = _as_request(fetch)
    elif pipelining > 1:
        if client != "undipy-request":
            raise ValueError(f"{client} cannot pipeline")
        request, close = await make_undipy_request(origin, conns, conn, pipelining)
    else:
        request, close = await FACTORIES[client](origin, n, conn)

    async def worker() -> None:
        while not stats.stop:
            try:
                status, length = await request(path, method, body)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                stats.error(_describe(exc))
                await asyncio.sleep(0.001)
                continue
            if status != 200 or length != expect_len:
                stats.error(f"unexpected response: status {status}, {length} body bytes")
                continue
            stats.requests += 1
            if not streaming:  # a streaming client counted its chunks already
                stats.bytes += length

    tasks = [asyncio.ensure_future(worker()) for _ in range(n)]

    def done(_: object) -> None:
        if all(t.done() for t in tasks) and not stopped.done():
            stopped.set_result(None)

    for t in tasks:
        t.add_done_callback(done)
    return close


async def run_dispatch(
    origin: str, workload: str, conn: Conn, stats: Stats, stopped: asyncio.Future[None]
) -> Close:
    """N outstanding dispatch() requests; each one's on_complete dispatches
    the next, until stats.stop."""
    import undipy

    path, method, n, expect_len = WORKLOADS[workload]
    body = POST_BODY if method == "POST" else None
    conns, pipelining = connections_for(workload)
    pool = undipy.Pool(origin, connections=conns, pipelining=pipelining, **conn.undipy_options())
    dispatch = functools.partial(pool.dispatch, reset=True) if conn.close else pool.dispatch
    outstanding = 0

    class Handler(undipy.DispatchHandler):
        __slots__ = ("status", "received")

        def __init__(self) -> None:
            self.status = 0
            self.received = 0

        def on_connect(self, abort: Any, context: Any = None) -> None:
            pass

        def on_headers(
            self, status_code: int, headers: Any, resume: Any, status_text: Any = None
        ) -> bool:
            self.status = status_code
            return True

        def on_data(self, chunk: bytes) -> bool:
            self.received += len(chunk)
            return True

        def on_complete(self, trailers: Any) -> None:
            if self.status == 200 and self.received == expect_len:
                stats.requests += 1
                stats.bytes += self.received
            else:
                stats.error(f"unexpected response: status {self.status}, {self.received} bytes")
            next_request()

        def on_error(self, err: BaseException) -> None:
            stats.error(_describe(err))
            next_request()

    def send() -> None:
        try:
            # The return value only says whether the pool wants to be left
            # alone until "drain"; the request is queued either way and we
            # never have more than N outstanding.
            dispatch(Handler(), path=path, method=method, body=body)
        except Exception as exc:  # noqa: BLE001
            stats.error(_describe(exc))
            finish_one()

    def finish_one() -> None:
        nonlocal outstanding
        outstanding -= 1
        if outstanding == 0 and not stopped.done():
            stopped.set_result(None)

    def next_request() -> None:
        if stats.stop:
            finish_one()
        else:
            send()

    outstanding = n
    for _ in range(n):
        send()
    return pool.close


async def measure(
    client: str, origin: str, workload: str, conn: Conn, warmup: float, duration: float
) -> dict[str, Any]:
    stats = Stats()
    stopped: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if client == "undipy-dispatch":
        close = await run_dispatch(origin, workload, conn, stats, stopped)
    else:
        close = await run_tasks(client, origin, workload, conn, stats, stopped)

    await asyncio.sleep(warmup)
    r0, b0, e0 = stats.requests, stats.bytes, stats.errors
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await asyncio.sleep(duration)
    t1 = time.perf_counter()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    r1, b1, e1 = stats.requests, stats.bytes, stats.errors

    # Shutting down is not measured, but a client that hangs or fails here
    # is reported (the numbers above are kept).
    stats.stop = True
    shutdown_error = None
    try:
        await asyncio.wait_for(stopped, timeout=30)
    except TimeoutError:
        shutdown_error = "requests still outstanding 30 s after the window ended"
    try:
        await asyncio.wait_for(close(), timeout=30)
    except Exception as exc:  # noqa: BLE001
        shutdown_error = shutdown_error or f"close() failed: {_describe(exc)}"

    user = ru1.ru_utime - ru0.ru_utime
    sys_ = ru1.ru_stime - ru0.ru_stime
    return {
        "requests": r1 - r0,
        "bytes": b1 - b0,
        "wall": t1 - t0,
        "cpu": user + sys_,
        "cpu_user": user,
        "cpu_sys": sys_,
        "errors": e1 - e0,
        "errors_total": stats.errors,
        "first_error": stats.first_error,
        "maxrss_kib": ru1.ru_maxrss,
        "shutdown_error": shutdown_error,
    }


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in [*ALL_CLIENT_MODULES.values(), "uvloop"]:
        if name in out:
            continue
        try:
            mod = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001
            out[name] = f"unavailable: {_describe(exc)}"
            continue
        ver = getattr(mod, "__version__", None)
        if ver is None:
            try:
                from importlib.metadata import version

                ver = version(name)
            except Exception:  # noqa: BLE001
                ver = "?"
        out[name] = str(ver)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--client", choices=list(ALL_CLIENT_MODULES))
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument("--workload", choices=list(WORKLOADS))
    ap.add_argument("--url", help="origin, e.g. http://127.0.0.1:8080")
    ap.add_argument("--ca", metavar="PEM", help="CA file to trust for an https:// origin")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--versions", action="store_true", help="print library versions and exit")
    args = ap.parse_args()

    if args.versions:
        print(json.dumps(versions()))
        return 0
    if not (args.client and args.workload and args.url):
        ap.error("--client, --workload and --url are required")
    if args.workload in HTTPS and not args.url.startswith("https://"):
        ap.error(f"the {args.workload} workload needs an https:// --url")

    head = {"client": args.client, "loop": args.loop, "workload": args.workload}
    try:
        if (args.workload in STREAMING) != (args.client in STREAM_CLIENTS) and (
            args.client != "undipy-request"
        ):
            raise ValueError(f"{args.client} does not run the {args.workload} workload")
        importlib.import_module(ALL_CLIENT_MODULES[args.client])
        if args.client == "undipy-dispatch":
            import undipy

            for attr in ("Pool", "DispatchHandler"):
                getattr(undipy, attr)
        loop_factory = None
        if args.loop == "uvloop":
            import uvloop

            loop_factory = uvloop.new_event_loop
    except Exception as exc:  # noqa: BLE001
        print(json.dumps({**head, "unavailable": _describe(exc)}))
        return 3

    origin = args.url.rstrip("/")
    conn = Conn(ca=args.ca, close=args.workload in NEW_CONNECTION)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(
            measure(args.client, origin, args.workload, conn, args.warmup, args.duration)
        )
    print(json.dumps({**head, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
