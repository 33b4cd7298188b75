"""Aborting one request of a pipeline never re-sends another that was answered or
non-idempotent, and every caller ends within a bound (issue 9).

A scripted server answers pipelined requests in order and counts every request it
reads. Four requests go to ``Client(pipelining=3)``: three are written, the fourth
waits in the queue. One of them is aborted (by signal, task cancellation or
``asyncio.timeout``) while the head's response is streaming, or while the head
waits for its answer. Then the server's counts say what was sent twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import undipy
from helpers import T, within
from servers import RawConn, RawServer

STREAM = b"s" * 10_000
PIECES = 10
PIECE_GAP = 0.05
SLOW = 0.5
ABORT_AT = 0.15


def counting_script(counts: Counter[str]) -> Callable[[RawConn], Awaitable[None]]:
    """Answers requests in order: ``/stream`` sends 10 kB over 0.5 s, ``/slow``
    answers after 0.5 s, anything else at once. Counts ``METHOD target``."""

    async def script(conn: RawConn) -> None:
        try:
            while raw := await conn.read_request():
                method, target = raw.split(b" ", 2)[:2]
                counts[f"{method.decode()} {target.decode()}"] += 1
                path = target.split(b"?")[0]
                if path == b"/stream":
                    await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(STREAM))
                    step = len(STREAM) // PIECES
                    for i in range(PIECES):
                        await asyncio.sleep(PIECE_GAP)
                        await conn.send(STREAM[i * step : (i + 1) * step])
                    continue
                if path == b"/slow":
                    await asyncio.sleep(SLOW)
                await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            return

    return script


async def read_all(resp: undipy.ResponseData) -> bytes:
    out = bytearray()
    async for chunk in resp.body:
        out += chunk
    return bytes(out)


async def run_one(
    client: undipy.Client, opts: dict[str, Any], how: str | None
) -> tuple[int, bytes]:
    """One request, its body read with ``async for``; ``how`` aborts it after ABORT_AT."""
    if how == "timeout":
        async with asyncio.timeout(ABORT_AT):
            resp = await client.request(**opts)
            return resp.status_code, await read_all(resp)
    resp = await client.request(**opts)
    return resp.status_code, await read_all(resp)


@pytest.mark.loops
@pytest.mark.parametrize("how", ["signal", "cancel", "timeout"])
@pytest.mark.parametrize("head_method", ["GET", "POST"])
@pytest.mark.parametrize("head_phase", ["streaming", "waiting"])
@pytest.mark.parametrize("aborted", [0, 1, 2, 3], ids=["head", "middle", "tail", "queued"])
async def test_abort_in_pipeline(
    raw_server: Any, aborted: int, head_phase: str, head_method: str, how: str
) -> None:
    counts: Counter[str] = Counter()
    srv: RawServer = await raw_server(counting_script(counts))
    client = undipy.Client(srv.origin, pipelining=3)
    head_path = "/stream" if head_phase == "streaming" else "/slow"
    targets = [f"{head_path}?id=0", "/fast?id=1", "/fast?id=2", "/fast?id=3"]
    methods = [head_method, "GET", "GET", "GET"]
    controller = undipy.AbortController()
    tasks = []
    for i, (target, method) in enumerate(zip(targets, methods, strict=True)):
        opts: dict[str, Any] = {"path": target, "method": method}
        if method == "POST":
            opts["body"] = b"post-0"
        if i == aborted and how == "signal":
            opts["signal"] = controller.signal
        tasks.append(asyncio.ensure_future(run_one(client, opts, how if i == aborted else None)))
        await asyncio.sleep(0)

    await asyncio.sleep(ABORT_AT)
    if how == "signal":
        controller.abort()
    elif how == "cancel":
        tasks[aborted].cancel()
    done, pending = await asyncio.wait(tasks, timeout=T)
    assert not pending, "every caller gets a result or an error within the bound"

    for i, task in enumerate(tasks):
        if i == aborted:
            assert task.cancelled() or isinstance(
                task.exception(), undipy.RequestAbortedError | TimeoutError
            ), task
            continue
        status, body = task.result()
        assert status == 200
        assert body == (STREAM if targets[i].startswith("/stream") else b"ok")

    for i, (target, method) in enumerate(zip(targets, methods, strict=True)):
        seen = counts[f"{method} {target}"]
        if method == "POST":
            assert seen <= 1 if i == aborted else seen == 1, (target, counts)
        elif i == 0 and head_phase == "streaming":
            assert seen == 1, f"an answered request was sent again: {counts}"
        elif i != aborted:
            assert 1 <= seen <= 2, (target, counts)
        else:
            assert seen <= 2, (target, counts)

    resp = await within(client.request(path="/fast?id=after", method="GET"))
    assert await within(resp.body.bytes()) == b"ok"
    await within(client.close())  # resolves: nothing was left stuck
