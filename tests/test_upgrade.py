"""upgrade(), connect() and the socket they hand over, against loopback servers.

Covers Dispatcher.md's "Basic Upgrade Request", "Dispatch Upgrade Request" and "Connect
request with echo" examples, undici's test/client-upgrade.js and client-connect.js
scenarios (the bytes behind the 101 are read first, waiting for an empty pipeline,
aborts before and after the answer), the socket object itself (half-close, echo with
backpressure, close, garbage collection, Unix sockets) and a WebSocket echo through
docs/examples/websocket_client.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import undipy
from helpers import RawServerFactory, Recorder, answer, closing, head, host_of, pattern, within
from servers import RawConn, TlsPair, response
from undipy import (
    AbortController,
    ConnectData,
    RequestAbortedError,
    SocketError,
    UpgradeData,
    UpgradedSocket,
)

SWITCH = b"HTTP/1.1 101\r\nhello: world\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
"""undici's 'basic upgrade' answer head."""

ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


def upgrade_request(srv: Any, path: str = "/", protocol: str = "Websocket") -> bytes:
    return head(
        f"GET {path} HTTP/1.1",
        f"host: {host_of(srv)}",
        "connection: upgrade",
        f"upgrade: {protocol}",
    )


async def ok_text(client: undipy.Dispatcher, path: str = "/next") -> str:
    """A plain GET on ``client``: its body as text."""
    resp = await within(client.request(path=path, method="GET"))
    assert resp.status_code == 200
    return str(await within(resp.body.text()))


async def read_some(conn: RawConn) -> bytes:
    """The next bytes the client sends (recorded in ``conn.received``); b"" at EOF."""
    while not conn.eof:
        if data := await conn.read_available(0.01):
            return data
    return await conn.read_available(0)


def switch_then(tail: bytes = b"Body") -> Any:
    """Script: answer the upgrade request with SWITCH and ``tail`` in one send, echo what
    the client sends until it ends its side, then end ours."""

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(SWITCH + tail)
        while data := await read_some(conn):
            await conn.send(data)
        await conn.shutdown_write()

    return script


async def tunnel_echo(conn: RawConn) -> None:
    """The seed's CONNECT server: 200, then everything the client sent (``head`` first)
    is sent back once the client ended its side, then the server ends its own."""
    await conn.read_until(b"\r\n\r\n")
    await conn.send(ESTABLISHED)
    received = await conn.read_available(0)
    while data := await read_some(conn):
        received += data
    await conn.send(received)
    await conn.shutdown_write()


# --------------------------------------------------------------------------- upgrade


@pytest.mark.loops
async def test_seed_basic_upgrade_request(raw_server: RawServerFactory) -> None:
    """Dispatcher.md, "Example 1 - Basic Upgrade Request": the server answers 101 with
    the protocol the client asked for; the client ends the socket, sees it end, and
    reads the upgrade header."""

    async def script(conn: RawConn) -> None:
        req = await conn.read_request()
        proto = [
            line.split(b": ", 1)[1] for line in req.split(b"\r\n") if line.startswith(b"upgrade:")
        ][0]
        await conn.send(
            b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: %s\r\n\r\n"
            % proto
        )
        assert await conn.wait_closed_by_peer()

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin)) as client:
        data = await within(client.upgrade(path="/"))
        assert isinstance(data, UpgradeData)
        assert isinstance(data.socket, UpgradedSocket)
        assert data.opaque is None
        await within(data.socket.write_eof())
        assert await within(data.socket.read()) == b""  # the server closed: 'end'
        assert data.headers["upgrade"] == "Websocket"
        await within(data.socket.close())
    assert srv.received == [upgrade_request(srv)]


