"""One native bridge per asyncio loop, registered once with ``add_reader``.

The runtime thread writes the bridge's eventfd when events are waiting; the
loop then calls ``LoopBridge.drain`` which delivers the whole batch.
"""

from __future__ import annotations

import asyncio
import os

from ._undipy import LoopBridge

_bridges: dict[int, LoopBridge] = {}


def bridge_for(loop: asyncio.AbstractEventLoop) -> LoopBridge:
    """The bridge of ``loop``, created and registered on first use."""
    b = _bridges.get(id(loop))
    if b is not None and b.loop is loop:
        return b
    _sweep()
    b = LoopBridge(loop)
    if os.environ.get("UNDIPY_WAKE") == "threadsafe":
        # For docs/design.md's comparison only: the usual bridge design.
        b.wake_threadsafe(loop.call_soon_threadsafe, b.drain)
    else:
        loop.add_reader(b.fd, b.drain)
    _bridges[id(loop)] = b
    return b


def _sweep() -> None:
    """Forgets the bridges of closed loops (their fds close with them)."""
    for key, b in list(_bridges.items()):
        if b.loop.is_closed():
            del _bridges[key]
