"""OpenTelemetry for undipy, on ``opentelemetry-api`` only (the ``otel``
extra): one CLIENT span per attempt (below retry and redirect, with
``http.request.resend_count`` on retries), the stable HTTP client semantic
conventions, ``traceparent`` injected into each attempt, and the
``http.client.request.duration`` histogram. Built on ``undipy.diagnostics``.

    from undipy.contrib.opentelemetry import UndipyInstrumentor
    UndipyInstrumentor().instrument()
"""

from __future__ import annotations

import time
import weakref
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context, metrics, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import diagnostics

_KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)
_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]


class _Attempt:
    __slots__ = ("span", "start", "attributes")

    def __init__(self, span: trace.Span, attributes: dict[str, Any]) -> None:
        self.span = span
        self.start = time.perf_counter()
        self.attributes = attributes


class UndipyInstrumentor:
    """Subscribes to the diagnostics channels; ``uninstrument()`` stops."""

    def __init__(self) -> None:
        self._attempts: weakref.WeakKeyDictionary[Any, _Attempt] = weakref.WeakKeyDictionary()
        self._subscribed = False

    def instrument(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        if self._subscribed:
            return
        self._tracer = trace.get_tracer("undipy", tracer_provider=tracer_provider)
        meter = metrics.get_meter("undipy", meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=_BUCKETS,
        )
        for name, cb in self._callbacks().items():
            diagnostics.subscribe(name, cb)
        self._subscribed = True

    def uninstrument(self) -> None:
        if self._subscribed:
            for name, cb in self._callbacks().items():
                diagnostics.unsubscribe(name, cb)
            self._subscribed = False

    def _callbacks(self) -> dict[str, Any]:
        return {
            "request:create": self._on_create,
            "request:headers": self._on_headers,
            "request:trailers": self._on_trailers,
            "request:error": self._on_error,
        }

    # -- the channels ----------------------------------------------------------

    def _on_create(self, message: dict[str, Any]) -> None:
        request = message["request"]
        u = urlsplit(request.origin)
        method = request.method.upper()
        attributes: dict[str, Any] = {
            "http.request.method": method if method in _KNOWN_METHODS else "_OTHER",
            "server.address": u.hostname,
            "server.port": u.port or (443 if u.scheme == "https" else 80),
        }
        if method not in _KNOWN_METHODS:
            attributes["http.request.method_original"] = request.method
        resend = request.resend_count
        span_attributes = dict(attributes, **{"url.full": request.origin + request.path})
        if resend:
            span_attributes["http.request.resend_count"] = resend
        span = self._tracer.start_span(
            attributes["http.request.method"] if method in _KNOWN_METHODS else "HTTP",
            kind=SpanKind.CLIENT,
            attributes=span_attributes,
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span, context.get_current()))
        for name, value in carrier.items():
            request.add_header(name, value)
        self._attempts[request] = _Attempt(span, attributes)

    def _on_headers(self, message: dict[str, Any]) -> None:
        attempt = self._attempts.get(message["request"])
        if attempt is None:
            return
        status = message["status_code"]
        attempt.span.set_attribute("http.response.status_code", status)
        attempt.attributes["http.response.status_code"] = status
        if status >= 400:
            attempt.span.set_status(Status(StatusCode.ERROR))
            attempt.span.set_attribute("error.type", str(status))
            attempt.attributes["error.type"] = str(status)

    def _on_trailers(self, message: dict[str, Any]) -> None:
        self._end(message["request"], None)

    def _on_error(self, message: dict[str, Any]) -> None:
        self._end(message["request"], message["error"])

    def _end(self, request: Any, error: BaseException | None) -> None:
        attempt = self._attempts.pop(request, None)
        if attempt is None:
            return
        if error is not None and not _cancelled(error):
            kind = getattr(error, "code", None) or type(error).__qualname__
            attempt.span.set_status(Status(StatusCode.ERROR, str(error)))
            attempt.span.set_attribute("error.type", kind)
            attempt.attributes["error.type"] = kind
        self._duration.record(time.perf_counter() - attempt.start, attempt.attributes)
        attempt.span.end()


def _cancelled(error: BaseException) -> bool:
    """The caller gave up: not an error of the request (semantic conventions)."""
    from ..errors import RequestAbortedError

    return isinstance(error, RequestAbortedError)
