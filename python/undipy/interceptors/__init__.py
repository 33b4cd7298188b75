"""Interceptors for ``Dispatcher.compose()``: each is
``interceptor(dispatch) -> dispatch``, wrapping the request's handler in a
``DecoratorHandler`` that changes what it needs to. One module each."""

from .dump import dump
from .response_error import response_error

__all__ = ["dump", "response_error"]
