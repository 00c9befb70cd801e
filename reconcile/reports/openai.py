"""OpenAI's organisation usage and costs (Admin API key), as the openai SDK types them
(`admin.organization.usage`).

GET /v1/organization/usage/completions and /usage/embeddings: `start_time` / `end_time`
(Unix seconds), `bucket_width=1d`, `group_by=api_key_id&group_by=model`, `limit` buckets a
page (at most 31 of a day); each bucket `{start_time, results: [...]}`. Completions'
`input_tokens` includes `input_cached_tokens` and `input_cache_write_tokens`.
GET /v1/organization/costs groups by `api_key_id` and `line_item` only (not by model):
`amount.value` in dollars; the model is read from the line item ("gpt-4o, input").
Keys are listed per project (/organization/projects/{id}/api_keys, `redacted_value`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import httpx

from reconcile.reports import TIMEOUT, Report, ReportError, day_of, pages

USAGE = ("/v1/organization/usage/completions", "/v1/organization/usage/embeddings")


def read(base_url: str, admin_key: str, start: datetime, end: datetime) -> Report:
    headers = {"authorization": f"Bearer {admin_key}"}
    report = Report()
    span = {"start_time": int(start.timestamp()), "end_time": int(end.timestamp())}
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        params = {**span, "bucket_width": "1d", "group_by": ["api_key_id", "model"], "limit": 31}
        for path in USAGE:
            for page in pages(client, path, params, headers):
                for bucket in page["data"]:
                    day = day_of(int(bucket["start_time"]))
                    for result in bucket.get("results") or []:
                        _add_usage(report, day, result)
        params = {**span, "bucket_width": "1d", "group_by": ["api_key_id", "line_item"]}
        params["limit"] = 180
        for page in pages(client, "/v1/organization/costs", params, headers):
            for bucket in page["data"]:
                day = day_of(int(bucket["start_time"]))
                for result in bucket.get("results") or []:
                    amount = result.get("amount") or {}
                    if (amount.get("currency") or "usd").lower() != "usd":
                        raise ReportError(f"a cost in {amount.get('currency')}, not USD")
                    model = (result.get("line_item") or "").rsplit(", ", 1)[0]
                    value = Decimal(str(amount.get("value") or 0))
                    report.add_cost(day, result.get("api_key_id"), model, value)
        report.key_hints = _key_hints(client, headers)
    return report


def _add_usage(report: Report, day, result: dict) -> None:
    row = report.row(day, result.get("api_key_id"), result.get("model"))
    total = int(result.get("input_tokens") or 0)
    cached = int(result.get("input_cached_tokens") or 0)
    written = int(result.get("input_cache_write_tokens") or 0)
    row.input_tokens += max(total - cached - written, 0)
    row.cache_read_tokens += cached
    row.cache_write_5m_tokens += written
    row.output_tokens += int(result.get("output_tokens") or 0)
    row.requests += int(result.get("num_model_requests") or 0)


def _key_hints(client: httpx.Client, headers: dict[str, str]) -> dict[str, str] | None:
    hints: dict[str, str] = {}
    try:
        for project in _listed(client, "/v1/organization/projects", headers):
            path = f"/v1/organization/projects/{project['id']}/api_keys"
            for key in _listed(client, path, headers):
                if key.get("id") and key.get("redacted_value"):
                    hints[key["id"]] = key["redacted_value"]
    except (httpx.HTTPError, ValueError, KeyError, LookupError):
        return None
    return hints


def _listed(client: httpx.Client, path: str, headers: dict[str, str]) -> list[dict]:
    items: list[dict] = []
    params: dict[str, str | int] = {"limit": 100}
    for _ in range(1000):
        response = client.get(path, params=params, headers=headers)
        if response.status_code != 200:
            raise LookupError(path)
        body = response.json()
        items.extend(body.get("data") or [])
        if not body.get("has_more") or not body.get("last_id"):
            break
        params["after"] = body["last_id"]
    return items
