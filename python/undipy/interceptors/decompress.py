"""The ``decompress`` interceptor: response bodies decoded as they stream in.

gzip and deflate use the stdlib ``zlib``; br needs ``Brotli`` and zstd needs
``zstandard`` (``pip install undipy[compression]``). Without its library a
coding counts as unknown, and a response using it passes through untouched,
as undici does for zstd on a Node without it.
"""

from __future__ import annotations

import asyncio
import importlib
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from .._passthrough import Watch, WatchedInterceptor
from ..dispatcher import DispatchFn, Interceptor
from ..errors import InvalidArgumentError, UndiciError
from ..handler import DecoratorHandler, Handler

_CHUNK = 64 * 1024
"""The most decoded bytes handed on at once (and held per coding)."""

_MAX_CODINGS = 5
"""undici's limit on a ``content-encoding`` chain (a decoder per coding)."""

_SLICE = 256
"""Input fed to a decoder whose output cannot be capped, per call: zstd
expands at most about 32768 times (a 4-byte block is at most 128 KiB), so
one call makes at most 8 MiB, usually far less."""


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# Imported by name so that neither is required, nor needs type stubs.
_brotli = _optional("brotli")
_zstd = _optional("zstandard")


class DecompressionError(UndiciError):
    """A response body that does not decode: corrupt (``code``
    ``Z_DATA_ERROR``) or cut short (``Z_BUF_ERROR``), the codes of Node's
    zlib errors, which undici passes on."""

    code: str = "Z_DATA_ERROR"
    default_message = "Decompression failed"

    def __init__(self, message: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


def _truncated(coding: str) -> DecompressionError:
    return DecompressionError(f"{coding}: unexpected end of file", "Z_BUF_ERROR")


class _Decoder:
    """One coding's decoder. ``feed()`` queues input; ``read()`` returns at
    most ``_CHUNK`` decoded bytes, or ``b""`` when it needs more input;
    ``close()`` (after the last read) fails if the stream was cut short."""

    name = ""

    def __init__(self) -> None:
        self._in = b""
        self._out = b""
        self._pos = 0

    def feed(self, data: bytes) -> None:
        self._in += data

    def read(self) -> bytes:
        if self._pos >= len(self._out):
            self._out, self._pos = self._decode(), 0
        piece = self._out[self._pos : self._pos + _CHUNK]
        self._pos += len(piece)
        return piece

    def _decode(self) -> bytes:
        """Some output from the queued input: bounded, b"" if it needs more."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Zlib(_Decoder):
    """gzip (members one after another, as Node reads them; zero bytes after
    one are padding) and deflate, zlib-wrapped or raw as browsers accept it
    (what follows its end is ignored, as zlib does)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self._obj: Any = None
        self._ended = False  # a member (or the deflate stream) ended

    def _decode(self) -> bytes:
        while True:
            if self._obj is None:
                if not self._in:
                    return b""
                if self._ended and (self.name == "deflate" or self._in[0] == 0):
                    self._in = b""  # padding or trailing bytes
                    return b""
                if self.name != "deflate":
                    wbits = 31
                elif len(self._in) < 2:
                    return b""  # not enough to tell the wrapper
                else:
                    cmf, flg = self._in[0], self._in[1]
                    wrapped = cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf << 8 | flg) % 31 == 0
                    wbits = 15 if wrapped else -15
                self._obj = zlib.decompressobj(wbits)
            try:
                out: bytes = self._obj.decompress(self._in, _CHUNK)
            except zlib.error as e:
                raise DecompressionError(f"{self.name}: {e}") from e
            self._in = self._obj.unconsumed_tail
            if self._obj.eof:
                self._in, self._obj, self._ended = self._obj.unused_data, None, True
            if out or self._obj is not None:
                return out  # with max_length, input left over means output was made

    def close(self) -> None:
        if self._obj is not None or self._in:
            raise _truncated(self.name)


class _Brotli(_Decoder):
    """br, its output capped per call (Brotli 1.2's ``output_buffer_limit``;
    output can still be pending when it takes input again)."""

    name = "br"

    def __init__(self) -> None:
        super().__init__()
        self._obj: Any = _brotli.Decompressor()
        self._fed = False
        self._drained = True  # the last call made nothing: none is pending

    def _decode(self) -> bytes:
        take = bool(self._in) and self._obj.can_accept_more_data()
        if not take and self._drained:
            return b""
        data = b""
        if take:
            data, self._in, self._fed = self._in, b"", True
        try:
            out: bytes = self._obj.process(data, output_buffer_limit=_CHUNK)
        except _brotli.error as e:
            raise DecompressionError(f"br: {e}") from e
        self._drained = not out
        return out

    def close(self) -> None:
        if self._fed and not self._obj.is_finished():
            raise _truncated(self.name)


