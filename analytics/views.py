"""The dashboard (`/dashboard/`): one page, four tabs, htmx swaps of its partials.

Every number comes from `analytics.queries` (the same functions behind the JSON API);
this module only picks the queries for a tab and hands their rows to the template.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils import timezone
from django_htmx.http import HttpResponseClientRedirect

from analytics import access, budget_events, budgets, cache_alerts, charts, queries
from analytics.aggregate import aggregate
from analytics.scope import Scope, ScopeError, Viewer, parse_scope
from reconcile import queries as reconciliation

TABS = {
    "cost": "Cost", "activity": "Activity", "identity": "Spend by identity",
    "reconciliation": "Reconciliation",  # staff and budget owners only
}  # fmt: skip
UNFILTERED = ("identity", "reconciliation")  # tabs the identity filters do not apply to
WINDOWS = {
    "1h": "1h", "24h": "24h", "7d": "7d", "30d": "30d", "today": "Today",
    "this_week": "This week", "this_month": "This month", "last_month": "Last month",
}  # fmt: skip
VIEWS = {"all": "All", "team": "Per-team", "user": "Per-user", "key": "Per-key"}
SORTS = {"cost": "Spend", "calls": "Calls", "name": "Name", "budget": "Budget used"}
FILTERS = ("team", "user", "gateway_key", "label", "workspace")
# The partials a swap may ask for by its target id (django-template-partials names).
PARTIALS = ("dashboard-panel", "identity-tables")
PAGE_SIZE = 50
# Rows each identity table renders (in its sort order; the CSV has them all) and budget
# cards the strip shows (the fullest): a company's 2,000 keys are no page to read, and
# rendering them took seconds.
TABLE_ROWS = 50
STRIP_CARDS = 12


def default_window(viewer: Viewer) -> str:
    """A budget owner opens on this month, the period most budgets count; everyone
    else on the last 24 hours, what a developer checks after a day's work."""
    return "this_month" if viewer.kind == "user" and viewer.team_names else "24h"


def scope_of(request: HttpRequest, *, filtered: bool = True, default: str = "24h") -> Scope:
    """The window (`default` unless given) and, for Cost and Activity, the identity
    filters. Only the scope's own parameters reach `parse_scope`: tab, view and page are
    ours."""
    names = ("window", "from", "to", *(FILTERS if filtered else ()))
    params = {n: request.GET[n] for n in names if request.GET.get(n)}
    if "from" not in params and "window" not in params:
        params["window"] = default
    return parse_scope(params, timezone.now())


