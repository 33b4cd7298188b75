"""undipy: undici's Dispatcher for Python.

A Rust HTTP/1.1 engine with keep-alive pools and pipelining, driven from
asyncio through ``dispatch()`` and the conveniences built on it.
"""

from ._undipy import Body, ResponseData
from .abort import AbortController, AbortSignal
from .dispatcher import Client, ClientStats, Dispatcher, Pool, PoolStats
from .errors import (
    BodyTimeoutError,
    ClientClosedError,
    ClientDestroyedError,
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
)
from .handler import DispatchHandler

__all__ = [
    "AbortController",
    "AbortSignal",
    "Body",
    "BodyTimeoutError",
    "Client",
    "ClientClosedError",
    "ClientDestroyedError",
    "ClientStats",
    "ConnectTimeoutError",
    "DispatchHandler",
    "Dispatcher",
    "HTTPParserError",
    "HeadersOverflowError",
    "HeadersTimeoutError",
    "InformationalError",
    "InvalidArgumentError",
    "InvalidReturnValueError",
    "NotSupportedError",
    "Pool",
    "PoolStats",
    "RequestAbortedError",
    "RequestContentLengthMismatchError",
    "RequestRetryError",
    "ResponseContentLengthMismatchError",
    "ResponseData",
    "ResponseExceededMaxSizeError",
    "ResponseStatusCodeError",
    "SocketError",
    "UndiciError",
]
