"""Prometheus metrics for `GET /metrics` on the gateway.

Every label value comes from a bounded set, whatever clients send: a label per distinct
value is a new series held for the life of the process, and a client choosing model
names took /metrics to 22 MB with 5,000 of them. Models count under their own name only
when the gateway knows them (the price table, the operator's aliases and price
overrides), dated versions under their base id, and everything else as `other`.
Statuses and error classes are the gateway's own, with rare statuses grouped (`4xx`).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.errors import GatewayError

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
token_counts = Counter(
    "metis_token_counts", "count_tokens requests, refusals included", ["status"],
    registry=registry,
)  # fmt: skip
in_flight = Gauge("metis_calls_in_flight", "Calls accepted and not yet recorded", registry=registry)

OTHER = "other"
STATUSES = frozenset({200, 400, 401, 403, 404, 405, 408, 413, 422, 429, 499, 500, 502, 503,
                      504, 529})  # fmt: skip
_VERSION_STAMP = re.compile(r"(?:-\d{8}|-\d{4}-\d{2}-\d{2}|-latest|@[\w.-]+)$")
_ERROR_CLASS = re.compile(r"[A-Z][A-Z_]{0,39}")
_UPSTREAM_STATUS = re.compile(r"UPSTREAM_(\d+)")


@lru_cache(maxsize=1)
def priced_models() -> frozenset[str]:
    """Every model id in the bundled price table."""
    from genai_prices import data

    return frozenset(model.id.lower() for p in data.providers for model in p.models)


@lru_cache(maxsize=1024)
def model_label(model: str, configured: frozenset[str] = frozenset()) -> str:
    """The model's own id if the gateway knows it (dated versions: their base id), else other.
    Cached: one call per gateway call, and `configured` is the catalog's own frozenset."""
    name = model.strip().lower()
    for candidate in (name, _VERSION_STAMP.sub("", name)):
        if candidate in configured or candidate in priced_models():
            return candidate
    return OTHER


_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def labelled(metric: Counter | Histogram, *values: str) -> Any:
    """`metric.labels(*values)`, kept: prometheus_client validates and locks on every call,
    a third of the metrics' cost per gateway call. Bounded as the label values are."""
    key = (id(metric), values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def status_label(status: int) -> str:
    return str(status) if status in STATUSES else f"{status // 100}xx"


def error_label(error_class: str) -> str:
    if match := _UPSTREAM_STATUS.fullmatch(error_class):
        return f"UPSTREAM_{status_label(int(match[1]))}"
    return error_class if _ERROR_CLASS.fullmatch(error_class) else OTHER


# -- who may read /metrics --------------------------------------------------------------

FORWARDED = ("forwarded", "x-forwarded-for", "x-real-ip")


def check_access(peer: str, headers: Mapping[str, str]) -> None:
    """GatewayError unless this client may read /metrics: with METIS_METRICS_TOKEN set, a
    bearer with it; without, a loopback peer that no proxy forwarded (or METIS_METRICS_OPEN)."""
    token = settings.METIS_METRICS_TOKEN
    if token:
        presented = headers.get("authorization", "")
        scheme, _, value = presented.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), token):
            return
        raise GatewayError(
            401,
            "GET /metrics needs Authorization: Bearer METIS_METRICS_TOKEN.",
            headers={"WWW-Authenticate": 'Bearer realm="metis-metrics"'},
        )
    if settings.METIS_METRICS_OPEN or (
        is_loopback(peer) and not any(h in headers for h in FORWARDED)
    ):
        return
    raise GatewayError(
        403,
        "GET /metrics answers loopback clients only; set METIS_METRICS_TOKEN to scrape it "
        "from elsewhere with that bearer token.",
        code="metrics_forbidden",
    )


def is_loopback(peer: str) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 on a dual-stack socket
    return address.is_loopback
