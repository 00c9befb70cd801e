"""Reading the providers' organisation reports: one module per provider, behind `read()`.

Each returns `Row`s per UTC day, API key id and model, with the keys' redacted hints so the
caller can tell which keys are the ones Metis holds. Buckets of any width are summed into
their UTC day; every page is read (`has_more` / `next_page`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
MAX_PAGES = 10_000  # a provider that never stops saying has_more is a bug, not a report


class ReportError(Exception):
    """The provider refused or answered something that is not its report."""


@dataclass
class Row:
    day: date
    api_key_id: str
    model: str
    input_tokens: int = 0  # uncached
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    cost_usd: Decimal | None = None


@dataclass
class Report:
    rows: dict[tuple[date, str, str], Row] = field(default_factory=dict)
    key_hints: dict[str, str] | None = None  # key id -> hint; None: the key list was refused

    def row(self, day: date, api_key_id: str | None, model: str | None) -> Row:
        key = (day, api_key_id or "", model or "")
        if key not in self.rows:
            self.rows[key] = Row(*key)
        return self.rows[key]

    def add_cost(self, day: date, api_key_id: str | None, model: str | None, usd: Decimal) -> None:
        row = self.row(day, api_key_id, model)
        row.cost_usd = (row.cost_usd or Decimal(0)) + usd


def pages(
    client: httpx.Client, path: str, params: dict[str, Any], headers: dict[str, str]
) -> Iterator[dict[str, Any]]:
    """Every page of a report; amounts keep their exact decimal digits (parse_float)."""
    page: str | None = None
    for _ in range(MAX_PAGES):
        query = {**params, **({"page": page} if page else {})}
        try:
            response = client.get(path, params=query, headers=headers)
        except httpx.HTTPError as exc:
            raise ReportError(f"{path}: {exc}") from exc
        if response.status_code != 200:
            raise ReportError(f"{path}: HTTP {response.status_code} {response.text[:300]}")
        try:
            body = json.loads(response.content, parse_float=Decimal)
        except ValueError:
            raise ReportError(f"{path}: the answer is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise ReportError(f"{path}: the answer has no data list")
        yield body
        page = body.get("next_page")
        if not body.get("has_more") or not page:
            return
    raise ReportError(f"{path}: more than {MAX_PAGES} pages")


def day_of(value: str | int) -> date:
    """The UTC day of a bucket's start: RFC 3339 (Anthropic) or Unix seconds (OpenAI)."""
    if isinstance(value, int):
        return datetime.fromtimestamp(value, UTC).date()
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).date()


def holds(api_key: str, hint: str) -> bool:
    """Whether a redacted hint (`sk-ant-api03-R2D...igAA`) is of this key."""
    head, sep, tail = hint.partition("...")
    if not sep:
        return False
    long_enough = len(api_key) >= len(head) + len(tail)
    return long_enough and api_key.startswith(head) and api_key.endswith(tail)
