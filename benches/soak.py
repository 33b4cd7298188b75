"""Fault-injecting soak: a million requests through a server that misbehaves
a few percent of the time.

A ``undipy.Pool`` (16 connections, ``pipelining=1`` and ``pipelining=10``
rows, on the asyncio and the uvloop event loop) sends a mix of GETs and
POSTs, at most ``--inflight`` at a time, each with its own
``headers_timeout``/``body_timeout`` (0.5, 1 or 2 s), to a loopback HTTP/1.1
server in this file (``--serve``, its own process) that at random, per
request: closes instead of answering, closes or resets (``SO_LINGER`` 0)
mid-body, waits longer or shorter than the request's timeouts before the head
or in the middle of the body, cuts a chunked body short, trickles the answer
in pieces, or answers ``Connection: close`` in the middle of a pipeline; and
per connection: advertises ``Keep-Alive: timeout=1`` or ``=3`` and closes the
connection after about 1 s idle, or closes it 0-2 ms after it went idle, so
that its close races the client's next request (the client pauses about 1 s
now and then, to race the 1 s ones too). Most requests are answered at once.

Per row it reports what completed, what failed by undipy error class, what
was **lost** (never settled within ``--lost-after`` seconds: must be 0), the
**POSTs that reached the server twice** (every POST body carries a unique id
and the server counts them: must be 0), POSTs written while an earlier
request on their connection was unanswered (docs/reference.md section 12
pipelines only idempotent requests: must be 0), responses given to the wrong
request or corrupted (every body is checked byte for byte: must be 0), the client's
**file descriptors** before the Pool and after ``await pool.close()`` (delta
must be 0), the **RSS growth per request** between 10 % and 100 % of the
requests (measured with nothing in flight, after ``gc.collect()`` and
``malloc_trim(0)``; must be under 1 byte; judged when that window holds at
least ``--rss-min-window`` requests, so not in ``--short``), and the wall
time. Then 200 GETs, with the server told to stop injecting faults, must all
succeed on the same Pool, and ``close()`` must resolve.

And four small rows (``--modes``):

- ``threads``: 64 threads, each in its own ``asyncio.Runner``, share ONE
  Pool made on the main thread (docs/choices.md: supported); every request
  from every thread must settle.
- ``fork``: while the parent's Pool carries traffic, ``os.fork()``; each child
  makes a fresh Pool and completes requests (and tries the parent's Pool,
  which docs/choices.md says raises ``RuntimeError``); the parent's keeps
  working.
- ``cancel``: 10,000 tasks cancelled at random points (before sending, while
  queued, after the headers, mid-body); then the pool still serves and
  closes.
- ``drop``: responses dropped unread, a thousand at a time; after each batch
  the server's open connections and the client's fds must be back within the
  pool's size and new requests succeed.

    python3 benches/soak.py --short                # CI form: under a minute
    python3 benches/soak.py                        # 1,000,000 a row: about 3 min a row
    python3 benches/soak.py --modes soak --pipelining 10 --loops uvloop --json soak.json
    python3 benches/soak.py --modes soak --faults none,idle_snap=1   # one fault alone

Every row runs in a fresh client process against a fresh server process, as
benches/storm.py does; every wait is bounded, the driver kills a row that
overruns, and a row that would run past ``--budget`` seconds stops starting
requests and reports its rate and an extrapolation.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import ctypes
import faulthandler
import gc
import http.client
import itertools
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

LOOPS = ("asyncio", "uvloop")
MODES = ("soak", "threads", "fork", "cancel", "drop")
RESULT_TAG = "SOAK-RESULT "
PROGRESS_TAG = "soak: "

# Per request: (default rate, what the server does). Rates are per request read.
FAULTS: dict[str, tuple[float, str]] = {
    "close_head": (0.002, "closes the connection instead of answering (FIN)"),
    "reset_head": (0.001, "resets it instead of answering (SO_LINGER 0: RST)"),
    "close_body": (0.002, "sends the head and half the body, then closes (FIN)"),
    "reset_body": (0.001, "sends the head and half the body, then resets (RST)"),
    "truncate": (0.002, "a chunked body cut inside a chunk, then FIN"),
    "delay_long": (0.0002, "waits 1.3-2x the request's headers_timeout before the head"),
    "delay_short": (0.002, "waits 0.05-0.4x its headers_timeout before the head"),
    "stall_long": (0.0002, "stalls mid-body 1.3-2x the request's body_timeout"),
    "stall_short": (0.002, "stalls mid-body 0.05-0.4x its body_timeout"),
    "trickle": (0.003, "head and body in 8-40 pieces, 0-5 ms apart"),
    "conn_close": (0.005, "answers Connection: close, then FIN (the rest of the pipeline unread)"),
}  # fmt: skip
# Per connection, drawn when it is accepted.
CONN_MODES: dict[str, tuple[float, str]] = {
    "ka_race": (0.10, "Keep-Alive: timeout=1 or 3 advertised, closed after 1 s +-50 ms idle"),
    "idle_snap": (0.05, "closed 0-2 ms after it goes idle: races the next request"),
}
# Every fault that sends a head names itself in an x-fault header, so the
# client can say what each one ended as.
TIMEOUTS = (0.5, 1.0, 1.0, 2.0)  # per request: headers_timeout = body_timeout

# Every response body is a slice of this blob at an offset given by its id, so
# the client checks it byte for byte (a body of another request does not match).
BLOB = random.Random(11).randbytes((1 << 20) + 8192)
PAD = b"p" * 65536  # POST bodies: b"id=<id>;" + a slice of this


def body_offset(rid: int) -> int:
    return rid * 7919 % 8192


def pick_size(rng: random.Random) -> int:
    """Response body bytes: mostly small, now and then 64-256 KiB."""
    r = rng.random()
    if r < 0.05:
        return 0
    if r < 0.60:
        return rng.randint(1, 512)
    if r < 0.90:
        return rng.randint(512, 8192)
    if r < 0.99:
        return rng.randint(8192, 65536)
    return rng.randint(65536, 262144)


def pick_pad(rng: random.Random) -> int:
    """POST body padding: mostly none, some KiB, some over 16 KiB (the engine
    sends those without a copy)."""
    r = rng.random()
    if r < 0.6:
        return 0
    return rng.randint(1, 4096) if r < 0.85 else rng.randint(16384, 65536)


# -- the server (its own process) ---------------------------------------------


@dataclass(slots=True)
class Reply:
    rid: int
    size: int
    t: float  # the request's timeouts, so that "longer" and "shorter" mean something
    fault: str | None
    chunked: bool
    pieces: int  # the body in this many writes (the cancel and drop rows ask)
    gap: float  # this far apart
    at: float = 0.0


@dataclass
class ServerState:
    rng: random.Random
    fault_names: list[str]
    fault_cum: list[float]  # cumulative rates, for bisect
    mode_cum: list[tuple[float, str]]
    calm: bool = False  # /_calm: no faults, no idle closes, until /_calm?on=0
    conns: set[Conn] = field(default_factory=set)
    get_counts: bytearray = field(default_factory=bytearray)
    post_counts: bytearray = field(default_factory=bytearray)
    faults: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    bad_bodies: int = 0
    post_pipelined: int = 0  # POSTs that arrived while an earlier answer was pending
    post_pipelined_examples: list[str] = field(default_factory=list)
    accepted: int = 0
    open: int = 0
    max_open: int = 0

    def draw_fault(self) -> str | None:
        r = self.rng.random()
        if self.calm or not self.fault_cum or r >= self.fault_cum[-1]:
            return None
        return self.fault_names[bisect.bisect_right(self.fault_cum, r)]

    def draw_mode(self) -> str:
        r = self.rng.random()
        if self.calm:
            return "normal"
        for upto, name in self.mode_cum:
            if r < upto:
                return name
        return "normal"


def bump(counts: bytearray, rid: int) -> None:
    if rid >= len(counts):
        counts.extend(bytes(max(rid + 1, 2 * len(counts), 1024) - len(counts)))
    if counts[rid] < 255:
        counts[rid] += 1


def parse_query(query: bytes) -> dict[bytes, bytes]:
    out = {}
    for kv in query.split(b"&"):
        k, _, v = kv.partition(b"=")
        out[k] = v
    return out


def head_of(r: Reply, length: int, extra: bytes = b"") -> bytes:
    framing = b"transfer-encoding: chunked" if r.chunked else b"content-length: %d" % length
    fault = b"x-fault: %s\r\n" % r.fault.encode() if r.fault else b""
    return b"HTTP/1.1 200 OK\r\nx-id: %d\r\n%s\r\n%s%s\r\n" % (r.rid, framing, fault, extra)


def framed(piece: bytes, chunked: bool) -> bytes:
    return b"%x\r\n%s\r\n" % (len(piece), piece) if chunked and piece else piece


class Conn(asyncio.Protocol):
    """One server connection: reads (pipelined) requests, counts them and
    answers in order, injecting the drawn faults."""

    def __init__(self, st: ServerState) -> None:
        self.st = st
        self.loop = asyncio.get_running_loop()
        self.t: Any = None
        self.buf = bytearray()
        self.queue: collections.deque[Reply] = collections.deque()
        self.writer: asyncio.Task[None] | None = None
        self.paused: asyncio.Future[None] | None = None
        self.idle: asyncio.TimerHandle | None = None
        self.dead = False  # connection_lost ran
        self.done = False  # nothing more is answered (closing, lingering)
        self.mode = st.draw_mode()
        self.extra = b""
        self.current: Reply | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: Any) -> None:
        self.t = transport  # an asyncio.Transport, or uvloop's
        st = self.st
        st.accepted += 1
        st.open += 1
        st.conns.add(self)
        st.max_open = max(st.max_open, st.open)
        st.modes[self.mode] += 1
        if self.mode == "ka_race":
            self.extra = b"keep-alive: timeout=%d\r\n" % st.rng.choice((1, 3))

    def connection_lost(self, exc: Exception | None) -> None:
        self.dead = self.done = True
        self.st.open -= 1
        self.st.conns.discard(self)
        if self.idle is not None:
            self.idle.cancel()
        if self.writer is not None:
            self.writer.cancel()
        if self.paused is not None and not self.paused.done():
            self.paused.set_result(None)

    def pause_writing(self) -> None:
        self.paused = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.paused is not None and not self.paused.done():
            self.paused.set_result(None)
        self.paused = None

    def data_received(self, data: bytes) -> None:
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        buf = self.buf
        buf += data
        while not self.dead:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 65536:
                    self.close_now()
                return
            lines = bytes(buf[:end]).split(b"\r\n")
            cl, chunked = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    cl = int(value)
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
            start = end + 4
            if chunked:
                got = read_chunked(buf, start)
                if got is None:
                    return
                body, stop = got
            else:
                if len(buf) < start + cl:
                    return
                body, stop = bytes(buf[start : start + cl]), start + cl
            del buf[:stop]
            method, target = lines[0].split(b" ", 2)[:2]
            self.on_request(method, target, body)
        # (the loop ends once the connection is gone)

    # -- requests

    def on_request(self, method: bytes, target: bytes, body: bytes) -> None:
        st = self.st
        path, _, query = target.partition(b"?")
        if path.startswith(b"/_"):
            self.done = True
            asyncio.ensure_future(self.control(path, parse_query(query)))
            return
        q = parse_query(query)
        rid = int(q.get(b"id", b"0"))
        st.requests += 1
        if method == b"POST":
            semi = body.find(b";")
            bid = int(body[3:semi]) if body.startswith(b"id=") and semi > 3 else -1
            if bid != rid:
                st.bad_bodies += 1
            bump(st.post_counts, bid if bid >= 0 else rid)
            if (self.queue or self.writer is not None) and not self.done:
                # Written while an earlier request on this connection had no
                # complete answer yet: the client pipelined a POST.
                st.post_pipelined += 1
                if len(st.post_pipelined_examples) < 10:
                    now = self.loop.time()
                    ahead = [
                        (x.rid, x.fault, round(now - x.at, 3))
                        for x in (self.current, *self.queue)
                        if x is not None
                    ]
                    st.post_pipelined_examples.append(
                        f"POST {rid} while {ahead} (id, fault, age) were unanswered"
                    )
        else:
            bump(st.get_counts, rid)
        if self.done:
            return  # read (and counted) but never answered: we are closing
        fault = None if b"nf" in q else st.draw_fault()
        if fault is not None:
            st.faults[fault] += 1
        r = Reply(
            rid=rid,
            size=min(int(q.get(b"s", b"0")), len(BLOB) - 8192),
            t=float(q.get(b"t", b"1")),
            fault=fault,
            chunked=st.rng.random() < 0.15,
            pieces=max(1, int(q.get(b"ch", b"1"))),
            gap=int(q.get(b"gp", b"0")) / 1000,
            at=self.loop.time(),
        )
        assert self.t is not None
        if fault is None and r.pieces == 1 and self.writer is None and self.paused is None:
            self.t.write(self.whole(r))  # the fast path: one write
            self.maybe_idle()
        else:
            self.queue.append(r)
            if self.writer is None:
                self.writer = self.loop.create_task(self.write_all())

    def whole(self, r: Reply, extra: bytes | None = None) -> bytes:
        """The whole answer, head and body, as one piece."""
        off = body_offset(r.rid)
        body = BLOB[off : off + r.size]
        head = head_of(r, r.size, self.extra if extra is None else extra)
        return head + framed(body, True) + b"0\r\n\r\n" if r.chunked else head + body

    async def write_all(self) -> None:
        try:
            while self.queue and not self.done:
                self.current = self.queue.popleft()
                await self.send(self.current)
                self.current = None
        except asyncio.CancelledError:
            return
        finally:
            self.writer = None
        self.maybe_idle()

    async def write(self, data: bytes) -> None:
        if self.paused is not None:
            await self.paused
        if not self.done and self.t is not None:
            self.t.write(data)

    async def send(self, r: Reply) -> None:
        rng, f = self.st.rng, r.fault
        if f == "delay_long":
            await asyncio.sleep(r.t * rng.uniform(1.3, 2.0))
        elif f == "delay_short":
            await asyncio.sleep(r.t * rng.uniform(0.05, 0.4))
        if self.done:
            return
        if f == "close_head":
            return self.close_now()
        if f == "reset_head":
            return self.reset_now()
        off = body_offset(r.rid)
        if f in ("close_body", "reset_body"):
            declared = r.size if r.size >= 2 else r.size + 16
            r.chunked = False
            await self.write(head_of(r, declared) + BLOB[off : off + declared // 2])
            await asyncio.sleep(0.002)  # delivered before the close
            return self.close_now() if f == "close_body" else self.reset_now()
        if f == "truncate":
            r.chunked = True
            body = BLOB[off : off + max(r.size, 16)]
            half = len(body) // 2
            cut = b"%x\r\n" % (len(body) - half) + body[half : half + (len(body) - half) // 2]
            await self.write(head_of(r, 0, self.extra) + framed(body[:half], True) + cut)
            await asyncio.sleep(0.002)
            return self.close_now()
        if f == "trickle":
            data = self.whole(r)
            step = max(1, len(data) // rng.randint(8, 40))
            for i in range(0, len(data), step):
                if i:
                    await asyncio.sleep(rng.uniform(0, 0.005))
                    if self.done:
                        return
                await self.write(data[i : i + step])
            return
        if f == "conn_close":
            await self.write(self.whole(r, b"connection: close\r\n"))
            return self.linger()
        body = BLOB[off : off + r.size]
        if f in ("stall_long", "stall_short") and (r.size or r.chunked):
            # (An empty content-length body is complete with its head: no stall.)
            first = framed(body[: r.size // 2], r.chunked)
            await self.write(head_of(r, r.size, self.extra) + first)
            lo, hi = (1.3, 2.0) if f == "stall_long" else (0.05, 0.4)
            await asyncio.sleep(r.t * rng.uniform(lo, hi))
            rest = framed(body[r.size // 2 :], r.chunked)
            return await self.write(rest + (b"0\r\n\r\n" if r.chunked else b""))
        # No fault: the body in r.pieces writes, r.gap apart.
        await self.write(head_of(r, r.size, self.extra))
        step = max(1, -(-r.size // r.pieces))
        for i in range(0, r.size, step):
            if i and r.gap:
                await asyncio.sleep(r.gap)
            await self.write(framed(body[i : i + step], r.chunked))
        if r.chunked:
            await self.write(b"0\r\n\r\n")

    # -- closing

    def close_now(self) -> None:
        self.done = True
        if self.t is not None:
            self.t.close()

    def reset_now(self) -> None:
        self.done = True
        if self.t is None:
            return
        sock = self.t.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except (OSError, AttributeError):
            pass
        self.t.abort()

    def linger(self) -> None:
        """After Connection: close: FIN, keep reading (and counting) what
        the client had pipelined, close when it does or after 2 s."""
        self.done = True
        if self.t is None:
            return
        if self.t.can_write_eof():
            self.t.write_eof()
        self.loop.call_later(2.0, self.t.close)

    def maybe_idle(self) -> None:
        """Racy connections close soon after they go idle."""
        if self.mode == "normal" or self.done or self.queue or self.writer is not None:
            return
        if self.idle is not None:
            self.idle.cancel()
        rng = self.st.rng
        if self.mode == "ka_race":
            delay = rng.uniform(0.95, 1.05)
        else:
            delay = 0.0 if rng.random() < 0.5 else rng.uniform(0, 0.002)
        self.idle = self.loop.call_later(delay, self.idle_close)

    def idle_close(self) -> None:
        self.idle = None
        if not self.done and not self.queue and self.writer is None and not self.buf:
            self.close_now()

    # -- control: GET /_stats?wait=S (the summary, once the client's
    # connections are gone or after S seconds); GET /_calm?on=1|0

    async def control(self, path: bytes, q: dict[bytes, bytes]) -> None:
        st = self.st
        if path == b"/_calm":
            # For the checks after a run: every connection answers, none closes.
            st.calm = q.get(b"on", b"1") == b"1"
            if st.calm:
                for c in st.conns:
                    c.mode = "normal"
                    if c.idle is not None:
                        c.idle.cancel()
                        c.idle = None
        deadline = time.monotonic() + float(q.get(b"wait", b"0"))
        while st.open > 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        payload = json.dumps(summary(st)).encode()
        if self.t is not None and not self.dead:
            self.t.write(
                b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
                % (len(payload), payload)
            )
            self.t.close()


def read_chunked(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """A chunked body starting at ``pos``: (body, end) or None if incomplete."""
    parts = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0] or b"0", 16)
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)
            return (b"".join(parts), end + 4) if end >= 0 else None
        if len(buf) < eol + 2 + size + 2:
            return None
        parts.append(bytes(buf[eol + 2 : eol + 2 + size]))
        pos = eol + 2 + size + 2


def count_over(counts: bytearray, n: int) -> int:
    """How many ids arrived more than n times."""
    table = bytes(1 if c > n else 0 for c in range(256))
    return counts.translate(table).count(1)


def summary(st: ServerState) -> dict[str, Any]:
    dups = count_over(st.post_counts, 1)
    examples = []
    if dups:
        examples = [[i, c] for i, c in enumerate(st.post_counts) if c > 1][:10]
    return {
        "requests": st.requests,
        "accepted": st.accepted,
        "open": st.open - 1,  # not this control connection
        "max_open": st.max_open,
        "faults": dict(st.faults),
        "conn_modes": dict(st.modes),
        "post_ids": count_over(st.post_counts, 0),
        "post_dups": dups,
        "post_dup_examples": examples,
        "get_ids": count_over(st.get_counts, 0),
        "get_twice": count_over(st.get_counts, 1) - count_over(st.get_counts, 2),
        "get_over2": count_over(st.get_counts, 2),
        "get_max": max(st.get_counts, default=0),
        "bad_bodies": st.bad_bodies,
        "post_pipelined": st.post_pipelined,
        "post_pipelined_examples": st.post_pipelined_examples,
    }


def rates_of(args: argparse.Namespace) -> dict[str, float]:
    return {k: v * args.fault_scale for k, v in args.faults.items()}


async def serve(args: argparse.Namespace) -> None:
    rates = rates_of(args)
    names = [k for k in FAULTS if rates.get(k, 0) > 0]
    cum = list(itertools.accumulate(rates[k] for k in names))
    mode_cum, upto = [], 0.0
    for k in CONN_MODES:
        if rates.get(k, 0) > 0:
            upto += rates[k]
            mode_cum.append((upto, k))
    if upto > 1:  # scaled past 1: keep their proportions
        mode_cum = [(u / upto, k) for u, k in mode_cum]
    st = ServerState(random.Random(args.seed), names, cum, mode_cum)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Conn(st), "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    # The driver closes our stdin to stop us (or dies, which does the same).
    await loop.run_in_executor(None, sys.stdin.buffer.read)
    server.close()


def serve_main(args: argparse.Namespace) -> None:
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    except ImportError:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args))


# -- the client: one request --------------------------------------------------


class Flight:
    """One request while it is in flight (nothing is kept once it settled)."""

    __slots__ = (
        "rid", "method", "size", "t", "path", "body", "iterate", "phase",
        "started", "lost", "fault", "outcome", "kind",
    )  # fmt: skip

    def __init__(self, rid: int, method: str, size: int, t: float, extra: str = "") -> None:
        self.rid, self.method, self.size, self.t = rid, method, size, t
        self.path = f"/r?id={rid}&s={size}&t={t}{extra}"
        self.body: bytes | None = None
        self.iterate = False
        self.phase = "sent"  # sent, headers, body
        self.started = 0.0
        self.lost = False
        self.fault = ""  # the server's x-fault, when the head arrived
        self.outcome = ""
        self.kind = ""  # the cancel row: where it is cancelled


def make_flight(rid: int, rng: random.Random, extra: str = "", post: float = 0.3) -> Flight:
    method = "POST" if rng.random() < post else "GET"
    f = Flight(rid, method, pick_size(rng), rng.choice(TIMEOUTS), extra)
    if method == "POST":
        f.body = b"id=%d;" % rid + PAD[: pick_pad(rng)]
    f.iterate = rng.random() < 0.2
    return f


class Wrong(Exception):
    """A response that is not the one asked for: wrong status, id, length or bytes."""


def check(f: Flight, status: int, xid: Any, data: bytes) -> None:
    if status != 200:
        raise Wrong(f"{f.rid}: status {status}")
    if xid != str(f.rid):
        raise Wrong(f"{f.rid}: got the answer of {xid!r}")
    if len(data) != f.size:
        raise Wrong(f"{f.rid}: {len(data)} body bytes, expected {f.size}")
    off = body_offset(f.rid)
    if data != BLOB[off : off + f.size]:
        raise Wrong(f"{f.rid}: body bytes differ")


async def one(pool: Any, f: Flight, hook: Callable[[str], None] | None = None) -> None:
    """Sends one request and reads its whole body; the outcome lands in
    ``f.outcome``. ``hook("headers")``/``hook("chunk")``: the cancel row."""
    from undipy import UndiciError

    try:
        resp = await pool.request(
            path=f.path, method=f.method, body=f.body, headers_timeout=f.t, body_timeout=f.t
        )
        f.phase = "headers"
        headers = resp.headers
        f.fault = headers.get("x-fault", "")
        if hook is not None:
            hook("headers")
        if f.iterate:
            parts = []
            async for chunk in resp.body:
                f.phase = "body"
                parts.append(chunk)
                if hook is not None:
                    hook("chunk")
            data = b"".join(parts)
        else:
            data = await resp.body.bytes()
        check(f, resp.status_code, headers.get("x-id"), data)
        f.outcome = "ok"
    except UndiciError as e:
        f.outcome = type(e).__name__
    except Wrong as e:
        f.outcome = "WRONG"
        f.body = str(e).encode()  # kept for the report
    except Exception as e:
        f.outcome = f"other:{type(e).__name__}"


# -- the client: counting -----------------------------------------------------


class Tally:
    """What happened, in counters only: its size does not grow with the run."""

    def __init__(self) -> None:
        self.started = 0
        self.settled = 0
        self.ok = 0
        self.post_ok = 0
        self.cancelled = 0  # by the cancel row, on purpose
        self.failed: Counter[str] = Counter()
        self.by_method: Counter[str] = Counter()
        self.by_fault: Counter[str] = Counter()
        self.by_kind: Counter[str] = Counter()
        self.lost = 0
        self.lost_phase: Counter[str] = Counter()
        self.lost_examples: list[str] = []
        self.late: Counter[str] = Counter()  # lost, then settled after all
        self.wrong = 0
        self.wrong_examples: list[str] = []
        self.slowest = 0.0  # seconds from start to settled, of the slowest request
        self.slowest_was = ""

    def record(self, f: Flight, outcome: str, age: float = 0.0) -> None:
        if f.lost:
            self.late[outcome] += 1
            return
        self.settled += 1
        if age > self.slowest:
            self.slowest = round(age, 3)
            self.slowest_was = f"{f.method} {f.path} ({f.fault or 'no fault seen'}): {outcome}"
        if outcome == "ok":
            self.ok += 1
            self.post_ok += f.method == "POST"
        elif outcome == "cancelled" and f.kind:
            self.cancelled += 1
        else:
            self.failed[outcome] += 1
        if outcome == "WRONG":
            self.wrong += 1
            if len(self.wrong_examples) < 5:
                self.wrong_examples.append((f.body or b"").decode())
        self.by_method[f"{f.method} {outcome}"] += 1
        if f.fault:
            self.by_fault[f"{f.fault} {outcome}"] += 1
        if f.kind:
            self.by_kind[f"{f.kind} {outcome}"] += 1

    def mark_lost(self, f: Flight, age: float) -> None:
        f.lost = True
        self.lost += 1
        self.lost_phase[f.phase] += 1
        if len(self.lost_examples) < 8:
            self.lost_examples.append(
                f"{f.method} {f.path} [{'async for' if f.iterate else 'bytes()'}"
                f"{', cancel ' + f.kind if f.kind else ''}] at {f.phase} after {age:.1f}s"
            )

    def merge(self, o: Tally) -> None:
        for name in ("started", "settled", "ok", "post_ok", "cancelled", "lost", "wrong"):
            setattr(self, name, getattr(self, name) + getattr(o, name))
        for name in ("failed", "by_method", "by_fault", "by_kind", "lost_phase", "late"):
            getattr(self, name).update(getattr(o, name))
        self.lost_examples = (self.lost_examples + o.lost_examples)[:8]
        if o.slowest > self.slowest:
            self.slowest, self.slowest_was = o.slowest, o.slowest_was
        self.wrong_examples = (self.wrong_examples + o.wrong_examples)[:5]

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items()}


class Issuer:
    """Starts requests, at most ``inflight`` at a time. A request that has not
    settled ``lost_after`` seconds after it started is counted lost and gives
    its place back, so a stuck engine cannot stall the run."""

    def __init__(self, inflight: int, lost_after: float, tally: Tally) -> None:
        self.loop = asyncio.get_running_loop()
        self.sem = asyncio.Semaphore(inflight)
        self.lost_after = lost_after
        self.tally = tally
        self.live: dict[Flight, asyncio.Task[None]] = {}  # in start order
        self.lost: dict[Flight, asyncio.Task[None]] = {}
        self.sweeper = self.loop.create_task(self.sweep())

    async def start(self, f: Flight, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        await self.sem.acquire()
        return self.start_now(f, coro)

    def start_now(self, f: Flight, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        f.started = self.loop.time()
        task = self.loop.create_task(coro)
        self.live[f] = task
        self.tally.started += 1
        task.add_done_callback(lambda t: self.settled(f, t))
        return task

    def settled(self, f: Flight, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            outcome = "cancelled"
        elif task.exception() is not None:
            outcome = f"other:{type(task.exception()).__name__}"
        else:
            outcome = f.outcome or "other:no outcome"
        self.tally.record(f, outcome, self.loop.time() - f.started)
        if f.lost:
            self.lost.pop(f, None)
        elif self.live.pop(f, None) is not None:
            self.sem.release()

    def check(self) -> None:
        now = self.loop.time()
        old = []
        for f in self.live:
            if now - f.started < self.lost_after:
                break
            old.append(f)
        for f in old:
            self.lost[f] = self.live.pop(f)
            self.tally.mark_lost(f, now - f.started)
            self.sem.release()

    async def sweep(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            self.check()

    async def drain(self) -> None:
        """Until every request settled or was counted lost (at most
        ``lost_after`` after the last start)."""
        while self.live:
            await asyncio.wait(set(self.live.values()), timeout=0.25)
            self.check()

    def stop(self) -> None:
        self.sweeper.cancel()


# -- the client: measuring ------------------------------------------------------


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def fd_table() -> dict[int, str]:
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass
    return out


_BASELINE: dict[int, str] = {}


def baseline() -> int:
    """The fds before the Pool is made: their count (and, for the report,
    what they are)."""
    gc.collect()
    _BASELINE.clear()
    _BASELINE.update(fd_table())
    return fds()


TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
    "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN",
    "0B": "CLOSING",
}  # fmt: skip


def new_fds() -> list[str]:
    """What the fds opened since ``baseline()`` are (sockets with their TCP state)."""
    inodes = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                for line in f.readlines()[1:]:
                    p = line.split()
                    lport, rport = int(p[1].split(":")[1], 16), int(p[2].split(":")[1], 16)
                    inodes[p[9]] = f"tcp {TCP_STATES.get(p[3], p[3])} :{lport}->:{rport}"
        except OSError:
            pass
    out = []
    now = fd_table()
    for fd, target in sorted(now.items()):
        if _BASELINE.get(fd) == target:
            continue
        if target.startswith("socket:["):
            target += " " + inodes.get(target[8:-1], "(not tcp)")
        out.append(f"{fd}: {target}")
    out += [f"{fd}: closed {t}" for fd, t in sorted(_BASELINE.items()) if now.get(fd) != t]
    return out


PAGE = os.sysconf("SC_PAGE_SIZE")
try:
    _libc: Any = ctypes.CDLL("libc.so.6")
except OSError:
    _libc = None


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def measure_rss() -> dict[str, int]:
    """RSS after a full collection, then again after ``malloc_trim(0)``: the
    memory the process holds, without the free heap glibc keeps around."""
    gc.collect()
    raw = rss()
    if _libc is not None:
        _libc.malloc_trim(0)
    return {"raw": raw, "trimmed": rss()}


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop  # type: ignore[no-any-return]
    return asyncio.new_event_loop


def progress(msg: str) -> None:
    print(PROGRESS_TAG + msg, file=sys.stderr, flush=True)


async def warm_up(origin: str) -> None:
    """One request on a throwaway Client: starts the runtime and this loop's
    bridge, so that the fd count before the row includes them (and whatever
    the loop opens once)."""
    import undipy

    c = undipy.Client(origin)
    resp = await asyncio.wait_for(c.request(path="/r?id=0&s=1&nf=1", method="GET"), 5.0)
    await asyncio.wait_for(resp.body.bytes(), 5.0)
    await asyncio.wait_for(c.close(), 5.0)
    # uvloop opens /dev/null on its first create_connection (server_stats)
    await server_stats(int(origin.rsplit(":", 1)[1]))
    await asyncio.sleep(0.2)  # the Client's socket closes on the runtime thread


async def plain(pool: Any, rid: int) -> None:
    size = rid * 37 % 4096
    resp = await pool.request(path=f"/r?id={rid}&s={size}&nf=1", method="GET")
    data = await resp.body.bytes()
    check(Flight(rid, "GET", size, 0), resp.status_code, resp.headers.get("x-id"), data)


async def after_check(pool: Any, ids: Any, n: int, bound: float, port: int) -> dict[str, Any]:
    """``n`` GETs while the server is calm (no faults, no connection closed
    under them): the pool must still serve them all."""
    await server_stats(port, path="/_calm")
    tasks = [asyncio.ensure_future(plain(pool, next(ids))) for _ in range(n)]
    done, pending = await asyncio.wait(tasks, timeout=bound)
    await server_stats(port, path="/_calm", query="on=0")
    errors = Counter(type(t.exception()).__name__ for t in done if t.exception() is not None)
    for t in pending:
        t.cancel()
    ok = sum(1 for t in done if t.exception() is None)
    return {"n": n, "ok": ok, "errors": errors, "unsettled": len(pending)}


async def close_bounded(pool: Any, bound: float) -> str:
    """close(), then destroy() if close hangs: 'resolved' is the only pass."""
    try:
        await asyncio.wait_for(pool.close(), bound)
        return "resolved"
    except TimeoutError:
        pass
    except Exception as e:
        return f"error {type(e).__name__}: {e}"
    try:
        await asyncio.wait_for(pool.destroy(), bound)
        return f"hung {bound:g}s, destroyed"
    except TimeoutError:
        return "hung, destroy hung too"
    except Exception as e:
        return f"hung, destroy: {type(e).__name__}"


async def fds_after_close(before: int) -> dict[str, Any]:
    """The fd count right after close() resolved, and once it settles (the
    runtime thread closes sockets on its own time; at most 2 s)."""
    first = fds()
    end = time.monotonic() + 2.0
    now = first
    while now != before and time.monotonic() < end:
        await asyncio.sleep(0.05)
        now = fds()
    kinds = fd_kinds(fd_table())
    kinds.subtract(fd_kinds(_BASELINE))
    return {
        "at_close": first,
        "after": now,
        "delta_by_kind": {k: n for k, n in kinds.items() if n},
        "new": new_fds()[:10] if now != before else [],
    }


def fd_kinds(table: dict[int, str]) -> Counter[str]:
    def kind(target: str) -> str:
        if target.startswith("socket:"):
            return "socket"
        if target.startswith("anon_inode:"):
            return target[11:].strip("[]")
        return target.split(":")[0] if ":" in target else "file"

    return Counter(kind(t) for t in table.values())


async def server_stats(
    port: int, wait: float = 0.0, path: str = "/_stats", query: str = ""
) -> dict[str, Any]:
    """Asks the server (its answer is the summary, whatever the path)."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(f"GET {path}?wait={wait}&{query} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
        data = await asyncio.wait_for(r.read(), wait + 10)
    finally:
        w.close()
        await w.wait_closed()
    out: dict[str, Any] = json.loads(data.partition(b"\r\n\r\n")[2])
    return out


