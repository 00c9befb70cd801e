"""What the prompt cache saved and cost, from the same rates `cost_usd` charges."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from analytics.cache import cache_figures, hit_rate
from analytics.pricing import CacheCosts, Price, cache_costs, cost_usd, find_price
from analytics.usage import Usage

D = Decimal
NOW = datetime(2026, 11, 22, tzinfo=UTC)


def test_haiku_reads_and_writes_at_their_published_rates() -> None:
    price = find_price("anthropic", "claude-haiku-4-5", at=NOW)
    usage = Usage(input_tokens=10_000, cache_read_tokens=6000, cache_write_tokens=3000,
                  cache_write_1h_tokens=1000, output_tokens=10)  # fmt: skip
    # $1 input, $0.10 read, $1.25 5-minute and $2 1-hour writes per million
    assert cache_costs(price, usage) == CacheCosts(
        write_5m_usd=D("0.0025"),  # 2000 × 1.25
        write_1h_usd=D("0.002"),  # 1000 × 2
        saved_usd=D("0.0054"),  # 6000 × (1 - 0.1)
        write_premium_usd=D("0.0015"),  # 2000 × 0.25 + 1000 × 1
    )


@pytest.mark.parametrize(
    ("model", "usage"),
    [
        ("claude-haiku-4-5", Usage(input_tokens=9000, cache_read_tokens=4000,
                                   cache_write_tokens=3000, cache_write_1h_tokens=500,
                                   output_tokens=77)),
        # past the long-context tier: every rate switches, the cache's too
        ("claude-sonnet-4-5", Usage(input_tokens=250_000, cache_read_tokens=150_000,
                                    cache_write_tokens=40_000, cache_write_1h_tokens=10_000,
                                    output_tokens=1000)),
        ("gpt-5-mini", Usage(input_tokens=5000, cache_read_tokens=3968, output_tokens=12)),
    ],
)  # fmt: skip
def test_the_cost_is_the_uncached_cost_less_the_saving_plus_the_premium(model, usage) -> None:
    provider = "openai" if model.startswith("gpt") else "anthropic"
    price = find_price(provider, model, at=NOW)
    plain = Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    costs = cache_costs(price, usage)
    assert costs.saved_usd > 0
    assert cost_usd(price, usage) == (
        cost_usd(price, plain) - costs.saved_usd + costs.write_premium_usd
    )


def test_a_model_without_cache_prices_saves_nothing_and_pays_no_premium() -> None:
    price = Price(input=D("2"), output=D("4"))
    usage = Usage(input_tokens=1000, cache_read_tokens=500, cache_write_tokens=200)
    assert cache_costs(price, usage) == CacheCosts(D("0.0004"), D("0"), D("0"), D("0"))


def test_hit_rate_is_reads_over_every_input_token() -> None:
    assert hit_rate(1, 3) == D("0.3333")
    assert hit_rate(0, 0) is None
    figures = cache_figures({"input_tokens": 10, "cache_read_tokens": 4, "cache_write_tokens": 5,
                             "cache_write_1h_tokens": 2, "cache_saved_usd": D("0.5"),
                             "cache_write_premium_usd": D("0.75")})  # fmt: skip
    assert figures["hit_rate"] == D("0.4")
    assert (figures["write_5m_tokens"], figures["write_1h_tokens"]) == (3, 2)
    assert figures["net_saved_usd"] == D("-0.25")  # the writes cost more than reads saved