@pytest.mark.loops
async def test_basic_upgrade_reads_the_bytes_behind_the_101_first(
    raw_server: RawServerFactory,
) -> None:
    """undici 'basic upgrade': headers exactly as sent, and the socket's first bytes are
    the 'Body' that came in the same packet as the head."""
    srv = await raw_server(switch_then(b"Body"))
    async with closing(undipy.Client(srv.origin)) as client:
        data = await within(
            client.upgrade(path="/", method="GET", protocol="Websocket", opaque="op")
        )
        assert data.headers == {"hello": "world", "connection": "upgrade", "upgrade": "websocket"}
        assert data.opaque == "op"
        sock = data.socket
        assert await within(sock.read()) == b"Body"
        await within(sock.write(b"ping"))
        assert await within(sock.read()) == b"ping"  # echoed
        await within(sock.write_eof())
        assert await within(sock.read()) == b""
        await within(sock.close())
    assert srv.received[0] == upgrade_request(srv) + b"ping"


async def test_upgrade_leaves_the_pool_and_the_next_request_uses_a_new_connection(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server([switch_then(b""), answer()])
    async with closing(undipy.Client(srv.origin)) as client:
        data = await within(client.upgrade(path="/ws"))
        assert await ok_text(client) == "ok"
        await within(data.socket.write(b"still mine"))
        assert await within(data.socket.read()) == b"still mine"
        await within(data.socket.close())
    assert srv.connections == 2
    assert srv.received[0] == upgrade_request(srv, "/ws") + b"still mine"
    assert srv.received[1] == head(
        "GET /next HTTP/1.1", f"host: {host_of(srv)}", "connection: keep-alive"
    )


async def test_bytes_behind_the_head_are_read_in_pieces_then_the_socket(
    raw_server: RawServerFactory,
) -> None:
    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(SWITCH + b"0123456789")
        await asyncio.sleep(0.05)
        await conn.send(b"later")
        await conn.shutdown_write()
        await conn.wait_closed_by_peer()

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin)) as client:
        sock = (await within(client.upgrade(path="/"))).socket
        assert await within(sock.read(4)) == b"0123"
        assert await within(sock.read(100)) == b"456789"
        assert await within(sock.read(-1)) == b"later"
        assert await within(sock.read()) == b""
        assert sock.at_eof
        await within(sock.close())


@pytest.mark.loops
async def test_socket_async_iteration_and_a_4_mib_echo_with_backpressure(
    raw_server: RawServerFactory,
) -> None:
    """Writes return only once the kernel took the data: 4 MiB cannot be buffered while
    nobody reads, so writing and reading must run side by side; every byte comes back
    in order."""
    srv = await raw_server(switch_then(b"head:"))
    payload = pattern(4 << 20)
    async with closing(undipy.Client(srv.origin)) as client:
        sock = (await within(client.upgrade(path="/"))).socket

        async def send() -> None:
            for i in range(0, len(payload), 100_000):
                await sock.write(payload[i : i + 100_000])
            await sock.write_eof()

        writer = asyncio.ensure_future(send())
        received = bytearray()
        async with asyncio.timeout(20):
            async for chunk in sock:
                received += chunk
        await within(writer)
        await within(sock.close())
    assert bytes(received) == b"head:" + payload


async def test_write_accepts_str_bytearray_and_memoryview(raw_server: RawServerFactory) -> None:
    srv = await raw_server(switch_then(b""))
    async with closing(undipy.Client(srv.origin)) as client:
        sock = (await within(client.upgrade(path="/"))).socket
        await within(sock.write("é"))
        await within(sock.write(bytearray(b"ab")))
        await within(sock.write(memoryview(b"xcdx")[1:3]))
        await within(sock.write_eof())
        assert await within(sock.read(-1)) == "é".encode() + b"abcd"
        with pytest.raises(TypeError):
            await sock.write(42)  # type: ignore[arg-type]
        await within(sock.close())


async def test_write_after_write_eof_or_close_raises_socket_error(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(switch_then(b""))
    async with closing(undipy.Client(srv.origin)) as client:
        sock = (await within(client.upgrade(path="/"))).socket
        await within(sock.write_eof())
        await within(sock.write_eof())  # idempotent
        with pytest.raises(SocketError):
            await sock.write(b"late")
        assert await within(sock.read()) == b""
        await within(sock.close())
        with pytest.raises(SocketError):
            await sock.write(b"closed")
        assert await within(sock.read()) == b""


async def test_close_wakes_a_pending_read_and_the_server_sees_the_close(
    raw_server: RawServerFactory,
) -> None:
    closed_by_client = asyncio.Event()

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(SWITCH)
        if await conn.wait_closed_by_peer():
            closed_by_client.set()

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin)) as client:
        sock = (await within(client.upgrade(path="/"))).socket
        fd = sock.fileno()
        assert fd >= 0
        reader = asyncio.ensure_future(sock.read())
        await asyncio.sleep(0.05)
        assert not reader.done()
        await within(sock.close())
        assert await within(reader) == b""
        assert sock.closed and sock.fileno() == -1
        await within(sock.close())  # closing again does nothing
        await within(closed_by_client.wait())


