"""The dashboard (`/dashboard/`): one page, three tabs, htmx swaps of its partials.

Every number comes from `analytics.queries` (the same functions behind the JSON API);
this module only picks the queries for a tab and hands their rows to the template.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils import timezone
from django_htmx.http import HttpResponseClientRedirect

from analytics import access, budgets, charts, queries
from analytics.scope import Scope, ScopeError, Viewer, parse_scope

TABS = {"cost": "Cost", "activity": "Activity", "identity": "Spend by identity"}
WINDOWS = ("1h", "24h", "7d", "30d")
VIEWS = {"all": "All", "team": "Per-team", "user": "Per-user", "key": "Per-key"}
FILTERS = ("team", "user", "gateway_key", "workspace")
# The partials a swap may ask for by its target id (django-template-partials names).
PARTIALS = ("dashboard-panel", "identity-tables")
PAGE_SIZE = 50


def scope_of(request: HttpRequest, *, filtered: bool = True) -> Scope:
    """The window (24h unless given) and, for Cost and Activity, the identity filters.
    Only the scope's own parameters reach `parse_scope`: tab, view and page are ours."""
    names = ("window", "from", "to", *(FILTERS if filtered else ()))
    params = {n: request.GET[n] for n in names if request.GET.get(n)}
    if "from" not in params and "window" not in params:
        params["window"] = "24h"
    return parse_scope(params, timezone.now())


def dashboard(request: HttpRequest) -> HttpResponse:
    viewer = access.viewer_for(request)
    if viewer is None:
        if request.htmx:  # a swap would paste the login page into the panel
            back = request.htmx.current_url_abs_path or request.get_full_path()
            return HttpResponseClientRedirect(redirect_to_login(back)["Location"])
        return redirect_to_login(request.get_full_path())
    tab = request.GET.get("tab") if request.GET.get("tab") in TABS else "cost"
    try:
        scope = scope_of(request, filtered=tab != "identity")
    except ScopeError as exc:
        return HttpResponseBadRequest(f"{exc.param}: {exc.message}")
    context: dict[str, Any] = {
        "tabs": TABS,
        "tab": tab,
        "windows": WINDOWS,
        "window": request.GET.get("window") or ("" if request.GET.get("from") else "24h"),
        "chips": chips_of(request),
        "scope": scope,
    }
    context.update(TAB_CONTEXT[tab](request, viewer, scope))
    template = "analytics/dashboard.html"
    if request.htmx and request.htmx.target in PARTIALS:
        template += "#" + request.htmx.target
    return render(request, template, context)


def chips_of(request: HttpRequest) -> list[dict]:
    """One chip per identity filter in scope, each with the link that drops it."""
    chips = []
    for name in FILTERS:
        if value := request.GET.get(name):
            rest = request.GET.copy()
            del rest[name]
            rest.pop("page", None)
            label = "key" if name == "gateway_key" else name
            chips.append(
                {"name": name, "label": label, "value": value, "clear": f"?{rest.urlencode()}"}
            )
    return chips


def cost_context(request: HttpRequest, viewer: Viewer, scope: Scope) -> dict:
    by_model = queries.cost(viewer, scope, "model")
    bucket = charts.bucket_for(scope.start, scope.end)
    timeline = queries.cost(viewer, scope, bucket)["groups"]
    return {
        "totals": by_model["totals"],
        "models": by_model["groups"],
        "chart": charts.cost_chart(timeline, scope.start, scope.end, bucket),
    }


def activity_context(request: HttpRequest, viewer: Viewer, scope: Scope) -> dict:
    try:
        page = min(max(int(request.GET.get("page", "1")), 1), queries.MAX_PAGE)
    except ValueError:
        page = 1
    return {"activity": queries.activity(viewer, scope, page=page, page_size=PAGE_SIZE)}


def identity_context(request: HttpRequest, viewer: Viewer, scope: Scope) -> dict:
    view = request.GET.get("view") if request.GET.get("view") in VIEWS else "all"
    teams = budgets.by_team(viewer, scope)
    users = budgets.by_user(viewer, scope)
    keys = queries.by_key(viewer, scope)
    return {
        "views": VIEWS,
        "view": view,
        "teams": teams,
        "users": users,
        "keys": keys,
        "top_team": callout(teams, "team"),
        "top_user": callout(users, "user"),
        "top_key": callout(keys, "gateway_key_id"),
    }


TAB_CONTEXT: dict[str, Callable[[HttpRequest, Viewer, Scope], dict]] = {
    "cost": cost_context,
    "activity": activity_context,
    "identity": identity_context,
}


def callout(rows: list[dict], field: str) -> dict | None:
    """The row that `queries.top` flags (> 50 % of spend), with its share for the banner."""
    row = queries.top(rows, field)
    if row is None:
        return None
    total = sum((Decimal(str(r.get("cost_usd") or 0)) for r in rows), Decimal(0))
    share = Decimal(str(row.get("cost_usd") or 0)) / total if total else Decimal(0)
    return {"row": row, "share": share}


# -- CSV export -----------------------------------------------------------------------

EXPORTS: dict[str, tuple[tuple[str, ...], Callable[..., list[dict]]]] = {
    "models": (
        ("key", "cost_usd", "calls", "input_tokens", "output_tokens", "errors"),
        lambda viewer, scope: queries.cost(viewer, scope, "model")["groups"],
    ),
    "teams": (
        ("team", "cost_usd", "calls", "users", "quota"),
        lambda viewer, scope: budgets.by_team(viewer, scope),
    ),
    "users": (
        ("user", "cost_usd", "calls", "quota"),
        lambda viewer, scope: budgets.by_user(viewer, scope),
    ),
    "keys": (
        ("gateway_key_id", "name", "user", "team", "cost_usd", "calls", "last_call_at", "quota"),
        lambda viewer, scope: queries.by_key(viewer, scope),
    ),
}
ACTIVITY_COLUMNS = (
    "timestamp", "key_name", "user", "team", "inbound_shape", "provider", "model", "stream",
    "input_tokens", "output_tokens", "cost_usd", "latency_ms", "status", "error_class",
)  # fmt: skip
ACTIVITY_EXPORT_LIMIT = 10_000


def export(request: HttpRequest, table: str) -> HttpResponse:
    """One table as CSV, with the same window and filters as the page it was clicked on."""
    if table not in (*EXPORTS, "activity"):
        raise Http404(f"no table {table!r}")
    viewer = access.viewer_for(request)
    if viewer is None:
        return redirect_to_login(request.get_full_path())
    try:
        scope = scope_of(request, filtered=table in ("models", "activity"))
    except ScopeError as exc:
        return HttpResponseBadRequest(f"{exc.param}: {exc.message}")
    if table == "activity":
        columns = ACTIVITY_COLUMNS
        rows = queries.activity(viewer, scope, page=1, page_size=ACTIVITY_EXPORT_LIMIT)["calls"]
    else:
        columns, fetch = EXPORTS[table]
        rows = fetch(viewer, scope)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="metis-{table}.csv"'
    out = csv.writer(response)
    out.writerow(columns)
    for row in rows:
        out.writerow([cell(row.get(c)) for c in columns])
    return response


def cell(value: object) -> object:
    """A CSV cell: quotas by their label, absent values empty."""
    if isinstance(value, dict):
        return value.get("label", "")
    return "" if value is None else value
