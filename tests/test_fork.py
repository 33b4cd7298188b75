"""fork(): a child process gets a fresh engine for fresh dispatchers, and a
dispatcher made before the fork refuses every use in the child with a clear
error instead of touching engine state whose locks the parent's runtime
threads may have held at the moment of the fork (a deadlock otherwise)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import Any

import pytest
import undipy
from helpers import within
from servers import HttpServer

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")


def _child(parent: undipy.Pool, origin: str, w: int) -> None:
    """Runs in the child; reports one JSON line and never returns."""
    code = 0
    try:
        signal.alarm(20)  # a hang ends the child; the parent sees the signal

        async def run() -> dict[str, Any]:
            said: dict[str, Any] = {}
            uses = {
                "request": lambda: parent.request(path="/", method="GET"),
                "stats": lambda: parent.stats,
                "closed": lambda: parent.closed,
                "close": lambda: parent.close(),
                "destroy": lambda: parent.destroy(),
            }
            for name, use in uses.items():
                try:
                    got = use()
                    if hasattr(got, "__await__"):
                        await asyncio.wait_for(got, 3)
                    said[name] = "worked"
                except RuntimeError as e:
                    said[name] = str(e)
            async with undipy.Pool(origin, connections=2) as fresh:
                bodies = []
                for _ in range(20):
                    resp = await asyncio.wait_for(fresh.request(path="/", method="GET"), 5)
                    bodies.append(await resp.body.text())
            said["fresh"] = bodies
            return said

        with asyncio.Runner() as runner:
            os.write(w, (json.dumps(runner.run(run())) + "\n").encode())
    except BaseException as e:  # noqa: BLE001 - the child reports everything
        os.write(w, (json.dumps({"crash": repr(e)}) + "\n").encode())
        code = 1
    finally:
        os._exit(code)


async def _wait(pid: int, bound: float) -> str:
    end = time.monotonic() + bound
    while time.monotonic() < end:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            if os.WIFSIGNALED(status):
                return f"killed by signal {os.WTERMSIG(status)}"
            return f"exit {os.WEXITSTATUS(status)}"
        await asyncio.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "hung"


async def test_a_forked_child_refuses_the_parents_pool_and_uses_a_fresh_one(
    http_server: HttpServer,
) -> None:
    async with undipy.Pool(http_server.origin, connections=4, pipelining=4) as pool:
        stop = asyncio.Event()

        async def traffic() -> int:
            done = 0
            while not stop.is_set():
                resp = await within(pool.request(path="/", method="GET"))
                await within(resp.body.bytes())
                done += 1
            return done

        # Forks while the parent's engine threads are busy with requests,
        # several times, so some fork lands while they hold the pool's lock.
        workers = [asyncio.ensure_future(traffic()) for _ in range(8)]
        try:
            for _ in range(4):
                await asyncio.sleep(0.05)
                r, w = os.pipe()
                pid = os.fork()
                if pid == 0:
                    os.close(r)
                    _child(pool, http_server.origin, w)
                os.close(w)
                status = await _wait(pid, 30)
                with os.fdopen(r, "rb") as pipe:
                    said = json.loads(pipe.read() or b"{}")
                assert status == "exit 0", (status, said)
                refused = "this dispatcher was created before fork(): create a new one in the child"
                for use in ("request", "stats", "closed", "close", "destroy"):
                    assert said[use] == refused, (use, said)
                assert said["fresh"] == ["hello"] * 20
        finally:
            stop.set()
            done = await within(asyncio.gather(*workers))
        assert sum(done) > 0
        # The parent's pool is untouched by what the children did.
        resp = await within(pool.request(path="/", method="GET"))
        assert await within(resp.body.text()) == "hello"