async def test_async_with_closes_the_socket(raw_server: RawServerFactory) -> None:
    closed_by_client = asyncio.Event()

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(SWITCH + b"x")
        if await conn.wait_closed_by_peer():
            closed_by_client.set()

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin)) as client:
        data = await within(client.upgrade(path="/"))
        async with data.socket as sock:
            assert await within(sock.read()) == b"x"
        assert sock.closed
        await within(closed_by_client.wait())


@pytest.mark.loops
@pytest.mark.parametrize("used", [False, True], ids=["unused", "after-a-read"])
async def test_a_dropped_socket_is_closed_by_the_garbage_collector(
    raw_server: RawServerFactory, used: bool
) -> None:
    """An UpgradedSocket dropped without close() must not leak its fd: nothing keeps it
    registered with the loop between calls, so the collector closes it."""
    closed_by_client = asyncio.Event()

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(SWITCH + b"x")
        if await conn.wait_closed_by_peer(timeout=5.0):
            closed_by_client.set()

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin)) as client:
        data = await within(client.upgrade(path="/"))
        if used:
            assert await within(data.socket.read()) == b"x"
            reader = asyncio.ensure_future(data.socket.read())
            await asyncio.sleep(0.02)  # a read waits on the loop ...
            reader.cancel()  # ... and is given up
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            del reader
            await asyncio.sleep(0)  # asyncio keeps the last step's exception until the next
        with pytest.warns(ResourceWarning):
            del data
            gc.collect()
        await within(closed_by_client.wait())


async def test_no_fd_leaks_over_many_upgrades(raw_server: RawServerFactory) -> None:
    """Twenty upgrade/close cycles and twenty upgrades aborted after the answer leave the
    process with the fds it had."""

    async def script(conn: RawConn) -> None:
        while await conn.read_request():
            await conn.send(SWITCH + b"x")
        await conn.wait_closed_by_peer()

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin)) as warmup:  # the loop's own fds open now
        await within((await within(warmup.upgrade(path="/"))).socket.close())
    before = len(os.listdir("/proc/self/fd"))
    async with closing(undipy.Client(srv.origin)) as client:
        for _ in range(20):
            data = await within(client.upgrade(path="/"))
            assert await within(data.socket.read()) == b"x"
            await within(data.socket.close())
        for _ in range(20):
            controller = AbortController()
            task = asyncio.ensure_future(client.upgrade(path="/", signal=controller.signal))
            await asyncio.sleep(0)
            controller.abort()
            with contextlib.suppress(RequestAbortedError):
                data = await within(task)
                await within(data.socket.close())
    async with asyncio.timeout(5):
        while srv.open_connections:
            await asyncio.sleep(0.01)
    assert srv.connections >= 21
    async with asyncio.timeout(2):  # the engine may close its last socket just after
        while len(os.listdir("/proc/self/fd")) > before:
            await asyncio.sleep(0.01)


