"""Prometheus metrics for `GET /metrics` on the gateway."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

registry = CollectorRegistry(auto_describe=True)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                   10, 30, 60, 120, 300, 600)  # fmt: skip

requests = Counter(
    "metis_requests", "Gateway calls", ["inbound_shape", "provider", "model", "status"],
    registry=registry,
)  # fmt: skip
errors = Counter("metis_errors", "Gateway calls that failed", ["error_class"], registry=registry)
overhead = Histogram(
    "metis_gateway_overhead_seconds", "Time spent in the gateway, upstream excluded",
    ["inbound_shape"], buckets=LATENCY_BUCKETS, registry=registry,
)  # fmt: skip
upstream_latency = Histogram(
    "metis_upstream_latency_seconds", "Upstream time from send to last byte",
    ["provider", "model"], buckets=LATENCY_BUCKETS, registry=registry,
)  # fmt: skip
tokens = Counter("metis_tokens", "Tokens by kind", ["provider", "model", "kind"], registry=registry)
cost = Counter("metis_cost_usd", "Priced spend in USD", ["provider", "model"], registry=registry)
in_flight = Gauge("metis_calls_in_flight", "Calls accepted and not yet recorded", registry=registry)
