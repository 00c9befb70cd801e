"""The providers' organisation reports, computed from what the mock really served (ledger.py).

Shapes as the providers' SDKs type them (anthropic.types.beta.organization.analytics,
openai.types.admin.organization):

- Anthropic `GET /v1/organizations/analytics/usage` and `/cost` (beta header
  `analytics-usage-cost-2026-08-24`): one row per time bucket and `group_by[]` combination
  with usage, `{starting_at, ending_at, group, usage | cost}`; `limit` rows a page (default
  20), `has_more` / `next_page`, cursor in `page`. Cost `amount` is in cents, a decimal string.
  `GET /v1/organizations/api_keys` lists keys by `partial_key_hint`.
- OpenAI `GET /v1/organization/usage/completions`, `/usage/embeddings` and `/costs`: one
  bucket per `bucket_width` from `start_time` to `end_time` (Unix seconds), empty ones
  included, `limit` buckets a page; costs are `amount.value` in dollars, grouped by
  `line_item` ("<model>, input" / "<model>, output") and `api_key_id`.
  `GET /v1/organization/projects` and `/projects/{id}/api_keys` list keys by
  `redacted_value`.

`make_app(report_page_size=N)` caps every page at N rows (Anthropic) or buckets (OpenAI), so
tests exercise the paging.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from mock_provider.ledger import Entry, Line, key_hint, key_id
from mock_provider.wire import STATE

ANTHROPIC_BETA = "analytics-usage-cost-2026-08-24"
WIDTHS = {"1m": timedelta(minutes=1), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
OPENAI_LIMITS = {"1d": (7, 31), "1h": (24, 168), "1m": (60, 1440)}  # (default, max) buckets
PROJECT = "proj_mock"


class BadRequest(Exception):
    pass


def floor(moment: datetime, width: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + (moment - epoch) // width * width


def _page_of(request: web.Request, items: list[Any], default: int, most: int) -> dict[str, Any]:
    try:
        limit = int(request.query.get("limit", default))
        offset = int(base64.b64decode(request.query.get("page") or "MA==").decode())
    except ValueError:
        raise BadRequest("limit and page must be what the last response gave") from None
    if not 1 <= limit <= most:
        raise BadRequest(f"limit must be 1 to {most}")
    size = min(limit, request.app[STATE].report_page_size or limit)
    rest = items[offset + size :]
    token = base64.b64encode(str(offset + size).encode()).decode() if rest else None
    return {"data": items[offset : offset + size], "has_more": bool(rest), "next_page": token}


def _lines(request: web.Request, family: str) -> dict[Entry, Line]:
    lines = request.app[STATE].ledger.lines
    return {entry: line for entry, line in lines.items() if entry.family == family}


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


# Anthropic ------------------------------------------------------------------------------


def _anthropic_error(status: int, message: str) -> web.Response:
    kind = "authentication_error" if status == 401 else "invalid_request_error"
    return _json({"type": "error", "error": {"type": kind, "message": message}}, status)


def _instant(text: str | None, name: str) -> datetime:
    if not text:
        raise BadRequest(f"{name} is required")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        raise BadRequest(f"{name} must carry a time zone")
    return moment.astimezone(UTC)


def _anthropic_rows(request: web.Request, metric: Callable[[Line], dict]) -> list[dict]:
    query = request.query
    start = _instant(query.get("starting_at"), "starting_at")
    width_name = query.get("time_bucket_width")
    if width_name is not None and width_name not in WIDTHS:
        raise BadRequest("time_bucket_width must be 1d, 1h or 1m")
    if width_name is None:
        end = _instant(query.get("ending_at") or datetime.now(UTC).isoformat(), "ending_at")
        start, end = floor(start, WIDTHS["1h"]), floor(end, WIDTHS["1h"])
    else:
        end = _instant(query.get("ending_at"), "ending_at")
    if end - start > timedelta(days=31):
        raise BadRequest("the range may span at most 31 days")
    group_by = query.getall("group_by[]", [])
    sums: dict[tuple, list[Line]] = defaultdict(list)
    for entry, line in _lines(request, "messages").items():
        if not start <= entry.minute < end:
            continue
        bucket = floor(entry.minute, WIDTHS[width_name]) if width_name else start
        bucket_end = bucket + WIDTHS[width_name] if width_name else end
        key_ = key_id(entry.api_key, "apikey_") if "api_key_id" in group_by else None
        model = entry.model if "model" in group_by else None
        sums[(bucket, bucket_end, key_, model)].append(line)
    rows = []
    for (bucket, bucket_end, key_, model), lines in sorted(sums.items(), key=_order):
        row = {"starting_at": _rfc3339(bucket), "ending_at": _rfc3339(bucket_end)}
        row["group"] = {"api_key_id": key_, "model": model, "workspace_id": None}
        rows.append(row | metric(_sum(lines)))
    return rows


def _order(item: tuple) -> tuple:
    bucket, _, key_, model = item[0]
    return (bucket, key_ or "", model or "")


def _sum(lines: list[Line]) -> Line:
    total = Line()
    for line in lines:
        for kind, count in line.tokens.items():
            total.tokens[kind] += count
        total.requests += line.requests
        total.input_cost += line.input_cost
        total.output_cost += line.output_cost
    return total


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _usage_metric(line: Line) -> dict:
    t = line.tokens
    return {
        "usage": {
            "uncached_input_tokens": t["uncached_input"],
            "cache_creation": {
                "ephemeral_1h_input_tokens": t["cache_write_1h"],
                "ephemeral_5m_input_tokens": t["cache_write_5m"],
            },
            "cache_read_input_tokens": t["cache_read"],
            "output_tokens": t["output"],
            "server_tool_use": {"web_search_requests": 0},
            "total_tokens": sum(t.values()),
            "requests": line.requests,
        }
    }


def _cost_metric(line: Line) -> dict:
    cents = _plain((line.input_cost + line.output_cost) * 100)
    cost = {"amount": cents, "currency": "USD", "list_amount": cents, "requests": line.requests}
    return {"cost": cost}


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def _anthropic_report(metric: Callable[[Line], dict]):
    async def handler(request: web.Request) -> web.Response:
        if not request.headers.get("x-api-key"):
            return _anthropic_error(401, "x-api-key header is required")
        if ANTHROPIC_BETA not in request.headers.get("anthropic-beta", ""):
            return _anthropic_error(400, f"this endpoint needs anthropic-beta: {ANTHROPIC_BETA}")
        try:
            rows = _anthropic_rows(request, metric)
            page = _page_of(request, rows, 20, 1000)
        except BadRequest as exc:
            return _anthropic_error(400, str(exc))
        return _json(page | {"data_refreshed_at": _rfc3339(datetime.now(UTC))})

    return handler


anthropic_usage = _anthropic_report(_usage_metric)
anthropic_cost = _anthropic_report(_cost_metric)


async def anthropic_api_keys(request: web.Request) -> web.Response:
    if not request.headers.get("x-api-key"):
        return _anthropic_error(401, "x-api-key header is required")
    keys = request.app[STATE].ledger.keys("messages")
    data = [
        {"id": key_id(k, "apikey_"), "type": "api_key", "name": f"key {i + 1}",
         "partial_key_hint": key_hint(k), "status": "active"}
        for i, k in enumerate(keys)
    ]  # fmt: skip
    return _json({"data": data, "has_more": False, "first_id": None, "last_id": None})


# OpenAI ---------------------------------------------------------------------------------


def _openai_error(status: int, message: str) -> web.Response:
    return _json({"error": {"message": message, "type": "invalid_request_error"}}, status)


def _openai_buckets(request: web.Request, family: str, widths: tuple[str, ...]) -> list[dict]:
    query = request.query
    width_name = query.get("bucket_width", "1d")
    if width_name not in widths:
        raise BadRequest(f"bucket_width must be one of {', '.join(widths)}")
    width = WIDTHS[width_name]
    try:
        start = datetime.fromtimestamp(int(query["start_time"]), UTC)
        end_time = query.get("end_time")
        end = datetime.fromtimestamp(int(end_time), UTC) if end_time else datetime.now(UTC)
    except (KeyError, ValueError):
        raise BadRequest("start_time (and end_time) must be Unix seconds") from None
    group_by = set(query.getall("group_by", []) + query.getall("group_by[]", []))
    buckets: dict[datetime, dict[tuple, list[Line]]] = {}
    moment = floor(start, width)
    while moment < end:
        buckets[moment] = defaultdict(list)
        moment += width
    lines = _lines(request, family) if family != "costs" else {
        e: line for e, line in request.app[STATE].ledger.lines.items() if e.family != "messages"
    }  # fmt: skip
    for entry, line in lines.items():
        bucket = floor(entry.minute, width)
        if bucket in buckets and start <= entry.minute < end:
            key_ = key_id(entry.api_key, "key_") if "api_key_id" in group_by else None
            model = entry.model if ({"model", "line_item"} & group_by) else None
            buckets[bucket][(key_, model)].append(line)
    return [
        {"object": "bucket", "start_time": int(b.timestamp()),
         "end_time": int((b + width).timestamp()), "groups": groups}
        for b, groups in buckets.items()
    ]  # fmt: skip


def _completions_result(key_: str | None, model: str | None, line: Line) -> list[dict]:
    t = line.tokens
    writes = t["cache_write_5m"] + t["cache_write_1h"]
    return [{
        "object": "organization.usage.completions.result",
        "input_tokens": t["uncached_input"] + t["cache_read"] + writes,
        "input_cached_tokens": t["cache_read"],
        "input_cache_write_tokens": writes,
        "output_tokens": t["output"],
        "num_model_requests": line.requests,
        "api_key_id": key_, "model": model, "project_id": None, "user_id": None, "batch": None,
    }]  # fmt: skip


def _embeddings_result(key_: str | None, model: str | None, line: Line) -> list[dict]:
    return [{
        "object": "organization.usage.embeddings.result",
        "input_tokens": line.tokens["uncached_input"],
        "num_model_requests": line.requests,
        "api_key_id": key_, "model": model, "project_id": None, "user_id": None,
    }]  # fmt: skip


def _costs_result(key_: str | None, model: str | None, line: Line) -> list[dict]:
    parts = (("input", line.input_cost), ("output", line.output_cost))
    return [
        {"object": "organization.costs.result",
         "amount": {"value": orjson.Fragment(_plain(cost)), "currency": "usd"},
         "line_item": f"{model}, {part}" if model else None, "api_key_id": key_,
         "project_id": None}
        for part, cost in parts
        if cost or model is None
    ]  # fmt: skip


def _openai_report(family: str, widths: tuple[str, ...], result):
    async def handler(request: web.Request) -> web.Response:
        if not request.headers.get("authorization", "").lower().startswith("bearer "):
            return _openai_error(401, "You didn't provide an API key.")
        try:
            width = request.query.get("bucket_width", "1d")
            default, most = OPENAI_LIMITS.get(width, (7, 31))
            buckets = _openai_buckets(request, family, widths)
            page = _page_of(request, buckets, default, 180 if family == "costs" else most)
        except BadRequest as exc:
            return _openai_error(400, str(exc))
        for bucket in page["data"]:
            groups = bucket.pop("groups")
            bucket["results"] = [
                item
                for (key_, model), lines in sorted(groups.items(), key=lambda g: str(g[0]))
                for item in result(key_, model, _sum(lines))
            ]
        return _json({"object": "page", **page})

    return handler


openai_completions = _openai_report("completions", ("1m", "1h", "1d"), _completions_result)
openai_embeddings = _openai_report("embeddings", ("1m", "1h", "1d"), _embeddings_result)
openai_costs = _openai_report("costs", ("1d",), _costs_result)


async def openai_projects(request: web.Request) -> web.Response:
    project = {"object": "organization.project", "id": PROJECT, "name": "Default project",
               "status": "active"}  # fmt: skip
    return _json({"object": "list", "data": [project], "has_more": False, "last_id": PROJECT})


async def openai_project_keys(request: web.Request) -> web.Response:
    if request.match_info["project_id"] != PROJECT:
        return _openai_error(404, "No such project")
    keys = request.app[STATE].ledger.keys("completions", "embeddings")
    data = [
        {"object": "organization.project.api_key", "id": key_id(k, "key_"),
         "name": f"key {i + 1}", "redacted_value": key_hint(k)}
        for i, k in enumerate(keys)
    ]  # fmt: skip
    last = data[-1]["id"] if data else None
    return _json({"object": "list", "data": data, "has_more": False, "last_id": last})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/organizations/analytics/usage", anthropic_usage)
    app.router.add_get("/v1/organizations/analytics/cost", anthropic_cost)
    app.router.add_get("/v1/organizations/api_keys", anthropic_api_keys)
    app.router.add_get("/v1/organization/usage/completions", openai_completions)
    app.router.add_get("/v1/organization/usage/embeddings", openai_embeddings)
    app.router.add_get("/v1/organization/costs", openai_costs)
    app.router.add_get("/v1/organization/projects", openai_projects)
    app.router.add_get("/v1/organization/projects/{project_id}/api_keys", openai_project_keys)
