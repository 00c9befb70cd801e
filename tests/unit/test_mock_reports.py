"""The mock provider's organisation reports: computed from the calls it served, paged."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import anthropic
import httpx
import openai
import pytest

from mock_provider import MockProviderThread
from mock_provider.ledger import key_hint, key_id

BETA = {"x-api-key": "sk-ant-admin", "anthropic-beta": "analytics-usage-cost-2026-08-24"}
OPENAI_ADMIN = {"authorization": "Bearer sk-admin"}
KEY = "sk-ant-api03-the-key-that-called-0001"


@pytest.fixture
def mock() -> Iterator[MockProviderThread]:
    with MockProviderThread(report_page_size=1) as thread:
        yield thread


def day_range() -> dict[str, str]:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "starting_at": (today - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ending_at": (today + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def every_page(url: str, params: dict, headers: dict) -> list[dict]:
    pages, page = [], None
    while True:
        body = httpx.get(url, params={**params, **({"page": page} if page else {})},
                         headers=headers).json()  # fmt: skip
        pages.append(body)
        if not body["has_more"]:
            return pages
        page = body["next_page"]


def test_anthropic_usage_is_what_was_served_one_row_a_page(mock) -> None:
    client = anthropic.Anthropic(base_url=mock.url, api_key=KEY, max_retries=0)
    served = [
        client.messages.create(model=m, max_tokens=32, messages=[{"role": "user", "content": m}])
        for m in ("claude-haiku-4-5", "claude-haiku-4-5", "claude-opus-4-5")
    ]
    params = {**day_range(), "time_bucket_width": "1d", "group_by[]": ["api_key_id", "model"]}
    pages = every_page(f"{mock.url}/v1/organizations/analytics/usage", params, BETA)
    assert [len(p["data"]) for p in pages] == [1, 1]  # two models, a row a page
    rows = {r["group"]["model"]: r for p in pages for r in p["data"]}
    haiku = rows["claude-haiku-4-5"]
    assert haiku["group"]["api_key_id"] == key_id(KEY, "apikey_")
    assert haiku["usage"]["requests"] == 2
    assert haiku["usage"]["output_tokens"] == sum(m.usage.output_tokens for m in served[:2])
    assert haiku["usage"]["uncached_input_tokens"] == sum(m.usage.input_tokens for m in served[:2])
    keys = httpx.get(f"{mock.url}/v1/organizations/api_keys", headers=BETA).json()["data"]
    assert [k["partial_key_hint"] for k in keys] == [key_hint(KEY)] == ["sk-ant-api03...0001"]


def test_anthropic_reports_refuse_what_the_real_one_refuses(mock) -> None:
    url = f"{mock.url}/v1/organizations/analytics/cost"
    assert httpx.get(url, params=day_range(), headers={"x-api-key": "a"}).status_code == 400
    assert httpx.get(url, params={}, headers=BETA).status_code == 400  # no starting_at
    far = {"starting_at": "2026-01-01T00:00:00Z", "ending_at": "2026-03-01T00:00:00Z"}
    assert httpx.get(url, params=far, headers=BETA).status_code == 400  # over 31 days
    bad = {**day_range(), "time_bucket_width": "1w"}
    assert httpx.get(url, params=bad, headers=BETA).status_code == 400


def test_openai_usage_pages_by_bucket_and_costs_by_line_item(mock) -> None:
    client = openai.OpenAI(base_url=f"{mock.url}/v1", api_key="sk-proj-caller-0002")
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user",
                                           "content": "hi"}])  # fmt: skip
    start = int((datetime.now(UTC) - timedelta(days=2)).timestamp())
    params = {"start_time": start, "group_by": ["api_key_id", "model"]}
    pages = every_page(f"{mock.url}/v1/organization/usage/completions", params, OPENAI_ADMIN)
    assert len(pages) == 3 and all(len(p["data"]) == 1 for p in pages)  # 3 daily buckets
    (result,) = pages[-1]["data"][0]["results"]
    assert result["input_tokens"] == reply.usage.prompt_tokens
    assert result["output_tokens"] == reply.usage.completion_tokens
    assert result["api_key_id"] == key_id("sk-proj-caller-0002", "key_")
    params = {"start_time": start, "group_by": ["line_item"]}
    costs = every_page(f"{mock.url}/v1/organization/costs", params, OPENAI_ADMIN)
    items = [r["line_item"] for p in costs for b in p["data"] for r in b["results"]]
    assert items == ["gpt-4o-mini, input", "gpt-4o-mini, output"]
    too_many = {"start_time": start, "limit": 32}
    url = f"{mock.url}/v1/organization/usage/completions"
    assert httpx.get(url, params=too_many, headers=OPENAI_ADMIN).status_code == 400
