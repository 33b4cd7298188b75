"""undipy.contrib.opentelemetry with the OpenTelemetry SDK's in-memory
exporter and metric reader: one span per attempt, the stable HTTP client
attributes, trace context propagated, the duration histogram."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import undipy
from helpers import within
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from servers import HttpServer, Request, Response
from undipy.contrib.opentelemetry import UndipyInstrumentor
from undipy.interceptors import retry


class Otel:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])

    def durations(self) -> list[Any]:
        data = self.metrics.get_metrics_data()
        points = []
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == "http.client.request.duration":
                        points.extend(m.data.data_points)
        return points


@pytest.fixture
def otel() -> Iterator[Otel]:
    o = Otel()
    instrumentor = UndipyInstrumentor()
    instrumentor.instrument(tracer_provider=o.tracer_provider, meter_provider=o.meter_provider)
    try:
        yield o
    finally:
        instrumentor.uninstrument()


async def test_a_span_per_request_with_the_stable_attributes(
    http_server: HttpServer, otel: Otel
) -> None:
    async with undipy.Client(http_server.origin) as client:
        resp = await within(client.request(path="/x?y=1", method="GET"))
        assert await within(resp.body.text()) == "hello"
    (span,) = otel.spans.get_finished_spans()
    assert span.name == "GET" and span.kind == SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": http_server.port,
        "url.full": http_server.origin + "/x?y=1",
        "http.response.status_code": 200,
    }
    assert span.status.status_code == StatusCode.UNSET
    # The trace context went to the server, naming this span.
    traceparent = http_server.requests[0].header("traceparent")
    assert traceparent is not None
    assert traceparent.split("-")[1:3] == [
        f"{span.context.trace_id:032x}",
        f"{span.context.span_id:016x}",
    ]
    (point,) = otel.durations()
    assert point.count == 1
    assert dict(point.attributes) == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": http_server.port,
        "http.response.status_code": 200,
    }


async def test_one_span_per_attempt_with_resend_count(
    http_server: HttpServer, otel: Otel
) -> None:
    calls = 0

    async def flaky(req: Request) -> Response:
        nonlocal calls
        calls += 1
        return Response(status=503 if calls < 3 else 200, body=b"ok")

    http_server.route("/flaky", flaky)
    async with undipy.Client(http_server.origin) as client:
        d = client.compose(retry(min_timeout=0.01))
        resp = await within(d.request(path="/flaky", method="GET"))
        assert await within(resp.body.text()) == "ok"
    spans = sorted(otel.spans.get_finished_spans(), key=lambda s: s.start_time or 0)
    assert [s.attributes.get("http.response.status_code") for s in spans] == [503, 503, 200]
    assert [s.attributes.get("http.request.resend_count") for s in spans] == [None, 1, 2]
    assert [s.status.status_code for s in spans] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert spans[0].attributes["error.type"] == "503"
    assert sum(p.count for p in otel.durations()) == 3


async def test_a_failed_request_and_an_unknown_method(otel: Otel, http_server: HttpServer) -> None:
    dead = HttpServer()
    await dead.start()
    origin = dead.origin
    await dead.stop()
    async with undipy.Client(origin) as client:
        with pytest.raises(undipy.SocketError):
            await within(client.request(path="/", method="GET"))
    async with undipy.Client(http_server.origin) as client:
        resp = await within(client.request(path="/", method="PURGE"))
        await within(resp.body.dump())
    failed, odd = otel.spans.get_finished_spans()
    assert failed.attributes["error.type"] == "UND_ERR_SOCKET"
    assert failed.status.status_code == StatusCode.ERROR
    assert odd.name == "HTTP"
    assert odd.attributes["http.request.method"] == "_OTHER"
    assert odd.attributes["http.request.method_original"] == "PURGE"
