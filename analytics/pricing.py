"""What a call cost, in USD Decimals: the price lookup and the arithmetic.

Prices come from operator overrides first, then from the price table bundled
with pydantic's `genai-prices` (never its network updater: gateways run
offline). genai-prices counts usage the way we do (input includes cache reads
and writes, 1h writes are a subset of writes, tiers switch every rate once
total input exceeds the threshold) and stores prices as Decimals, so its table
maps onto `Price` one to one. What this module adds or corrects around it:

- Provider ids are matched exactly. genai-prices matches a provider id by
  substring, which would price a self-hosted "openai-compatible" model at
  OpenAI's list prices.
- OpenAI entries match exact ids only; we retry with trailing version stamps
  removed (`-2026-01-15`, `-20251001`, `-latest`, `@20250514`, `-v2:0`), one at
  a time, so the longest matching prefix wins. Nothing else is stripped: a
  `-realtime` or `-audio` variant is a different price, not a version.
- A price it lacks (cache read/write on a model without caching) is charged at
  the input rate, as genai-prices does; a model without an input price is
  unknown (None), so cost is recorded as null, never as $0. A model with an input
  price and no output price (an embedding model) is priced for input alone
  (`Price.input_only`), and a call of it that reports output is unpriced.
- Date-dependent prices (genai-prices' ConditionalPrice) are resolved at the
  call's time. Variants keyed by request context (batch, OpenAI service_tier,
  Anthropic fast mode) are not applied, and per-request fees and web-search
  charges are not priced: `Usage` does not carry them.
- The bundled data has no version of its own, so `PRICE_SOURCE` names the
  package version plus the data file's hash from the wheel's RECORD.

`cost_usd` returns Decimals quantized to 10 decimal places (1e-10 USD,
ROUND_HALF_EVEN): every published per-million rate with up to 4 decimals is then
exact per token, and all recorded costs share one scale for storage and sums.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from importlib import metadata
from typing import TYPE_CHECKING

from analytics.usage import Usage

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, ModelPrice, Tier, TieredPrices

__all__ = [
    "PRICE_SOURCE",
    "CacheCosts",
    "Price",
    "PriceTier",
    "cache_costs",
    "cost_usd",
    "find_price",
]

_QUANTUM = Decimal("1e-10")
_VERSION_STAMP = re.compile(r"(?:-\d{8}|-\d{4}-\d{2}-\d{2}|-latest|@[\w.-]+|-v\d+(?::\d+)?)$")


@dataclass(frozen=True, slots=True)
class PriceTier:
    """Rates (USD per million tokens) that replace ALL of a Price's rates when
    the call's total input tokens, cache included, exceed `above_input_tokens`."""

    above_input_tokens: int
    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None  # None: charged at this tier's input rate
    cache_write_5m: Decimal | None = None  # None: charged at this tier's input rate
    cache_write_1h: Decimal | None = None  # None: charged at the 5m write rate


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens for one model, with optional long-context tiers."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None  # None: charged at the input rate
    cache_write_5m: Decimal | None = None  # None: charged at the input rate
    cache_write_1h: Decimal | None = None  # None: charged at the 5m write rate
    tiers: tuple[PriceTier, ...] = ()  # ascending thresholds; the highest one exceeded applies
    source: str = "override"
    # Priced for input alone (embedding models): output has no rate, so a call that
    # reports output is unpriced rather than charged $0 for it (gateway.calls.priced).
    input_only: bool = False


def cost_usd(price: Price, usage: Usage) -> Decimal:
    """USD cost of `usage` at `price`, quantized to 10 decimal places.

    The one place that splits the cache subsets out of `input_tokens`; reasoning
    tokens are part of output and are not charged again. Inconsistent counts
    (subsets larger than their total) are clamped rather than raising, because a
    call must always be recordable.
    """
    rates, (uncached, cache_read, write_5m, write_1h) = _split(price, usage)
    write_5m_rate = _or(rates.cache_write_5m, rates.input)
    total = (
        uncached * rates.input
        + cache_read * _or(rates.cache_read, rates.input)
        + write_5m * write_5m_rate
        + write_1h * _or(rates.cache_write_1h, write_5m_rate)
        + max(usage.output_tokens, 0) * rates.output
    )
    return total.scaleb(-6).quantize(_QUANTUM)


@dataclass(frozen=True, slots=True)
class CacheCosts:
    """What a call's prompt cache cost and saved, in USD at the rates `cost_usd` charged.

    `saved_usd`: the cache reads at the uncached input rate, less what they cost.
    `write_premium_usd`: the cache writes, less what the same tokens cost as plain input
    (the price of making the cache). Net saving = saved - premium.
    """

    write_5m_usd: Decimal
    write_1h_usd: Decimal
    saved_usd: Decimal
    write_premium_usd: Decimal


def cache_costs(price: Price, usage: Usage) -> CacheCosts:
    """The cache part of `cost_usd(price, usage)`: same tier, same clamping, same quantum."""
    rates, (_, cache_read, write_5m, write_1h) = _split(price, usage)
    write_5m_rate = _or(rates.cache_write_5m, rates.input)
    write_5m_usd = _usd(write_5m * write_5m_rate)
    write_1h_usd = _usd(write_1h * _or(rates.cache_write_1h, write_5m_rate))
    read_usd = _usd(cache_read * _or(rates.cache_read, rates.input))
    return CacheCosts(
        write_5m_usd=write_5m_usd,
        write_1h_usd=write_1h_usd,
        saved_usd=_usd(cache_read * rates.input) - read_usd,
        write_premium_usd=write_5m_usd + write_1h_usd - _usd((write_5m + write_1h) * rates.input),
    )