async def test_non_101_answer_fails_with_bad_upgrade_and_the_client_stays_usable(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server([answer(response(200, b"no")), answer()])
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(SocketError) as info:
            await within(client.upgrade(path="/"))
        assert str(info.value) == (
            "bad upgrade: the server answered 200 OK (expected 101 Switching Protocols)"
        )
        assert info.value.status_code == 200
        assert info.value.headers == {"content-length": "2"}
        assert info.value.code == "UND_ERR_SOCKET"
        assert await ok_text(client) == "ok"
    assert srv.connections == 2


async def test_a_101_that_names_no_protocol_still_switches(raw_server: RawServerFactory) -> None:
    """undici's 'upgrade error' server (a 101 without an Upgrade header): as in current
    undici ("a 101 switches protocols, whether or not it names one in Upgrade"), the
    socket is handed over, the bytes behind the head first."""

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(b"HTTP/1.1 101\r\nhello: world\r\nconnection: upgrade\r\n\r\nBody")
        assert await conn.wait_closed_by_peer()

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin)) as client:
        data = await within(client.upgrade(path="/"))
        assert data.headers == {"hello": "world", "connection": "upgrade"}
        assert await within(data.socket.read()) == b"Body"
        await within(data.socket.close())


async def test_upgrade_sends_method_protocol_and_headers(raw_server: RawServerFactory) -> None:
    srv = await raw_server(switch_then(b""))
    async with closing(undipy.Client(srv.origin)) as client:
        data = await within(
            client.upgrade(path="/chat", method="POST", protocol="h2c, foo", headers={"x-a": "1"})
        )
        await within(data.socket.close())
    assert srv.received[0] == head(
        "POST /chat HTTP/1.1",
        f"host: {host_of(srv)}",
        "connection: upgrade",
        "upgrade: h2c, foo",
        "x-a: 1",
        "content-length: 0",
    )


async def test_upgrade_callback_form(raw_server: RawServerFactory) -> None:
    srv = await raw_server([switch_then(b"cb"), answer(response(200))])
    async with closing(undipy.Client(srv.origin)) as client:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[Any, Any]] = loop.create_future()
        assert client.upgrade(callback=lambda e, d: done.set_result((e, d)), path="/") is None
        err, data = await within(done)
        assert err is None and isinstance(data, UpgradeData)
        assert await within(data.socket.read()) == b"cb"
        await within(data.socket.close())
        failed: asyncio.Future[tuple[Any, Any]] = loop.create_future()
        client.upgrade(callback=lambda e, d: failed.set_result((e, d)), path="/")
        err, data = await within(failed)
        assert isinstance(err, SocketError) and data is None


@pytest.mark.loops
async def test_upgrade_waits_for_an_empty_pipeline(raw_server: RawServerFactory) -> None:
    """undici 'upgrade wait for empty pipeline': with pipelining 3, the upgrade request
    is written only once the GET before it was answered; a request made after the
    upgrade goes on a new connection."""
    early: list[bytes] = []

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()  # GET /
        early.append(await conn.read_available(0.3))
        await conn.send(response(200, b"first"))
        assert await conn.read_request() == upgrade_request(srv, "/ws")
        await conn.send(SWITCH + b"Body")
        while data := await read_some(conn):
            await conn.send(data)
        await conn.shutdown_write()

    srv = await raw_server([script, answer()])
    async with closing(undipy.Client(srv.origin, pipelining=3)) as client:
        first = asyncio.ensure_future(client.request(path="/", method="GET"))
        await srv.wait_connections(1)
        up = asyncio.ensure_future(client.upgrade(path="/ws"))
        await asyncio.sleep(0)
        after = asyncio.ensure_future(client.request(path="/after", method="GET"))
        resp = await within(first)
        assert await within(resp.body.text()) == "first"
        data = await within(up)
        assert await within(data.socket.read()) == b"Body"
        await within(data.socket.write(b"Body"))
        await within(data.socket.write_eof())
        assert await within(data.socket.read(-1)) == b"Body"
        await within(data.socket.close())
        resp = await within(after)
        assert await within(resp.body.text()) == "ok"
    assert early == [b""]
    assert srv.connections == 2
    assert srv.received[1] == head(
        "GET /after HTTP/1.1", f"host: {host_of(srv)}", "connection: keep-alive"
    )


