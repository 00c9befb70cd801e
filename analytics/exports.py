"""CSV exports of the dashboard's tables (`/dashboard/export/<table>.csv`).

Each file is one plain table, spreadsheet- and parser-friendly: a single header row, then
one row per item; every row also carries the window (`window_from`, `window_to`, ISO 8601
UTC) and the filters that scoped it (`filters`, e.g. `team=eng; user=bob`), so a row pasted
elsewhere still says what it covers. The file name says the same
(`metis-activity-2026-11-01_to_2026-11-28-team-eng.csv`).

Numbers are numbers: money in USD with full precision and no `$`, budget use as a plain
percentage and no `%`. Text cells that a spreadsheet would read as a formula (starting with
`=`, `+`, `-`, `@`, tab or carriage return, per OWASP's CSV injection advice) get a leading
`'`; numeric cells are never altered, so a negative number stays a number.

Activity is streamed from the database in keyset-paged chunks by an async iterator, so a
table of millions of calls goes out complete with flat memory under ASGI (Django buffers a
*sync* iterator whole when it serves it over ASGI).
"""

from __future__ import annotations

import csv
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.views import redirect_to_login
from django.db.models import Q
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.utils import timezone

from analytics import access, budgets, queries
from analytics.models import Call
from analytics.scope import Scope, ScopeError, Viewer
from analytics.views import default_window, scope_of
from identity.models import Quota

CHUNK = 2000  # activity rows per database round trip
FORMULA_STARTS = frozenset("=+-@\t\r")
BUDGET = (
    "budget_period", "budget_state", "budget_spent_usd", "budget_soft_cap_usd",
    "budget_hard_cap_usd", "budget_used_pct", "budget_resets_at",
)  # fmt: skip
SCOPE = ("window_from", "window_to", "filters")
NUMERIC = {
    "cost_usd", "calls", "unpriced_calls", "users", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "errors", "latency_ms",
    "ttft_ms", "status", "retries", "budget_spent_usd", "budget_soft_cap_usd",
    "budget_hard_cap_usd", "budget_used_pct",
}  # fmt: skip
ACTIVITY = (
    "timestamp", "id", "gateway_key_id", "key_name", "user", "label", "team", "workspace",
    "inbound_shape", "provider", "model", "requested_model", "stream", "input_tokens",
    "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd",
    "latency_ms", "ttft_ms", "status", "error_class", "retries", "request_id",
)  # fmt: skip


def model_rows(viewer: Viewer, scope: Scope) -> list[dict]:
    return [{"model": r["key"], **r} for r in queries.cost(viewer, scope, "model")["groups"]]


def key_rows(viewer: Viewer, scope: Scope) -> list[dict]:
    """queries.by_key with each key's own quota (who sees a key's calls sees its budget)."""
    rows = queries.by_key(viewer, scope)
    quotas = Quota.objects.filter(key_id__in=[r["gateway_key_id"] for r in rows if r["name"]])
    now = timezone.now()
    for row in rows:
        own = [q for q in quotas if q.key_id == row["gateway_key_id"]]
        row["quota"] = budgets.summary(own, now)
    return rows


MODEL_COLUMNS = (
    "model", "cost_usd", "unpriced_calls", "calls", "input_tokens", "output_tokens", "errors",
)  # fmt: skip
KEY_COLUMNS = (
    "gateway_key_id", "name", "user", "team", "cost_usd", "calls", "last_call_at", *BUDGET,
)  # fmt: skip
# table -> (columns, rows for a viewer and scope, whether the identity filters apply).
# Teams, users and keys are the Spend by identity tab's tables: like the tab, unfiltered.
TABLES: dict[str, tuple[tuple[str, ...], Callable[[Viewer, Scope], list[dict]], bool]] = {
    "models": (MODEL_COLUMNS, model_rows, True),
    "teams": (("team", "cost_usd", "calls", "users", *BUDGET), budgets.by_team, False),
    "users": (("user", "cost_usd", "calls", *BUDGET), budgets.by_user, False),
    "keys": (KEY_COLUMNS, key_rows, False),
}


