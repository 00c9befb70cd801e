"""Calls for analytics tests, recorded the way the gateway records them: as
`llm.call_completed` events through the event writer, which builds the typed rows."""

from __future__ import annotations

import uuid
from decimal import Decimal

import orjson

from analytics.writer import make_event, writer
from identity.models import GatewayKey


def record_calls(
    key: GatewayKey,
    *,
    count: int = 1,
    cost_usd: str = "0.0100",
    user: str | None = None,
    model: str = "claude-haiku-4-5",
    inbound_shape: str = "anthropic",
    status: int = 200,
) -> None:
    """`count` calls on `key`, each costing `cost_usd`; `user` is the x-metis-user label
    (default: the key's owner). Waits until the writer has stored them."""
    owner = key.user.username if key.user else None
    payload = {
        "gateway_key_id": key.id,
        "key_name": key.name,
        "key_owner": owner,
        "user": user or owner,
        "team": key.team.name if key.team else None,
        "workspace": key.workspace.path,
        "inbound_shape": inbound_shape,
        "provider": "anthropic" if inbound_shape == "anthropic" else "openai",
        "model": model,
        "requested_model": model,
        "stream": False,
        "input_tokens": 1200,
        "output_tokens": 300,
        "cache_creation_input_tokens": 0,
        "cache_creation_1h_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "reasoning_tokens": 0,
        "usage_estimated": False,
        "cost_usd": orjson.Fragment(format(Decimal(cost_usd), "f")),
        "price_source": "test",
        "latency_ms": 420.0,
        "ttft_ms": None,
        "overhead_ms": 1.0,
        "status": status,
        "error_class": None if status < 400 else "upstream_error",
        "retries": 0,
        "upstream_request_id": None,
    }
    events = [
        make_event(
            "llm.call_completed",
            {**payload, "request_id": uuid.uuid4().hex},
            gateway_key_id=key.id,
        )
        for _ in range(count)
    ]
    writer.submit(events)
    assert writer.flush(), "the event writer did not drain"
