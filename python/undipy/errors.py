"""undici's error classes, with their codes, on Python's builtin bases.

Every error derives from :class:`UndiciError` and carries undici's ``code``.
Timeouts also derive from :class:`TimeoutError`, invalid input from
:class:`ValueError` and socket failures from :class:`ConnectionError`, so
code that already handles the builtin kinds keeps working.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "UndiciError",
    "ConnectTimeoutError",
    "HeadersTimeoutError",
    "HeadersOverflowError",
    "BodyTimeoutError",
    "ResponseStatusCodeError",
    "InvalidArgumentError",
    "InvalidReturnValueError",
    "RequestAbortedError",
    "InformationalError",
    "RequestContentLengthMismatchError",
    "ResponseContentLengthMismatchError",
    "ClientDestroyedError",
    "ClientClosedError",
    "SocketError",
    "NotSupportedError",
    "ResponseExceededMaxSizeError",
    "RequestRetryError",
    "HTTPParserError",
    "MaxOriginsReachedError",
    "BalancedPoolMissingUpstreamError",
    "SecureProxyConnectionError",
    "ResponseError",
    "MockNotMatchedError",
]


class UndiciError(Exception):
    """Base class of every undipy error."""

    code: str = "UND_ERR"
    default_message: str = "Undici Error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message if message is not None else self.default_message)

    @property
    def message(self) -> str:
        return str(self)


class ConnectTimeoutError(UndiciError, TimeoutError):
    code = "UND_ERR_CONNECT_TIMEOUT"
    default_message = "Connect Timeout Error"


class HeadersTimeoutError(UndiciError, TimeoutError):
    code = "UND_ERR_HEADERS_TIMEOUT"
    default_message = "Headers Timeout Error"


class HeadersOverflowError(UndiciError):
    code = "UND_ERR_HEADERS_OVERFLOW"
    default_message = "Headers Overflow Error"


class BodyTimeoutError(UndiciError, TimeoutError):
    code = "UND_ERR_BODY_TIMEOUT"
    default_message = "Body Timeout Error"


class _ResponseDetails(UndiciError):
    """An error made from a response: its status, headers and body."""

    def __init__(
        self,
        message: str | None = None,
        status_code: int = 0,
        headers: dict[str, Any] | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.headers: dict[str, Any] = headers if headers is not None else {}
        self.body = body


class ResponseStatusCodeError(_ResponseDetails):
    """A 4xx or 5xx answer to a request made with ``throw_on_error=True``."""

    code = "UND_ERR_RESPONSE_STATUS_CODE"
    default_message = "Response Status Code Error"


class InvalidArgumentError(UndiciError, ValueError):
    code = "UND_ERR_INVALID_ARG"
    default_message = "Invalid Argument Error"


class InvalidReturnValueError(UndiciError):
    code = "UND_ERR_INVALID_RETURN_VALUE"
    default_message = "Invalid Return Value Error"


class RequestAbortedError(UndiciError):
    code = "UND_ERR_ABORTED"
    default_message = "Request aborted"


class InformationalError(UndiciError):
    """Why a connection was torn down when no request failed (seen in events)."""

    code = "UND_ERR_INFO"
    default_message = "Request information"


class RequestContentLengthMismatchError(UndiciError):
    code = "UND_ERR_REQ_CONTENT_LENGTH_MISMATCH"
    default_message = "Request body length does not match content-length header"


class ResponseContentLengthMismatchError(UndiciError):
    code = "UND_ERR_RES_CONTENT_LENGTH_MISMATCH"
    default_message = "Response body length does not match content-length header"


class ClientDestroyedError(UndiciError):
    code = "UND_ERR_DESTROYED"
    default_message = "The client is destroyed"


class ClientClosedError(UndiciError):
    code = "UND_ERR_CLOSED"
    default_message = "The client is closed"


class SocketError(UndiciError, ConnectionError):
    """The connection failed. For ``upgrade()`` and ``connect()`` refused by
    the server, ``status_code`` and ``headers`` hold its answer (else None)."""

    code = "UND_ERR_SOCKET"
    default_message = "Socket error"

    def __init__(
        self,
        message: str | None = None,
        status_code: int | None = None,
        headers: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.headers = headers


class NotSupportedError(UndiciError):
    code = "UND_ERR_NOT_SUPPORTED"
    default_message = "Not supported error"


class ResponseExceededMaxSizeError(UndiciError):
    code = "UND_ERR_RES_EXCEEDED_MAX_SIZE"
    default_message = "Response content exceeded max size"


class RequestRetryError(UndiciError):
    code = "UND_ERR_REQ_RETRY"
    default_message = "Request retry error"

    def __init__(
        self,
        message: str | None = None,
        status_code: int = 0,
        headers: dict[str, Any] | None = None,
        data: Any = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.headers: dict[str, Any] = headers if headers is not None else {}
        self.data = data


class ResponseError(_ResponseDetails):
    """A 4xx or 5xx answer turned into an error by the ``response_error``
    interceptor: ``body`` is parsed JSON for ``application/json``, else text."""

    code = "UND_ERR_RESPONSE"
    default_message = "Response Error"


class MaxOriginsReachedError(UndiciError):
    """An ``Agent`` already has ``max_origins`` origins."""

    code = "UND_ERR_MAX_ORIGINS_REACHED"
    default_message = "Maximum allowed origins reached"


class BalancedPoolMissingUpstreamError(UndiciError):
    """A ``BalancedPool`` has no upstream to send to."""

    code = "UND_ERR_BPL_MISSING_UPSTREAM"
    default_message = "No upstream has been added to the BalancedPool"


class SecureProxyConnectionError(UndiciError):
    """The TLS connection to an ``https://`` proxy failed (its certificate,
    say); the message says why."""

    code = "UND_ERR_PRX_TLS"
    default_message = "Secure Proxy Connection failed"


class MockNotMatchedError(UndiciError):
    """A ``MockAgent`` request that no interception matched, with net
    connect not allowed for its host; the message says which stage (path,
    method, body, headers) failed and how many interceptions are left."""

    code = "UND_MOCK_ERR_MOCK_NOT_MATCHED"
    default_message = "The request does not match any registered mock dispatches"


class HTTPParserError(UndiciError):
    """A response that does not follow HTTP/1.1; ``code`` is llhttp's (``HPE_...``)."""

    code: str = "HPE_INTERNAL"
    default_message = "Response does not match the HTTP/1.1 protocol"

    def __init__(self, message: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
