"""Anthropic usage in Metis terms (see the quirks in gateway/shapes/anthropic/__init__.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from analytics.usage import Usage
from gateway.shapes.base import token_count


def read_usage(usage: Mapping[str, Any], so_far: Usage) -> Usage:
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
