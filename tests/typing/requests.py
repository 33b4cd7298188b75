"""request(): every option, each body and header form, ResponseData and Body,
the awaitable as a task and as a context manager, and the callback= form.

Type-checked by tests/test_typing.py (mypy --strict), not run by the tests.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from undipy import (
    AbortController,
    Body,
    Client,
    Pool,
    ResponseData,
    header,
    header_values,
)

ORIGIN = "http://127.0.0.1:8080"


async def get(client: Client, path: str) -> ResponseData:
    return await client.request(path=path, method="GET")


async def get_bytes(pool: Pool, path: str) -> bytes:
    resp = await pool.request(path=path, method="GET")
    return await resp.body.bytes()


async def get_text(client: Client) -> str:
    async with client.request(path="/", method="GET") as resp:
        return await resp.body.text()


async def get_json(client: Client) -> Any:
    resp = await client.request(path="/json", method="GET", headers={"accept": "application/json"})
    async with resp:
        return await resp.body.json()


async def every_option(client: Client) -> ResponseData:
    controller = AbortController()
    infos: list[int] = []
    return await client.request(
        path="/search",
        method="POST",
        headers={"content-type": "application/json", "x-many": ["1", "2"], "x-skipped": None},
        query={"q": "a b", "tag": ["x", "y"], "page": 2, "empty": None},
        body=b'{"a": 1}',
        idempotent=False,
        blocking=True,
        reset=False,
        headers_timeout=30,
        body_timeout=2.5,
        expect_continue=True,
        throw_on_error=True,
        origin=ORIGIN,
        opaque={"id": 1},
        signal=controller.signal,
        on_info=lambda info: infos.append(info["status_code"]),
    )


async def header_forms(client: Client) -> None:
    flat = ["x-a", "1", "X-B", "2", "X-B", "3"]
    pairs = [("x-a", "1"), ("X-B", "2")]
    as_bytes = {b"x-raw": b"\x01value"}
    numbers = {"x-int": 1, "x-float": 1.5, "x-bool": True}
    plain: dict[str, str] = {"x-a": "1"}
    many: dict[str, list[str]] = {"x-b": ["2", "3"]}
    for headers in (flat, pairs, as_bytes, numbers, plain, many):
        resp = await client.request(path="/", method="GET", headers=headers)
        await resp.body.dump()
    await (await client.request(path="/", method="GET", headers=("x-a", "1"))).body.dump()
    await (await client.request(path="/", method="GET", headers=[["x-a", "1"]])).body.dump()
    await (await client.request(path="/", method="GET", headers=None)).body.dump()
    mixed = await client.request(path="/", method="GET", headers={"x-a": ["1", None], "x-b": 2})
    await mixed.body.dump()
    numbers_inline = await client.request(path="/", method="GET", headers={"x-a": "1", "x-b": 2})
    await numbers_inline.body.dump()
    raw = await client.request(path="/", method="GET", headers={b"x-a": b"1", b"x-b": [b"2"]})
    await raw.body.dump()
    repeated = await client.request(
        path="/", method="GET", headers=[("x-a", ["1", "2"]), ("x-b", None), ("x-c", "3")]
    )
    await repeated.body.dump()


def lines() -> Iterator[bytes]:
    yield b"one\n"
    yield b"two\n"


async def parts() -> AsyncIterator[str]:
    for i in range(3):
        yield f"part {i}\n"


async def body_forms(client: Client) -> None:
    with open(__file__, "rb") as f:
        await (await client.request(path="/upload", method="PUT", body=f)).body.dump()
    for body in (b"bytes", bytearray(b"bytearray"), memoryview(b"view"), "text", None):
        await (await client.request(path="/upload", method="POST", body=body)).body.dump()
    await (await client.request(path="/", method="POST", body=io.BytesIO(b"x"))).body.dump()
    await (await client.request(path="/", method="POST", body=[b"a", b"b"])).body.dump()
    await (await client.request(path="/", method="POST", body=lines())).body.dump()
    await (await client.request(path="/", method="POST", body=parts())).body.dump()
    await (
        await client.request(
            path="/",
            method="POST",
            body=json.dumps({"a": 1}),
            headers={"content-type": "application/json"},
        )
    ).body.dump()


async def response_and_body(client: Client) -> None:
    resp = await get(client, "/")
    status: int = resp.status_code
    reason: str = resp.status_text
    ctype: str | None = header(resp.headers, "Content-Type")
    cookies: list[str] = header_values(resp.headers, "set-cookie")
    raw = resp.headers.get("content-type")
    if isinstance(raw, list):
        first: str = raw[0]
        print(first)
    opaque: Any = resp.opaque
    resp.context["seen"] = True
    body: Body = resp.body
    used: bool = body.body_used
    async for chunk in body:
        print(len(chunk) + status, reason, ctype, cookies, opaque, used)
    trailers: dict[str, str | list[str]] = resp.trailers
    print(header(trailers, "x-checksum"))

    other = await get(client, "/other")
    await other.body.dump(limit=1024)
    await (await get(client, "/closed")).body.aclose()


def on_response(err: BaseException | None, resp: ResponseData | None) -> None:
    if err is not None:
        print("failed:", err)
    elif resp is not None:
        asyncio.ensure_future(resp.body.dump())


async def tasks_and_callbacks(client: Client, pool: Pool) -> list[bytes]:
    task = asyncio.create_task(client.request(path="/slow", method="GET"))
    resp = await task
    await resp.body.dump()
    async with asyncio.TaskGroup() as tg:
        grouped = tg.create_task(client.request(path="/", method="GET"))
    await grouped.result().body.dump()
    first = await asyncio.wait_for(client.request(path="/", method="GET"), timeout=5)
    await first.body.dump()
    async with asyncio.timeout(5):
        await (await client.request(path="/", method="GET")).body.dump()

    client.request(on_response, path="/", method="GET")
    client.request(callback=on_response, path="/", method="GET")
    client.request(callback=lambda err, r: print(err, r and r.status_code), path="/", method="GET")

    event = asyncio.Event()
    await (await client.request(path="/", method="GET", signal=event)).body.dump()
    return await asyncio.gather(*(get_bytes(pool, f"/item/{i}") for i in range(8)))


async def main() -> None:
    async with Client(ORIGIN) as client, Pool(ORIGIN, connections=4, pipelining=10) as pool:
        await (await every_option(client)).body.dump()
        print(await get_text(client), await get_json(client))
        await header_forms(client)
        await body_forms(client)
        await response_and_body(client)
        print(len(await tasks_and_callbacks(client, pool)))


async def rejected(client: Client) -> None:
    """Calls that must not type-check (never run)."""
    await client.request(path=1, method="GET")  # type: ignore[call-overload]
    await client.request(path="/", method="GET", bogus=1)  # type: ignore[call-overload]
    await client.request(method="GET")  # type: ignore[call-overload]
    await client.request(path="/")  # type: ignore[call-overload]
    await client.request(path="/", method="GET", upgrade="websocket")  # type: ignore[call-overload]
    await client.request(path="/", method="GET", body=1)  # type: ignore[call-overload]
    await client.request(path="/", method="GET", headers="x-a: 1")  # type: ignore[arg-type]
    await client.request(path="/", method="GET", query="a=1")  # type: ignore[call-overload]
    await client.request(path="/", method="GET", signal=True)  # type: ignore[call-overload]
    await client.request(path="/", method="GET", idempotent="yes")  # type: ignore[call-overload]
    await client.request(path="/", method="GET", headers_timeout="1")  # type: ignore[call-overload]
    await client.request(path="/", method="GET", on_info=1)  # type: ignore[call-overload]
    await client.request(path="/", method="GET", throwOnError=True)  # type: ignore[call-overload]
    # With callback= nothing is returned: there is nothing to await.
    await client.request(on_response, path="/", method="GET")  # type: ignore[misc]
    resp = await get(client, "/")
    resp.headers["content-type"].lower()  # type: ignore[union-attr]
    text: str = resp.body.text()  # type: ignore[assignment]
    print(text)


if __name__ == "__main__":
    asyncio.run(main())
