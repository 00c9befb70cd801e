"""The provider interface: what the proxy needs from an upstream, and nothing else.

Adapters do no I/O. They say which wire shapes the provider serves and turn a call
into an `UpstreamRequest`, so every one of them is unit-tested without a socket.
What the provider answers (usage, stream events) is read by the wire shape spoken
to it (gateway/shapes/), since one provider may serve several shapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from analytics.usage import Usage
from gateway.shapes.base import Shape

__all__ = [
    "Provider",
    "UpstreamRequest",
    "Usage",
    "forwarded_headers",
    "join_url",
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
    """One upstream API ("anthropic" or "openai"; OpenAI-compatible servers use the
    OpenAI adapter with their own base URL)."""

    name: str
    # The wire shapes the provider serves natively, preferred first: a caller speaking
    # one of them is passed through; any other caller is translated into the first.
    shapes: tuple[Shape, ...]

    def generate_path(self, model: str, shape: Shape, *, stream: bool) -> str:
        """Where a call translated into `shape` is sent (some providers put the model,
        or streaming, in the path)."""
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
