"""upgrade() and connect(), and the UpgradedSocket they hand over.

Type-checked by tests/test_typing.py (mypy --strict), not run by the tests.
"""

from __future__ import annotations

import asyncio
import socket

from undipy import (
    AbortController,
    ConnectData,
    Pool,
    SocketError,
    UpgradeData,
    UpgradedSocket,
    header,
)

ORIGIN = "http://127.0.0.1:8080"


async def chat(pool: Pool) -> UpgradeData:
    up = await pool.upgrade(
        path="/chat",
        method="GET",
        protocol="websocket",
        headers={"sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13"},
        signal=AbortController().signal,
        opaque={"room": 1},
        headers_timeout=5,
        body_timeout=0,
        idempotent=False,
        blocking=True,
        reset=False,
        query={"v": 2},
        origin=ORIGIN,
    )
    print(header(up.headers, "sec-websocket-accept"), up.opaque)
    async with up.socket as sock:
        await sock.write(b"\x81\x02hi")
        print(await sock.read(), await sock.read(16), await sock.read(-1))
    return up


async def use_socket(sock: UpgradedSocket) -> None:
    await sock.write("text")
    await sock.write(memoryview(b"view"))
    if sock.can_write_eof():
        await sock.write_eof()
    async for chunk in sock:
        print(len(chunk))
    fd: int = sock.fileno()
    raw: socket.socket | None = sock.get_extra_info("socket")
    print(fd, raw, sock.get_extra_info("peername"), sock.closed, sock.at_eof)
    await sock.close()
    sock.close_now()


async def tunnel(pool: Pool) -> ConnectData:
    t = await pool.connect(
        path="example.com:80",
        headers=[("proxy-authorization", "Basic eDp5")],
        signal=asyncio.Event(),
        opaque=None,
        headers_timeout=10.0,
    )
    status: int = t.status_code
    print(status, t.headers, t.opaque)
    await t.socket.write(b"GET / HTTP/1.1\r\nhost: example.com\r\n\r\n")
    print(await t.socket.read())
    await use_socket(t.socket)
    return t


def on_upgrade(err: BaseException | None, data: UpgradeData | None) -> None:
    if data is not None:
        data.socket.close_now()


def on_connect(err: BaseException | None, data: ConnectData | None) -> None:
    if isinstance(err, SocketError):
        print(err.status_code, err.headers)
    elif data is not None:
        data.socket.close_now()


async def main() -> None:
    async with Pool(ORIGIN) as pool:
        await chat(pool)
        await tunnel(pool)
        default = await pool.upgrade()
        default.socket.close_now()
        upgrades = asyncio.create_task(pool.upgrade(path="/ws", protocol="websocket"))
        (await upgrades).socket.close_now()
        pool.upgrade(on_upgrade, path="/ws")
        pool.upgrade(callback=on_upgrade, protocol="websocket")
        pool.connect(on_connect, path="example.com:443")
        pool.connect(callback=on_connect, path="example.com:443")
        try:
            await pool.upgrade(path="/no")
        except SocketError as e:
            print(e.status_code, e.headers)


async def rejected(pool: Pool) -> None:
    """Calls that must not type-check (never run)."""
    await pool.connect()  # type: ignore[call-overload]
    await pool.connect(path="example.com:80", method="GET")  # type: ignore[call-overload]
    await pool.connect(path="example.com:80", upgrade="x")  # type: ignore[call-overload]
    await pool.connect(path="example.com:80", on_info=print)  # type: ignore[call-overload]
    await pool.upgrade(path="/", on_info=print)  # type: ignore[call-overload]
    await pool.upgrade(path="/", protocol=1)  # type: ignore[call-overload]
    await pool.upgrade(path="/", upgrade="websocket")  # type: ignore[call-overload]
    await pool.upgrade(on_upgrade, path="/")  # type: ignore[misc]
    up = await pool.upgrade(path="/")
    print(up.status_code)  # type: ignore[attr-defined]
    t = await pool.connect(path="example.com:80")
    await t.socket.write(1)  # type: ignore[arg-type]


if __name__ == "__main__":
    asyncio.run(main())
