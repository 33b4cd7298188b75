"""``throw_on_error``: turn a 4xx/5xx response into ResponseStatusCodeError.

``ResponseData`` and ``Body`` themselves are native (``undipy._undipy``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from .errors import ResponseStatusCodeError


def reject_with_status(future: asyncio.Future[Any], rd: Any) -> None:
    """Reads the error body, then fails ``future`` with ResponseStatusCodeError
    (the body parsed as JSON for ``application/json``, else as text)."""

    async def reject() -> None:
        try:
            data = await rd.body.bytes()
        except Exception as exc:  # the body failed: report that instead
            if not future.done():
                future.set_exception(exc)
            return
        body = error_body(data, rd.headers)
        msg = f"Response status code {rd.status_code}"
        if rd.status_text:
            msg += f": {rd.status_text}"
        if not future.done():
            future.set_exception(ResponseStatusCodeError(msg, rd.status_code, rd.headers, body))

    asyncio.ensure_future(reject())


def error_body(data: bytes, headers: dict[str, Any]) -> Any:
    """An error response's body as the errors carry it: parsed JSON for
    ``application/json`` (text if it does not parse), else text."""
    content_type = headers.get("content-type", "")
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else ""
    text = data.decode("utf-8", "replace")
    if str(content_type).startswith("application/json"):
        try:
            return json.loads(data)
        except ValueError:
            pass
    return text
