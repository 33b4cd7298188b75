"""One native bridge per asyncio loop, registered once with ``add_reader``.

The runtime thread writes the bridge's eventfd when events are waiting; the
loop then calls ``LoopBridge.drain`` which delivers the whole batch.

The loop's reader registration is what keeps a bridge alive (the table
here is weak): closing the loop drops it, and its eventfd closes once no
dispatcher or request still refers to it.
"""

from __future__ import annotations

import asyncio
import os
import weakref

from ._undipy import LoopBridge

_bridges: weakref.WeakValueDictionary[int, LoopBridge] = weakref.WeakValueDictionary()
# The measurement-only threadsafe mode has no reader to hold its bridges.
_pinned: list[LoopBridge] = []


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
        loop.add_reader(b.fd, b.drain)
    _bridges[id(loop)] = b
    return b