async def test_upgrade_and_connect_on_a_pool(raw_server: RawServerFactory) -> None:
    async def either(conn: RawConn) -> None:
        req = await conn.read_until(b"\r\n\r\n")
        await conn.send(ESTABLISHED if req.startswith(b"CONNECT") else SWITCH + b"up")
        while data := await read_some(conn):
            await conn.send(data)
        await conn.shutdown_write()

    srv = await raw_server(either)
    async with closing(undipy.Pool(srv.origin, connections=2)) as pool:
        up, tunnel = await within(
            asyncio.gather(pool.upgrade(path="/"), pool.connect(path="localhost:1"))
        )
        assert await within(up.socket.read()) == b"up"
        for sock in (up.socket, tunnel.socket):
            await within(sock.write(b"echo"))
            await within(sock.write_eof())
            assert await within(sock.read(-1)) == b"echo"
            await within(sock.close())
    assert srv.connections == 2


# --------------------------------------------------------------------------- upgrade aborts


async def hold_upgrade(conn: RawConn) -> None:
    """Script: read the upgrade request, never answer, wait for the client to go."""
    if await conn.read_request():
        await conn.wait_closed_by_peer()


@pytest.mark.loops
async def test_upgrade_aborted_before_the_answer(raw_server: RawServerFactory) -> None:
    """undici 'upgrade aborted': RequestAbortedError, the connection is dropped, the
    client stays usable."""
    srv = await raw_server([hold_upgrade, answer()])
    controller = AbortController()
    async with closing(undipy.Client(srv.origin, pipelining=3)) as client:
        task = asyncio.ensure_future(
            client.upgrade(path="/", signal=controller.signal, opaque="asd")
        )
        await within(_wait_received(srv, 0, upgrade_request(srv)))
        controller.abort()
        with pytest.raises(RequestAbortedError) as info:
            await within(task)
        assert info.value.code == "UND_ERR_ABORTED"
        await srv.wait_closed(1)
        assert srv.conns[0].eof
        assert await ok_text(client) == "ok"
    assert srv.received[0] == upgrade_request(srv)


async def test_upgrade_with_an_already_aborted_signal_sends_nothing(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server(answer())
    reason = ValueError("mine")
    controller = AbortController()
    controller.abort(reason)
    event = asyncio.Event()
    event.set()
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(ValueError) as info:
            await within(client.upgrade(path="/", signal=controller.signal))
        assert info.value is reason
        with pytest.raises(RequestAbortedError):
            await within(client.upgrade(path="/", signal=event))
        with pytest.raises(RequestAbortedError):
            await within(client.connect(path="localhost:1", signal=event))
        assert srv.connections == 0


async def test_upgrade_aborted_by_an_asyncio_event(raw_server: RawServerFactory) -> None:
    srv = await raw_server([hold_upgrade, answer()])
    event = asyncio.Event()
    async with closing(undipy.Client(srv.origin)) as client:
        task = asyncio.ensure_future(client.upgrade(path="/", signal=event))
        await within(_wait_received(srv, 0, upgrade_request(srv)))
        event.set()
        with pytest.raises(RequestAbortedError):
            await within(task)
        assert await ok_text(client) == "ok"


@pytest.mark.loops
async def test_upgrade_aborted_after_the_answer_was_sent(raw_server: RawServerFactory) -> None:
    """undici 'basic aborted after res': the signal fires once the server sent the 101
    but before the client handled it: RequestAbortedError, and the handed-over socket
    is closed (the server sees it end), not leaked."""
    controller = AbortController()

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        conn.writer.write(SWITCH + b"Body")
        controller.abort()  # same loop step: the client cannot have seen the 101
        assert await conn.wait_closed_by_peer()

    srv = await raw_server([script, answer()])
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(RequestAbortedError):
            await within(client.upgrade(path="/", signal=controller.signal))
        await srv.wait_closed(1)
        assert srv.conns[0].eof
        assert await ok_text(client) == "ok"


async def test_abort_after_the_upgrade_resolved_does_nothing(raw_server: RawServerFactory) -> None:
    srv = await raw_server(switch_then(b""))
    controller = AbortController()
    event = asyncio.Event()
    async with closing(undipy.Client(srv.origin)) as client:
        data = await within(client.upgrade(path="/", signal=controller.signal))
        controller.abort()
        data2 = await within(client.upgrade(path="/", signal=event))
        event.set()
        for d in (data, data2):
            await within(d.socket.write(b"alive"))
            assert await within(d.socket.read()) == b"alive"
            await within(d.socket.close())
        assert controller.signal._listeners == []


async def test_cancelling_the_awaiting_task_aborts_the_upgrade(
    raw_server: RawServerFactory,
) -> None:
    srv = await raw_server([hold_upgrade, answer()])
    async with closing(undipy.Client(srv.origin)) as client:
        task = asyncio.ensure_future(client.upgrade(path="/"))
        await within(_wait_received(srv, 0, upgrade_request(srv)))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await srv.wait_closed(1)
        assert srv.conns[0].eof
        assert await ok_text(client) == "ok"


async def _wait_received(srv: Any, index: int, wanted: bytes) -> None:
    """Wait until connection ``index`` of ``srv`` received ``wanted`` (polling)."""
    while len(srv.conns) <= index or srv.conns[index].received != wanted:
        await asyncio.sleep(0.005)


# --------------------------------------------------------------------------- dispatch upgrade


async def test_seed_dispatch_upgrade_request_handler_gets_the_socket(
    raw_server: RawServerFactory,
) -> None:
    """Dispatcher.md, "Example 2 - Dispatch Upgrade Request": the server answers 101 and
    ends the socket at once; on_upgrade gets status, raw headers and the socket, which
    reads to its end; the client ends its side and closes."""

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(
            b"HTTP/1.1 101 Web Socket Protocol Handshake\r\n"
            b"Upgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n"
        )
        await conn.shutdown_write()
        assert await conn.wait_closed_by_peer()

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin)) as client:
        h = Recorder()
        client.dispatch(h, path="/", method="GET", upgrade="websocket")
        await h.wait()
        assert h.kinds == ["connect", "upgrade"]
        _, status, headers, sock = h.events[-1]
        assert status == 101
        assert headers == [b"Upgrade", b"WebSocket", b"Connection", b"Upgrade"]
        assert isinstance(sock, UpgradedSocket)
        assert await within(sock.read()) == b""  # 'end'
        await within(sock.write_eof())
        await within(sock.close())
        await srv.wait_closed(1)
    assert srv.received == [upgrade_request(srv, protocol="websocket")]