def stats_of(pool: Any) -> dict[str, int]:
    st = pool.stats
    names = ("connected", "free", "pending", "queued", "running", "size")
    return {n: int(getattr(st, n)) for n in names if hasattr(st, n)}


# -- the rows (each in its own process) -------------------------------------------


def new_pool(args: argparse.Namespace, origin: str, connections: int | None = None) -> Any:
    import undipy

    return undipy.Pool(
        origin, connections=connections or args.connections, pipelining=args.pipelining
    )


async def finish(
    args: argparse.Namespace, pool: Any, ids: Any, fds0: int, res: dict[str, Any]
) -> None:
    """The end of every row: plain GETs, stats, close, fds."""
    res["after"] = await after_check(pool, ids, args.after, args.lost_after, args.port)
    res["stats_before_close"] = stats_of(pool)
    res["close"] = await close_bounded(pool, args.close_bound)
    res["fds_before"] = fds0
    res["fds"] = await fds_after_close(fds0)


async def row_soak(args: argparse.Namespace, origin: str) -> dict[str, Any]:
    await warm_up(origin)
    rng = random.Random(args.seed)
    ids = itertools.count(1)
    fds0 = baseline()
    t0 = time.monotonic()
    pool = new_pool(args, origin)
    tally = Tally()
    issuer = Issuer(args.inflight, args.lost_after, tally)
    n, mark = args.requests, args.requests // 10
    rss_a: dict[str, int] = {}
    curve: list[tuple[int, int]] = []
    started_a = 0
    stopped_at = None
    next_note = t0 + 10
    # RSS at quiet points (nothing in flight, so no body happens to be in
    # memory): at 10 % and at the end for the bar, and every 10 % for the
    # curve when the bar is judged (each costs a drain: not in --short).
    every = mark if n - mark >= args.rss_min_window else n
    for i in range(n):
        if mark and (i == mark or i % every == 0):
            await issuer.drain()
            sample = measure_rss()
            curve.append((i, sample["trimmed"]))
            if i == mark:
                rss_a, started_a = sample, i
        if args.lull_every and i and i % args.lull_every == 0:
            await asyncio.sleep(rng.uniform(0.9, 1.1))  # idle ~1 s: the keep-alive race
        now = time.monotonic()
        if now - t0 > args.budget:
            stopped_at = i
            break
        if now > next_note:
            next_note = now + 10
            progress(
                f"{args.row}: {i:,}/{n:,} started, {tally.ok:,} ok, {tally.lost} lost, "
                f"{i / (now - t0):,.0f}/s"
            )
        f = make_flight(next(ids), rng)
        await issuer.start(f, one(pool, f))
    started_b = tally.started
    t_issued = time.monotonic()
    await issuer.drain()
    t_settled = time.monotonic()
    issuer.stop()
    rss_b = measure_rss()
    res: dict[str, Any] = {}
    await finish(args, pool, ids, fds0, res)
    window = started_b - started_a
    judged = window > 0 and rss_a
    res.update(
        tally=tally.as_dict(),
        planned=n,
        stopped_at=stopped_at,
        rss_a=rss_a,
        rss_b=rss_b,
        rss_curve=curve + [(started_b, rss_b["trimmed"])],
        rss_slope=slope([(i, v) for i, v in curve + [(started_b, rss_b["trimmed"])] if i >= mark]),
        rss_window=window,
        rss_per_req=(rss_b["trimmed"] - rss_a["trimmed"]) / window if judged else None,
        rss_raw_per_req=(rss_b["raw"] - rss_a["raw"]) / window if judged else None,
        issue_s=round(t_issued - t0, 2),
        settle_s=round(t_settled - t_issued, 2),
        rate=round(tally.started / max(1e-9, t_settled - t0), 1),
    )
    return res


