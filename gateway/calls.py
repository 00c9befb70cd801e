"""One gateway call, from accepted request to its three events.

`record()` is the only way a call's events are made: it prices the usage at
record time (history keeps the price it was charged), updates the metrics and
hands `route.decided`, `llm.call_completed` and `turn.completed` to the writer.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal

import orjson

from analytics import pricing
from analytics.usage import Usage
from gateway import metrics, quota, routing
from gateway.auth import Caller
from gateway.errors import Shape
from gateway.events import make_event, writer
from gateway.quota import Reservation
from gateway.routing import Route, price_overrides

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Call:
    request_id: str
    caller: Caller
    route: Route
    inbound_shape: Shape
    stream: bool
    started: float  # perf_counter() when the request arrived
    upstream_started: float = 0.0
    first_byte: float | None = None
    finished: float | None = None
    retries: int = 0
    status: int = 0
    error_class: str | None = None
    usage: Usage = field(default_factory=Usage)
    upstream_request_id: str | None = None
    cost_usd: Decimal | None = None
    price_source: str | None = None
    reservation: Reservation | None = None  # what quota.check() holds for this call
    sent_body: dict | None = None  # as sent upstream: estimates input a cut-short call lacks

    @property
    def latency_ms(self) -> float:
        return round(((self.finished or time.perf_counter()) - self.started) * 1000, 3)

    @property
    def ttft_ms(self) -> float | None:
        if self.first_byte is None:
            return None
        return round((self.first_byte - self.started) * 1000, 3)

    @property
    def overhead_ms(self) -> float:
        """Gateway time: the whole call less the time spent waiting on the provider."""
        upstream = (self.finished or time.perf_counter()) - self.upstream_started
        return round(max(self.latency_ms - upstream * 1000, 0.0), 3)


def price(call: Call) -> None:
    exact, prefixed = price_overrides()
    model = call.route.model
    found = exact.get(model) or pricing.find_price(
        call.route.upstream.price_provider, model, prefixed
    )
    if found is None:
        call.cost_usd, call.price_source = None, None
    else:
        call.cost_usd, call.price_source = pricing.cost_usd(found, call.usage), found.source


def record(call: Call) -> None:
    """Price the call and queue its events. Never raises: a call must not fail
    because its accounting did; the failure is logged loudly instead."""
    metrics.in_flight.dec()
    try:
        call.finished = call.finished or time.perf_counter()
        price(call)  # cancelled calls are billed too; a refused one costs $0 (null if unpriced)
        quota.settle(call)
        writer.submit(events_of(call))
        observe(call)
    except Exception:
        logger.exception("could not record call %s", call.request_id)


def identity_of(call: Call) -> dict:
    """Who made the call and what it asked for: the fields every event of a call carries."""
    key, route = call.caller.key, call.route
    return {
        "request_id": call.request_id,
        "gateway_key_id": key.id,
        "user": call.caller.user,
        "team": key.team,
        "workspace": key.workspace_path,
        "inbound_shape": call.inbound_shape.value,
        "provider": route.upstream.name,
        "model": route.model,
        "requested_model": route.requested_model,
    }


def events_of(call: Call) -> list:
    key, route, usage = call.caller.key, call.route, call.usage
    common = identity_of(call)
    cost = orjson.Fragment(format(call.cost_usd, "f")) if call.cost_usd is not None else None
    completed = {
        **common,
        "key_name": key.name,
        "key_owner": key.user,
        "stream": call.stream,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_creation_1h_input_tokens": usage.cache_write_1h_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "usage_estimated": usage.estimated,
        "cost_usd": cost,
        "price_source": call.price_source,
        "latency_ms": call.latency_ms,
        "ttft_ms": call.ttft_ms,
        "overhead_ms": call.overhead_ms,
        "status": call.status,
        "error_class": call.error_class,
        "retries": call.retries,
        "upstream_request_id": call.upstream_request_id,
    }
    decided = {**common, "decided_by": route.decided_by}
    turn = {
        **common,
        "status": call.status,
        "error_class": call.error_class,
        "cost_usd": cost,
        "latency_ms": call.latency_ms,
    }
    return [
        make_event("route.decided", decided, gateway_key_id=key.id),
        make_event("llm.call_completed", completed, gateway_key_id=key.id),
        make_event("turn.completed", turn, gateway_key_id=key.id),
    ]


def observe(call: Call) -> None:
    provider, usage = call.route.upstream.name, call.usage
    model = metrics.model_label(call.route.model, routing.configured_models())
    status = metrics.status_label(call.status)
    metrics.requests.labels(call.inbound_shape.value, provider, model, status).inc()
    if call.error_class:
        metrics.errors.labels(metrics.error_label(call.error_class)).inc()
    metrics.overhead.labels(call.inbound_shape.value).observe(call.overhead_ms / 1000)
    if call.upstream_started:
        upstream_s = (call.finished or time.perf_counter()) - call.upstream_started
        metrics.upstream_latency.labels(provider, model).observe(upstream_s)
    for kind, count in (
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
        ("cache_read", usage.cache_read_tokens),
        ("cache_write", usage.cache_write_tokens),
        ("reasoning", usage.reasoning_tokens),
    ):
        if count:
            metrics.tokens.labels(provider, model, kind).inc(count)
    if call.cost_usd:
        metrics.cost.labels(provider, model).inc(float(call.cost_usd))
