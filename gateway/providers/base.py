"""The provider interface: what the proxy needs from an upstream, and nothing else.

Adapters do no I/O. They turn a client call into an `UpstreamRequest` and read
usage out of response bodies and SSE events, so every one of them is unit-tested
against recorded payloads without a socket.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from analytics.usage import Usage
from gateway.shapes.base import Shape
from gateway.sse import SSEEvent

__all__ = [
    "Provider",
    "UpstreamRequest",
    "Usage",
    "forwarded_headers",
    "join_url",
    "load_json",
    "token_count",
]

# Sent by every SDK and harmless upstream; everything else must match a provider's
# allowlist. An allowlist rather than a denylist, so that hop-by-hop headers
# (connection, te, transfer-encoding, host, content-length, ...), credentials
# (authorization, x-api-key, cookie), Metis' own x-metis-* headers and whatever a
# client's own proxy adds (x-forwarded-*) can never reach the provider.
_COMMON_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",  # upstream may compress; the relay reads decoded bytes
        "content-type",
        "idempotency-key",
        "user-agent",  # kept: the provider sees the real client (claude-cli, openai-python)
    }
)
# x-stainless-* are the official SDKs' platform/retry/timeout headers; kept so
# the upstream sees the same request the SDK would have sent it directly.
_SDK_PREFIX = "x-stainless-"


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """Everything the upstream client needs to send one call."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


class Provider(Protocol):
    """One upstream API shape ("anthropic" or "openai"; OpenAI-compatible servers
    use the OpenAI adapter with their own base URL)."""

    name: str
    shape: Shape  # the wire shape this upstream speaks

    def generate_path(self, model: str, *, stream: bool) -> str:
        """Where a call translated into this provider's shape is sent (some providers
        put the model, or streaming, in the path)."""
        ...

    def build_request(
        self,
        *,
        path: str,
        body: bytes,
        client_headers: Mapping[str, str],
        api_key: str,
        base_url: str,
        method: str = "POST",
    ) -> UpstreamRequest:
        """Address `path` (path + query) under `base_url`, with the client's
        pass-through headers and this provider's auth; `body` is sent as given."""
        ...

    def usage_from_body(self, body: Mapping[str, Any]) -> Usage:
        """Usage of a non-streamed response; missing or null fields count as 0."""
        ...

    def usage_from_event(self, event: SSEEvent, so_far: Usage) -> Usage:
        """Usage after `event`, given the usage seen before it; never raises,
        and returns `so_far` for events that carry no (readable) usage."""
        ...

    def text_from_event(self, event: SSEEvent) -> str:
        """Generated text in `event` (visible, thinking and tool-call arguments),
        used to estimate output tokens of a stream cut off before its usage."""
        ...


def join_url(base_url: str, path: str) -> str:
    """`base_url` + `path`, without doubling `/v1` when the operator's base
    already ends with it (the OpenAI SDK convention: `http://host:8000/v1`)."""
    base = base_url.rstrip("/")
    if not path.startswith("/"):
        path = "/" + path
    if base.endswith("/v1") and (path.startswith("/v1/") or path == "/v1"):
        path = path[3:]
    return base + path


def forwarded_headers(
    client_headers: Mapping[str, str], *, prefixes: Iterable[str]
) -> dict[str, str]:
    """The client headers the provider should see, with lower-cased names:
    the common ones, `x-stainless-*`, and any starting with one of `prefixes`."""
    allowed_prefixes = (_SDK_PREFIX, *prefixes)
    headers: dict[str, str] = {}
    for name, value in client_headers.items():
        lower = name.lower()
        if lower in _COMMON_HEADERS or lower.startswith(allowed_prefixes):
            headers[lower] = value
    return headers


def token_count(value: object) -> int:
    """A token count from upstream JSON: a non-negative int, else 0 (null,
    missing, strings and booleans from a misbehaving server included)."""
    if type(value) is int:
        return value if value > 0 else 0
    if type(value) is float and value.is_integer() and value > 0:
        return int(value)
    return 0


def load_json(data: str) -> Any:
    """Decoded JSON of an event's data, or None when it is not JSON (`[DONE]`, garbage)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
