"""The prompt cache's economics over a group of calls, from the sums every rollup keeps.

Definitions (the README's "Prompt-cache figures" and docs/analytics-contract.md):

- `hit_rate` = cache-read tokens ÷ input tokens, where input is every prompt token: the
  uncached ones, the cache reads and the cache writes (`analytics.usage.Usage`). None
  without input. Rounded to 4 decimal places (0.01 %).
- `write_5m_usd`, `write_1h_usd`: what the cache writes cost, by time to live.
- `saved_usd`: the cache reads at the uncached input rate, less what they cost.
- `write_premium_usd`: the writes, less the same tokens at the uncached input rate.
- `net_saved_usd` = saved - premium: what caching earned (negative: it cost more than it
  saved).

Every amount was priced with its call (`analytics.pricing.cache_costs`, the same lookup
and rates as `cost_usd`); unpriced calls count their tokens and no money.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

RATE_QUANTUM = Decimal("0.0001")
_MONEY_QUANTUM = Decimal("1e-10")


def hit_rate(read_tokens: int, input_tokens: int) -> Decimal | None:
    if input_tokens <= 0:
        return None
    return (Decimal(read_tokens) / Decimal(input_tokens)).quantize(RATE_QUANTUM, ROUND_HALF_EVEN)


def cache_figures(sums: Mapping[str, Any]) -> dict[str, Any]:
    def usd(name: str) -> Decimal:
        return Decimal(sums.get(name) or 0).quantize(_MONEY_QUANTUM)

    writes, writes_1h = sums.get("cache_write_tokens") or 0, sums.get("cache_write_1h_tokens") or 0
    saved, premium = usd("cache_saved_usd"), usd("cache_write_premium_usd")
    return {
        "hit_rate": hit_rate(sums.get("cache_read_tokens") or 0, sums.get("input_tokens") or 0),
        "read_tokens": sums.get("cache_read_tokens") or 0,
        "write_5m_tokens": writes - writes_1h,
        "write_1h_tokens": writes_1h,
        "write_5m_usd": usd("cache_write_5m_usd"),
        "write_1h_usd": usd("cache_write_1h_usd"),
        "saved_usd": saved,
        "write_premium_usd": premium,
        "net_saved_usd": saved - premium,
    }
