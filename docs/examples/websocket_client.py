"""A WebSocket client on undipy: ``client.upgrade()`` does the HTTP handshake,
the ``websockets`` package's sans-I/O ``ClientProtocol`` does the framing.

    pip install websockets
    python docs/examples/websocket_client.py ws://127.0.0.1:8765/ "hello"
    python docs/examples/websocket_client.py wss://example.org/chat "hello"

undipy sends the upgrade request and hands over the socket; the protocol
object checks the 101 answer (``Sec-WebSocket-Accept``), turns messages into
frames and frames into messages, and answers pings and the closing handshake.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any
from urllib.parse import urlsplit

import undipy
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

# The engine writes these itself (``upgrade=`` gives Upgrade and Connection).
_ENGINE_HEADERS = {"host", "upgrade", "connection"}


class WebSocket:
    """An open WebSocket: ``await send(msg)``, ``await recv()``, ``await close()``,
    ``async for msg in ws``."""

    def __init__(self, protocol: ClientProtocol, socket: undipy.UpgradedSocket) -> None:
        self.protocol = protocol
        self.socket = socket
        self._parts: list[bytes] = []
        self._opcode: Opcode | None = None
        self._messages: list[str | bytes] = []

    async def _flush(self) -> None:
        """Sends what the protocol produced (a b"" means: half-close)."""
        for data in self.protocol.data_to_send():
            if data:
                await self.socket.write(data)
            else:
                await self.socket.write_eof()

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self.protocol.send_text(message.encode("utf-8"))
        else:
            self.protocol.send_binary(message)
        await self._flush()

    async def recv(self) -> str | bytes:
        """The next message; ``EOFError`` once the connection closed."""
        while not self._messages:
            if self.protocol.state is State.CLOSED:
                raise EOFError("the WebSocket is closed")
            data = await self.socket.read()
            if data:
                self.protocol.receive_data(data)
            else:
                self.protocol.receive_eof()
            await self._flush()  # pongs and the closing handshake
            for frame in self.protocol.events_received():
                self._collect(frame)
        return self._messages.pop(0)

    def _collect(self, frame: Any) -> None:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self._opcode = frame.opcode
            self._parts = [frame.data]
        elif frame.opcode is Opcode.CONT:
            self._parts.append(frame.data)
        else:
            return  # ping, pong, close: the protocol handles them
        if frame.fin:
            data = b"".join(self._parts)
            self._parts = []
            self._messages.append(data.decode("utf-8") if self._opcode is Opcode.TEXT else data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """The closing handshake, then the socket is closed."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            await self._flush()
        try:
            async with asyncio.timeout(10):
                while self.protocol.state is not State.CLOSED:
                    data = await self.socket.read()
                    if not data:
                        self.protocol.receive_eof()
                        break
                    self.protocol.receive_data(data)
                    await self._flush()
        finally:
            await self.socket.close()

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.recv()
        except EOFError:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> WebSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def websocket_connect(
    client: undipy.Dispatcher, url: str, headers: dict[str, str] | None = None
) -> WebSocket:
    """Opens a WebSocket to ``url`` (``ws://``, or ``wss://`` through a client
    of an ``https://`` origin) through ``client``."""
    protocol = ClientProtocol(parse_uri(url))
    request = protocol.connect()
    wanted = {k: v for k, v in request.headers.raw_items() if k.lower() not in _ENGINE_HEADERS}
    wanted.update(headers or {})
    data = await client.upgrade(path=request.path, protocol="websocket", headers=wanted)
    # Let the protocol check the 101 answer (Sec-WebSocket-Accept and all).
    head = "HTTP/1.1 101 Switching Protocols\r\n"
    for name, value in data.headers.items():
        for v in value if isinstance(value, list) else [value]:
            head += f"{name}: {v}\r\n"
    protocol.receive_data((head + "\r\n").encode("latin-1"))
    (response,) = protocol.events_received()
    assert isinstance(response, Response)
    if protocol.handshake_exc is not None:
        await data.socket.close()
        raise protocol.handshake_exc
    ws = WebSocket(protocol, data.socket)
    # Frames that came right behind the 101 are the socket's first bytes:
    # recv() reads them like any others.
    return ws


async def main(url: str, message: str) -> None:
    u = urlsplit(url)
    scheme = "https" if u.scheme == "wss" else "http"
    async with undipy.Client(f"{scheme}://{u.netloc}") as client:
        async with await websocket_connect(client, url) as ws:
            await ws.send(message)
            print(await ws.recv())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "hello"))