# --------------------------------------------------------------------------- connect


@pytest.mark.loops
async def test_seed_connect_request_with_echo(raw_server: RawServerFactory) -> None:
    """Dispatcher.md, "Example - Connect request with echo"."""
    srv = await raw_server(tunnel_echo)
    async with closing(undipy.Client(srv.origin)) as client:
        data = await within(client.connect(path="/"))
        assert isinstance(data, ConnectData)
        wanted = "Body"
        received = b""
        await within(data.socket.write(wanted))
        await within(data.socket.write_eof())
        async with asyncio.timeout(5):
            async for chunk in data.socket:
                received += chunk
        assert received.decode() == wanted
        await within(data.socket.close())
    assert srv.received == [head("CONNECT / HTTP/1.1", f"host: {host_of(srv)}") + b"Body"]


async def test_connect_gives_status_headers_socket_and_opaque(raw_server: RawServerFactory) -> None:
    async def script(conn: RawConn) -> None:
        await conn.read_until(b"\r\n\r\n")
        await conn.send(
            b"HTTP/1.1 200 OK\r\nX-Proxy: yes\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n\r\nhi"
        )
        assert await conn.wait_closed_by_peer()

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin)) as client:
        data = await within(
            client.connect(path="example.com:443", headers={"proxy-authorization": "x"}, opaque=7)
        )
        assert data.status_code == 200
        assert data.headers == {"x-proxy": "yes", "set-cookie": ["a", "b"]}
        assert data.opaque == 7
        assert await within(data.socket.read()) == b"hi"
        await within(data.socket.close())
    assert srv.received == [
        head(
            "CONNECT example.com:443 HTTP/1.1",
            f"host: {host_of(srv)}",
            "proxy-authorization: x",
        )
    ]


