"""The socket an upgrade or CONNECT hands over: a duplex byte stream.

The engine gives up a connected, non-blocking socket (TCP or Unix) and the
bytes that arrived right behind the response head. The constructor runs
synchronously on the event loop, so nothing is registered with the loop
then: reads and writes wait for readiness only while a call is pending
(``add_reader``/``add_writer`` on the fd, for asyncio and uvloop alike). An
idle socket therefore belongs to its Python object alone, and one dropped
without ``close()`` is closed by the garbage collector (``socket.socket``'s
finalizer), never leaked. A loop that watches no sockets (Windows' proactor
loop) does the waiting read or write itself (``sock_recv``,
``sock_sendall``).
"""

from __future__ import annotations

import asyncio
import socket as _socket
from collections.abc import Callable, Coroutine
from typing import Any, Self, TypeVar

from .errors import SocketError

T = TypeVar("T")

READ_SIZE = 65536


class UpgradedSocket:
    """``await read(n)`` (``b""`` at end of stream), ``await write(data)``
    (returns once the kernel took all of it), ``await write_eof()``,
    ``await close()``, and ``async for chunk in sock``. The bytes that
    arrived behind the response head are the first ones read."""

    def __init__(self, fd: int, head: bytes = b"") -> None:
        try:
            sock = _socket.socket(fileno=fd)
            sock.setblocking(False)
        except BaseException:
            _socket.close(fd)  # ours from the start: never leaked, even here
            raise
        self._sock = sock
        self._fd = fd
        self._head = bytes(head)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rlock: asyncio.Lock | None = None
        self._wlock: asyncio.Lock | None = None
        self._waiters: dict[asyncio.Future[None], Callable[[int], Any]] = {}
        self._by_loop: set[asyncio.Task[Any]] = set()  # sock_recv/sock_sendall in flight
        self._loop_watches = True  # until its add_reader says otherwise
        self._eof = False  # the peer ended its side
        self._write_closed = False  # write_eof() or close()
        self._closed = False

    # -- state ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def at_eof(self) -> bool:
        """The peer ended its side and everything it sent was read."""
        return self._eof and not self._head

    def fileno(self) -> int:
        return -1 if self._closed else self._fd

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``"socket"``, ``"peername"`` or ``"sockname"``, as asyncio transports."""
        if self._closed:
            return default
        try:
            if name == "socket":
                return self._sock
            if name == "peername":
                return self._sock.getpeername()
            if name == "sockname":
                return self._sock.getsockname()
        except OSError:
            return default
        return default

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self._fd}"
        return f"<UpgradedSocket {state}>"

    # -- reading -------------------------------------------------------------

    async def read(self, n: int = READ_SIZE) -> bytes:
        """Up to ``n`` bytes (all until end of stream if ``n < 0``); ``b""``
        once the peer ended its side or the socket was closed."""
        if n < 0:
            parts = []
            while chunk := await self.read():
                parts.append(chunk)
            return b"".join(parts)
        if n == 0:
            return b""
        if self._head:
            head, self._head = self._head[:n], self._head[n:]
            return head
        async with self._read_lock():
            while not (self._eof or self._closed):
                data = _recv(self._sock, n)
                if data is None:
                    loop = self._loop_()
                    if await self._wait(loop.add_reader, loop.remove_reader):
                        continue
                    data = await self._loop_does(loop.sock_recv(self._sock, n))
                    if data is None:  # closed meanwhile
                        continue
                if not data:
                    self._eof = True
                return data
        return b""

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        data = await self.read()
        if not data:
            raise StopAsyncIteration
        return data

    # -- writing -------------------------------------------------------------

    async def write(self, data: bytes | bytearray | memoryview | str) -> None:
        """Sends all of ``data``; returns once the kernel took the last byte
        (so a slow peer slows the writer down)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes or str, not {type(data).__name__}")
        view = memoryview(data).cast("B")
        async with self._write_lock():
            while view:
                self._check_writable()
                sent = _send(self._sock, view)
                if sent is None:
                    loop = self._loop_()
                    if await self._wait(loop.add_writer, loop.remove_writer):
                        continue
                    sent = await self._loop_does(_send_all(loop, self._sock, view))
                    if sent is None:  # closed meanwhile
                        continue
                view = view[sent:]

    async def write_eof(self) -> None:
        """Ends the sending side (after the writes in progress); reading goes on."""
        async with self._write_lock():
            if self._closed or self._write_closed:
                return
            self._write_closed = True
            try:
                self._sock.shutdown(_socket.SHUT_WR)
            except OSError:  # the peer is gone already: nothing left to end
                pass

    def can_write_eof(self) -> bool:
        return True

    def _check_writable(self) -> None:
        if self._closed:
            raise SocketError("the socket is closed")
        if self._write_closed:
            raise SocketError("write after write_eof()")

    # -- closing -------------------------------------------------------------

    async def close(self) -> None:
        """Closes the socket (once; later calls do nothing). A read waiting
        in another task then returns ``b""``, a write raises SocketError."""
        self.close_now()

    def close_now(self) -> None:
        """``close()`` for synchronous code."""
        if self._closed:
            return
        self._closed = True
        self._head = b""
        # Unregister from the loop before the fd number can be reused.
        waiters, self._waiters = self._waiters, {}
        for fut, remove in waiters.items():
            remove(self._fd)
            if not fut.done():
                fut.set_result(None)
        for task in self._by_loop:
            task.cancel()
        self._sock.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close_now()

    # -- readiness -----------------------------------------------------------

    def _loop_(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _read_lock(self) -> asyncio.Lock:
        if self._rlock is None:
            self._rlock = asyncio.Lock()
        return self._rlock

    def _write_lock(self) -> asyncio.Lock:
        if self._wlock is None:
            self._wlock = asyncio.Lock()
        return self._wlock

    async def _wait(self, add: Callable[..., Any], remove: Callable[[int], Any]) -> bool:
        """Waits until the fd is ready (registered only meanwhile); False at
        once if the loop watches no sockets (Windows' proactor loop)."""
        if not self._loop_watches:
            return False
        fut = self._loop_().create_future()
        try:
            add(self._fd, _wake, fut)
        except NotImplementedError:
            self._loop_watches = False
            return False
        self._waiters[fut] = remove
        try:
            await fut
        finally:
            if self._waiters.pop(fut, None) is not None:
                remove(self._fd)
        return True

    async def _loop_does(self, io: Coroutine[Any, Any, T]) -> T | None:
        """The loop's own waiting call; None if ``close()`` ended it."""
        task = self._loop_().create_task(io)
        self._by_loop.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if self._closed and task.cancelled() and not (me and me.cancelling()):
                return None
            raise
        finally:
            self._by_loop.discard(task)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _recv(sock: _socket.socket, n: int) -> bytes | None:
    """Bytes from a non-blocking socket; None when there are none yet."""
    try:
        return sock.recv(n)
    except (BlockingIOError, InterruptedError):
        return None


async def _send_all(loop: asyncio.AbstractEventLoop, sock: _socket.socket, data: memoryview) -> int:
    """``sock_sendall``, saying how much it sent: all of it."""
    await loop.sock_sendall(sock, data)
    return len(data)


def _send(sock: _socket.socket, data: memoryview) -> int | None:
    """Bytes the kernel took; None when it takes none now."""
    try:
        return sock.send(data)
    except (BlockingIOError, InterruptedError):
        return None
