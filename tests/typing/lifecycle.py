"""Client and Pool: every constructor option, attributes, stats, close(),
destroy(), async with, events.

Type-checked by tests/test_typing.py (mypy --strict), not run by the tests.
"""

from __future__ import annotations

import asyncio

from undipy import (
    Client,
    ClientDestroyedError,
    ClientStats,
    Pool,
    PoolStats,
)

ORIGIN = "http://127.0.0.1:8080"


def make_client() -> Client:
    return Client(
        ORIGIN,
        pipelining=10,
        connect_timeout=10,
        headers_timeout=300.0,
        body_timeout=300.0,
        keep_alive_timeout=4.0,
        keep_alive_max_timeout=600.0,
        keep_alive_timeout_threshold=2.0,
        max_header_size=16384,
        max_response_size=-1,
        max_requests_per_client=None,
        socket_path=None,
        strict_content_length=True,
        local_address="127.0.0.1",
        tls=None,
    )


def make_pool() -> Pool:
    return Pool(ORIGIN, connections=8, keep_alive_timeout=10, max_requests_per_client=100)


def closed(err: BaseException | None, _: None) -> None:
    print("closed", err)


def describe(d: Client | Pool) -> str:
    return f"{d.origin} pipelining={d.pipelining} closed={d.closed} destroyed={d.destroyed}"


async def main() -> None:
    async with make_client() as client:
        stats: ClientStats = client.stats
        print(stats.connected, stats.pending, stats.running, stats.size, describe(client))
        client.pipelining = 4

    async with make_pool() as pool:
        pstats: PoolStats = pool.stats
        print(pstats.free, pstats.queued)

    unbounded = Pool(ORIGIN)
    unix = Client("http://localhost", socket_path="/run/app.sock")
    print(unbounded.stats.size, unix.stats.size)

    await unix.close()
    closing: asyncio.Future[None] = unbounded.close()
    await closing
    unbounded.close(callback=closed)
    unbounded.close(closed)

    a, b, c, d, e = (make_client() for _ in range(5))
    await a.destroy()
    await b.destroy(RuntimeError("shutting down"))
    c.destroy(ValueError("x"), callback=closed)
    d.destroy(closed)
    e.destroy(callback=closed)
    try:
        await a.close()
    except ClientDestroyedError as err:
        print(err.code)

    listened = make_pool()
    same: Pool = listened.on("drain", lambda origin: print(origin)).once(
        "connect", lambda origin, targets: print(origin, targets)
    )
    same.off("drain", print)
    listened.emit("drain", ORIGIN)
    await asyncio.gather(listened.close(), make_pool().destroy())


async def rejected(client: Client, pool: Pool) -> None:
    """Calls that must not type-check (never run)."""
    Client(ORIGIN, bogus=1)  # type: ignore[call-arg]
    Client(ORIGIN, pipelining="10")  # type: ignore[arg-type]
    Client(ORIGIN, headersTimeout=1)  # type: ignore[call-arg]
    Client(ORIGIN, max_requests_per_client=1.5)  # type: ignore[arg-type]
    Client(ORIGIN, strict_content_length=None)  # type: ignore[arg-type]
    Client(ORIGIN, connections=2)  # type: ignore[call-arg]
    Client(origin=1)  # type: ignore[arg-type]
    Pool(ORIGIN, connections="2")  # type: ignore[arg-type]
    Pool(ORIGIN, 2, pipelining=None)  # type: ignore[arg-type]
    await client.close(closed)  # type: ignore[misc]
    await client.destroy(closed)  # type: ignore[misc]
    await client.destroy("error")  # type: ignore[call-overload]
    async with Pool(ORIGIN) as p:
        print(p.stats.free)
        async with Client(ORIGIN) as c:
            print(c.stats.free)  # type: ignore[attr-defined]
    pool.pipelining = "2"  # type: ignore[assignment]


if __name__ == "__main__":
    asyncio.run(main())