def slope(points: list[tuple[int, int]]) -> float | None:
    """Least-squares bytes per request through the curve's points: a check on
    the two-point figure, which the noise of single samples moves more."""
    if len(points) < 3:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else None


def thread_worker(
    args: argparse.Namespace, pool: Any, origin: str, k: int, ids: Any,
    barrier: threading.Barrier, out: dict[int, Any],
) -> None:  # fmt: skip
    """One of the 64 threads: its own loop, the shared Pool."""

    async def work() -> Tally:
        tally = Tally()
        issuer = Issuer(args.thread_inflight, args.lost_after, tally)
        rng = random.Random(args.seed * 1000 + k)
        for _ in range(args.thread_requests):
            f = make_flight(next(ids), rng)
            await issuer.start(f, one(pool, f))
        await issuer.drain()
        issuer.stop()
        return tally

    try:
        barrier.wait(30)
        with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
            out[k] = runner.run(work())
    except BaseException as e:  # reported, never raised across the thread
        out[k] = f"{type(e).__name__}: {e}"


async def row_threads(args: argparse.Namespace, origin: str) -> dict[str, Any]:
    await warm_up(origin)
    ids = itertools.count(1)
    fds0 = baseline()
    t0 = time.monotonic()
    pool = new_pool(args, origin)  # made here; no loop has used it yet
    out: dict[int, Any] = {}
    barrier = threading.Barrier(args.threads)
    threads = [
        threading.Thread(
            target=thread_worker, args=(args, pool, origin, k, ids, barrier, out), daemon=True
        )
        for k in range(args.threads)
    ]
    for th in threads:
        th.start()
    bound = time.monotonic() + args.lost_after * 3 + 30
    while any(th.is_alive() for th in threads) and time.monotonic() < bound:
        await asyncio.sleep(0.05)
    hung = [k for k, th in enumerate(threads) if th.is_alive()]
    tally = Tally()
    errors = {}
    for k in range(args.threads):
        r = out.get(k)
        if isinstance(r, Tally):
            tally.merge(r)
        elif k not in hung:
            errors[k] = r
    res: dict[str, Any] = {
        "threads": args.threads,
        "threads_hung": hung,
        "thread_errors": errors,
        "planned": args.threads * args.thread_requests,
    }
    gc.collect()
    res["fds_after_threads"] = fds()
    await finish(args, pool, ids, fds0, res)
    res["tally"] = tally.as_dict()
    res["wall_s"] = round(time.monotonic() - t0, 2)
    return res


