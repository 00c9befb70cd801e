"""Anthropic's Usage and Cost Analytics API (Admin API, beta `analytics-usage-cost-2026-08-24`).

GET /v1/organizations/analytics/usage and /cost, as the anthropic SDK types them
(`beta.organization.analytics`): `starting_at` / `ending_at` (RFC 3339, at most 31 days a
request), `time_bucket_width=1d`, `group_by[]=api_key_id&group_by[]=model`; rows of
`{starting_at, group: {api_key_id, model}, usage | cost}`, paged by `next_page`. Usage
splits input into `uncached_input_tokens`, `cache_creation.ephemeral_5m/1h_input_tokens`
and `cache_read_input_tokens`; cost `amount` is in cents, a decimal string. The key list
(GET /v1/organizations/api_keys) gives each key's `partial_key_hint`.

The legacy /v1/organizations/usage_report/messages and /cost_report still answer, but are
not read: the analytics endpoints report the same figures per key and model.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import httpx

from reconcile.reports import TIMEOUT, Report, ReportError, day_of, pages

BETA = "analytics-usage-cost-2026-08-24"
VERSION = "2023-06-01"
SPAN = timedelta(days=31)


def read(base_url: str, admin_key: str, start: datetime, end: datetime) -> Report:
    """Usage and cost per UTC day, key and model for [start, end) (whole UTC days)."""
    headers = {"x-api-key": admin_key, "anthropic-version": VERSION, "anthropic-beta": BETA}
    report = Report()
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        chunk = start
        while chunk < end:
            until = min(chunk + SPAN, end)
            params = {
                "starting_at": chunk.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "ending_at": until.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "time_bucket_width": "1d",
                "group_by[]": ["api_key_id", "model"],
                "limit": 1000,
            }
            for page in pages(client, "/v1/organizations/analytics/usage", params, headers):
                for item in page["data"]:
                    _add_usage(report, item)
            for page in pages(client, "/v1/organizations/analytics/cost", params, headers):
                for item in page["data"]:
                    group, cost = item.get("group") or {}, item.get("cost") or {}
                    if cost.get("currency", "USD").upper() != "USD":
                        raise ReportError(f"a cost in {cost.get('currency')}, not USD")
                    cents = Decimal(str(cost.get("amount") or "0"))
                    report.add_cost(
                        day_of(item["starting_at"]), group.get("api_key_id"),
                        group.get("model"), cents / 100,
                    )  # fmt: skip
            chunk = until
        report.key_hints = _key_hints(client, headers)
    return report


def _add_usage(report: Report, item: dict) -> None:
    group, usage = item.get("group") or {}, item.get("usage") or {}
    row = report.row(day_of(item["starting_at"]), group.get("api_key_id"), group.get("model"))
    writes = usage.get("cache_creation") or {}
    row.input_tokens += int(usage.get("uncached_input_tokens") or 0)
    row.cache_write_5m_tokens += int(writes.get("ephemeral_5m_input_tokens") or 0)
    row.cache_write_1h_tokens += int(writes.get("ephemeral_1h_input_tokens") or 0)
    row.cache_read_tokens += int(usage.get("cache_read_input_tokens") or 0)
    row.output_tokens += int(usage.get("output_tokens") or 0)
    row.requests += int(usage.get("requests") or 0)


def _key_hints(client: httpx.Client, headers: dict[str, str]) -> dict[str, str] | None:
    hints: dict[str, str] = {}
    params: dict[str, str | int] = {"limit": 1000}
    try:
        for _ in range(1000):
            response = client.get("/v1/organizations/api_keys", params=params, headers=headers)
            if response.status_code != 200:
                return None
            body = response.json()
            for key in body.get("data") or []:
                if key.get("id") and key.get("partial_key_hint"):
                    hints[key["id"]] = key["partial_key_hint"]
            if not body.get("has_more") or not body.get("last_id"):
                break
            params["after_id"] = body["last_id"]
    except (httpx.HTTPError, ValueError):
        return None
    return hints
