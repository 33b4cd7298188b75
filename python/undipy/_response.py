"""``request()``'s response: ``ResponseData`` and its body.

The native bridge builds these on the loop thread: a response that arrived
whole gets a finished ``Body`` at once; otherwise chunks are pushed as they
come, and a body holding more than ``HIGH_WATER_MARK`` bytes pauses reading
from the socket until it is consumed.
"""

from __future__ import annotations

import asyncio
import json as _json
from collections import deque
from typing import Any

from .errors import ResponseStatusCodeError

HIGH_WATER_MARK = 64 * 1024


class Body:
    """The response body: an async iterable of ``bytes`` with the body mixin."""

    __slots__ = ("_control", "_chunks", "_size", "_done", "_exc", "_waiter", "_used", "_trailers")

    def __init__(self, control: Any, data: bytes | None, done: bool) -> None:
        self._control = control
        self._chunks: deque[bytes] = deque()
        self._size = 0
        if data:
            self._chunks.append(data)
            self._size = len(data)
        self._done = done
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._used = False
        self._trailers: dict[str, Any] = {}

    # -- fed by the bridge ---------------------------------------------------

    def _push(self, chunk: bytes) -> bool:
        self._chunks.append(chunk)
        self._size += len(chunk)
        self._wake()
        return self._size < HIGH_WATER_MARK

    def _end(self, trailers: dict[str, Any]) -> None:
        self._trailers.update(trailers)
        self._done = True
        self._control = None
        self._wake()

    def _error(self, exc: BaseException) -> None:
        self._exc = exc
        self._control = None
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    def _discard(self) -> None:
        """Nobody will read this body: stop its request."""
        self._chunks.clear()
        if self._control is not None:
            self._control.abort()
            self._control = None

    # -- consumed by the user ------------------------------------------------

    @property
    def body_used(self) -> bool:
        return self._used

    def _take(self) -> None:
        if self._used:
            raise TypeError("unusable: the body was already consumed")
        self._used = True

    async def _next_chunk(self) -> bytes | None:
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._size -= len(chunk)
                if self._control is not None and self._size < HIGH_WATER_MARK:
                    self._control.unpause()
                return chunk
            if self._exc is not None:
                raise self._exc
            if self._done:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def __aiter__(self) -> Body:
        self._take()
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._next_chunk()
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    async def bytes(self) -> bytes:
        self._take()
        if self._done and self._exc is None:
            data = b"".join(self._chunks) if len(self._chunks) != 1 else self._chunks[0]
            self._chunks.clear()
            return data
        parts = []
        while (chunk := await self._next_chunk()) is not None:
            parts.append(chunk)
        return b"".join(parts)

    async def text(self) -> str:
        return (await self.bytes()).decode("utf-8", "replace")

    async def json(self) -> Any:
        return _json.loads(await self.bytes())

    async def dump(self, limit: int = 262144) -> None:
        """Reads and drops up to ``limit`` bytes; a longer body closes the connection."""
        self._used = True
        seen = 0
        while (chunk := await self._next_chunk()) is not None:
            seen += len(chunk)
            if seen > limit:
                self._discard()
                return

    async def aclose(self) -> None:
        """Releases the body: the rest of it is not read."""
        self._used = True
        if not self._done and self._exc is None:
            self._discard()
        self._chunks.clear()

    def __del__(self) -> None:
        if self._control is not None:
            try:
                self._control.abort()
            except Exception:
                pass


class ResponseData:
    """What ``request()`` resolves to."""

    __slots__ = ("status_code", "headers", "body", "trailers", "opaque", "status_text", "_context")

    def __init__(
        self,
        status_code: int,
        headers: dict[str, Any],
        body: Body,
        trailers: dict[str, Any],
        opaque: Any,
        status_text: str,
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.body = body
        body._trailers.update(trailers)
        self.trailers = body._trailers
        self.opaque = opaque
        self.status_text = status_text
        self._context: dict[str, Any] | None = None

    @property
    def context(self) -> dict[str, Any]:
        if self._context is None:
            self._context = {}
        return self._context

    async def __aenter__(self) -> ResponseData:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.body.aclose()

    def __repr__(self) -> str:
        return f"<ResponseData {self.status_code} {self.status_text!r}>"


def reject_with_status(future: asyncio.Future[Any], rd: ResponseData) -> None:
    """``throw_on_error``: read the error body, then fail with ResponseStatusCodeError."""

    async def reject() -> None:
        try:
            data = await rd.body.bytes()
            ctype = str(rd.headers.get("content-type", ""))
            body: Any = data.decode("utf-8", "replace")
            if ctype.startswith("application/json"):
                try:
                    body = _json.loads(data)
                except ValueError:
                    pass
        except Exception as exc:  # the body failed: report that instead
            if not future.done():
                future.set_exception(exc)
            return
        msg = f"Response status code {rd.status_code}"
        if rd.status_text:
            msg += f": {rd.status_text}"
        if not future.done():
            future.set_exception(ResponseStatusCodeError(msg, rd.status_code, rd.headers, body))

    asyncio.ensure_future(reject())