def fork_child(
    args: argparse.Namespace, origin: str, parent_pool: Any, base: int, w: int
) -> None:
    """The child after fork(): a fresh Pool on a fresh loop; then the parent's
    Pool, which must refuse. Results go up the pipe, one JSON line each."""
    code = 0
    try:
        signal.alarm(int(args.lost_after * 2 + 15))  # hung: SIGALRM ends us

        async def work() -> dict[str, Any]:
            pool = new_pool(args, origin, 4)
            tally = Tally()
            issuer = Issuer(16, args.lost_after, tally)
            rng = random.Random(base)
            ids = itertools.count(base)
            for _ in range(args.fork_requests):
                f = make_flight(next(ids), rng)
                await issuer.start(f, one(pool, f))
            await issuer.drain()
            issuer.stop()
            close = await close_bounded(pool, args.close_bound)
            return {"tally": tally.as_dict(), "close": close}

        with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
            os.write(w, (json.dumps(runner.run(work()), default=list) + "\n").encode())

            async def parent_pool_in_child() -> str:
                try:
                    resp = await asyncio.wait_for(
                        parent_pool.request(path="/r?id=0&s=1&nf=1", method="GET"), 3.0
                    )
                    await resp.body.bytes()
                    return "worked"
                except BaseException as e:
                    return f"{type(e).__name__}: {e}"

            said = runner.run(parent_pool_in_child())
            os.write(w, (json.dumps({"parent_pool": said}) + "\n").encode())
    except BaseException as e:
        os.write(w, (json.dumps({"crash": f"{type(e).__name__}: {e}"}) + "\n").encode())
        code = 1
    finally:
        os._exit(code)


