"""One native bridge per asyncio loop, woken once per batch of events.

The runtime thread makes the bridge's wake-up readable when events are
waiting; the loop then calls ``LoopBridge.drain``, which delivers the whole
batch. Loops that watch descriptors (asyncio's selector loops, uvloop) watch
it with ``add_reader``: an eventfd on Linux. Loops that do not (Windows'
proactor loop) get a bridge woken through a socket, which a task reads with
``sock_recv``.

What keeps a bridge alive is the loop's reader registration, or its reading
task (the table here is weak): closing the loop drops it, and its wake-up
closes once no dispatcher or request still refers to it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import weakref

from ._undipy import LoopBridge

_bridges: weakref.WeakValueDictionary[int, LoopBridge] = weakref.WeakValueDictionary()
# The measurement-only threadsafe mode has no reader to hold its bridges.
_pinned: list[LoopBridge] = []
# The reading tasks of loops without add_reader (the loop holds tasks weakly).
_readers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
    weakref.WeakKeyDictionary()
)


def bridge_for(loop: asyncio.AbstractEventLoop) -> LoopBridge:
    """The bridge of ``loop``, created and registered on first use."""
    b = _bridges.get(id(loop))
    if b is not None and b.loop is loop:
        return b
    b = LoopBridge(loop)
    if os.environ.get("UNDIPY_WAKE") == "threadsafe":
        # For docs/design.md's comparison only: the usual bridge design.
        b.wake_threadsafe(loop.call_soon_threadsafe, b.drain)
        _pinned.append(b)
    else:
        try:
            loop.add_reader(b.fd, b.drain)
        except NotImplementedError:
            b = LoopBridge(loop, socket_wake=True)
            _readers[loop] = loop.create_task(_read_wakeups(loop, b))
    _bridges[id(loop)] = b
    return b


async def _read_wakeups(loop: asyncio.AbstractEventLoop, b: LoopBridge) -> None:
    """Drains ``b`` each time its socket brings a wake-up byte."""
    sock = socket.socket(fileno=b.fd)  # the bridge's: detached, never closed, here
    try:
        sock.setblocking(False)
        while await loop.sock_recv(sock, 512):
            try:
                b.drain()
            except Exception as exc:  # as add_reader's callbacks: reported, then on
                loop.call_exception_handler(
                    {"message": "undipy: draining the bridge failed", "exception": exc}
                )
    finally:
        sock.detach()
