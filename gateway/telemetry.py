"""OpenTelemetry: each gateway call as a span, when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Spans follow the GenAI semantic conventions (`gen_ai.request.model`,
`gen_ai.usage.input_tokens`, …) plus Metis's own `metis.*` attributes, and go out over
OTLP/HTTP (protobuf) from the SDK's batch processor: a background thread, a bounded
queue that drops rather than blocks, so a slow collector never slows a call. The
standard OTEL_* variables (headers, compression, OTEL_SERVICE_NAME, …) apply. Unset,
the SDK is never imported and `export()` is one test of a module global.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.calls import Call

tracer = None
provider = None


def start() -> None:
    global tracer, provider
    if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "").strip():
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "metis")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    tracer = provider.get_tracer("metis.gateway")


def export(call: Call) -> None:
    if tracer is None:
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode

    route, usage = call.route, call.usage
    ended = time.time_ns()
    began = ended - int(call.latency_ms * 1_000_000)
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": route.upstream.name,
        "gen_ai.system": route.upstream.name,  # the name before semantic conventions 1.37
        "gen_ai.request.model": route.requested_model or route.model,
        "gen_ai.response.model": route.model,
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": usage.cache_read_tokens,
        "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_tokens,
        "http.response.status_code": call.status,
        "metis.request_id": call.request_id,
        "metis.gateway_key_id": call.caller.key.id,
        "metis.inbound_shape": call.inbound_shape.value,
        "metis.stream": call.stream,
    }
    if call.cost_usd is not None:
        attributes["metis.cost_usd"] = float(call.cost_usd)
    if call.ttft_ms is not None:
        attributes["metis.ttft_ms"] = call.ttft_ms
    if call.error_class:
        attributes["error.type"] = call.error_class
    span = tracer.start_span(
        f"chat {route.model}", kind=SpanKind.CLIENT, start_time=began, attributes=attributes
    )
    if call.error_class:
        span.set_status(Status(StatusCode.ERROR, call.error_class))
    span.end(end_time=ended)


def close() -> None:
    """Export what is queued; at shutdown, after the last call."""
    if provider is not None:
        provider.shutdown()


start()
