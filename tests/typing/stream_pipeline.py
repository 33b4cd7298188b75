"""stream() into several writables, and pipeline() with its duplex.

Type-checked by tests/test_typing.py (mypy --strict), not run by the tests.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

from undipy import (
    AbortController,
    Client,
    PipelineBody,
    PipelineDuplex,
    PipelineHandlerData,
    StreamData,
    StreamFactoryData,
    header,
)

ORIGIN = "http://127.0.0.1:8080"


class Sink:
    """A writable of one's own: an async write, and a drain()."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    async def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    async def drain(self) -> None:
        await asyncio.sleep(0)


async def to_buffer(client: Client) -> StreamData:
    buf = io.BytesIO()
    controller = AbortController()
    data = await client.stream(
        lambda d: buf,
        path="/",
        method="GET",
        headers={"accept": "*/*"},
        query={"page": 1},
        idempotent=True,
        blocking=False,
        reset=False,
        headers_timeout=5,
        body_timeout=5,
        expect_continue=False,
        throw_on_error=True,
        origin=ORIGIN,
        opaque="x",
        signal=controller.signal,
        on_info=lambda info: print(info["status_code"]),
    )
    print(buf.getvalue(), data.opaque, data.trailers, data.context)
    return data


def choose(data: StreamFactoryData) -> Sink:
    status: int = data.status_code
    print(status, header(data.headers, "content-type"), data.opaque)
    data.context["chosen"] = True
    return Sink()


async def to_writers(client: Client, writer: asyncio.StreamWriter) -> None:
    with open("download.bin", "wb") as f:
        await client.stream(lambda d: f, path="/big", method="GET")
    await client.stream(lambda d: writer, path="/big", method="GET")
    await client.stream(choose, path="/", method="POST", body=b"data")
    task: asyncio.Task[StreamData] = asyncio.create_task(
        client.stream(choose, path="/", method="GET", signal=asyncio.Event())
    )
    await task

    def done(err: BaseException | None, data: StreamData | None) -> None:
        print(err, data and data.trailers)

    client.stream(choose, done, path="/", method="GET")
    client.stream(choose, callback=done, path="/", method="GET")


async def upper(body: PipelineBody) -> AsyncIterator[bytes]:
    async for chunk in body:
        yield chunk.upper()


def handler(data: PipelineHandlerData) -> AsyncIterator[bytes]:
    print(data.status_code, data.headers, data.opaque, data.context)
    return upper(data.body)


async def objects(body: PipelineBody) -> AsyncIterator[dict[str, int]]:
    n = 0
    async for chunk in body:
        n += len(chunk)
        yield {"seen": n}


async def pipe(client: Client) -> bytes:
    dup: PipelineDuplex = client.pipeline(
        handler,
        path="/echo",
        method="PUT",
        headers={"content-type": "text/plain"},
        query={"a": "b"},
        idempotent=False,
        blocking=False,
        reset=False,
        headers_timeout=5.0,
        body_timeout=5.0,
        expect_continue=False,
        throw_on_error=False,
        origin=ORIGIN,
        opaque=None,
        signal=None,
        on_info=None,
        object_mode=False,
    )

    async def feed() -> None:
        await dup.write(b"hello ")
        await dup.write("text")
        await dup.write(bytearray(b"!"))
        await dup.end(b"world")

    feeder = asyncio.create_task(feed())
    out = b"".join([chunk async for chunk in dup])
    await feeder
    return out


async def pipe_more(client: Client) -> None:
    async with client.pipeline(lambda data: data.body, path="/", method="POST") as dup:
        await dup.end()
        async for chunk in dup:
            print(chunk)
    dup2 = client.pipeline(lambda d: objects(d.body), path="/", method="GET", object_mode=True)
    await dup2.end()
    items: list[Any] = [item async for item in dup2]
    print(items, dup2.destroyed)
    dup3 = client.pipeline(handler, path="/", method="GET", signal=AbortController().signal)
    dup3.destroy(RuntimeError("stop"))
    dup3.destroy()
    await dup3.aclose()


async def main() -> None:
    async with Client(ORIGIN) as client:
        await to_buffer(client)
        _, writer = await asyncio.open_connection("127.0.0.1", 9000)
        await to_writers(client, writer)
        writer.close()
        print(await pipe(client))
        await pipe_more(client)


async def rejected(client: Client) -> None:
    """Calls that must not type-check (never run)."""
    buf = io.BytesIO()
    await client.stream(lambda d: 1, path="/", method="GET")  # type: ignore[arg-type, return-value]
    await client.stream(lambda d: buf, path="/", method="GET", upgrade="h2c")  # type: ignore[call-overload]
    await client.stream(lambda d: buf, method="GET")  # type: ignore[call-overload]
    await client.stream(path="/", method="GET")  # type: ignore[call-overload]
    client.pipeline(handler, path="/", method="PUT", body=b"x")  # type: ignore[call-arg]
    client.pipeline(handler, path="/", method="GET", upgrade="x")  # type: ignore[call-arg]
    client.pipeline(handler, path="/", method="GET", object_mode=1)  # type: ignore[arg-type]
    client.pipeline(handler, path="/", method="GET", callback=print)  # type: ignore[call-arg]
    client.pipeline(lambda d: b"not async", path="/", method="GET")  # type: ignore[arg-type, return-value]
    await client.pipeline(handler, path="/", method="GET")  # type: ignore[misc]
    dup = client.pipeline(handler, path="/", method="PUT")
    await dup.write(1)  # type: ignore[arg-type]


if __name__ == "__main__":
    asyncio.run(main())
