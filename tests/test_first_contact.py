"""What a new user meets in the first hour (issue 9): request() as a coroutine,
handlers checked up front, every dispatched request ended (paused or not),
close() from any loop, and error messages that say what is wrong."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import threading
import tomllib
import warnings
from pathlib import Path
from typing import Any

import pytest
import undipy
from helpers import Recorder, T, within
from hostile_helpers import ok
from servers import HttpServer, RawServer
from undipy import InvalidArgumentError

# ------------------------------------------------------------------ request() as a coroutine


@pytest.mark.loops
async def test_request_goes_to_create_task_and_task_groups(http_server: HttpServer) -> None:
    async with undipy.Client(http_server.origin) as c:
        task = asyncio.create_task(c.request(path="/", method="GET"))
        resp = await within(task)
        assert await resp.body.text() == "hello"
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(c.request(path="/", method="GET")) for _ in range(3)]
        for t in tasks:
            assert await t.result().body.bytes() == b"hello"
        async with c.request(path="/", method="GET") as resp:
            assert resp.status_code == 200


async def test_a_request_never_awaited_warns_and_sends_nothing(http_server: HttpServer) -> None:
    async with undipy.Client(http_server.origin) as c:
        with pytest.warns(RuntimeWarning, match="'/forgotten'.*never awaited: nothing was sent"):
            c.request(path="/forgotten", method="GET")
            gc.collect()
        resp = await within(c.request(path="/after", method="GET"))
        await resp.body.dump()
    assert [r.path for r in http_server.requests] == ["/after"]


async def test_a_request_cancelled_before_its_task_ran_sends_nothing(
    http_server: HttpServer,
) -> None:
    async with undipy.Client(http_server.origin) as c:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            task = asyncio.create_task(c.request(path="/never", method="GET"))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        resp = await within(c.request(path="/after", method="GET"))
        await resp.body.dump()
    assert [r.path for r in http_server.requests] == ["/after"]


async def test_a_request_awaited_twice_says_so(http_server: HttpServer) -> None:
    async with undipy.Client(http_server.origin) as c:
        call = c.request(path="/", method="GET")
        await (await within(call)).body.dump()
        with pytest.raises(RuntimeError, match="already awaited"):
            await call


# --------------------------------------------------------------------------- handlers


class OnlyComplete:
    def on_complete(self, trailers: list[bytes]) -> None:
        pass


class NoUpgrade(undipy.DispatchHandler):
    on_upgrade = None  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("handler", "opts", "missing"),
    [
        (object(), {}, "on_connect"),
        (OnlyComplete(), {}, "on_connect"),
        (NoUpgrade(), {"upgrade": "websocket"}, "on_upgrade"),
        (NoUpgrade(), {"method": "CONNECT", "path": "example.com:443"}, "on_upgrade"),
    ],
    ids=["object", "only-on-complete", "upgrade", "connect"],
)
async def test_a_handler_without_a_needed_method_is_refused_before_sending(
    http_server: HttpServer, handler: Any, opts: dict[str, Any], missing: str
) -> None:
    async with undipy.Client(http_server.origin) as c:
        with pytest.raises(InvalidArgumentError, match=f"invalid {missing} method"):
            c.dispatch(handler, **{"path": "/", "method": "GET", **opts})
        resp = await within(c.request(path="/after", method="GET"))
        await resp.body.dump()
    assert [r.path for r in http_server.requests] == ["/after"]


class Pauser(Recorder):
    """Pauses in on_headers and never resumes unless told to."""

    def on_headers(self, *args: Any) -> bool:
        super().on_headers(*args)
        return False


async def paused_request(raw_server: Any, size: int) -> tuple[undipy.Client, Pauser]:
    """A request whose response (``size`` bytes) is coming, and its paused handler."""

    async def script(conn: Any) -> None:
        assert await conn.read_request()
        await conn.send(ok(b"content-length: %d" % size, body=b"x" * size))
        await conn.wait_closed_by_peer(T)

    srv: RawServer = await raw_server(script)
    c = undipy.Client(srv.origin)
    rec = Pauser("/")
    c.dispatch(rec, path="/", method="GET")
    await rec.wait_for("headers")
    return c, rec


@pytest.mark.loops
@pytest.mark.parametrize("size", [5, 1 << 20], ids=["whole", "streaming"])
async def test_destroy_ends_a_paused_handler_with_on_error(raw_server: Any, size: int) -> None:
    c, rec = await paused_request(raw_server, size)
    await within(c.destroy())
    await rec.wait()
    assert isinstance(rec.only_error, undipy.ClientDestroyedError)


@pytest.mark.loops
async def test_close_waits_for_a_paused_handler(raw_server: Any) -> None:
    c, rec = await paused_request(raw_server, 5)
    closing = asyncio.ensure_future(c.close())
    await asyncio.sleep(0.2)
    assert not closing.done(), "close() resolved while a handler was still paused"
    assert rec.resume is not None
    rec.resume()
    await rec.wait()
    assert rec.error is None and rec.body == b"xxxxx"
    await within(closing)


# --------------------------------------------------------------------------- many loops


def test_close_resolves_on_a_second_event_loop() -> None:
    async def serve_and(fn: Any) -> None:
        async with HttpServer() as srv:
            await fn(srv)

    pool: list[undipy.Pool] = []

    async def first(srv: HttpServer) -> None:
        pool.append(undipy.Pool(srv.origin, connections=2))
        resp = await within(pool[0].request(path="/", method="GET"))
        assert await resp.body.bytes() == b"hello"

    async def second(srv: HttpServer) -> None:
        p = pool[0]  # the same dispatcher, on a new loop
        await within(p.close())
        assert p.closed

    asyncio.run(serve_and(first))
    asyncio.run(serve_and(second))


def test_close_from_main_after_threads_each_with_their_own_loop() -> None:
    """Threads share one Pool, each on its own loop; then the main thread closes it."""
    errors: list[BaseException] = []

    async def main() -> None:
        async with HttpServer() as srv:
            p = undipy.Pool(srv.origin, connections=4, pipelining=2)

            def worker() -> None:
                async def run() -> None:
                    for _ in range(20):
                        resp = await within(p.request(path="/", method="GET"))
                        assert await resp.body.bytes() == b"hello"

                try:
                    asyncio.run(run())
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=worker) for _ in range(4)]
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                await asyncio.sleep(0.01)  # keep serving
            await within(p.close())

    asyncio.run(main())
    assert not errors, errors


# --------------------------------------------------------------------------- messages


@pytest.mark.parametrize(
    ("origin", "says"),
    [
        ("127.0.0.1:8080", "needs a scheme"),
        ("ftp://127.0.0.1", "scheme must be http or https"),
        ("http://127.0.0.1:8080/api", "an origin has no path"),
        ("http://127.0.0.1:80.5", "port must be a whole number"),
        ("http://127.0.0.1:99999", "port must be a whole number"),
        ("http://", "has no host"),
    ],
)
def test_a_bad_origin_says_what_is_wrong(origin: str, says: str) -> None:
    with pytest.raises(InvalidArgumentError, match=says):
        undipy.Client(origin)


async def test_a_positional_path_says_options_are_keywords(http_server: HttpServer) -> None:
    async with undipy.Client(http_server.origin) as c:
        with pytest.raises(InvalidArgumentError, match="keyword-only: pass path='/x'"):
            c.request("/x")  # type: ignore[arg-type]


async def test_a_missing_method_or_path_is_named(http_server: HttpServer) -> None:
    async with undipy.Client(http_server.origin) as c:
        with pytest.raises(InvalidArgumentError, match="method is required"):
            await c.request(path="/")
        with pytest.raises(InvalidArgumentError, match="path is required"):
            await c.request(method="GET")


def test_the_version_comes_from_cargo_toml() -> None:
    with open(Path(__file__).parent.parent / "Cargo.toml", "rb") as f:
        version = tomllib.load(f)["package"]["version"]
    assert undipy.__version__ == version
    out = subprocess.run(
        [sys.executable, "-m", "undipy", "--version"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout == f"undipy {version}\n"
