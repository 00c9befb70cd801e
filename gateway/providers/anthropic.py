"""Anthropic Messages API (https://docs.anthropic.com/en/api/messages).

Quirks this adapter exists for:
- `usage.input_tokens` EXCLUDES cache tokens: total input is input_tokens +
  cache_read_input_tokens + cache_creation_input_tokens.
- `usage.cache_creation` splits cache writes by TTL (ephemeral_5m_input_tokens,
  ephemeral_1h_input_tokens; 1h writes cost more). Older responses omit the
  object: all writes are then 5-minute writes.
- Streams (https://docs.anthropic.com/en/docs/build-with-claude/streaming):
  `message_start.message.usage` carries input and cache counts;
  `message_delta.usage` is CUMULATIVE, so the last one wins and nothing is summed.
  Newer APIs repeat input/cache counts in message_delta (they grow with server
  tools); they replace the start values when present and non-null.
- Thinking tokens are billed inside output_tokens; the API breaks them out only in
  `output_tokens_details.thinking_tokens`, which becomes `reasoning_tokens`.
- Auth is `x-api-key`; `anthropic-version` is required, so 2023-06-01 is sent
  when the client sent none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from gateway.providers.base import (
    UpstreamRequest,
    Usage,
    forwarded_headers,
    join_url,
    load_json,
    token_count,
)
from gateway.shapes.base import Shape
from gateway.sse import SSEEvent

DEFAULT_VERSION = "2023-06-01"
_USAGE_EVENTS = frozenset({"message_start", "message_delta"})
# Delta fields that carry generated text, by delta type.
_TEXT_FIELDS = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
}


class Anthropic:
    name = "anthropic"
    shape = Shape.ANTHROPIC

    def generate_path(self, model: str, *, stream: bool) -> str:
        return "/v1/messages"

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
        headers = forwarded_headers(client_headers, prefixes=("anthropic-",))
        headers.setdefault("anthropic-version", DEFAULT_VERSION)
        if body:
            headers.setdefault("content-type", "application/json")
        headers["x-api-key"] = api_key
        return UpstreamRequest(method, join_url(base_url, path), headers, body)

    def usage_from_body(self, body: Mapping[str, Any]) -> Usage:
        usage = body.get("usage")
        return _read(usage, Usage()) if isinstance(usage, Mapping) else Usage()

    def usage_from_event(self, event: SSEEvent, so_far: Usage) -> Usage:
        if event.event is not None and event.event not in _USAGE_EVENTS:
            return so_far
        if '"usage"' not in event.data:  # skip the JSON decode for the many text deltas
            return so_far
        payload = load_json(event.data)
        if not isinstance(payload, dict):
            return so_far
        kind = payload.get("type")
        if kind == "message_start":  # the first usage of the message: start from zero
            message = payload.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            if not isinstance(usage, dict):
                return so_far
            # Its output_tokens is a placeholder (1); the real count comes cumulatively in
            # message_delta. Left at 0, a stream that ends before one is estimated from its text.
            return replace(_read(usage, Usage()), output_tokens=0)
        if kind == "message_delta":
            usage = payload.get("usage")
            return _read(usage, so_far) if isinstance(usage, dict) else so_far
        return so_far

    def text_from_event(self, event: SSEEvent) -> str:
        if event.event is not None and event.event != "content_block_delta":
            return ""
        payload = load_json(event.data)
        delta = payload.get("delta") if isinstance(payload, dict) else None
        if not isinstance(delta, dict) or not isinstance(kind := delta.get("type"), str):
            return ""  # garbage from upstream must not break the relay
        text = delta.get(_TEXT_FIELDS.get(kind, ""))
        return text if isinstance(text, str) else ""


def _read(usage: Mapping[str, Any], so_far: Usage) -> Usage:
    """`so_far` updated with the counts in `usage`. message_delta counts are
    cumulative, so they replace earlier ones; a field left out (or null) keeps
    its earlier value."""
    # Usage stores total input, so recover the uncached part to re-add new cache counts.
    uncached = so_far.input_tokens - so_far.cache_read_tokens - so_far.cache_write_tokens
    uncached = _given(usage, "input_tokens", max(uncached, 0))
    cache_read = _given(usage, "cache_read_input_tokens", so_far.cache_read_tokens)
    cache_write, write_1h = _cache_writes(
        usage, default_total=so_far.cache_write_tokens, default_1h=so_far.cache_write_1h_tokens
    )
    return Usage(
        input_tokens=uncached + cache_read + cache_write,
        output_tokens=_given(usage, "output_tokens", so_far.output_tokens),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=write_1h,
        reasoning_tokens=_thinking(usage, default=so_far.reasoning_tokens),
        estimated=so_far.estimated,
    )


def _cache_writes(
    usage: Mapping[str, Any], *, default_total: int, default_1h: int
) -> tuple[int, int]:
    """(all cache writes, the 1-hour subset)."""
    total = _given(usage, "cache_creation_input_tokens", default_total)
    write_1h = default_1h
    by_ttl = usage.get("cache_creation")
    if isinstance(by_ttl, Mapping):
        write_1h = token_count(by_ttl.get("ephemeral_1h_input_tokens"))
        if usage.get("cache_creation_input_tokens") is None:
            total = write_1h + token_count(by_ttl.get("ephemeral_5m_input_tokens"))
    return total, min(write_1h, total)


def _thinking(usage: Mapping[str, Any], *, default: int) -> int:
    details = usage.get("output_tokens_details")
    return _given(details, "thinking_tokens", default) if isinstance(details, Mapping) else default


def _given(usage: Mapping[str, Any], key: str, default: int) -> int:
    value = usage.get(key)
    return default if value is None else token_count(value)