async def wait_child(pid: int, bound: float) -> str:
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
    return f"hung {bound:g}s, killed"


async def row_fork(args: argparse.Namespace, origin: str) -> dict[str, Any]:
    await warm_up(origin)
    ids = itertools.count(1)
    rng = random.Random(args.seed)
    fds0 = baseline()
    t0 = time.monotonic()
    pool = new_pool(args, origin)
    tally = Tally()
    issuer = Issuer(32, args.lost_after, tally)
    stop = asyncio.Event()

    async def traffic() -> None:
        while not stop.is_set():
            f = make_flight(next(ids), rng)
            await issuer.start(f, one(pool, f))

    bg = asyncio.ensure_future(traffic())
    children = []
    base = 50_000_000
    for k in range(args.forks):
        await asyncio.sleep(rng.uniform(0.05, 0.3))
        ok_before = tally.ok
        r, w = os.pipe()
        pid = os.fork()  # with the parent's requests in flight
        if pid == 0:
            os.close(r)
            fork_child(args, origin, pool, base + k * 1_000_000, w)
        os.close(w)
        status = await wait_child(pid, args.lost_after * 2 + 20)
        with os.fdopen(r, "rb") as pipe:
            lines = [json.loads(x) for x in pipe.read().splitlines() if x.strip()]
        child: dict[str, Any] = {"status": status, "parent_ok_meanwhile": tally.ok - ok_before}
        for line in lines:
            child.update(line)
        children.append(child)
    await asyncio.sleep(0.3)
    stop.set()
    await bg
    await issuer.drain()
    issuer.stop()
    res: dict[str, Any] = {"children": children, "tally": tally.as_dict()}
    await finish(args, pool, ids, fds0, res)
    res["wall_s"] = round(time.monotonic() - t0, 2)
    return res