class _Zstd(_Decoder):
    """zstd, frame after frame; its decompressobj cannot cap its output, so
    input goes in by ``_SLICE`` bytes (output gathered up to ``_CHUNK``)."""

    name = "zstd"

    def __init__(self) -> None:
        super().__init__()
        self._obj: Any = None
        self._at = 0  # how far self._in was fed

    def feed(self, data: bytes) -> None:
        self._in, self._at = self._in[self._at :] + data, 0

    def _decode(self) -> bytes:
        out = bytearray()
        while len(out) < _CHUNK and self._at < len(self._in):
            if self._obj is None:
                self._obj = _zstd.ZstdDecompressor().decompressobj()
            piece = self._in[self._at : self._at + _SLICE]
            self._at += len(piece)
            try:
                out += self._obj.decompress(piece)
            except _zstd.ZstdError as e:
                raise DecompressionError(f"zstd: {e}") from e
            if self._obj.eof:  # the next frame starts in what it left
                rest = self._obj.unused_data
                self._in, self._at, self._obj = rest + self._in[self._at :], 0, None
        return bytes(out)

    def close(self) -> None:
        if self._obj is not None:
            raise _truncated(self.name)


def _decoders() -> dict[str, Callable[[], _Decoder]]:
    known: dict[str, Callable[[], _Decoder]] = {
        "gzip": lambda: _Zlib("gzip"),
        "x-gzip": lambda: _Zlib("gzip"),
        "deflate": lambda: _Zlib("deflate"),
    }
    # Brotli before 1.2 cannot cap its output: treated as missing.
    if _brotli is not None and hasattr(_brotli.Decompressor, "can_accept_more_data"):
        known["br"] = _Brotli
    if _zstd is not None:
        known["zstd"] = _Zstd
    return known


_KNOWN = _decoders()


