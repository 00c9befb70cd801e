from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest

from analytics.pricing import PRICE_SOURCE, Price, PriceTier, cost_usd, find_price
from analytics.usage import Usage

D = Decimal
NOW = datetime(2026, 11, 22, tzinfo=UTC)


def price_of(provider: str, model: str) -> Price:
    price = find_price(provider, model, at=NOW)
    assert price is not None, model
    return price


def test_haiku_4_5_has_the_published_prices() -> None:
    # anthropic.com/pricing: $1 in, $5 out, $0.10 cache hit, $1.25 5m write, $2 1h write
    assert price_of("anthropic", "claude-haiku-4-5") == Price(
        input=D("1"),
        output=D("5"),
        cache_read=D("0.1"),
        cache_write_5m=D("1.25"),
        cache_write_1h=D("2"),
        source=PRICE_SOURCE,
    )


def test_a_cached_call_charges_each_part_of_input_at_its_own_rate() -> None:
    usage = Usage(
        input_tokens=10521,  # 21 uncached + 8000 read + 2500 written (2000 of them 1h)
        output_tokens=17,
        cache_read_tokens=8000,
        cache_write_tokens=2500,
        cache_write_1h_tokens=2000,
    )
    # 21*1 + 8000*0.1 + 500*1.25 + 2000*2 + 17*5 = 5531 per million
    assert cost_usd(price_of("anthropic", "claude-haiku-4-5"), usage) == D("0.0055310000")


def test_one_hour_cache_writes_cost_more_than_five_minute_writes() -> None:
    price = price_of("anthropic", "claude-haiku-4-5")
    five_minute = Usage(input_tokens=1000, cache_write_tokens=1000)
    one_hour = Usage(input_tokens=1000, cache_write_tokens=1000, cache_write_1h_tokens=1000)
    assert cost_usd(price, five_minute) == D("0.00125")
    assert cost_usd(price, one_hour) == D("0.002")


def test_every_rate_switches_once_input_with_cache_exceeds_the_long_context_tier() -> None:
    price = price_of("anthropic", "claude-sonnet-4-5")
    assert price.tiers == (
        PriceTier(
            above_input_tokens=200_000,
            input=D("6"),
            output=D("22.5"),
            cache_read=D("0.6"),
            cache_write_5m=D("7.5"),
            cache_write_1h=D("12"),
        ),
    )
    long = Usage(input_tokens=250_000, cache_read_tokens=50_000, output_tokens=1000)
    # 200000*6 + 50000*0.6 + 1000*22.5
    assert cost_usd(price, long) == D("1.2525")
    at_threshold = Usage(input_tokens=200_000, cache_read_tokens=50_000, output_tokens=1000)
    # 150000*3 + 50000*0.3 + 1000*15: "more than 200k" is not reached at exactly 200k
    assert cost_usd(price, at_threshold) == D("0.48")


def test_date_dependent_prices_are_resolved_at_the_calls_time() -> None:
    # Opus 4.6's >200k premium was dropped on 2026-03-13.
    before = find_price("anthropic", "claude-opus-4-6", at=datetime(2026, 1, 5, tzinfo=UTC))
    after = find_price("anthropic", "claude-opus-4-6", at=datetime(2026, 6, 5, tzinfo=UTC))
    assert before is not None and before.tiers[0].input == D("10")
    assert after is not None and after.tiers == ()


def test_reasoning_tokens_are_charged_once_as_output() -> None:
    usage = Usage(input_tokens=19, output_tokens=215, reasoning_tokens=192)
    # gpt-5-mini: 19*0.25 + 215*2
    assert cost_usd(price_of("openai", "gpt-5-mini"), usage) == D("0.00043475")


@pytest.mark.parametrize(
    ("provider", "versioned", "base"),
    [
        ("anthropic", "claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("anthropic", "claude-sonnet-4-6", "claude-sonnet-4-6"),
        ("anthropic", "claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("openai", "gpt-5-mini-2026-03-01", "gpt-5-mini"),
        ("openai", "GPT-5-mini-latest", "gpt-5-mini"),
    ],
)
def test_versioned_model_ids_get_their_base_models_price(
    provider: str, versioned: str, base: str
) -> None:
    assert price_of(provider, versioned) == price_of(provider, base)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("anthropic", "claude-nonexistent-9"),
        ("openai", "llama-3.1-8b-instruct"),
        ("openai", "gpt-5-mini-turbo"),  # only version stamps are stripped, not variants
        ("openai-compatible", "gpt-5-mini"),  # self-hosted: not OpenAI's list price
        ("nosuchprovider", "claude-haiku-4-5"),
    ],
)
def test_unknown_models_have_no_price(provider: str, model: str) -> None:
    assert find_price(provider, model, at=NOW) is None


