"""One gateway call, from accepted request to its three events.

`record()` is the only way a call's events are made: it prices the usage at
record time (history keeps the price it was charged), updates the metrics and
hands `route.decided`, `llm.call_completed` and `turn.completed` to the writer,
through the journal (gateway/journal.py): `start()` and `progress()` note a call
there while it is in flight, so a crash leaves a record the next start turns
into events (gateway/recovery.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import orjson

from analytics import pricing
from analytics.usage import Usage
from analytics.writer import PendingEvent, make_event
from gateway import access_log, budgets, metrics, pacing, routing, telemetry
from gateway.auth import Caller
from gateway.budgets import Reservation
from gateway.journal import journal
from gateway.routing import Route
from gateway.shapes import Shape

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
    cache_costs: pricing.CacheCosts | None = None  # None: unpriced, or no cache tokens
    reservation: Reservation | None = None  # what budgets.check() holds for this call
    noted: tuple[Usage | None, float] = (None, 0.0)  # the usage last journaled, and when
    sent_body: dict | None = None  # as sent upstream: estimates input a cut-short call lacks
    dropped_params: list[str] = field(default_factory=list)  # by the key's policy, crossing
    pacer: pacing.Pacer | None = None  # counts this stream until its first byte goes out
    relay_started: bool = False  # a stream: proxy.relay() ran (see proxy.RelayedStream)

    @property
    def upstream_shape(self) -> Shape:
        """The shape spoken to the provider: the caller's own when the provider serves it
        (a same-shape pass-through), else the provider's preferred one (translated)."""
        shapes = self.route.upstream.adapter.shapes
        return self.inbound_shape if self.inbound_shape in shapes else shapes[0]

    operation: str = "chat"  # or "embeddings": what the call asked the provider to do

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
    call.cost_usd, call.price_source, call.cache_costs = priced(
        call.route.upstream.price_provider, call.route.model, call.usage
    )


def priced(
    price_provider: str, model: str, usage: Usage
) -> tuple[Decimal | None, str | None, pricing.CacheCosts | None]:
    """(cost, price source, cache costs) from one price lookup; all None when unpriced,
    the cache costs None too for a call that neither read nor wrote the cache."""
    found = routing.price(price_provider, model)
    if found is None or (found.input_only and usage.output_tokens):
        return None, None, None
    cached = usage.cache_read_tokens > 0 or usage.cache_write_tokens > 0
    cache = pricing.cache_costs(found, usage) if cached else None
    return pricing.cost_usd(found, usage), found.source, cache


def start(call: Call, body_bytes: int) -> None:
    """Journal the call as it goes upstream. Never raises."""
    try:
        journal.started(call.request_id, {
            "k": "s", "id": call.request_id, "at": time.time_ns() // 1000, "bytes": body_bytes,
            "price_provider": call.route.upstream.price_provider, "call": described(call),
            "hold": budgets.journal_form(call.reservation),
        })  # fmt: skip
    except Exception:
        logger.exception("could not journal call %s", call.request_id)


def progress(call: Call, usage: Usage | None, text_chars: int) -> None:
    """Journal a stream's status (`usage` None: before its status line goes out), its
    usage whenever that changes, and the text relayed so far once a second."""
    noted, at = call.noted
    now = time.perf_counter()
    unchanged = usage is noted or (
        noted is None and not (usage.input_tokens or usage.output_tokens)
    )
    if usage is not None and now - at < 1.0 and unchanged:
        return
    call.noted = (usage, now)
    usage = usage or Usage()
    try:
        journal.progress(call.request_id, {
            "k": "u", "id": call.request_id, "at": time.time_ns() // 1000,
            "ms": call.latency_ms, "ttft": call.ttft_ms, "status": call.status,
            "chars": text_chars,
            "usage": [usage.input_tokens, usage.output_tokens, usage.cache_read_tokens,
                      usage.cache_write_tokens, usage.cache_write_1h_tokens,
                      usage.reasoning_tokens],
        })  # fmt: skip
    except Exception:
        logger.exception("could not journal call %s", call.request_id)


def record(call: Call) -> None:
    """Price the call and queue its events. Never raises: a call must not fail
    because its accounting did; the failure is logged loudly instead."""
    try:
        call.finished = call.finished or time.perf_counter()
        price(call)  # cancelled calls are billed too; a refused one costs $0 (null if unpriced)
        budgets.settle(call.reservation, call.cost_usd, call.usage)
        journal.finished(call.request_id, events_of(call))
        observe(call)
        access_log.write(call)
        telemetry.export(call)
    except Exception:
        logger.exception("could not record call %s", call.request_id)
    finally:
        pacing.answered(call)  # a stream that ended before its first byte went out
        # Only once its events are queued: whoever waits for in_flight to reach 0 (a test,
        # a drain) then finds them in the writer's queue.
        metrics.in_flight.dec()