def dashboard(request: HttpRequest) -> HttpResponse:
    viewer = access.viewer_for(request)
    if viewer is None:
        if request.htmx:  # a swap would paste the login page into the panel
            back = request.htmx.current_url_abs_path or request.get_full_path()
            return HttpResponseClientRedirect(redirect_to_login(back)["Location"])
        return redirect_to_login(request.get_full_path())
    tabs = {n: label for n, label in TABS.items()
            if n != "reconciliation" or reconciliation.may_see(viewer)}  # fmt: skip
    tab = request.GET.get("tab") if request.GET.get("tab") in tabs else "cost"
    default = default_window(viewer)
    try:
        scope = scope_of(request, filtered=tab not in UNFILTERED, default=default)
    except ScopeError as exc:
        return HttpResponseBadRequest(f"{exc.param}: {exc.message}")
    window = request.GET.get("window") or ("" if request.GET.get("from") else default)
    context: dict[str, Any] = {
        "tabs": tabs,
        "tab": tab,
        "windows": WINDOWS,
        "window": window,
        "window_label": WINDOWS.get(window, "custom range").lower(),
        "chips": chips_of(request),
        "scope": scope,
        "viewer": viewer,
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
            if name == "gateway_key":  # people know their keys by name, not by id
                known = queries.key_owners([value]).get(value)
                value = known["name"] if known else value
            chips.append(
                {"name": name, "label": label, "value": value, "clear": f"?{rest.urlencode()}"}
            )
    return chips


def cost_context(request: HttpRequest, viewer: Viewer, scope: Scope) -> dict:
    now = timezone.now()
    by_model = queries.cost(viewer, scope, "model")
    strip = budgets.strip(viewer, scope, now)
    bucket = charts.bucket_for(scope.start, scope.end)
    points = [
        charts.Point(t, cost, calls, unpriced)
        for t, cost, calls, unpriced in queries.series(viewer, scope, bucket.name, bucket.step)
    ]
    chart_quota = quota_for_chart(viewer, scope, strip)
    return {
        "totals": by_model["totals"],
        "models": by_model["groups"],
        "cache_notices": cache_alerts.notices(viewer),
        "strip": strip[:STRIP_CARDS],
        "strip_more": max(len(strip) - STRIP_CARDS, 0),
        "budget_events": budget_events.recent(viewer, now),
        "chart": charts.cost_chart(points, scope.start, scope.end, bucket, chart_quota),
    }


def _to_login(request: HttpRequest) -> HttpResponse:
    """For a part fetched by a page whose viewer signed out since it loaded: to the
    login, not into the page."""
    back = request.htmx.current_url_abs_path if request.htmx else None
    login = redirect_to_login(back or "/dashboard/")
    return HttpResponseClientRedirect(login["Location"]) if request.htmx else login


def cache_tables(request: HttpRequest) -> HttpResponse:
    """The Cost tab's prompt-cache tables per team (not for a key's own token), key and
    model, fetched by the tab once it is shown: the per-key read is the slowest of the
    tab's, and the tiles above them need none of it."""
    viewer = access.viewer_for(request)
    if viewer is None:
        return _to_login(request)
    try:
        scope = scope_of(request, default=default_window(viewer))
    except ScopeError as exc:
        return HttpResponseBadRequest(f"{exc.param}: {exc.message}")
    teams, keys = queries.cache_by_team_and_key(viewer, scope)
    models, _ = aggregate(viewer, scope, ("model",))
    model_rows = queries.cache_rows_of(queries.cache_row(m, agg) for (m,), agg in models.items())
    tables = [] if viewer.kind == "key" else [{"by": "team", "label": "team", "rows": teams}]
    tables.append({"by": "key", "label": "key", "rows": keys})
    tables.append({"by": "model", "label": "model", "rows": model_rows})
    for table in tables:
        table["rows"] = table["rows"][:TABLE_ROWS]
    return render(request, "analytics/cache_tables.html", {"cache_tables": tables})


def quota_for_chart(viewer: Viewer, scope: Scope, strip: list[dict]) -> dict | None:
    """The quota whose pace the chart can honestly draw: one that counts exactly the
    calls charted (the filtered team, user or key's; or the only budget in view)."""
    wanted = None
    if scope.label or scope.workspace:
        return None
    filters = [(n, v) for n, v in (("team", scope.team), ("user", scope.user)) if v]
    if scope.gateway_key:
        filters.append(("key", scope.gateway_key))
    if len(filters) == 1:
        wanted = filters[0]
    elif not filters and viewer.kind == "user" and len(viewer.team_names) == 1:
        wanted = ("team", next(iter(viewer.team_names)))
    elif not filters and viewer.kind == "key":
        wanted = ("key", viewer.gateway_key_id)
    elif not filters and len(strip) == 1 and viewer.kind == "all":
        return strip[0] if strip[0]["scope"] != "key" else None
    if wanted is None:
        return None
    for card in strip:
        if (card["scope"], card["id"]) == wanted and card["status"].resets_at is not None:
            return card
    return None


def activity_context(request: HttpRequest, viewer: Viewer, scope: Scope) -> dict:
    try:
        page = min(max(int(request.GET.get("page", "1")), 1), queries.MAX_PAGE)
    except ValueError:
        page = 1
    return {"activity": queries.activity(viewer, scope, page=page, page_size=PAGE_SIZE)}


def identity_context(request: HttpRequest, viewer: Viewer, scope: Scope) -> dict:
    view = request.GET.get("view") if request.GET.get("view") in VIEWS else "all"
    sort = request.GET.get("sort") if request.GET.get("sort") in SORTS else "cost"
    # The three tables are sums of one read of the window, and share their budgets.
    groups, memo = queries.key_groups(viewer, scope), {}
    teams = budgets.by_team(viewer, scope, groups, memo=memo, members=False)
    teams = sorted_rows(teams, "team", sort)
    for i, team in enumerate(teams[:TABLE_ROWS], start=1):
        team["members_url"] = members_url(request, team["team"], f"team-{i}")
    users = sorted_rows(budgets.by_user(viewer, scope, groups, memo=memo), "user", sort)
    keys = sorted_rows(budgets.by_key(viewer, scope, groups, memo=memo), "name", sort)
    return {
        "views": VIEWS,
        "view": view,
        "sorts": SORTS,
        "sort": sort,
        "sort_label": SORTS[sort],
        "teams": teams[:TABLE_ROWS],
        "users": users[:TABLE_ROWS],
        "keys": keys[:TABLE_ROWS],
        "counts": {"teams": len(teams), "users": len(users), "keys": len(keys)},
        "top_team": callout(teams, "team"),
        "top_user": callout(users, "user"),
        "top_key": callout(keys, "gateway_key_id"),
    }


def members_url(request: HttpRequest, team: str | None, row: str) -> str:
    """Where a team's row fetches its member rows: the page's window and sort, the team
    ("" for the keys with no team) and the row they go under."""
    names = ("window", "from", "to", "sort")
    params = {n: request.GET[n] for n in names if request.GET.get(n)}
    return "/dashboard/team/?" + urlencode({**params, "team": team or "", "row": row})


def team_members(request: HttpRequest) -> HttpResponse:
    """A team's member rows on the Spend by identity tab, fetched when its row is first
    expanded: a company's fifty teams hold hundreds of members, and rendering them all,
    hidden, with their budgets was most of the tab's time."""
    viewer = access.viewer_for(request)
    if viewer is None:
        return _to_login(request)
    row = request.GET.get("row", "")
    if not re.fullmatch(r"team-\d{1,4}", row):
        return HttpResponseBadRequest("row: the team row's id, team-<n>")
    try:
        scope = scope_of(request, filtered=False, default=default_window(viewer))
    except ScopeError as exc:
        return HttpResponseBadRequest(f"{exc.param}: {exc.message}")
    name = request.GET.get("team", "")
    if not name.isprintable():
        return HttpResponseBadRequest("team: must not contain control characters")
    sort = request.GET.get("sort") if request.GET.get("sort") in SORTS else "cost"
    # The team's calls only ("": the calls of keys with no team).
    teams = budgets.by_team(viewer, replace(scope, team=name), memo={})
    team = next((t for t in teams if (t["team"] or "") == name), None)
    members = sorted_rows(team["by_user"], "user", sort) if team else []
    return render(request, "analytics/team_members.html", {"members": members, "parent": row})


def sorted_rows(rows: list[dict], name: str, sort: str) -> list[dict]:
    """Rows by spend (highest first), calls, name (A to Z, the unnamed last) or the
    fullest budget (rows with no budget last); ties by spend, then name."""

    def by_name(row: dict) -> tuple:
        return (row.get(name) is None, str(row.get(name) or "").lower())

    def by_cost(row: dict) -> tuple:
        return (-row["cost_usd"], -row["calls"], *by_name(row))

    keys: dict[str, Callable[[dict], tuple]] = {
        "cost": by_cost,
        "calls": lambda r: (-r["calls"], *by_cost(r)),
        "name": by_name,
        "budget": lambda r: (-((r.get("quota") or {}).get("percent") or -1), *by_cost(r)),
    }
    return sorted(rows, key=keys[sort])


def reconciliation_context(request: HttpRequest, viewer: Viewer, scope: Scope) -> dict:
    return {"reconciliation": reconciliation.summary(scope.start, scope.end)}


TAB_CONTEXT: dict[str, Callable[[HttpRequest, Viewer, Scope], dict]] = {
    "cost": cost_context,
    "activity": activity_context,
    "identity": identity_context,
    "reconciliation": reconciliation_context,
}


def callout(rows: list[dict], field: str) -> dict | None:
    """The row that `queries.top` flags (> 50 % of spend), with its share for the banner."""
    row = queries.top(rows, field)
    if row is None:
        return None
    total = sum((Decimal(str(r.get("cost_usd") or 0)) for r in rows), Decimal(0))
    share = Decimal(str(row.get("cost_usd") or 0)) / total if total else Decimal(0)
    return {"row": row, "share": share}
