"""Seeding analytics through the real event writer: `llm.call_completed` events at chosen
moments, submitted to `analytics.writer.writer` like the gateway does."""

from __future__ import annotations

from datetime import datetime

import orjson
from ulid import ULID

from analytics.writer import PendingEvent, writer


def call_event(
    at: datetime,
    *,
    key: str = "gk_a",
    key_name: str = "key-a",
    user: str | None = "alice",
    team: str | None = "eng",
    workspace: str = "/srv/a",
    model: str = "claude-haiku-4-5",
    provider: str = "anthropic",
    shape: str = "anthropic",
    cost: str | None = "0.0010000000",
    latency_ms: float = 100.0,
    status: int = 200,
    error_class: str | None = None,
    input_tokens: int = 100,
    output_tokens: int = 20,
    cache_read: int = 7,
    cache_write: int = 5,
) -> PendingEvent:
    payload = {
        "request_id": f"req_{ULID()}",
        "gateway_key_id": key,
        "key_name": key_name,
        "user": user,
        "team": team,
        "workspace": workspace,
        "inbound_shape": shape,
        "provider": provider,
        "model": model,
        "requested_model": model,
        "stream": False,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "reasoning_tokens": 0,
        "cost_usd": orjson.Fragment(cost) if cost is not None else None,
        "latency_ms": latency_ms,
        "ttft_ms": None,
        "status": status,
        "error_class": error_class,
        "retries": 0,
    }
    timestamp_us = int(at.timestamp() * 1_000_000)
    event_id = str(ULID.from_datetime(at))
    return PendingEvent(
        event_id, "llm.call_completed", timestamp_us, orjson.dumps(payload).decode(), key
    )


def write(events: list[PendingEvent]) -> list[PendingEvent]:
    writer.submit(events)
    assert writer.flush(), "the event writer did not drain"
    return events