COMMON = (
    "request_id", "gateway_key_id", "user", "team", "workspace", "inbound_shape", "provider",
    "model", "requested_model",
)  # fmt: skip


def described(call: Call) -> dict:
    """What the events say of the call that is known when it goes upstream."""
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
        "key_name": key.name,
        "key_owner": key.user,
        "stream": call.stream,
        "decided_by": route.decided_by,
        "dropped_params": call.dropped_params,
        "operation": call.operation,
    }


def identity_of(call: Call) -> dict:
    """Who made the call and what it asked for: the fields every event of a call carries."""
    described_ = described(call)
    return {name: described_[name] for name in COMMON}


def events_of(call: Call) -> list[PendingEvent]:
    return events_from(
        described(call),
        usage=call.usage,
        cost_usd=call.cost_usd,
        price_source=call.price_source,
        cache_costs=call.cache_costs,
        latency_ms=call.latency_ms,
        ttft_ms=call.ttft_ms,
        overhead_ms=call.overhead_ms,
        status=call.status,
        error_class=call.error_class,
        retries=call.retries,
        upstream_request_id=call.upstream_request_id,
    )


def events_from(
    call: dict,
    *,
    usage: Usage,
    cost_usd: Decimal | None,
    price_source: str | None,
    latency_ms: float,
    ttft_ms: float | None,
    overhead_ms: float,
    status: int,
    error_class: str | None,
    retries: int,
    upstream_request_id: str | None,
    cache_costs: pricing.CacheCosts | None = None,
    make: Callable[..., PendingEvent] = make_event,
) -> list[PendingEvent]:
    """The call's three events, from `described()` and its outcome (gateway/recovery.py
    makes them for calls a crash cut short, with ids of its own `make`)."""
    common = {name: call[name] for name in COMMON}
    cost = orjson.Fragment(format(cost_usd, "f")) if cost_usd is not None else None
    completed = {
        **common,
        "key_name": call["key_name"],
        "key_owner": call["key_owner"],
        "stream": call["stream"],
        "operation": call.get("operation", "chat"),  # journaled before calls had one: chat
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_creation_1h_input_tokens": usage.cache_write_1h_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "usage_estimated": usage.estimated,
        "cost_usd": cost,
        **_cache_money(cache_costs),
        "price_source": price_source,
        "latency_ms": latency_ms,
        "ttft_ms": ttft_ms,
        "overhead_ms": overhead_ms,
        "status": status,
        "error_class": error_class,
        "retries": retries,
        "upstream_request_id": upstream_request_id,
        # Fields a cross-shape call dropped by the key's policy (journals older than the
        # field have none).
        "dropped_params": call.get("dropped_params", []),
    }
    decided = {**common, "decided_by": call["decided_by"]}
    turn = {
        **common,
        "status": status,
        "error_class": error_class,
        "cost_usd": cost,
        "latency_ms": latency_ms,
    }
    key_id = common["gateway_key_id"]
    return [
        make("route.decided", decided, gateway_key_id=key_id),
        make("llm.call_completed", completed, gateway_key_id=key_id),
        make("turn.completed", turn, gateway_key_id=key_id),
    ]


def observe(call: Call) -> None:
    provider, usage = call.route.upstream.name, call.usage
    model = metrics.model_label(call.route.model, routing.configured_models())
    status = metrics.status_label(call.status)
    metrics.labelled(metrics.requests, call.inbound_shape.value, provider, model, status).inc()
    if call.error_class:
        metrics.labelled(metrics.errors, metrics.error_label(call.error_class)).inc()
    metrics.labelled(metrics.overhead, call.inbound_shape.value).observe(call.overhead_ms / 1000)
    if call.upstream_started:
        upstream_s = (call.finished or time.perf_counter()) - call.upstream_started
        metrics.labelled(metrics.upstream_latency, provider, model).observe(upstream_s)
    for kind, count in (
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
        ("cache_read", usage.cache_read_tokens),
        ("cache_write", usage.cache_write_tokens),
        ("reasoning", usage.reasoning_tokens),
    ):
        if count:
            metrics.labelled(metrics.tokens, provider, model, kind).inc(count)
    if call.cost_usd:
        metrics.labelled(metrics.cost, provider, model).inc(float(call.cost_usd))


def _cache_money(costs: pricing.CacheCosts | None) -> dict:
    """The cache figures analytics sums (analytics.rollup), priced now with the call: a
    rebuild from the events then gives the prices the call was charged. Absent (0) from
    the calls that did not touch the cache: most calls, and no bytes spent on them."""
    if costs is None:
        return {}
    return {
        f"cache_{name}": orjson.Fragment(format(getattr(costs, name), "f"))
        for name in ("write_5m_usd", "write_1h_usd", "saved_usd", "write_premium_usd")
    }