def _split(price: Price, usage: Usage) -> tuple[Price | PriceTier, tuple[int, int, int, int]]:
    """The rates that apply (the highest tier passed) and the input split into (uncached,
    cache read, 5-minute write, 1-hour write) tokens."""
    rates: Price | PriceTier = price
    for tier in price.tiers:
        if usage.input_tokens > tier.above_input_tokens:
            rates = tier
    cache_read = max(usage.cache_read_tokens, 0)
    cache_write = max(usage.cache_write_tokens, 0)
    write_1h = min(max(usage.cache_write_1h_tokens, 0), cache_write)
    uncached = max(usage.input_tokens - cache_read - cache_write, 0)
    return rates, (uncached, cache_read, cache_write - write_1h, write_1h)


def _usd(per_million: Decimal | int) -> Decimal:
    return Decimal(per_million).scaleb(-6).quantize(_QUANTUM)


def find_price(
    provider: str,
    model: str,
    overrides: Mapping[str, Price] | None = None,
    *,
    at: datetime | None = None,
) -> Price | None:
    """The price of `model` served by `provider` at time `at` (default: now).

    Operator `overrides` win: a key equal to the model id or a prefix of it, the
    longest matching key first. Then the bundled genai-prices table. None when
    the model is unknown: the caller records a null cost, never a guessed one.
    """
    model = model.strip().lower()
    if overrides:
        matches = [key for key in overrides if model.startswith(key.lower())]
        if matches:
            return overrides[max(matches, key=len)]
    info = _genai_model(provider.strip().lower(), model)
    if info is None:
        return None
    model_price = info.get_prices(at or datetime.now(tz=UTC))
    # get_prices() without a price context returns one of the bundled table's
    # own ModelPrice objects, alive for the process: their ids are stable keys.
    key = id(model_price)
    if key not in _converted:
        _converted[key] = _from_genai(model_price)
    return _converted[key]


def _data_version() -> str:
    version = metadata.version("genai-prices")
    for file in metadata.files("genai-prices") or ():
        if file.name == "data.py" and file.hash is not None:
            return f"genai-prices {version} (data {file.hash.mode}:{file.hash.value[:16]})"
    return f"genai-prices {version}"


PRICE_SOURCE = _data_version()

_converted: dict[int, Price | None] = {}


@lru_cache(maxsize=2048)
def _genai_model(provider: str, model: str) -> ModelInfo | None:
    # Imported here: the table is a 1.5 MB module, only needed once a call is priced.
    from genai_prices.data import providers

    table = next((entry for entry in providers if entry.id == provider), None)
    if table is None:
        return None
    ref = model
    while True:
        info = table.find_model(ref, all_providers=providers)
        if info is not None:
            return info
        shorter = _VERSION_STAMP.sub("", ref)
        if shorter == ref or not shorter:
            return None
        ref = shorter


def _from_genai(prices: ModelPrice) -> Price | None:
    input_rate = prices.input_mtok
    output_rate = prices.output_mtok
    if input_rate is None:
        return None
    input_only = output_rate is None  # embedding models: input is all they charge
    # Each rate as genai-prices charges it: an unpriced cache subset stays in its
    # parent bucket (a 1h write without its own price is a plain cache write, a
    # cache read or write on a model without cache prices is plain input).
    write_rate = _first(prices.cache_write_5m_mtok, prices.cache_write_mtok, input_rate)
    rates = {
        "input": input_rate,
        "output": Decimal(0) if output_rate is None else output_rate,
        "cache_read": _first(prices.cache_read_mtok, input_rate),
        "cache_write_5m": write_rate,
        "cache_write_1h": _first(prices.cache_write_1h_mtok, prices.cache_write_mtok, input_rate),
    }
    thresholds = sorted({t.start for rate in rates.values() for t in _tiers_of(rate)})
    tiers = tuple(
        PriceTier(above_input_tokens=threshold, **_rates_above(rates, threshold))
        for threshold in thresholds
    )
    return Price(**_rates_above(rates, -1), tiers=tiers, source=PRICE_SOURCE, input_only=input_only)


def _rates_above(rates: Mapping[str, Decimal | TieredPrices], threshold: int) -> dict[str, Decimal]:
    """Each rate that applies once total input exceeds `threshold` (-1: base rates)."""
    resolved: dict[str, Decimal] = {}
    for name, rate in rates.items():
        if isinstance(rate, Decimal):
            resolved[name] = rate
            continue
        resolved[name] = rate.base
        for tier in rate.tiers:  # ascending; the highest tier passed wins
            if threshold >= tier.start:
                resolved[name] = tier.price
    return resolved


def _tiers_of(rate: Decimal | TieredPrices) -> list[Tier]:
    return [] if isinstance(rate, Decimal) else rate.tiers


def _first(*rates: Decimal | TieredPrices | None) -> Decimal | TieredPrices:
    # Explicit None checks: a Decimal("0") rate is a real (free) price, not a gap.
    return next(rate for rate in rates if rate is not None)


def _or(rate: Decimal | None, fallback: Decimal) -> Decimal:
    return fallback if rate is None else rate
