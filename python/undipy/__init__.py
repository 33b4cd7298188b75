"""undipy: undici's Dispatcher for Python.

A Rust HTTP/1.1 engine with keep-alive pools and pipelining, driven from
asyncio through ``dispatch()`` and the conveniences built on it.
"""

from . import diagnostics, interceptors
from ._socket import UpgradedSocket
from ._undipy import Body, ResponseData, __version__
from .abort import AbortController, AbortSignal
from .agent import Agent
from .api_pipeline import PipelineBody, PipelineDuplex, PipelineHandlerData
from .api_stream import StreamData, StreamFactoryData
from .api_upgrade import ConnectData, UpgradeData
from .balanced_pool import BalancedPool
from .client import Client, ClientStats, Pool, PoolStats
from .dispatcher import Dispatcher
from .errors import (
    BalancedPoolMissingUpstreamError,
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
    MaxOriginsReachedError,
    MockNotMatchedError,
    NotSupportedError,
    RequestAbortedError,
    RequestContentLengthMismatchError,
    RequestRetryError,
    ResponseContentLengthMismatchError,
    ResponseError,
    ResponseExceededMaxSizeError,
    ResponseStatusCodeError,
    SecureProxyConnectionError,
    SocketError,
    UndiciError,
)
from .handler import DecoratorHandler, DispatchHandler
from .headers import header, header_values
from .mock_agent import MockAgent
from .proxy_agent import EnvHttpProxyAgent, ProxyAgent
from .retry_agent import RetryAgent
from .toplevel import (
    connect,
    get_global_dispatcher,
    pipeline,
    request,
    set_global_dispatcher,
    stream,
    upgrade,
)

__all__ = [
    "__version__",
    "AbortController",
    "AbortSignal",
    "Agent",
    "BalancedPool",
    "BalancedPoolMissingUpstreamError",
    "Body",
    "BodyTimeoutError",
    "Client",
    "ClientClosedError",
    "ClientDestroyedError",
    "ClientStats",
    "ConnectData",
    "ConnectTimeoutError",
    "DecoratorHandler",
    "DispatchHandler",
    "Dispatcher",
    "EnvHttpProxyAgent",
    "HTTPParserError",
    "HeadersOverflowError",
    "HeadersTimeoutError",
    "InformationalError",
    "InvalidArgumentError",
    "InvalidReturnValueError",
    "MaxOriginsReachedError",
    "MockAgent",
    "MockNotMatchedError",
    "NotSupportedError",
    "PipelineBody",
    "PipelineDuplex",
    "PipelineHandlerData",
    "Pool",
    "PoolStats",
    "ProxyAgent",
    "RequestAbortedError",
    "RequestContentLengthMismatchError",
    "RequestRetryError",
    "ResponseContentLengthMismatchError",
    "ResponseData",
    "ResponseError",
    "ResponseExceededMaxSizeError",
    "ResponseStatusCodeError",
    "RetryAgent",
    "SecureProxyConnectionError",
    "SocketError",
    "StreamData",
    "StreamFactoryData",
    "UndiciError",
    "UpgradeData",
    "UpgradedSocket",
    "connect",
    "diagnostics",
    "get_global_dispatcher",
    "header",
    "header_values",
    "interceptors",
    "pipeline",
    "request",
    "set_global_dispatcher",
    "stream",
    "upgrade",
]
