"""Errors and aborting: the error classes and their attributes, builtin bases,
AbortController and AbortSignal, cancellation.

Type-checked by tests/test_typing.py (mypy --strict), not run by the tests.
"""

from __future__ import annotations

import asyncio
from typing import Any

import undipy
from undipy import (
    AbortController,
    AbortSignal,
    BodyTimeoutError,
    Client,
    ClientClosedError,
    ConnectTimeoutError,
    HeadersOverflowError,
    HeadersTimeoutError,
    HTTPParserError,
    InformationalError,
    InvalidArgumentError,
    InvalidReturnValueError,
    NotSupportedError,
    RequestAbortedError,
    RequestContentLengthMismatchError,
    RequestRetryError,
    ResponseContentLengthMismatchError,
    ResponseExceededMaxSizeError,
    ResponseStatusCodeError,
    SocketError,
    UndiciError,
    header,
)

ORIGIN = "http://127.0.0.1:8080"


async def fetch(client: Client, path: str) -> bytes:
    try:
        resp = await client.request(path=path, method="GET", throw_on_error=True)
        return await resp.body.bytes()
    except ResponseStatusCodeError as e:
        status: int = e.status_code
        body: Any = e.body
        print(status, body, header(e.headers, "content-type"), e.code, e.message)
    except TimeoutError as e:  # ConnectTimeoutError, HeadersTimeoutError, BodyTimeoutError
        print("timed out:", e)
    except ConnectionError as e:  # SocketError
        print("connection:", e)
    except HTTPParserError as e:
        code: str = e.code
        print(code)
    except undipy.UndiciError as e:
        print(e.code, e.message)
    return b""


def classify(err: BaseException) -> str:
    timeouts = (ConnectTimeoutError, HeadersTimeoutError, BodyTimeoutError)
    if isinstance(err, timeouts):
        assert isinstance(err, TimeoutError)
        return "timeout"
    if isinstance(err, InvalidArgumentError):
        value_error: ValueError = err
        return str(value_error)
    if isinstance(err, SocketError):
        connection_error: ConnectionError = err
        return f"{connection_error} {err.status_code} {err.headers}"
    if isinstance(err, RequestRetryError):
        return f"{err.status_code} {err.headers} {err.data}"
    others = (
        HeadersOverflowError,
        InvalidReturnValueError,
        RequestAbortedError,
        InformationalError,
        RequestContentLengthMismatchError,
        ResponseContentLengthMismatchError,
        ClientClosedError,
        NotSupportedError,
        ResponseExceededMaxSizeError,
    )
    if isinstance(err, others):
        undici: UndiciError = err
        return undici.code
    return type(err).__name__


async def aborting(client: Client) -> None:
    controller = AbortController()
    signal: AbortSignal = controller.signal
    signal.add_listener(lambda reason: print("aborted:", reason))
    task = asyncio.create_task(client.request(path="/slow", method="GET", signal=signal))
    controller.abort()
    controller.abort(RuntimeError("mine"))
    controller.abort("a reason")
    print(signal.aborted, signal.reason)
    try:
        await task
    except RequestAbortedError as e:
        print(e.message)

    slow = asyncio.create_task(client.request(path="/slow", method="GET"))
    slow.cancel()
    try:
        await slow
    except asyncio.CancelledError:
        pass
    try:
        async with asyncio.timeout(5):
            resp = await client.request(path="/", method="GET")
            await resp.body.bytes()
    except TimeoutError:
        pass

    def listener(reason: BaseException) -> None:
        print(reason)

    signal.add_listener(listener)
    signal.remove_listener(listener)


async def main() -> None:
    async with Client(ORIGIN) as client:
        print(await fetch(client, "/missing"))
        await aborting(client)
    print(classify(ValueError()), UndiciError("boom").message, SocketError("x", 502, {}))


def rejected(err: ResponseStatusCodeError, signal: AbortSignal) -> None:
    """Lines that must not type-check (never run)."""
    err.status_code.upper()  # type: ignore[attr-defined]
    signal.add_listener(lambda: None)  # type: ignore[arg-type, misc]
    raise UndiciError(1)  # type: ignore[arg-type]


if __name__ == "__main__":
    asyncio.run(main())
