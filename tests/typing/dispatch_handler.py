"""dispatch() with handlers (a DispatchHandler subclass and a plain class),
every dispatch option, upgrades through dispatch(), and the events.

Type-checked by tests/test_typing.py (mypy --strict), not run by the tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from undipy import (
    Client,
    Dispatcher,
    DispatchHandler,
    InformationalError,
    Pool,
    UpgradedSocket,
)

ORIGIN = "http://127.0.0.1:8080"


class Collect(DispatchHandler):
    def __init__(self, done: asyncio.Future[bytes]) -> None:
        self.done = done
        self.chunks: list[bytes] = []
        self.abort: Callable[..., None] | None = None

    def on_connect(self, abort: Callable[..., None], context: dict[str, Any]) -> None:
        self.abort = abort
        context["started"] = True

    def on_headers(
        self,
        status_code: int,
        headers: list[bytes],
        resume: Callable[[], None],
        status_text: str,
    ) -> bool:
        print(status_code, status_text, headers)
        return True

    def on_data(self, chunk: bytes) -> bool:
        self.chunks.append(chunk)
        return True

    def on_complete(self, trailers: list[bytes]) -> None:
        self.done.set_result(b"".join(self.chunks))

    def on_error(self, error: BaseException) -> None:
        self.done.set_exception(error)


class Slow(DispatchHandler):
    """Pauses on every chunk and resumes once it is processed."""

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.resume: Callable[[], None] = lambda: None

    def on_headers(
        self,
        status_code: int,
        headers: list[bytes],
        resume: Callable[[], None],
        status_text: str,
    ) -> bool:
        self.resume = resume
        return True

    def on_data(self, chunk: bytes) -> bool:
        asyncio.get_running_loop().call_later(0.01, self.resume)
        return False

    def on_complete(self, trailers: list[bytes]) -> None:
        self.done.set_result(None)

    def on_error(self, error: BaseException) -> None:
        self.done.set_exception(error)


class Plain:
    """A handler that does not derive from DispatchHandler, with names of its own."""

    def __init__(self) -> None:
        self.socket: UpgradedSocket | None = None
        self.failed: BaseException | None = None

    def on_connect(self, abort: Callable[[], None], ctx: dict[str, Any]) -> None:
        pass

    def on_headers(
        self, code: int, raw: list[bytes], resume: Callable[[], object], text: str
    ) -> None:
        pass

    def on_data(self, data: bytes) -> None:
        pass

    def on_complete(self, trailers: list[bytes]) -> None:
        pass

    def on_error(self, err: BaseException) -> None:
        self.failed = err

    def on_upgrade(self, status_code: int, headers: list[bytes], socket: UpgradedSocket) -> None:
        self.socket = socket

    def on_body_sent(self, chunk: bytes) -> None:
        print(len(chunk))


class Upgraded(DispatchHandler):
    def __init__(self, done: asyncio.Future[UpgradedSocket]) -> None:
        self.done = done

    def on_upgrade(self, status_code: int, headers: list[bytes], socket: UpgradedSocket) -> None:
        self.done.set_result(socket)

    def on_error(self, error: BaseException) -> None:
        self.done.set_exception(error)


async def dispatch_all(client: Client) -> bytes:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    ok: bool = client.dispatch(
        Collect(done),
        path="/upload",
        method="PUT",
        headers=[("content-type", "text/plain"), ("x-many", ["1", "2"]), ("x-none", None)],
        query={"v": 1},
        body="hello",
        idempotent=True,
        blocking=False,
        reset=True,
        headers_timeout=10,
        body_timeout=10.0,
        expect_continue=False,
        throw_on_error=False,
        origin=ORIGIN,
    )
    if not ok:
        drained: asyncio.Future[None] = loop.create_future()
        client.once("drain", lambda origin: drained.set_result(None))
        await drained
    return await done


async def upgrade_by_dispatch(pool: Pool) -> None:
    done: asyncio.Future[UpgradedSocket] = asyncio.get_running_loop().create_future()
    pool.dispatch(
        Upgraded(done),
        path="/chat",
        method="GET",
        upgrade="websocket",
        headers={"sec-websocket-version": "13"},
    )
    async with await done as sock:
        await sock.write(b"hi")
        print(await sock.read())

    plain = Plain()
    pool.dispatch(plain, path="127.0.0.1:9", method="CONNECT")


def on_disconnect(origin: str, targets: list[Dispatcher], error: BaseException) -> None:
    if not isinstance(error, InformationalError):
        print("closed:", origin, type(error).__name__, len(targets))


async def main() -> None:
    async with Client(ORIGIN, pipelining=10) as client:
        client.on("connect", lambda origin, targets: print("up", origin))
        client.on("disconnect", on_disconnect).on("connection_error", on_disconnect)
        print(await dispatch_all(client))
        slow: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        client.dispatch(Slow(slow), path="/big", method="GET")
        await slow
        client.off("disconnect", on_disconnect)
    async with Pool(ORIGIN) as pool:
        await upgrade_by_dispatch(pool)


class NoErrorMethod:
    def on_connect(self, abort: Callable[..., None], context: dict[str, Any]) -> None: ...
    def on_headers(
        self, status_code: int, headers: list[bytes], resume: Callable[[], None], text: str
    ) -> bool:
        return True

    def on_data(self, chunk: bytes) -> bool:
        return True

    def on_complete(self, trailers: list[bytes]) -> None: ...


class WrongData(NoErrorMethod):
    def on_error(self, error: BaseException) -> None: ...
    def on_data(self, chunk: str) -> bool:  # type: ignore[override]
        return True


def rejected(client: Client, done: asyncio.Future[bytes]) -> None:
    """Calls that must not type-check (never run)."""
    client.dispatch(Collect(done), path="/", method="GET", opaque=1)  # type: ignore[call-arg]
    client.dispatch(Collect(done), path="/", method="GET", signal=None)  # type: ignore[call-arg]
    client.dispatch(Collect(done), path="/", method="GET", on_info=print)  # type: ignore[call-arg]
    client.dispatch(Collect(done), method="GET")  # type: ignore[call-arg]
    client.dispatch(Collect(done), path="/", method=b"GET")  # type: ignore[arg-type]
    client.dispatch(Collect(done), path="/", method="GET", upgrade=True)  # type: ignore[arg-type]
    client.dispatch(Collect(done), path="/", method="GET", reset=1)  # type: ignore[arg-type]
    client.dispatch(object(), path="/", method="GET")  # type: ignore[arg-type]
    client.dispatch(NoErrorMethod(), path="/", method="GET")  # type: ignore[arg-type]
    client.dispatch(WrongData(), path="/", method="GET")  # type: ignore[arg-type]
    client.dispatch(path="/", method="GET")  # type: ignore[call-arg]


if __name__ == "__main__":
    asyncio.run(main())
