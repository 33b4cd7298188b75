"""Cancellation storm and fault run (issue 9).

Drives N requests (GET and POST, varied sizes and delays) through undipy's
``Client(pipelining=10)`` and ``Pool(connections=8, pipelining=4)`` on the
asyncio and the uvloop event loop, cancelling a random ~30 % of them at a
random point: before sending, while queued, right after the headers,
mid-body, by ``signal=``, by ``asyncio.wait_for`` and by ``asyncio.timeout``.
A row passes when every request settled, no POST reached the server twice, no
response went to the wrong request, 1,000 plain GETs afterwards all succeed
and ``close()`` resolves.

    python3 benches/storm.py --short                 # CI form: 2,000 requests a row
    python3 benches/storm.py                         # 20,000 requests a row
    python3 benches/storm.py --kinds pool --loops uvloop --cancel-kinds mid_body

Every row runs in a fresh client process, against a fresh server process (a
small asyncio HTTP/1.1 server in this file, ``--serve``), so a stuck engine
can neither block the server's loop nor leak into the next row. Every wait is
bounded; the driver kills a row that overruns and stops at ``--deadline``.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import http.client
import json
import math
import os
import random
import select
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

CANCEL_KINDS = (
    "before_send",  # task cancelled one loop step after request() was called
    "queued",  # task cancelled after 0.2-50 ms, mostly while still queued
    "after_headers",  # the task cancels itself once the headers are in
    "mid_body",  # the task cancels itself between two body chunks
    "signal",  # AbortController().abort(): after 0.5 ms-2 s, after the headers or mid-body
    "wait_for",  # asyncio.wait_for(..., timeout=0.5 ms-2 s)
    "timeout",  # async with asyncio.timeout(0.5 ms-2 s)
)
KINDS = ("client", "pool")
LOOPS = ("asyncio", "uvloop")
AFTER_REQUESTS = 1000
RESULT_TAG = "STORM-RESULT "


# -- the plan: what every request does, the same for every row ---------------


@dataclass(frozen=True)
class Plan:
    rid: str  # unique id; POSTs carry it as their body
    method: str
    size: int  # response body bytes
    delay_ms: int  # server waits this long before the headers
    chunks: int  # the body goes out in this many writes...
    gap_ms: int  # ...this far apart (so mid-body is a real place)
    chunked: bool  # transfer-encoding: chunked instead of content-length
    read_iter: bool  # async for over the body, else body.bytes()
    cancel: str  # "" or one of CANCEL_KINDS
    cancel_after: float  # seconds, for the timer kinds (0: no timer)
    cancel_point: int  # -1: none; 0: right after the headers; k: after the k-th chunk

    @property
    def path(self) -> str:
        te = "&te=chunked" if self.chunked else ""
        return (
            f"/r?id={self.rid}&size={self.size}&delay={self.delay_ms}"
            f"&chunks={self.chunks}&gap={self.gap_ms}{te}"
        )


def pick_size(rng: random.Random) -> int:
    """0 B to 1 MiB, mostly small (about 35 KiB on average)."""
    r = rng.random()
    if r < 0.05:
        return 0
    if r < 0.60:
        return rng.randint(1, 1024)
    if r < 0.90:
        return rng.randint(1024, 64 * 1024)
    if r < 0.98:
        return rng.randint(64 * 1024, 256 * 1024)
    return rng.randint(256 * 1024, 1024 * 1024)


def pick_delay(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.5:
        return 0
    return rng.randint(1, 10) if r < 0.85 else rng.randint(10, 50)


def log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    """Spreads timers over decades, so they fire in every phase of a request."""
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def cancel_point(cancel: str, rng: random.Random) -> int:
    """Where a point kind strikes; a third of the signals abort after the
    headers, a third mid-body, the rest on a timer (-1)."""
    if cancel == "after_headers":
        return 0
    if cancel == "mid_body":
        return 1
    if cancel == "signal":
        return rng.choice((-1, 0, 1))
    return -1


def make_plan(i: int, rng: random.Random, rate: float, kinds: tuple[str, ...]) -> Plan:
    cancel = rng.choice(kinds) if kinds and rng.random() < rate else ""
    size = pick_size(rng)
    chunks = 1 if size < 1024 else rng.randint(1, 8)
    gap = rng.choice((0, 0, 1, 2, 3))
    point = cancel_point(cancel, rng)
    if point > 0:
        # A body of a few pieces with pauses, so there is a "between chunks".
        size, chunks, gap = max(size, 4096), max(chunks, 3), max(gap, 1)
        point = rng.randint(1, chunks - 1)
    method = "POST" if rng.random() < 0.25 else "GET"
    timer = 0.0
    if cancel == "queued":
        timer = log_uniform(rng, 0.0002, 0.05)
    elif cancel in ("wait_for", "timeout") or (cancel == "signal" and point < 0):
        timer = log_uniform(rng, 0.0005, 2.0)
    return Plan(
        rid=f"{i}.{method[0].lower()}.{cancel or 'none'}",
        method=method,
        size=size,
        delay_ms=pick_delay(rng),
        chunks=chunks,
        gap_ms=gap,
        chunked=rng.random() < 0.2,
        read_iter=point > 0 or rng.random() < 0.5,
        cancel=cancel,
        cancel_after=timer,
        cancel_point=point,
    )


def make_plans(n: int, seed: int, rate: float, kinds: tuple[str, ...]) -> list[Plan]:
    rng = random.Random(seed)
    return [make_plan(i, rng, rate, kinds) for i in range(n)]


def kind_of_rid(rid: str) -> str:
    """The cancellation kind a request id was planned with ("none" if not)."""
    parts = rid.split(".")
    return parts[2] if len(parts) == 3 else "other"


# -- the server (its own process) ---------------------------------------------

BLOB = bytes(range(256)) * 4096  # 1 MiB of response body to slice from


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    rid: str
    ready_at: float  # loop time: arrival + delay, so delays overlap in a pipeline
    size: int
    chunks: int
    gap: float
    chunked: bool
    close: bool
    payload: bytes | None = None  # a fixed body (the control endpoint)


@dataclass
class ServerState:
    counts: Counter[str] = field(default_factory=Counter)
    methods: dict[str, str] = field(default_factory=dict)
    bad_bodies: int = 0
    requests: int = 0
    open: int = 0


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            return b"".join(parts)
        parts.append((await reader.readexactly(size + 2))[:-2])


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """One request head and body; None at a clean end of stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        body = await read_chunked(reader)
    else:
        n = int(headers.get("content-length", "0"))
        body = await reader.readexactly(n) if n else b""
    return Request(method, target, headers, body)


