"""What the mock served, per API key, model, UTC minute and token kind: its organisation
reports (mock_provider/reports.py) are computed from this, so they tell the truth about the
traffic, at any bucket width down to a minute.

Each call is priced as it is entered, at the list price Metis itself looks up
(`analytics.pricing`, no operator overrides): a provider bills per request, so a long-context
tier applies per call, never to a day's sum. Calls with `x-mock-fixed` (the benchmarks'
precomputed replies) are not entered: nothing reconciles against a benchmark.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal

from aiohttp import web

from analytics.pricing import cost_usd, find_price
from analytics.usage import Usage

TOKEN_KINDS = ("uncached_input", "cache_write_5m", "cache_write_1h", "cache_read", "output")


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger line: `family` is the report it belongs to (messages, completions,
    embeddings)."""

    family: str
    api_key: str
    model: str
    minute: datetime


@dataclass(slots=True)
class Line:
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_KINDS, 0))
    requests: int = 0
    input_cost: Decimal = Decimal(0)  # USD
    output_cost: Decimal = Decimal(0)


@dataclass(slots=True)
class Ledger:
    lines: dict[Entry, Line] = field(default_factory=lambda: defaultdict(Line))

    def add(self, family: str, provider: str, api_key: str, model: str, **tokens: int) -> None:
        """Enter one served call: its tokens by kind (TOKEN_KINDS; uncached input excludes
        every cache read and write)."""
        minute = datetime.now(UTC).replace(second=0, microsecond=0)
        line = self.lines[Entry(family, api_key, model, minute)]
        for kind in TOKEN_KINDS:
            line.tokens[kind] += tokens.get(kind, 0)
        line.requests += 1
        writes = tokens.get("cache_write_5m", 0) + tokens.get("cache_write_1h", 0)
        reads = tokens.get("cache_read", 0)
        usage = Usage(
            input_tokens=tokens.get("uncached_input", 0) + writes + reads,
            output_tokens=tokens.get("output", 0),
            cache_read_tokens=reads,
            cache_write_tokens=writes,
            cache_write_1h_tokens=tokens.get("cache_write_1h", 0),
        )
        price = find_price(provider, model)
        if price is None:  # a model no price table knows (the mock's own): billed nothing
            return
        whole = cost_usd(price, usage)
        input_side = cost_usd(price, replace(usage, output_tokens=0))
        line.input_cost += input_side
        line.output_cost += whole - input_side

    def keys(self, *families: str) -> list[str]:
        return sorted({e.api_key for e in self.lines if e.family in families})

    def clear(self) -> None:
        self.lines.clear()


def api_key_of(request: web.Request) -> str:
    """The key a call authenticated with: `x-api-key`, else the bearer token."""
    if key := request.headers.get("x-api-key"):
        return key
    return request.headers.get("authorization", "").partition(" ")[2].strip()


def key_id(api_key: str, prefix: str) -> str:
    """A stable id for a key, as a provider gives each key one (`apikey_…`, `key_…`)."""
    return prefix + hashlib.sha256(api_key.encode()).hexdigest()[:24]


def key_hint(api_key: str) -> str:
    """The redacted form providers list keys by: the first characters and the last four."""
    head = api_key[:12] if len(api_key) >= 20 else api_key[: max(len(api_key) - 4, 0) // 2]
    return f"{head}...{api_key[-4:]}"