class _DecompressHandler(DecoratorHandler):
    """Decodes the body of a final response whose codings are all known,
    last applied first, and hands it on in pieces of at most ``_CHUNK``
    bytes, pausing when the wrapped handler pauses."""

    def __init__(self, handler: Handler, skip: frozenset[int], skip_errors: bool) -> None:
        super().__init__(handler)
        self._skip = skip
        self._skip_errors = skip_errors
        self._abort: Callable[..., None] | None = None
        self._reset()

    def _reset(self) -> None:
        self._chain: list[_Decoder] = []
        self._resume: Callable[[], None] | None = None
        self._paused = False  # the wrapped handler asked to pause
        self._resumed = False  # ... and resumed while we were handing on
        self._draining = False
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._trailers: list[bytes] | None = None  # the engine's end, held while paused
        self._failed: BaseException | None = None
        self._done = False

    def on_connect(self, abort: Callable[..., None], context: dict[str, Any]) -> object:
        self._abort = abort
        self._reset()  # again on a retry
        return super().on_connect(abort, context)

    def on_headers(
        self,
        status_code: int,
        headers: list[bytes],
        resume: Callable[[], None],
        status_text: str,
    ) -> object:
        codings = self._codings(status_code, headers)
        if not codings:
            return super().on_headers(status_code, headers, resume, status_text)
        if len(codings) > _MAX_CODINGS:
            self._fail(DecompressionError(f"too many content-encodings: {len(codings)}"))
            return True
        self._chain = [_KNOWN[c]() for c in reversed(codings)]
        self._resume = resume
        self._loop = asyncio.get_running_loop()
        kept = [
            (name, value)
            for name, value in zip(headers[::2], headers[1::2], strict=False)
            if name.lower() not in (b"content-encoding", b"content-length")
        ]
        flat = [part for pair in kept for part in pair]
        if super().on_headers(status_code, flat, self._resume_decoding, status_text) is False:
            self._paused = True
            return False
        return True

    def _codings(self, status_code: int, headers: list[bytes]) -> list[str]:
        """The codings to undo, in the order applied; [] to pass the response on."""
        if status_code < 200 or status_code in self._skip:
            return []
        if self._skip_errors and status_code >= 400:
            return []
        # Repeated lines join into one list (RFC 9110 section 5.3).
        values = [
            v.decode("latin-1")
            for n, v in zip(headers[::2], headers[1::2], strict=False)
            if n.lower() == b"content-encoding"
        ]
        codings = [c.strip().lower() for c in ",".join(values).split(",") if c.strip()]
        # One unknown coding and nothing can be undone: all or nothing.
        return codings if all(c in _KNOWN for c in codings) else []

    def on_data(self, chunk: bytes) -> object:
        if not self._chain:
            return True if self._failed is not None else super().on_data(chunk)
        self._chain[0].feed(chunk)
        return self._drain()

    def on_complete(self, trailers: list[bytes]) -> object:
        if not self._chain:
            if self._failed is not None:
                return self._end_with(self._failed)
            return super().on_complete(trailers)
        self._trailers = trailers
        self._drain()  # finishes once everything is handed on
        return None

    def on_error(self, error: BaseException) -> object:
        if self._done:
            return None
        self._chain = []
        return self._end_with(self._failed or error)

    def _pull(self, i: int) -> bytes:
        """The next piece out of coding ``i``, feeding it from coding ``i - 1``."""
        decoder = self._chain[i]
        while True:
            piece = decoder.read()
            if piece or i == 0:
                return piece
            data = self._pull(i - 1)
            if not data:
                return b""
            decoder.feed(data)

    def _drain(self) -> bool:
        """Hands on what the queued input decodes to; False while paused."""
        if self._draining:
            return not self._paused
        self._draining = True
        try:
            while self._chain and not self._paused:
                piece = self._pull(len(self._chain) - 1)
                if not piece:
                    break
                self._resumed = False
                if self.handler.on_data(piece) is False and not self._resumed:
                    self._paused = True
            if self._chain and not self._paused and self._trailers is not None:
                for decoder in self._chain:
                    decoder.close()
                self._chain = []
                self._done = True
                self.handler.on_complete(self._trailers)
        except DecompressionError as e:
            self._fail(e)
        finally:
            self._draining = False
        return not self._paused

    def _resume_decoding(self) -> None:
        """The ``resume`` the wrapped handler gets: what is decoded but not
        yet handed on goes first, then the socket is read again."""
        if self._done:
            return
        if self._draining:  # from inside on_data: its False does not count
            self._resumed = True
            return
        if not self._paused:
            return
        self._paused = False
        # Not from here: a caller may resume while holding what on_data needs.
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon_threadsafe(self._continue)

    def _continue(self) -> None:
        self._scheduled = False
        if self._paused or self._done or not self._chain:
            return
        if self._drain() and self._trailers is None and self._resume is not None:
            self._resume()

    def _fail(self, error: BaseException) -> None:
        """A body that does not decode: the request is aborted, so its
        connection is not reused mid-body, and fails once with ``error``."""
        self._chain = []
        self._failed = error
        if self._trailers is None and self._abort is not None:
            self._abort(error)  # the engine then calls on_error
        else:
            self._end_with(error)  # the response already ended: nothing to abort

    def _end_with(self, error: BaseException) -> object:
        if self._done:
            return None
        self._done = True
        return self.handler.on_error(error)


def decompress(
    skip_status_codes: Iterable[int] = (204, 304), skip_error_responses: bool = True
) -> Interceptor:
    """Decodes response bodies by their ``content-encoding`` (gzip, x-gzip,
    deflate, br, zstd; several are undone last first), streaming, and drops
    the ``content-encoding`` and ``content-length`` headers of what it
    decodes. Left as they are: 1xx, ``skip_status_codes``, status 400 and up
    with ``skip_error_responses``, HEAD requests, and a response naming any
    coding it does not know. A body that does not decode fails its request
    with ``DecompressionError``."""
    bad = InvalidArgumentError("invalid skip_status_codes: an iterable of ints")
    try:
        codes: list[object] = list(skip_status_codes)
    except TypeError:
        raise bad from None
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in codes):
        raise bad
    if not isinstance(skip_error_responses, bool):
        raise InvalidArgumentError("invalid skip_error_responses: a bool")
    skip = frozenset(c for c in codes if isinstance(c, int))

    def interceptor(dispatch: DispatchFn) -> DispatchFn:
        def decompress_dispatch(handler: Handler, **opts: Any) -> bool:
            # A HEAD response has no body; its headers describe the GET's.
            if str(opts.get("method", "GET")).upper() == "HEAD":
                return dispatch(handler, **opts)
            return dispatch(_DecompressHandler(handler, skip, skip_error_responses), **opts)

        return decompress_dispatch

    def passes(method: Any, response: Any) -> bool:
        return not response._has_header("content-encoding")

    return WatchedInterceptor(interceptor, Watch(frozenset(), passes))