@pytest.mark.parametrize("status", [407, 500, 301])
async def test_connect_non_2xx_fails_with_bad_connect_and_the_client_stays_usable(
    raw_server: RawServerFactory, status: int
) -> None:
    srv = await raw_server([answer(response(status, b"denied")), answer()])
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(SocketError) as info:
            await within(client.connect(path="localhost:443"))
        assert str(info.value).startswith(f"bad connect: the server answered {status} ")
        assert str(info.value).endswith("(expected a 2xx)")
        assert info.value.status_code == status
        assert await ok_text(client) == "ok"
    assert srv.connections == 2


async def test_connect_callback_form(raw_server: RawServerFactory) -> None:
    srv = await raw_server(tunnel_echo)
    async with closing(undipy.Client(srv.origin)) as client:
        done: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()
        ret = client.connect(callback=lambda e, d: done.set_result((e, d)), path="h:1")
        assert ret is None
        err, data = await within(done)
        assert err is None and data.status_code == 200
        await within(data.socket.write_eof())
        assert await within(data.socket.read(-1)) == b""
        await within(data.socket.close())


async def test_connect_rejects_method_and_upgrade_options(raw_server: RawServerFactory) -> None:
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(undipy.InvalidArgumentError):
            await within(client.connect(path="h:1", method="GET"))
        with pytest.raises(undipy.InvalidArgumentError):
            await within(client.connect(path="h:1", upgrade="x"))
        with pytest.raises(undipy.InvalidArgumentError):
            await within(client.request(path="h:1", method="CONNECT"))
    assert srv.connections == 0


async def test_connect_waits_for_an_empty_pipeline(raw_server: RawServerFactory) -> None:
    early: list[bytes] = []

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        early.append(await conn.read_available(0.3))
        await conn.send(response(200, b"first"))
        await tunnel_echo(conn)

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin, pipelining=3)) as client:
        first = asyncio.ensure_future(client.request(path="/", method="GET"))
        await srv.wait_connections(1)
        tunnel = asyncio.ensure_future(client.connect(path="localhost:9"))
        resp = await within(first)
        assert await within(resp.body.text()) == "first"
        data = await within(tunnel)
        await within(data.socket.write(b"through"))
        await within(data.socket.write_eof())
        assert await within(data.socket.read(-1)) == b"through"
        await within(data.socket.close())
    assert early == [b""]


async def test_connect_aborted_before_the_answer(raw_server: RawServerFactory) -> None:
    """undici 'connect aborted'."""

    async def hold(conn: RawConn) -> None:
        await conn.read_until(b"\r\n\r\n")
        await conn.wait_closed_by_peer()

    srv = await raw_server([hold, answer()])
    controller = AbortController()
    async with closing(undipy.Client(srv.origin)) as client:
        task = asyncio.ensure_future(client.connect(path="x:1", signal=controller.signal))
        await within(_wait_received(srv, 0, head("CONNECT x:1 HTTP/1.1", f"host: {host_of(srv)}")))
        controller.abort()
        with pytest.raises(RequestAbortedError):
            await within(task)
        await srv.wait_closed(1)
        assert await ok_text(client) == "ok"


@pytest.mark.loops
async def test_connect_over_a_unix_socket(raw_server: RawServerFactory, unix_path: str) -> None:
    srv = await raw_server(tunnel_echo, unix_path=unix_path)
    async with closing(undipy.Client("http://localhost", socket_path=unix_path)) as client:
        data = await within(client.connect(path="localhost:443"))
        assert data.socket.get_extra_info("socket").family.name == "AF_UNIX"
        payload = pattern(300_000)
        await within(data.socket.write(payload))
        await within(data.socket.write_eof())
        assert await within(data.socket.read(-1)) == payload
        await within(data.socket.close())
    assert srv.received[0] == head("CONNECT localhost:443 HTTP/1.1", "host: localhost") + payload


# --------------------------------------------------------------------------- WebSocket


