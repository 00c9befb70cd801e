"""Token usage of one LLM call, in the one shape every provider adapter produces.

It lives in `analytics` (not `gateway`) because pricing needs it and imports only
flow gateway -> analytics -> identity; `gateway.providers.base` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call, comparable across providers.

    `input_tokens` includes cache reads and cache writes (tensorzero's convention),
    so the cache fields are subsets of it and input means the same thing for
    Anthropic and OpenAI. `output_tokens` includes `reasoning_tokens`. Only
    `analytics.pricing.cost_usd` splits the subsets back out.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0  # all cache writes (5m + 1h)
    cache_write_1h_tokens: int = 0  # the subset of cache_write_tokens written with the 1-hour TTL
    reasoning_tokens: int = 0
    estimated: bool = False  # some count was estimated: the provider never reported it
