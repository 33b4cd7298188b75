"""What stream(), pipeline(), upgrade() and connect() share: header
conversion, ``signal=`` binding and the ``callback=`` form."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import Any, TypeVar

from .abort import AbortSignal
from .errors import InvalidArgumentError, RequestAbortedError

Headers = dict[str, str | list[str]]
Callback = Callable[[BaseException | None, Any], Any]
T = TypeVar("T")


def parse_headers(raw: list[bytes]) -> Headers:
    """A flat ``[name, value, ...]`` list of bytes as a dict: lower-case ``str``
    names (latin-1), and a list of values for a repeated name."""
    out: Headers = {}
    it = iter(raw)
    for name, value in zip(it, it, strict=False):
        add_value(out, name.decode("latin-1").lower(), value.decode("latin-1"))
    return out


def add_value(headers: Headers, name: str, value: str) -> None:
    """Adds ``value`` under ``name``: a second value makes the entry a list."""
    prev = headers.get(name)
    if prev is None:
        headers[name] = value
    elif isinstance(prev, list):
        prev.append(value)
    else:
        headers[name] = [prev, value]


def pop_common(opts: dict[str, Any]) -> tuple[Any, Any, Callable[..., Any] | None]:
    """Takes ``signal``, ``opaque`` and ``on_info`` out of ``opts`` (dispatch
    does not know them) and checks them."""
    signal = opts.pop("signal", None)
    opaque = opts.pop("opaque", None)
    on_info = opts.pop("on_info", None)
    check_signal(signal)
    if on_info is not None and not callable(on_info):
        raise InvalidArgumentError("invalid on_info callback")
    return signal, opaque, on_info


def check_signal(signal: Any) -> None:
    if signal is not None and not isinstance(signal, AbortSignal | asyncio.Event):
        raise InvalidArgumentError("signal must be an AbortSignal or an asyncio.Event")


def abort_reason(signal: Any) -> BaseException | None:
    """The error a request gets when ``signal`` has already fired, else None."""
    if isinstance(signal, AbortSignal):
        if signal.aborted:
            return signal.reason or RequestAbortedError()
        return None
    if isinstance(signal, asyncio.Event) and signal.is_set():
        return RequestAbortedError()
    return None


def bind_signal(signal: Any, abort: Callable[..., None]) -> Callable[[], None]:
    """Calls ``abort(reason)`` when ``signal`` fires; returns the unbinding."""
    if signal is None:
        return _nothing
    if isinstance(signal, AbortSignal):

        def listener(reason: BaseException) -> None:
            abort(reason)

        signal.add_listener(listener)
        return lambda: signal.remove_listener(listener)

    event: asyncio.Event = signal

    async def watch() -> None:
        await event.wait()
        abort(RequestAbortedError())

    task = asyncio.ensure_future(watch())

    def unbind() -> None:
        task.cancel()

    return unbind


def watch_signal(signal: Any, control: Any) -> None:
    """Aborts ``control``'s request when ``signal`` fires, for as long as the
    request lives: one signal may serve many requests, and each must let go
    of it once its handle is freed (its body read, dropped or failed)."""
    ref = weakref.ref(control)

    def abort(reason: BaseException) -> None:
        c = ref()
        if c is not None:
            c.abort(reason)

    weakref.finalize(control, bind_signal(signal, abort))


def _nothing() -> None:
    pass


def call_info(on_info: Callable[..., Any] | None, status: int, raw: list[bytes]) -> None:
    if on_info is not None:
        on_info({"status_code": status, "headers": parse_headers(raw)})


def check_callback(callback: Any) -> None:
    if callback is not None and not callable(callback):
        if isinstance(callback, str):
            raise InvalidArgumentError(
                f"options are keyword-only: pass path={callback!r}, method=... as keywords"
            )
        raise InvalidArgumentError("invalid callback")


def deliver(aw: Awaitable[T], callback: Callback | None) -> Awaitable[T] | None:
    """The two forms of every method that takes ``callback=``: without one,
    ``aw`` itself; with one, None, and later ``callback(error, data)`` on
    the loop (exactly one of the two None)."""
    if callback is None:
        return aw
    try:
        check_callback(callback)
    except InvalidArgumentError:
        if isinstance(aw, Coroutine):
            aw.close()
        raise

    def done(f: asyncio.Future[T]) -> None:
        if f.cancelled():
            callback(RequestAbortedError(), None)
        elif (exc := f.exception()) is not None:
            callback(exc, None)
        else:
            callback(None, f.result())

    asyncio.ensure_future(aw).add_done_callback(done)
    return None


def header_pairs(headers: Any) -> list[tuple[Any, Any]]:
    """Any of the three forms of ``headers=`` (dict, flat list, pairs) as
    ``(name, value)`` pairs, for the layers that read or add headers."""
    if not headers:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    items = list(headers)
    if isinstance(items[0], tuple | list):
        return [(p[0], p[1]) for p in items]
    it = iter(items)
    return list(zip(it, it, strict=False))


def header_name(name: Any) -> str:
    """A header name (``str`` or ``bytes``) in lower case."""
    return (name.decode("latin-1") if isinstance(name, bytes) else str(name)).lower()


def each_field(what: str, given: Any) -> Iterator[tuple[Any, Any]]:
    """``(name, value)`` for every value of headers (or trailers) given as a
    dict, a flat list or pairs: a list value repeats the name, ``None`` is
    left out."""
    try:
        pairs = header_pairs(dict(given) if isinstance(given, Mapping) else given)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"invalid {what}: a dict, a flat [name, value, ...] list or (name, value) pairs"
        ) from None
    for name, value in pairs:
        for v in value if isinstance(value, list | tuple) else [value]:
            if v is not None:
                yield name, v


def raw_fields(what: str, given: Any) -> list[bytes]:
    """Headers or trailers in any of those forms as the flat byte list the
    handler protocol carries (the inverse of ``parse_headers``)."""
    try:
        return [b for field in each_field(what, given) for b in map(_latin1, field)]
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"invalid {what}: names and values must be latin-1") from None


def _latin1(v: Any) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode("latin-1")