def count(state: ServerState, req: Request, rid: str) -> None:
    """A request fully read counts as having reached the server."""
    state.requests += 1
    key = rid
    if req.method == "POST":
        key = req.body.decode("latin-1")
        if key != rid:
            state.bad_bodies += 1
    state.counts[key] += 1
    state.methods[key] = req.method


def reply_for(req: Request, now: float) -> Reply:
    q = {k: v[0] for k, v in parse_qs(urlsplit(req.target).query).items()}
    return Reply(
        rid=q.get("id", ""),
        ready_at=now + int(q.get("delay", "0")) / 1000,
        size=min(int(q.get("size", "0")), len(BLOB)),
        chunks=max(1, int(q.get("chunks", "1"))),
        gap=int(q.get("gap", "0")) / 1000,
        chunked=q.get("te") == "chunked",
        close=req.headers.get("connection", "").lower() == "close",
    )


def summary(state: ServerState) -> dict[str, Any]:
    post_dups = {k: n for k, n in state.counts.items() if n > 1 and state.methods[k] == "POST"}
    get_over2 = {k: n for k, n in state.counts.items() if n > 2 and state.methods[k] == "GET"}
    get_twice = sum(1 for k, n in state.counts.items() if n == 2 and state.methods[k] == "GET")
    return {
        "requests": state.requests,
        "ids": len(state.counts),
        "post_dups": post_dups,
        "get_over2": get_over2,
        "get_twice": get_twice,
        "bad_bodies": state.bad_bodies,
    }


async def control_reply(state: ServerState, req: Request) -> Reply:
    """GET /_counts: waits (up to 3 s) for the client's connections to end,
    so that everything it sent has been read, then answers the summary."""
    deadline = time.monotonic() + 3.0
    while state.open > 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    data = {**summary(state), "open_at_report": state.open - 1}
    payload = json.dumps(data).encode()
    return Reply("", 0.0, len(payload), 1, 0.0, False, True, payload)