def test_the_longest_matching_override_wins_over_genai_prices() -> None:
    family = Price(input=D("9"), output=D("9"))
    exact = Price(input=D("2"), output=D("10"))
    overrides = {"claude-haiku": family, "claude-haiku-4-5": exact, "gpt-5-mini": exact}
    assert find_price("anthropic", "claude-haiku-4-5-20251001", overrides) is exact
    assert find_price("anthropic", "claude-haiku-3", overrides) is family
    assert find_price("openai", "gpt-5-mini", overrides) is exact
    assert find_price("openai", "local-llama", overrides) is None
    assert exact.source == "override"


def test_an_override_without_cache_rates_charges_cache_tokens_as_input() -> None:
    price = Price(input=D("2"), output=D("4"))
    usage = Usage(input_tokens=300, cache_read_tokens=100, cache_write_tokens=100)
    assert cost_usd(price, usage) == D("0.0006")
    free_reads = Price(input=D("2"), output=D("4"), cache_read=D("0"))
    assert cost_usd(free_reads, usage) == D("0.0004")


def test_the_highest_tier_exceeded_applies() -> None:
    price = Price(
        input=D("1"),
        output=D("1"),
        tiers=(
            PriceTier(above_input_tokens=100, input=D("2"), output=D("2")),
            PriceTier(above_input_tokens=1000, input=D("3"), output=D("3")),
        ),
    )
    assert cost_usd(price, Usage(input_tokens=100)) == D("0.0001")
    assert cost_usd(price, Usage(input_tokens=101)) == D("0.000202")
    assert cost_usd(price, Usage(input_tokens=1001)) == D("0.003003")


def test_costs_are_decimals_quantized_to_ten_places() -> None:
    price = Price(input=D("0.123456789"), output=D("0"))
    cost = cost_usd(price, Usage(input_tokens=1))
    assert cost == D("0.0000001235")
    assert cost.as_tuple().exponent == -10


def test_inconsistent_counts_are_clamped_instead_of_going_negative() -> None:
    price = Price(input=D("1"), output=D("1"), cache_read=D("0.1"))
    usage = Usage(input_tokens=10, cache_read_tokens=50, cache_write_1h_tokens=5)
    assert cost_usd(price, usage) == D("0.000005")


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("anthropic", "claude-haiku-4-5"),
        ("anthropic", "claude-sonnet-4-5"),
        ("anthropic", "claude-opus-4-6"),
        ("openai", "gpt-5-mini"),
        ("openai", "gpt-4o"),
    ],
)
@pytest.mark.parametrize("input_tokens", [5_000, 260_000])
def test_costs_agree_with_genai_prices_own_calculator(
    provider: str, model: str, input_tokens: int
) -> None:
    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=1234,
        cache_read_tokens=input_tokens // 2,
        cache_write_tokens=input_tokens // 4,
        cache_write_1h_tokens=input_tokens // 8,
    )
    reference = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cache_write_1h_tokens=usage.cache_write_1h_tokens,
        ),
        model,
        provider_id=provider,
        genai_request_timestamp=NOW,
    )
    assert cost_usd(price_of(provider, model), usage) == reference.total_price.quantize(D("1e-10"))


def test_the_price_source_names_the_package_and_its_data() -> None:
    assert PRICE_SOURCE.startswith(f"genai-prices {genai_prices.__version__} (data sha256:")


@pytest.mark.parametrize(
    ("model", "per_mtok"),
    [("text-embedding-3-small", "0.02"), ("text-embedding-3-large", "0.13")],
)
def test_embedding_models_are_priced_by_input_alone(model: str, per_mtok: str) -> None:
    price = find_price("openai", model, at=NOW)

    assert price is not None and price.input_only
    assert price.input == D(per_mtok) and price.output == 0
    assert cost_usd(price, Usage(input_tokens=1_000_000)) == D(per_mtok)