def export(request: HttpRequest, table: str) -> HttpResponse:
    """One table as CSV, with the same window and filters as the page it was clicked on,
    and the same access rules."""
    if table not in (*TABLES, "activity"):
        raise Http404(f"no table {table!r}")
    viewer = access.viewer_for(request)
    if viewer is None:
        return redirect_to_login(request.get_full_path())
    filtered = table == "activity" or TABLES[table][2]
    try:
        scope = scope_of(request, filtered=filtered, default=default_window(viewer))
    except ScopeError as exc:
        return HttpResponseBadRequest(f"{exc.param}: {exc.message}")
    if table == "activity":
        columns, rows = ACTIVITY, activity_rows(viewer, scope)
    else:
        columns, fetch, _ = TABLES[table]
        rows = aiter_list([budget_cells(row) for row in fetch(viewer, scope)])
    response = StreamingHttpResponse(
        csv_lines(columns, rows, scope_cells(scope)),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{file_name(table, scope)}"'
    response["Cache-Control"] = "no-store"
    return response


async def activity_rows(viewer: Viewer, scope: Scope) -> AsyncIterator[dict]:
    """Every call in the scope, newest first, fetched CHUNK at a time after the last row
    seen (keyset paging: no OFFSET to grow, no cursor held open between chunks)."""
    base = Call.objects.filter(
        viewer.q(), scope.q(), timestamp__gte=scope.start, timestamp__lt=scope.end
    ).order_by("-timestamp", "-id")
    page, owners = base, {}
    columns = [c for c in ACTIVITY if c != "label"]
    while True:
        chunk = await sync_to_async(list)(page.values(*columns)[:CHUNK])
        missing = {row["gateway_key_id"] for row in chunk} - owners.keys()
        if missing:
            owners.update(await sync_to_async(queries.key_owners)(missing))
        for row in chunk:
            # As on the dashboard: `user` is the account that owns the key, `label` what
            # the call said it was (x-metis-user), when that differs.
            label, owner = row["user"], owners.get(row["gateway_key_id"], {}).get("user")
            row["user"], row["label"] = owner, (label if label != owner else None)
            yield row
        if len(chunk) < CHUNK:
            return
        last = chunk[-1]
        # The plain upper bound lets the database seek the timestamp index to where the
        # last chunk ended; the OR alone made it walk past every row already sent.
        page = base.filter(timestamp__lte=last["timestamp"]).filter(
            Q(timestamp__lt=last["timestamp"]) | Q(timestamp=last["timestamp"], id__lt=last["id"])
        )


async def aiter_list(rows: list[dict]) -> AsyncIterator[dict]:
    for row in rows:
        yield row


class Line:
    """A file-like object that hands back what csv.writer wrote, one line at a time."""

    def write(self, text: str) -> str:
        return text


async def csv_lines(
    columns: tuple[str, ...], rows: AsyncIterator[dict], scope: dict[str, str]
) -> AsyncIterator[bytes]:
    """The header, then each row's cells followed by the scope's (the same on every row)."""
    out = csv.writer(Line())
    # A BOM, so spreadsheet apps read UTF-8 names right; Python's csv (utf-8-sig) skips it.
    yield "\ufeff".encode() + out.writerow((*columns, *scope)).encode()
    converters = [(name, number_cell if name in NUMERIC else text_cell) for name in columns]
    tail = list(scope.values())
    batch: list[str] = []
    async for row in rows:
        batch.append(out.writerow([convert(row.get(name)) for name, convert in converters] + tail))
        if len(batch) >= 500:  # fewer, larger writes to the socket
            yield "".join(batch).encode()
            batch = []
    if batch:
        yield "".join(batch).encode()


def cell(column: str, value: Any) -> Any:
    """A CSV cell: numbers as numbers, times in ISO 8601 UTC, text defused."""
    return (number_cell if column in NUMERIC else text_cell)(value)


def number_cell(value: Any) -> Any:
    if value.__class__ is Decimal:
        return format(value.normalize(), "f")
    if value.__class__ in (int, float):
        return value
    return text_cell(value)


def text_cell(value: Any) -> str:
    if value.__class__ is not str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        value = str(value)
    return "'" + value if value[:1] in FORMULA_STARTS else value


def budget_cells(row: dict) -> dict:
    """The row's first quota (the one the dashboard shows) as numeric budget columns."""
    quotas = (row.get("quota") or {}).get("quotas") or []
    if not quotas:
        return row
    first = quotas[0]
    cap = first["hard_cap_usd"] if first["hard_cap_usd"] is not None else first["soft_cap_usd"]
    used = (first["spent_usd"] / cap * 100).quantize(Decimal("0.01")) if cap else None
    return {
        **row,
        "budget_period": first["period"],
        "budget_state": first["state"],
        "budget_spent_usd": first["spent_usd"],
        "budget_soft_cap_usd": first["soft_cap_usd"],
        "budget_hard_cap_usd": first["hard_cap_usd"],
        "budget_used_pct": used,
        "budget_resets_at": first["resets_at"],
    }


def scope_cells(scope: Scope) -> dict[str, str]:
    return {
        "window_from": cell("window_from", scope.start),
        "window_to": cell("window_to", scope.end),
        "filters": cell("filters", "; ".join(f"{k}={v}" for k, v in scope.filters.items())),
    }


def file_name(table: str, scope: Scope) -> str:
    """metis-<table>-<from>_to_<to>[-<filter>-<value>…].csv, in ASCII a browser keeps:
    dates alone when the window is whole UTC days, else down to the minute."""
    ends = (scope.start.astimezone(UTC), scope.end.astimezone(UTC))
    whole_days = all(t.time() == datetime.min.time() for t in ends)
    shown = "%Y-%m-%d" if whole_days else "%Y-%m-%dT%H%MZ"
    parts = [
        "metis",
        table,
        f"{ends[0]:{shown}}_to_{ends[1]:{shown}}",
    ]
    for name, value in scope.filters.items():
        parts += [name, re.sub(r"[^A-Za-z0-9._]+", "_", value).strip("_")[:60] or "_"]
    return "-".join(parts) + ".csv"