def pieces(reply: Reply) -> list[bytes | memoryview]:
    body: bytes | memoryview = reply.payload or memoryview(BLOB)[: reply.size]
    step = max(1, -(-reply.size // reply.chunks))
    return [body[i : i + step] for i in range(0, reply.size, step)]


def head_of(reply: Reply) -> bytes:
    framing = "transfer-encoding: chunked" if reply.chunked else f"content-length: {reply.size}"
    conn = "connection: close\r\n" if reply.close else ""
    return f"HTTP/1.1 200 OK\r\nx-id: {reply.rid}\r\n{framing}\r\n{conn}\r\n".encode()


def frame(piece: bytes | memoryview, chunked: bool) -> bytes:
    if not chunked:
        return bytes(piece)
    return b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n"


async def send_reply(writer: asyncio.StreamWriter, reply: Reply) -> None:
    loop = asyncio.get_running_loop()
    wait = reply.ready_at - loop.time()
    if wait > 0:
        await asyncio.sleep(wait)
    writer.write(head_of(reply))
    for n, piece in enumerate(pieces(reply)):
        if n and reply.gap:
            await writer.drain()
            await asyncio.sleep(reply.gap)
        if writer.is_closing():
            return  # the client closed: nobody reads the rest (asyncio would log each write)
        writer.write(frame(piece, reply.chunked))
    if reply.chunked:
        writer.write(b"0\r\n\r\n")
    await writer.drain()


async def send_replies(writer: asyncio.StreamWriter, queue: asyncio.Queue[Reply | None]) -> None:
    """Answers strictly in request order, as HTTP/1.1 pipelining requires."""
    while (reply := await queue.get()) is not None and not writer.is_closing():
        await send_reply(writer, reply)


async def handle(
    state: ServerState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    state.open += 1
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Reply | None] = asyncio.Queue()
    sender = asyncio.ensure_future(send_replies(writer, queue))
    finished = False  # the client asked to close: answer what it sent first
    try:
        while not sender.done():
            req = await read_request(reader)
            if req is None:
                break
            if req.target.startswith("/_counts"):
                queue.put_nowait(await control_reply(state, req))
                finished = True
                break
            reply = reply_for(req, loop.time())
            count(state, req, reply.rid)
            queue.put_nowait(reply)
            if reply.close:
                finished = True
                break
    except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        state.open -= 1
        await finish_connection(writer, queue, sender, finished)


async def finish_connection(
    writer: asyncio.StreamWriter,
    queue: asyncio.Queue[Reply | None],
    sender: asyncio.Future[None],
    drain: bool,
) -> None:
    # undipy never half-closes, so end of stream means nobody reads the
    # answers any more: drop them unless the client asked for a clean close.
    queue.put_nowait(None)
    if not drain:
        sender.cancel()
    try:
        await asyncio.wait_for(sender, 10.0)
    except (OSError, asyncio.CancelledError, TimeoutError):
        pass
    writer.close()


async def serve() -> None:
    state = ServerState()

    async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await handle(state, r, w)

    server = await asyncio.start_server(on_client, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    # The driver closes our stdin to stop us (or dies, which does the same).
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
    server.close()


def serve_main() -> None:
    asyncio.run(serve())


# -- one row: a dispatcher on a loop (its own process) -------------------------


@dataclass
class Track:
    """What happened to one request."""

    plan: Plan
    outcome: str = ""  # "" until settled, then "ok", "cancelled" or "error:<Class>"
    fired: bool = False  # our cancellation hit it before it settled
    phase: str = "init"  # init, before_headers, headers, body: where it was
    fired_phase: str = ""
    started: float = 0.0
    ended: float = 0.0


class BadResponse(Exception):
    """Wrong status, wrong length, or the answer of another request."""


class MixedUp(BadResponse):
    """The response's x-id names another request."""


@dataclass
class Bounds:
    settle: float  # after the last request went out, for all of them to settle
    after: float  # for the 1,000 requests after the storm
    close: float
    destroy: float
    valve: float  # a slot is given back after this long even if its request hangs
    stall: float  # nothing settled for this long while requests wait: they are stuck


def bounds_for(short: bool) -> Bounds:
    # Here a healthy dispatcher settles a request every few milliseconds and
    # no single answer takes more than ~0.2 s, so a 3 s stall means stuck.
    if short:
        return Bounds(settle=10.0, after=10.0, close=3.0, destroy=2.0, valve=2.0, stall=3.0)
    return Bounds(settle=30.0, after=30.0, close=10.0, destroy=5.0, valve=2.0, stall=10.0)


class Progress:
    """When a request last settled: a wait ends early once nothing moves."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def mark(self, *_: object) -> None:
        self.last = time.monotonic()

    def stalled(self, stall: float) -> bool:
        return time.monotonic() - self.last >= stall

    def answered(self, track: Track) -> Callable[[object], None]:
        """A done callback that counts only requests nobody cancelled: the
        cancelled ones settle even when the dispatcher is stuck."""
        return lambda _: None if track.fired else self.mark()


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def header(resp: Any, name: str) -> str:
    value = resp.headers.get(name, "")
    return value if isinstance(value, str) else ",".join(value)


def cancel_self(track: Track) -> None:
    mark_fired(track)
    task = asyncio.current_task()
    assert task is not None
    task.cancel()


def mark_fired(track: Track) -> bool:
    if track.outcome or track.fired:
        return False
    track.fired, track.fired_phase = True, track.phase
    return True


async def fetch(
    d: Any, track: Track, signal: Any = None, hit: Callable[[], None] | None = None
) -> None:
    """One request: send, check the head, read the whole body; ``hit()`` is
    the cancellation, called at the plan's point (after headers or chunk k)."""
    p = track.plan
    body = p.rid.encode() if p.method == "POST" else None
    track.phase = "before_headers"
    resp = await d.request(path=p.path, method=p.method, body=body, signal=signal)
    track.phase = "headers"
    if resp.status_code != 200:
        raise BadResponse(f"status {resp.status_code}")
    if header(resp, "x-id") != p.rid:
        raise MixedUp(f"{p.rid} got the answer of {header(resp, 'x-id')!r}")
    if hit is not None and p.cancel_point == 0:
        hit()
    n = 0
    if p.read_iter:
        k = 0
        async for chunk in resp.body:
            track.phase = "body"
            n, k = n + len(chunk), k + 1
            if hit is not None and k == p.cancel_point:
                hit()
    else:
        n = len(await resp.body.bytes())
    if n != p.size:
        raise BadResponse(f"{n} body bytes, expected {p.size}")


def arm_timer(track: Track, ctrl: Any = None) -> None:
    """Marks the request cancelled when its timer fires (and aborts the
    signal): a wait_for that then hangs still counts as cancelled."""
    if track.plan.cancel_after > 0:
        asyncio.get_running_loop().call_later(track.plan.cancel_after, abort_now, track, ctrl)


def abort_now(track: Track, ctrl: Any = None) -> None:
    if mark_fired(track) and ctrl is not None:
        ctrl.abort()


async def run_one(d: Any, track: Track) -> None:
    """The task of one request; the outcome lands in ``track``."""
    import undipy

    p = track.plan
    track.started = time.monotonic()
    try:
        if p.cancel == "wait_for":
            arm_timer(track)
            await asyncio.wait_for(fetch(d, track), p.cancel_after)
        elif p.cancel == "timeout":
            arm_timer(track)
            async with asyncio.timeout(p.cancel_after):
                await fetch(d, track)
        elif p.cancel == "signal":
            ctrl = undipy.AbortController()
            arm_timer(track, ctrl)
            await fetch(d, track, ctrl.signal, lambda: abort_now(track, ctrl))
        elif p.cancel in ("after_headers", "mid_body"):
            await fetch(d, track, None, lambda: cancel_self(track))
        else:
            await fetch(d, track)
        track.outcome = "ok"
    except undipy.UndiciError as e:  # first: some of them are TimeoutErrors too
        track.outcome = f"error:{type(e).__name__}"
    except TimeoutError:
        if p.cancel not in ("wait_for", "timeout"):
            raise
        track.fired, track.outcome = True, "cancelled"
    except Exception as e:
        track.outcome = f"error:{type(e).__name__}"


def on_settled(track: Track, task: asyncio.Task[None]) -> None:
    track.ended = time.monotonic()
    if track.outcome:
        return
    if task.cancelled():
        track.outcome = "cancelled"
    else:
        exc = task.exception()
        track.outcome = f"error:{type(exc).__name__}" if exc else "ok"


def cancel_task(track: Track, task: asyncio.Task[None]) -> None:
    if not task.done() and mark_fired(track):
        task.cancel()


class Slot:
    """One place among the in-flight requests, given back once: when the
    request settles or after ``valve`` seconds, whichever comes first, so
    hung requests cannot stop the storm."""

    def __init__(self, sem: asyncio.Semaphore) -> None:
        self.sem, self.held = sem, True

    def release(self, *_: object) -> None:
        if self.held:
            self.held = False
            self.sem.release()


def start(d: Any, track: Track) -> asyncio.Task[None]:
    loop = asyncio.get_running_loop()
    task = loop.create_task(run_one(d, track))
    task.add_done_callback(lambda t: on_settled(track, t))
    if track.plan.cancel == "before_send":
        # One loop step later: request() has been called, the engine has it.
        loop.call_soon(cancel_task, track, task)
    elif track.plan.cancel == "queued":
        loop.call_later(track.plan.cancel_after, cancel_task, track, task)
    return task


async def storm(
    d: Any, tracks: list[Track], inflight: int, b: Bounds, progress: Progress
) -> tuple[list[asyncio.Task[None]], int]:
    """Starts every request, at most `inflight` at a time while the
    dispatcher makes progress; returns the tasks and how many were started
    without a slot because the dispatcher had stalled."""
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(inflight)
    tasks, flooded = [], 0
    for track in tracks:
        if progress.stalled(b.stall):
            # Stuck: queue the rest at once (as an application would) rather
            # than wait out one valve per batch.
            flooded += 1
        else:
            await sem.acquire()  # bounded: every slot comes back within `valve`
        slot = Slot(sem)
        task = start(d, track)
        task.add_done_callback(slot.release)
        task.add_done_callback(progress.answered(track))
        loop.call_later(b.valve, slot.release)
        tasks.append(task)
    return tasks, flooded


async def settle(
    tasks: Iterable[asyncio.Future[Any]], bound: float, stall: float, progress: Progress
) -> None:
    """Waits for every task, at most `bound` seconds, and gives up sooner
    when none has settled for `stall` seconds."""
    end = time.monotonic() + bound
    pending = {t for t in tasks if not t.done()}
    while pending and time.monotonic() < end and not progress.stalled(stall):
        _, pending = await asyncio.wait(pending, timeout=min(0.25, end - time.monotonic()))


def stats_of(d: Any) -> dict[str, int]:
    st = d.stats
    names = ("connected", "free", "pending", "queued", "running", "size")
    return {n: int(getattr(st, n)) for n in names if hasattr(st, n)}


async def plain_get(d: Any, i: int) -> None:
    size = i * 37 % 4096
    rid = f"after.{i}"
    resp = await d.request(path=f"/r?id={rid}&size={size}", method="GET")
    data = await resp.body.bytes()
    if resp.status_code != 200 or header(resp, "x-id") != rid or len(data) != size:
        raise BadResponse(f"{rid}: status {resp.status_code}, {len(data)} bytes")


async def after_check(d: Any, b: Bounds) -> dict[str, Any]:
    """The dispatcher must still serve plain requests after the storm."""
    progress = Progress()
    tasks = [asyncio.ensure_future(plain_get(d, i)) for i in range(AFTER_REQUESTS)]
    for t in tasks:
        t.add_done_callback(progress.mark)
    await settle(tasks, b.after, b.stall, progress)
    finished = [t for t in tasks if t.done() and not t.cancelled()]
    errors = Counter(type(t.exception()).__name__ for t in finished if t.exception() is not None)
    ok = sum(1 for t in finished if t.exception() is None)
    unsettled = sum(1 for t in tasks if not t.done())
    for t in tasks:
        t.cancel()
    return {"ok": ok, "failed": sum(errors.values()), "unsettled": unsettled, "errors": errors}


async def close_bounded(d: Any, b: Bounds) -> str:
    """close(), then destroy() if close hangs: 'resolved' is the only pass."""
    try:
        await asyncio.wait_for(d.close(), b.close)
        return "resolved"
    except TimeoutError:
        pass
    except Exception as e:
        return f"error {type(e).__name__}"
    try:
        await asyncio.wait_for(d.destroy(), b.destroy)
        return f"hung {b.close:g}s, destroyed"
    except TimeoutError:
        return "hung, destroy hung too"
    except Exception as e:
        return f"hung, destroy: {type(e).__name__}"


def make_dispatcher(kind: str, origin: str) -> Any:
    import undipy

    if kind == "client":
        return undipy.Client(origin, pipelining=10)
    return undipy.Pool(origin, connections=8, pipelining=4)


async def warm_up(origin: str) -> None:
    """One request on a throwaway Client: checks the server and creates the
    loop's bridge, so the fd count before the row includes it."""
    import undipy

    c = undipy.Client(origin)
    resp = await asyncio.wait_for(c.request(path="/r?id=warmup&size=1", method="GET"), 5.0)
    await asyncio.wait_for(resp.body.bytes(), 5.0)
    await asyncio.wait_for(c.close(), 5.0)
    await asyncio.sleep(0.2)  # its socket closes on the runtime thread


def tally(tracks: list[Track], done: set[int]) -> dict[str, Any]:
    """Sorts the requests into cancelled / completed / failed / unsettled."""
    out: dict[str, Any] = {
        "cancelled": Counter(),
        "cancel_phase": Counter(),
        "cancel_outcome": Counter(),
        "completed": 0,
        "failed": Counter(),
        "unsettled": 0,
        "unsettled_cancelled": Counter(),
        "unsettled_by_plan": Counter(),
        "unsettled_phase": Counter(),
        "unsettled_examples": [],
        "mixed_up": 0,
    }
    latencies: list[float] = []
    for n, t in enumerate(tracks):
        kind = t.plan.cancel
        if n not in done:
            if t.fired:
                out["unsettled_cancelled"][kind] += 1
            else:
                out["unsettled"] += 1
                out["unsettled_by_plan"][f"{t.plan.method} {kind or 'none'}"] += 1
                out["unsettled_phase"][t.phase] += 1
                if len(out["unsettled_examples"]) < 5:
                    out["unsettled_examples"].append(f"{t.plan.path} ({t.phase})")
        elif t.fired:
            out["cancelled"][kind] += 1
            out["cancel_phase"][f"{kind}@{t.fired_phase}"] += 1
            out["cancel_outcome"][f"{kind}:{t.outcome}"] += 1
        elif t.outcome == "ok":
            out["completed"] += 1
            latencies.append(t.ended - t.started)
        else:
            out["failed"][t.outcome.removeprefix("error:")] += 1
            out["mixed_up"] += t.outcome == "error:MixedUp"
    out["latency_ms"] = percentiles(latencies)
    out["before_first_hang"] = before_first_hang(tracks, done)
    return out


def before_first_hang(tracks: list[Track], done: set[int], n: int = 6) -> list[str]:
    """The requests started just before the first uncancelled one that never
    settled: the likely culprits of a stuck connection."""
    first = next((i for i, t in enumerate(tracks) if i not in done and not t.fired), None)
    if first is None:
        return []
    return [describe(t) for t in tracks[max(0, first - n) : first + 1]]


def describe(t: Track) -> str:
    p = t.plan
    cancel = f"{p.cancel}@{t.fired_phase}" if t.fired else "not cancelled"
    read = "async for" if p.read_iter else "bytes()"
    return f"{p.method} {p.path} [{read}]: {cancel}, {t.outcome or 'unsettled@' + t.phase}"


def percentiles(xs: list[float]) -> dict[str, float]:
    """p50, p99 and max in ms: how long the dispatcher's queue made them wait."""
    if not xs:
        return {}
    xs = sorted(xs)

    def ms(q: float) -> float:
        return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 1)

    return {"p50": ms(0.5), "p99": ms(0.99), "max": ms(1.0)}


async def row(args: argparse.Namespace) -> dict[str, Any]:
    kind, loop_name = args.row.split(":")
    origin = f"http://127.0.0.1:{args.port}"
    b = bounds_for(args.short)
    plans = make_plans(args.requests, args.seed, args.cancel_rate, args.cancel_kinds)
    tracks = [Track(p) for p in plans]
    await warm_up(origin)
    fds_before = fds()
    t0 = time.monotonic()
    d = make_dispatcher(kind, origin)
    progress = Progress()
    tasks, flooded = await storm(d, tracks, args.inflight, b, progress)
    t_launched = time.monotonic()
    progress.mark()  # the last ones started deserve a whole `stall` too
    await settle(tasks, b.settle, b.stall, progress)
    done = {n for n, t in enumerate(tasks) if t.done()}
    result = tally(tracks, done)
    stats_storm = stats_of(d)
    t_storm = time.monotonic()
    after = await after_check(d, b)
    stats_after = stats_of(d)
    close = await close_bounded(d, b)
    await asyncio.sleep(0.1)  # let the failures of destroy() reach the tasks
    hung = [n for n, t in enumerate(tasks) if n not in done]
    freed = sum(1 for n in hung if tasks[n].done())
    for t in tasks:
        t.cancel()
    await asyncio.sleep(0.3)  # let the runtime close its sockets
    return {
        "kind": kind,
        "loop": loop_name,
        "requests": len(tracks),
        **result,
        "stats_after_storm": stats_storm,
        "after": after,
        "stats_after_check": stats_after,
        "close": close,
        "flooded": flooded,
        "settled_by_close": freed,
        "hung_after_close": len(hung) - freed,
        "fds_before": fds_before,
        "fds_after": fds(),
        "launch_s": round(t_launched - t0, 2),
        "storm_s": round(t_storm - t0, 2),
        "wall_s": round(time.monotonic() - t0, 2),
    }


def row_main(args: argparse.Namespace) -> None:
    # Last resort inside the child: print every thread's stack and exit.
    faulthandler.dump_traceback_later(args.row_timeout, exit=True)
    if args.row.endswith(":uvloop"):
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(row(args))
        print(RESULT_TAG + json.dumps(result), flush=True)
        # Hung requests may still hold tasks that ignore cancellation; the
        # numbers are out, so skip the loop's unbounded shutdown.
        os._exit(0)


# -- the driver ----------------------------------------------------------------


class Server:
    """The server process: started per row, stopped by closing its stdin."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 10.0)
        line = self.proc.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError("the storm server did not start")
        self.port = int(line)

    def counts(self) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request("GET", "/_counts")
            data: dict[str, Any] = json.loads(conn.getresponse().read())
            return data
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(3)


def row_timeout(args: argparse.Namespace) -> float:
    """The most a healthy-or-not row can take with the bounds of its mode."""
    b = bounds_for(args.short)
    launch = args.requests / args.inflight * b.valve + 5
    return float(launch + b.settle + b.after + b.close + b.destroy + 15)


def run_child(
    args: argparse.Namespace, kind: str, loop: str, port: int, timeout: float
) -> dict[str, Any]:
    cmd = [
        sys.executable, __file__, "--row", f"{kind}:{loop}", "--port", str(port),
        "--requests", str(args.requests), "--seed", str(args.seed),
        "--inflight", str(args.inflight), "--cancel-rate", str(args.cancel_rate),
        "--cancel-kinds", ",".join(args.cancel_kinds) or "none",
        "--row-timeout", str(max(1.0, timeout - 3)),
    ]  # fmt: skip
    if args.short:
        cmd.append("--short")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        return {"kind": kind, "loop": loop, "crash": f"killed after {timeout:.0f}s", "stderr": err}
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            res: dict[str, Any] = json.loads(line[len(RESULT_TAG) :])
            return res
    return {
        "kind": kind,
        "loop": loop,
        "crash": f"exit status {proc.returncode}, no result",
        "stderr": proc.stderr,
    }


def run_row(args: argparse.Namespace, kind: str, loop: str, budget: float) -> dict[str, Any]:
    server = Server()
    try:
        res = run_child(args, kind, loop, server.port, min(row_timeout(args), budget))
        try:
            res["server"] = server.counts()
        except (OSError, ValueError) as e:
            res["server_error"] = f"{type(e).__name__}: {e}"
        return res
    finally:
        server.stop()


def failures(r: dict[str, Any]) -> list[str]:
    """Why a row fails; empty when it passes."""
    if "crash" in r:
        return [f"row crashed or hung: {r['crash']}"]
    why = []
    if r["unsettled"]:
        why.append(f"{r['unsettled']} uncancelled requests never settled")
    if sum(r["unsettled_cancelled"].values()):
        why.append(f"{sum(r['unsettled_cancelled'].values())} cancelled requests never settled")
    srv = r.get("server")
    if srv is None:
        why.append(f"no counts from the server ({r.get('server_error')})")
    elif srv["post_dups"]:
        why.append(f"{len(srv['post_dups'])} POSTs reached the server twice or more")
    if r["mixed_up"]:
        why.append(f"{r['mixed_up']} responses went to the wrong request")
    a = r["after"]
    if a["ok"] != AFTER_REQUESTS:
        why.append(f"after the storm only {a['ok']}/{AFTER_REQUESTS} plain GETs succeeded")
    if r["close"] != "resolved":
        why.append(f"close(): {r['close']}")
    return why


def fmt_counter(c: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: -kv[1])) or "-"


COLUMNS = (
    ("kind", 6), ("loop", 7), ("reqs", 6), ("cancel", 6), ("done", 6), ("failed", 6),
    ("unsettl", 7), ("dupPOST", 7), ("GET>2", 5), ("after ok", 9), ("close", 8),
    ("fds", 6), ("wall", 6), ("", 4),
)  # fmt: skip


def table_row(r: dict[str, Any]) -> list[str]:
    if "crash" in r:
        return [r["kind"], r["loop"], "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "FAIL"]
    srv = r.get("server") or {}
    close = "ok" if r["close"] == "resolved" else "HUNG"
    return [
        r["kind"],
        r["loop"],
        str(r["requests"]),
        str(sum(r["cancelled"].values())),
        str(r["completed"]),
        str(sum(r["failed"].values())),
        str(r["unsettled"] + sum(r["unsettled_cancelled"].values())),
        str(len(srv.get("post_dups", {}))) if srv else "?",
        str(len(srv.get("get_over2", {}))) if srv else "?",
        f"{r['after']['ok']}/{AFTER_REQUESTS}",
        close,
        f"{r['fds_after'] - r['fds_before']:+d}",
        f"{r['wall_s']:.1f}s",
        "FAIL" if failures(r) else "ok",
    ]


def details(r: dict[str, Any]) -> list[str]:
    """The lines under the table for one row."""
    name = f"{r['kind']}/{r['loop']}"
    if "crash" in r:
        tail = "\n".join(r.get("stderr", "").strip().splitlines()[-25:])
        return [f"{name}: {r['crash']}", tail]
    srv = r.get("server") or {}
    dups_by_kind = Counter(kind_of_rid(k) for k in srv.get("post_dups", {}))
    a = r["after"]
    lines = [
        f"{name}:",
        f"  cancelled by kind:     {fmt_counter(r['cancelled'])}",
        f"  cancelled at phase:    {fmt_counter(r['cancel_phase'])}",
        f"  failed (uncancelled):  {fmt_counter(r['failed'])}",
        f"  unsettled uncancelled: {r['unsettled']}"
        f" (by plan: {fmt_counter(r['unsettled_by_plan'])})",
        f"  unsettled at phase:    {fmt_counter(r['unsettled_phase'])}",
        *(f"    e.g. {x}" for x in r["unsettled_examples"][:3]),
        f"  unsettled cancelled:   {fmt_counter(r['unsettled_cancelled'])}",
        "  started just before the first hang:" if r["before_first_hang"] else "",
        *(f"    {x}" for x in r["before_first_hang"]),
        f"  stats after storm:     {r['stats_after_storm']}",
        f"  stats after 1,000:     {r['stats_after_check']}",
        f"  1,000 after:           ok {a['ok']}, failed {a['failed']}"
        f" ({fmt_counter(a['errors'])}), unsettled {a['unsettled']}",
        f"  close():               {r['close']}; of the hung requests it settled"
        f" {r['settled_by_close']}, left {r['hung_after_close']}",
        f"  fds before/after:      {r['fds_before']}/{r['fds_after']}",
        f"  server:                {srv.get('requests', '?')} requests read,"
        f" {srv.get('get_twice', '?')} GETs twice, bad POST bodies {srv.get('bad_bodies', '?')}",
        f"  duplicate POSTs by planned cancel kind: {fmt_counter(dups_by_kind)}",
        *(f"    {rid}: {n} times" for rid, n in list(srv.get("post_dups", {}).items())[:5]),
        f"  latency of completed:  {r['latency_ms']} ms",
        f"  started unthrottled after a stall: {r['flooded']}",
        f"  time: launch {r['launch_s']}s, storm+settle {r['storm_s']}s, total {r['wall_s']}s",
    ]
    return [x for x in lines if x]


def print_report(rows: list[dict[str, Any]]) -> None:
    print(" ".join(h.rjust(w) if w else h for h, w in COLUMNS))
    for r in rows:
        cells = table_row(r)
        print(" ".join(c.rjust(w) if w else c for c, (_, w) in zip(cells, COLUMNS, strict=True)))
    print()
    for r in rows:
        print("\n".join(details(r)))
    print()


def parse_list(value: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip() and v.strip() != "none")
    bad = [v for v in items if v not in allowed]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {','.join(allowed)}")
    return items


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--short", action="store_true", help="2,000 requests a row, short bounds (CI)")
    p.add_argument("--requests", type=int, help="requests per row (default 20,000; 2,000 --short)")
    p.add_argument(
        "--kinds", default="client,pool", type=lambda v: parse_list(v, KINDS), help="client,pool"
    )
    p.add_argument(
        "--loops",
        default="asyncio,uvloop",
        type=lambda v: parse_list(v, LOOPS),
        help="asyncio,uvloop",
    )
    p.add_argument(
        "--cancel-kinds",
        default=",".join(CANCEL_KINDS),
        type=lambda v: parse_list(v, CANCEL_KINDS),
        help="which cancellations to use, to find the one that hurts (all):\n"
        + ",".join(CANCEL_KINDS),
    )
    p.add_argument("--cancel-rate", type=float, default=0.3, help="fraction cancelled (0.3)")
    p.add_argument("--inflight", type=int, default=256, help="requests in flight (256)")
    p.add_argument("--seed", type=int, default=9, help="the plan's seed (9)")
    p.add_argument("--json", metavar="PATH", help="write every number here")
    p.add_argument("--deadline", type=float, help="stop the whole run after this many seconds")
    # Internal: the server process and the per-row client process.
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--row", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--row-timeout", type=float, default=600.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.requests is None:
        args.requests = 2000 if args.short else 20000
    if args.deadline is None:
        args.deadline = 150.0 if args.short else 1800.0
    return args


def drive(args: argparse.Namespace) -> int:
    end = time.monotonic() + args.deadline
    # The hard stop behind every bounded wait: print the stacks and exit.
    faulthandler.dump_traceback_later(args.deadline + 60, exit=True)
    rows: list[dict[str, Any]] = []
    for kind in args.kinds:
        for loop in args.loops:
            # Keep 20 s for the server's counts and the stop after the row.
            left = end - time.monotonic() - 20
            if left < 10:
                rows.append({"kind": kind, "loop": loop, "crash": "skipped: --deadline reached"})
                continue
            print(f"storm: {kind}/{loop}, {args.requests} requests ...", file=sys.stderr)
            rows.append(run_row(args, kind, loop, left))
    print_report(rows)
    bad = [(f"{r['kind']}/{r['loop']}", why) for r in rows for why in failures(r)]
    for name, why in bad:
        print(f"FAIL {name}: {why}")
    print("PASS" if not bad else f"FAIL: {len(bad)} checks failed")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {**vars(args)}, "rows": rows}, f, indent=1, default=list)
    return 1 if bad else 0


def main() -> None:
    args = parse_args()
    if args.serve:
        serve_main()
    elif args.row:
        row_main(args)
    else:
        sys.exit(drive(args))


if __name__ == "__main__":
    main()