def load_example() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "docs" / "examples" / "websocket_client.py"
    spec = importlib.util.spec_from_file_location("websocket_client_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def websocket_echo(greeting: str | None, seen: list[str]) -> Any:
    """Script: a WebSocket server on websockets' sans-I/O ServerProtocol. It sends
    ``greeting`` in the same packet as its 101, then echoes every message (recording
    it in ``seen``) until the closing handshake."""
    from websockets.frames import Opcode
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    async def script(conn: RawConn) -> None:
        proto = ServerProtocol()
        proto.receive_data(await conn.read_request())
        (request,) = proto.events_received()
        proto.send_response(proto.accept(request))
        if greeting is not None:
            proto.send_text(greeting.encode())
        await conn.send(b"".join(proto.data_to_send()))
        while proto.state is not State.CLOSED:
            data = await asyncio.wait_for(read_some(conn), 5)
            if data:
                proto.receive_data(data)
            else:
                proto.receive_eof()
            for frame in proto.events_received():
                if frame.opcode is Opcode.TEXT:
                    seen.append(frame.data.decode())
                    proto.send_text(frame.data)
                elif frame.opcode is Opcode.BINARY:
                    proto.send_binary(frame.data)
            for out in proto.data_to_send():
                if out:
                    await conn.send(out)
                elif conn.writer.can_write_eof():
                    await conn.shutdown_write()
                else:  # TLS in asyncio cannot half-close: close, as wss servers do
                    await conn.close()
                    return
            if not data:
                break

    return script


@pytest.mark.loops
@pytest.mark.parametrize("scheme", ["ws", "wss"])
async def test_websocket_echo_through_the_example_client(
    raw_server: RawServerFactory, tls_pair: TlsPair, scheme: str
) -> None:
    pytest.importorskip("websockets")
    example = load_example()
    seen: list[str] = []
    secure = scheme == "wss"
    srv = await raw_server(websocket_echo("welcome", seen), tls=tls_pair.server if secure else None)
    tls = {"ca": tls_pair.ca} if secure else None
    async with closing(undipy.Client(srv.origin, tls=tls)) as client:
        ws = await within(example.websocket_connect(client, f"{scheme}://{host_of(srv)}/chat"))
        # The greeting came in the same packet as the 101: it is the first message.
        assert await within(ws.recv()) == "welcome"
        await within(ws.send("hello, undipy"))
        assert await within(ws.recv()) == "hello, undipy"
        big = pattern(200_000)
        await within(ws.send(big))
        assert await within(ws.recv()) == big
        await within(ws.close())
        assert ws.socket.closed
        assert ws.protocol.close_code == 1000
    assert seen == ["hello, undipy"]
    req = srv.received[0].split(b"\r\n\r\n", 1)[0].decode().lower()
    assert req.startswith("get /chat http/1.1\r\n")
    assert "connection: upgrade" in req and "upgrade: websocket" in req
    assert "sec-websocket-version: 13" in req and "sec-websocket-key: " in req


async def test_websocket_example_rejects_a_bad_accept_key(raw_server: RawServerFactory) -> None:
    pytest.importorskip("websockets")
    example = load_example()

    async def script(conn: RawConn) -> None:
        assert await conn.read_request()
        await conn.send(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n"
        )
        assert await conn.wait_closed_by_peer()

    srv = await raw_server(script)
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(Exception, match="Sec-WebSocket-Accept"):
            await within(example.websocket_connect(client, f"ws://{host_of(srv)}/"))
        await srv.wait_closed(1)


async def test_websocket_example_main(
    raw_server: RawServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example's command line: send a message, print the echo."""
    pytest.importorskip("websockets")
    example = load_example()
    seen: list[str] = []
    srv = await raw_server(websocket_echo(None, seen))
    await within(example.main(f"ws://{host_of(srv)}/", "héllo"))
    assert capsys.readouterr().out == "héllo\n"
    assert seen == ["héllo"]
    await srv.wait_closed(1)


async def test_connect_without_a_target_is_refused_before_sending(
    raw_server: RawServerFactory,
) -> None:
    """It would write ``CONNECT  HTTP/1.1`` (fuzz finding connect-empty-target)."""
    srv = await raw_server(answer())
    async with closing(undipy.Client(srv.origin)) as client:
        with pytest.raises(undipy.InvalidArgumentError, match="CONNECT needs a target"):
            await within(client.connect(path=""))
        ok = await within(client.request(path="/next", method="GET"))
        assert await within(ok.body.bytes()) == b"ok"
    assert srv.connections == 1
    assert srv.received[0].startswith(b"GET /next ")
