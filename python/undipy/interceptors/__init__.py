"""Interceptors for ``Dispatcher.compose()``: each is
``interceptor(dispatch) -> dispatch``, wrapping the request's handler in a
``DecoratorHandler`` that changes what it needs to. One module each."""

from .cookies import cookies
from .decompress import DecompressionError, decompress
from .dns import dns
from .dump import dump
from .redirect import redirect
from .response_error import response_error
from .retry import retry

__all__ = [
    "DecompressionError",
    "cookies",
    "decompress",
    "dns",
    "dump",
    "redirect",
    "response_error",
    "retry",
]