CANCEL_KINDS = ("before_send", "queued", "after_headers", "mid_body")


async def row_cancel(args: argparse.Namespace, origin: str) -> dict[str, Any]:
    await warm_up(origin)
    ids = itertools.count(1)
    rng = random.Random(args.seed)
    loop = asyncio.get_running_loop()
    fds0 = baseline()
    t0 = time.monotonic()
    pool = new_pool(args, origin)
    tally = Tally()
    issuer = Issuer(args.inflight, args.lost_after, tally)

    def cancel_self(_: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()

    def on_chunk(what: str) -> None:
        if what == "chunk":
            cancel_self(what)

    for _ in range(args.cancel_tasks):
        kind = rng.choice(CANCEL_KINDS)
        extra = ""
        if kind == "mid_body":  # a body in pieces, so "mid-body" is a real place
            extra = f"&ch={rng.randint(3, 8)}&gp={rng.randint(1, 3)}"
        f = make_flight(next(ids), rng, extra)
        f.kind = kind
        if kind == "mid_body":
            f.size, f.iterate = max(f.size, 4096), True
            f.path = f"/r?id={f.rid}&s={f.size}&t={f.t}{extra}"
        hook = {"after_headers": cancel_self, "mid_body": on_chunk}.get(kind)
        task = await issuer.start(f, one(pool, f, hook))
        if kind == "before_send":
            loop.call_soon(task.cancel)
        elif kind == "queued":
            loop.call_later(rng.uniform(0.0001, 0.02), task.cancel)
    await issuer.drain()
    issuer.stop()
    res: dict[str, Any] = {"tally": tally.as_dict(), "planned": args.cancel_tasks}
    res["stats_after_cancels"] = stats_of(pool)
    await finish(args, pool, ids, fds0, res)
    res["wall_s"] = round(time.monotonic() - t0, 2)
    return res


async def row_drop(args: argparse.Namespace, origin: str) -> dict[str, Any]:
    await warm_up(origin)
    ids = itertools.count(1)
    rng = random.Random(args.seed)
    warnings.simplefilter("ignore", ResourceWarning)  # one per dropped body: expected
    fds0 = baseline()
    t0 = time.monotonic()
    pool = new_pool(args, origin)
    tally = Tally()
    issuer = Issuer(args.inflight, args.lost_after, tally)

    async def drop(f: Flight) -> None:
        from undipy import UndiciError

        try:
            resp = await pool.request(
                path=f.path, method=f.method, body=f.body, headers_timeout=f.t, body_timeout=f.t
            )
            f.phase = "headers"
            f.fault = resp.headers.get("x-fault", "")
            del resp  # never read: dropped
            f.outcome = "ok"
        except UndiciError as e:
            f.outcome = type(e).__name__

    rounds = []
    for _ in range(args.drop_rounds):
        for _ in range(args.drop_batch):
            r = rng.random()
            if r < 0.4:
                f = make_flight(next(ids), rng, post=0.2)  # small: arrives whole
            elif r < 0.7:  # 256 KiB: still arriving when dropped
                f = make_flight(next(ids), rng, post=0.2)
                f.size = 262144
                f.path = f"/r?id={f.rid}&s={f.size}&t={f.t}"
            else:  # trickled: 16 pieces 5 ms apart
                f = make_flight(next(ids), rng, "&ch=16&gp=5", post=0.2)
                f.size = 8192
                f.path = f"/r?id={f.rid}&s={f.size}&t={f.t}&ch=16&gp=5"
            await issuer.start(f, drop(f))
        await issuer.drain()
        gc.collect()
        await asyncio.sleep(0.3)
        srv = await server_stats(args.port)
        n_fds = fds()
        after = await after_check(pool, ids, 100, args.lost_after, args.port)
        rounds.append(
            {"server_open": srv["open"], "fds": n_fds, "stats": stats_of(pool), "after": after}
        )
    issuer.stop()
    res: dict[str, Any] = {"tally": tally.as_dict(), "rounds": rounds}
    res["planned"] = args.drop_rounds * args.drop_batch
    await finish(args, pool, ids, fds0, res)
    res["server_open_after_close"] = (await server_stats(args.port, wait=3.0))["open"]
    res["wall_s"] = round(time.monotonic() - t0, 2)
    return res


ROWS = {
    "soak": row_soak,
    "threads": row_threads,
    "fork": row_fork,
    "cancel": row_cancel,
    "drop": row_drop,
}


def row_main(args: argparse.Namespace) -> None:
    # Last resort inside the child: print every thread's stack and exit.
    faulthandler.dump_traceback_later(args.row_timeout, exit=True)
    mode, pipelining, loop = args.row.split(":")
    args.mode, args.pipelining, args.loop = mode, int(pipelining), loop
    origin = f"http://127.0.0.1:{args.port}"
    t0 = time.monotonic()
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        res = runner.run(ROWS[mode](args, origin))
        res.setdefault("wall_s", round(time.monotonic() - t0, 2))
        print(RESULT_TAG + json.dumps(res, default=list), flush=True)
        # Lost requests may still hold tasks; the numbers are out, so skip
        # the loop's unbounded shutdown.
        os._exit(0)


# -- the driver -------------------------------------------------------------------


class Server:
    """The fault server: started per row, stopped by closing its stdin."""

    def __init__(self, args: argparse.Namespace, seed: int) -> None:
        faults = ",".join(f"{k}={v}" for k, v in args.faults.items())
        cmd = [
            sys.executable, __file__, "--serve", "--seed", str(seed), "--faults", faults,
            "--fault-scale", str(args.fault_scale),
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 10.0)
        line = self.proc.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError("the soak server did not start")
        self.port = int(line)

    def stats(self) -> dict[str, Any]:
        """Once the client's connections are gone (at most 3 s)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request("GET", "/_stats?wait=3")
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


def row_timeout(args: argparse.Namespace, mode: str) -> float:
    """The most a row may take, healthy or not, before the driver kills it."""
    slack = args.lost_after * 3 + args.close_bound * 2 + 60
    if mode == "soak":
        return args.budget + slack
    return (120.0 if args.short else 600.0) + slack


def run_child(args: argparse.Namespace, row: str, port: int, timeout: float) -> dict[str, Any]:
    cmd = [
        sys.executable, __file__, "--row", row, "--port", str(port),
        "--requests", str(args.requests), "--seed", str(args.seed),
        "--inflight", str(args.inflight), "--connections", str(args.connections),
        "--lost-after", str(args.lost_after), "--budget", str(args.budget),
        "--lull-every", str(args.lull_every), "--after", str(args.after),
        "--rss-min-window", str(args.rss_min_window),
        "--threads", str(args.threads), "--thread-requests", str(args.thread_requests),
        "--thread-inflight", str(args.thread_inflight), "--forks", str(args.forks),
        "--fork-requests", str(args.fork_requests), "--cancel-tasks", str(args.cancel_tasks),
        "--drop-rounds", str(args.drop_rounds), "--drop-batch", str(args.drop_batch),
        "--close-bound", str(args.close_bound), "--row-timeout", str(max(1.0, timeout - 5)),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    tail: collections.deque[str] = collections.deque(maxlen=60)
    other = [0]
    out: list[str] = []

    def pump_err() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith(PROGRESS_TAG):
                print(line, end="", file=sys.stderr, flush=True)
            else:
                other[0] += 1
                tail.append(line.rstrip())

    def pump_out() -> None:
        assert proc.stdout is not None
        out.extend(proc.stdout)

    pumps = [threading.Thread(target=fn, daemon=True) for fn in (pump_err, pump_out)]
    for p in pumps:
        p.start()
    crash = None
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        crash = f"killed after {timeout:.0f}s"
    for p in pumps:
        p.join(5)
    stderr = {"stderr_lines": other[0], "stderr_tail": list(tail)[-25:]}
    for line in out:
        if line.startswith(RESULT_TAG) and crash is None:
            res: dict[str, Any] = json.loads(line[len(RESULT_TAG) :])
            return {**res, **stderr}
    return {"crash": crash or f"exit status {proc.returncode}, no result", **stderr}


def run_row(args: argparse.Namespace, row: str, seed: int, budget: float) -> dict[str, Any]:
    mode, pipelining, loop = row.split(":")
    head = {"row": row, "mode": mode, "pipelining": int(pipelining), "loop": loop}
    server = Server(args, seed)
    try:
        t0 = time.monotonic()
        res = run_child(args, row, server.port, min(row_timeout(args, mode), budget))
        res["row_wall_s"] = round(time.monotonic() - t0, 2)
        try:
            res["server"] = server.stats()
        except (OSError, ValueError) as e:
            res["server_error"] = f"{type(e).__name__}: {e}"
        return {**head, **res}
    finally:
        server.stop()


def failures(r: dict[str, Any]) -> list[str]:
    """Why a row fails (the bars); empty when it passes."""
    if "crash" in r:
        return [f"row crashed or hung: {r['crash']}"]
    why = []
    t = r["tally"]
    if t["lost"]:
        why.append(f"{t['lost']} requests lost (not settled within {r.get('lost_after', '?')}s)")
    if t["wrong"]:
        why.append(f"{t['wrong']} responses wrong (another request's, or corrupted)")
    srv = r.get("server")
    if srv is None:
        why.append(f"no counts from the server ({r.get('server_error')})")
    else:
        if srv["post_dups"]:
            why.append(f"{srv['post_dups']} POSTs reached the server twice or more")
        if srv["bad_bodies"]:
            why.append(f"{srv['bad_bodies']} POST bodies did not carry their id")
        if srv["post_pipelined"]:
            why.append(
                f"{srv['post_pipelined']} POSTs written while an earlier request on their"
                f" connection was unanswered (e.g. {srv['post_pipelined_examples'][:2]})"
            )
    # Every fd is back, the closed loops' bridges (eventfds) included, and
    # already when close() resolved.
    if r["fds"]["after"] != r["fds_before"]:
        why.append(f"fds {r['fds_before']} before the Pool, {r['fds']['after']} after close()")
    if r["fds"]["at_close"] != r["fds"]["after"]:
        why.append(
            f"close() resolved with {r['fds']['at_close'] - r['fds']['after']} socket(s) not yet"
            " closed"
        )
    a = r["after"]
    if a["ok"] != a["n"]:
        why.append(f"after the run only {a['ok']}/{a['n']} plain GETs succeeded")
    if r["close"] != "resolved":
        why.append(f"close(): {r['close']}")
    if r["mode"] == "soak":
        per = r.get("rss_per_req")
        if per is not None and r["rss_window"] >= r["rss_min_window"] and per >= 1.0:
            why.append(f"RSS grew {per:.2f} bytes/request after warm-up (bar: < 1)")
    if r["mode"] == "threads":
        if r["threads_hung"]:
            why.append(f"threads still running: {r['threads_hung']}")
        if r["thread_errors"]:
            why.append(f"threads failed: {r['thread_errors']}")
        if t["settled"] != r["planned"]:
            why.append(f"{t['settled']}/{r['planned']} requests settled")
    if r["mode"] == "fork":
        for k, c in enumerate(r["children"]):
            ct = c.get("tally")
            if ct is None or c.get("crash"):
                why.append(f"child {k}: {c.get('crash') or c['status']}, no result")
                continue
            if ct["lost"] or ct["ok"] == 0 or c["close"] != "resolved":
                why.append(f"child {k}: {ct['ok']} ok, {ct['lost']} lost, close {c['close']}")
            if c["status"] != "exit 0":
                why.append(f"child {k}: {c['status']}")
    if r["mode"] == "drop":
        for k, rd in enumerate(r["rounds"]):
            if rd["server_open"] > r["connections"]:
                why.append(f"round {k}: {rd['server_open']} connections open at the server")
            if rd["fds"] > r["fds_before"] + r["connections"] + 2:
                why.append(f"round {k}: {rd['fds']} fds (before the Pool: {r['fds_before']})")
            if rd["after"]["ok"] != rd["after"]["n"]:
                why.append(f"round {k}: {rd['after']['ok']}/{rd['after']['n']} new requests ok")
        if r["server_open_after_close"]:
            why.append(f"{r['server_open_after_close']} server connections open after close()")
    return why


def fmt_counter(c: dict[str, int], n: int = 99) -> str:
    items = sorted(c.items(), key=lambda kv: -kv[1])[:n]
    return ", ".join(f"{k} {v:,}" for k, v in items) or "-"


COLUMNS = (
    ("row", 7), ("loop", 7), ("pl", 3), ("started", 9), ("ok", 9), ("failed", 7),
    ("lost", 5), ("wrong", 5), ("dupPOST", 7), ("fds", 8), ("B/req", 6), ("wall", 7), ("", 4),
)  # fmt: skip


def table_row(r: dict[str, Any]) -> list[str]:
    head = [r["mode"], r["loop"], str(r["pipelining"])]
    if "crash" in r:
        return head + ["-"] * 9 + ["FAIL"]
    t = r["tally"]
    srv = r.get("server") or {}
    per = r.get("rss_per_req")
    return head + [
        f"{t['started']:,}",
        f"{t['ok']:,}",
        f"{sum(t['failed'].values()):,}",
        str(t["lost"]),
        str(t["wrong"]),
        str(srv.get("post_dups", "?")),
        f"{r['fds_before']}>{r['fds']['after']}",
        "-" if per is None else f"{per:.2f}",
        f"{r.get('wall_s', 0):.1f}s",
        "FAIL" if failures(r) else "ok",
    ]


def name_of(r: dict[str, Any]) -> str:
    return f"{r['mode']}/p{r['pipelining']}/{r['loop']}"


def details(r: dict[str, Any]) -> list[str]:
    name = name_of(r)
    if "crash" in r:
        return [f"{name}: {r['crash']}", *r.get("stderr_tail", [])]
    t, srv = r["tally"], r.get("server") or {}
    a = r["after"]
    lines = [
        f"{name}:",
        f"  failed by class:   {fmt_counter(t['failed'])}",
        f"  by method:         {fmt_counter(t['by_method'])}",
        f"  tagged faults:     {fmt_counter(t['by_fault'])}" if t["by_fault"] else "",
        f"  cancelled:         {t['cancelled']:,}; by kind and outcome:"
        f" {fmt_counter(t['by_kind'])}" if t["by_kind"] else "",
        f"  lost:              {t['lost']} (at {fmt_counter(t['lost_phase'])};"
        f" settled later: {fmt_counter(t['late'])})",
        f"  slowest settled:   {t['slowest']:.2f}s, {t['slowest_was']}",
        *(f"    e.g. {x}" for x in t["lost_examples"][:4]),
        *(f"    wrong: {x}" for x in t["wrong_examples"][:3]),
        f"  server:            {srv.get('requests', '?'):,} requests read on"
        f" {srv.get('accepted', '?'):,} connections (at most {srv.get('max_open', '?')} open);"
        f" POST ids {srv.get('post_ids', '?'):,} (client saw {t['post_ok']:,} ok),"
        f" dup {srv.get('post_dups', '?')}, pipelined {srv.get('post_pipelined', '?')};"
        f" GETs twice {srv.get('get_twice', '?')},"
        f" more {srv.get('get_over2', '?')} (at most {srv.get('get_max', '?')} times)",
        f"  faults injected:   {fmt_counter(srv.get('faults', {}))}",
        f"  connection modes:  {fmt_counter(srv.get('conn_modes', {}))}",
        f"  after the run:     {a['ok']}/{a['n']} plain GETs ok"
        + ("" if a["ok"] == a["n"] else f" ({fmt_counter(a['errors'])}, {a['unsettled']} hung)"),
        f"  close():           {r['close']}; stats before: {r['stats_before_close']}",
        f"  fds:               {r['fds_before']} before the Pool, {r['fds']['at_close']} when"
        f" close() resolved, {r['fds']['after']} after",
        *(f"    new: {x}" for x in r["fds"].get("new", [])),
    ]  # fmt: skip
    if srv.get("post_dup_examples"):
        lines.append(f"  POSTs twice:       {srv['post_dup_examples']}")
    if r["mode"] == "soak":
        a_, b_ = r["rss_a"], r["rss_b"]
        judged = r["rss_window"] >= r["rss_min_window"]
        if a_:
            lines.append(
                f"  RSS:               {a_['trimmed'] / 2**20:.1f} MiB at 10 %,"
                f" {b_['trimmed'] / 2**20:.1f} MiB at 100 %: {r['rss_per_req']:+.3f} B/request"
                f" over {r['rss_window']:,} (untrimmed {r['rss_raw_per_req']:+.3f});"
                + (" judged" if judged else f" not judged (< {r['rss_min_window']:,} requests)")
            )
            fit = r.get("rss_slope")
            lines.append(
                "  RSS curve (MiB):   "
                + ", ".join(f"{i / 1000:g}k {v / 2**20:.2f}" for i, v in r["rss_curve"])
                + ("" if fit is None else f"; least-squares slope from 10 %: {fit:+.3f} B/request")
            )
        lines.append(
            f"  time:              {r['issue_s']}s issuing, {r['settle_s']}s settling,"
            f" {r['rate']:,.0f} requests/s"
        )
        if r["stopped_at"] is not None:
            lines.append(
                f"  STOPPED at {r['stopped_at']:,} of {r['planned']:,} (--budget {r['budget']:g}s):"
                f" the full row would take about {r['planned'] / max(r['rate'], 1e-9) / 60:.0f} min"
            )
    if r["mode"] == "threads":
        lines.append(
            f"  threads:           {r['threads']} loops, {r['planned']:,} requests; fds after the"
            f" threads ended {r['fds_after_threads']}; hung {r['threads_hung']},"
            f" errors {r['thread_errors'] or '-'}"
        )
    if r["mode"] == "fork":
        for k, c in enumerate(r["children"]):
            ct = c.get("tally") or {}
            lines.append(
                f"  child {k}:           {c['status']}, {ct.get('ok', '?')} ok,"
                f" {fmt_counter(ct.get('failed', {}))} failed, {ct.get('lost', '?')} lost,"
                f" close {c.get('close', '?')}; parent's pool in the child:"
                f" {c.get('parent_pool', '?')}; parent ok meanwhile {c['parent_ok_meanwhile']}"
                + (f"; CRASH {c['crash']}" if c.get("crash") else "")
            )
    if r["mode"] == "cancel":
        lines.append(f"  stats after the cancellations: {r['stats_after_cancels']}")
    if r["mode"] == "drop":
        for k, rd in enumerate(r["rounds"]):
            lines.append(
                f"  round {k}:           server open {rd['server_open']}, fds {rd['fds']},"
                f" new GETs {rd['after']['ok']}/{rd['after']['n']}, stats {rd['stats']}"
            )
        lines.append(f"  server open after close(): {r['server_open_after_close']}")
    if r.get("stderr_lines"):
        lines.append(f"  stderr ({r['stderr_lines']} lines), last: {r['stderr_tail'][-3:]}")
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
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [v for v in items if v not in allowed]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {','.join(allowed)}")
    return items


def parse_faults(value: str) -> dict[str, float]:
    rates = {k: v[0] for k, v in {**FAULTS, **CONN_MODES}.items()}
    for item in filter(None, (x.strip() for x in value.split(","))):
        name, _, rate = item.partition("=")
        if name == "none":  # "none,trickle=0.1": only the ones named after it
            rates = dict.fromkeys(rates, 0.0)
            continue
        if name not in rates:
            raise argparse.ArgumentTypeError(f"unknown fault {name!r}")
        rates[name] = float(rate)
    return rates


def fault_help() -> str:
    return "\n".join(f"  {k}={v[0]:g}: {v[1]}" for k, v in {**FAULTS, **CONN_MODES}.items())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add = p.add_argument
    add("--short", action="store_true", help="every row with few requests (CI)")
    add("--requests", type=int, help="requests per soak row (1,000,000; 6,000 --short)")
    add("--modes", default=",".join(MODES), type=lambda v: parse_list(v, MODES),
        help=",".join(MODES))
    add("--loops", default="asyncio,uvloop", type=lambda v: parse_list(v, LOOPS),
        help="asyncio,uvloop")
    add("--pipelining", default="1,10", help="the soak rows' pipelining values (1,10); "
        "the other rows use the last")
    add("--inflight", type=int, default=128, help="requests in flight (128)")
    add("--connections", type=int, default=16, help="the Pool's connections (16)")
    add("--faults", default="", type=parse_faults, metavar="NAME=RATE,...",
        help="fault rates, per request or per connection (none,NAME=RATE: only\n"
        "those named):\n" + fault_help())
    add("--fault-scale", type=float, default=1.0, help="multiplies every rate (0: no faults)")
    add("--lost-after", type=float, help="a request not settled this long is lost (20; 10 --short)")
    add("--lull-every", type=int, help="pause about 1 s every N requests (25,000; --short: 3,000)")
    add("--budget", type=float, help="stop starting a soak row's requests after this many "
        "seconds and extrapolate (1200; --short 30)")
    add("--rss-min-window", type=int, default=200_000,
        help="judge RSS growth only over at least this many requests (200,000)")
    add("--threads", type=int, default=64, help="threads of the threads row (64)")
    add("--thread-requests", type=int, help="requests per thread (500; --short 30)")
    add("--thread-inflight", type=int, default=4, help="in flight per thread (4)")
    add("--forks", type=int, help="children of the fork row (20; --short 3)")
    add("--fork-requests", type=int, help="requests per child (500; --short 100)")
    add("--cancel-tasks", type=int, help="tasks of the cancel row (10,000)")
    add("--drop-rounds", type=int, help="rounds of the drop row (10; --short 3)")
    add("--drop-batch", type=int, default=1000, help="responses dropped per round (1,000)")
    add("--after", type=int, default=200, help="plain GETs after each row (200)")
    add("--close-bound", type=float, default=5.0, help="seconds close() may take (5)")
    add("--seed", type=int, default=11, help="the seed of clients and server (11)")
    add("--json", metavar="PATH", help="write every number here")
    add("--deadline", type=float, help="stop starting rows after this many seconds")
    # Internal: the server process and the per-row client process.
    add("--serve", action="store_true", help=argparse.SUPPRESS)
    add("--row", help=argparse.SUPPRESS)
    add("--port", type=int, help=argparse.SUPPRESS)
    add("--row-timeout", type=float, default=600.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.faults:
        args.faults = parse_faults("")
    s = args.short
    defaults = {
        "requests": 6_000 if s else 1_000_000,
        "lost_after": 10.0 if s else 20.0,
        "lull_every": 3_000 if s else 25_000,
        "budget": 30.0 if s else 1200.0,
        "thread_requests": 30 if s else 500,
        "forks": 3 if s else 20,
        "fork_requests": 100 if s else 500,
        "cancel_tasks": 10_000,
        "drop_rounds": 3 if s else 10,
        "deadline": 240.0 if s else 6 * 3600.0,
    }
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if not args.row:
        args.pipelinings = tuple(int(x) for x in args.pipelining.split(","))
    return args


def plan_rows(args: argparse.Namespace) -> list[str]:
    rows = []
    if "soak" in args.modes:
        rows += [f"soak:{p}:{loop}" for p in args.pipelinings for loop in args.loops]
    last = args.pipelinings[-1]
    for mode in args.modes:
        if mode != "soak":
            rows += [f"{mode}:{last}:{loop}" for loop in args.loops]
    return rows


def drive(args: argparse.Namespace) -> int:
    end = time.monotonic() + args.deadline
    t0 = time.monotonic()
    faulthandler.dump_traceback_later(args.deadline + 1800, exit=True)
    rows: list[dict[str, Any]] = []
    for k, row in enumerate(plan_rows(args)):
        left = end - time.monotonic() - 20
        mode, pl, loop = row.split(":")
        if left < 10:
            rows.append({"row": row, "mode": mode, "pipelining": int(pl), "loop": loop,
                         "crash": "skipped: --deadline reached"})  # fmt: skip
            continue
        print(f"{PROGRESS_TAG}{row} ...", file=sys.stderr, flush=True)
        r = run_row(args, row, args.seed + k, left)
        r.update(
            lost_after=args.lost_after,
            rss_min_window=args.rss_min_window,
            connections=args.connections,
            budget=args.budget,
        )
        rows.append(r)
    print_report(rows)
    bad = [(name_of(r), why) for r in rows for why in failures(r)]
    for name, why in bad:
        print(f"FAIL {name}: {why}")
    total = time.monotonic() - t0
    print(("PASS" if not bad else f"FAIL: {len(bad)} checks failed") + f" ({total:.0f}s)")
    if args.json:
        with open(args.json, "w") as f:
            out = {"args": {**vars(args)}, "wall_s": round(total, 1), "rows": rows}
            json.dump(out, f, indent=1, default=list)
    return 1 if bad else 0


def main() -> None:
    args = parse_args()
    if args.serve:
        serve_main(args)
    elif args.row:
        row_main(args)
    else:
        sys.exit(drive(args))


if __name__ == "__main__":
    main()
