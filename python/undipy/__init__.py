"""undipy: undici's Dispatcher for Python.

A Rust HTTP/1.1 engine with keep-alive pools and pipelining, driven from
asyncio through ``dispatch()`` and the conveniences built on it.
"""

from ._socket import UpgradedSocket
from ._undipy import Body, ResponseData
from .abort import AbortController, AbortSignal
from .api_pipeline import PipelineBody, PipelineDuplex, PipelineHandlerData
from .api_stream import StreamData, StreamFactoryData
from .api_upgrade import ConnectData, UpgradeData
from .client import Client, ClientStats, Pool, PoolStats
from .dispatcher import Dispatcher
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
from .headers import header, header_values

__all__ = [
    "AbortController",
    "AbortSignal",
    "Body",
    "BodyTimeoutError",
    "Client",
    "ClientClosedError",
    "ClientDestroyedError",
    "ClientStats",
    "ConnectData",
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
    "PipelineBody",
    "PipelineDuplex",
    "PipelineHandlerData",
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
    "StreamData",
    "StreamFactoryData",
    "UndiciError",
    "UpgradeData",
    "UpgradedSocket",
    "header",
    "header_values",
]
