"""Where a quota stands: its calendar period, the spend in it, and its status.

Periods (day, week, month, total) follow calendar boundaries in METIS_TIME_ZONE
and are computed from timestamps: nothing resets them. Spend is read from the
rollups the event writer keeps beside the events (analytics.aggregate). This module says
where a budget stands, for the admin, the dashboard and the analytics API; the gateway
enforces budgets in gateway/budgets/, which reads its spend from here.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from analytics import queries
from analytics.aggregate import aggregate, money
from analytics.periods import ADJECTIVES, period_bounds
from analytics.scope import Scope, Viewer
from identity.models import GatewayKey, Quota, TeamMembership

EVERYONE = Viewer(kind="all")


def scope_of(quota: Quota) -> tuple[str, str]:
    """("team" | "user" | "key", the id the call rows carry: team name, username, key id)."""
    if quota.key_id:
        return "key", quota.key_id
    if quota.user_id:
        return "user", quota.user.username
    return "team", quota.team.name


def spend(scope: str, scope_id: str, start: datetime) -> Decimal:
    """USD spent since `start` by a team, a key, or a user through the keys they own
    (whatever x-metis-user label their calls carried). Read from the rollups."""
    return usage(scope, scope_id, start)[0]


def usage(scope: str, scope_id: str, start: datetime) -> tuple[Decimal, int]:
    """`spend`, and the calls in it with no known price (they count $0 against a cap)."""
    now = timezone.now()
    if scope == "user":
        keys = GatewayKey.objects.filter(user__username=scope_id).values_list("id", flat=True)
        windows = [Scope(start=start, end=now, gateway_key=key_id) for key_id in keys]
    elif scope == "key":
        windows = [Scope(start=start, end=now, gateway_key=scope_id)]
    else:
        windows = [Scope(start=start, end=now, team=scope_id)]
    total, unpriced = Decimal(0), 0
    for window in windows:
        groups, _ = aggregate(EVERYONE, window)
        total += sum((money(g.sums["cost_usd"]) for g in groups.values()), Decimal(0))
        unpriced += sum(g.sums["unpriced_calls"] for g in groups.values())
    return total, unpriced


@dataclass(frozen=True)
class QuotaStatus:
    spent_usd: Decimal
    remaining_usd: Decimal | None  # to the hard cap (or the soft one when there is no hard)
    state: str  # "ok" | "soft" (past the soft cap) | "hard" (at or past the hard cap)
    resets_at: datetime | None
    period_start: datetime | None = None
    cap_usd: Decimal | None = None  # the hard cap, else the soft one
    percent: Decimal | None = None  # of cap_usd; a $0 hard cap is 100 % used
    projected_usd: Decimal | None = None  # at the period's end, at the rate so far
    unpriced_calls: int = 0

    def as_dict(self) -> dict:
        return {
            "spent_usd": self.spent_usd,
            "remaining_usd": self.remaining_usd,
            "state": self.state,
            "resets_at": self.resets_at,
        }


def status(quota: Quota, now: datetime) -> QuotaStatus:
    start, end = period_bounds(quota.period, now)
    spent, unpriced = usage(*scope_of(quota), start)
    soft, hard = quota.soft_cap_usd, quota.hard_cap_usd
    if hard is not None and spent >= hard:
        state = "hard"
    elif soft is not None and spent >= soft:
        state = "soft"
    else:
        state = "ok"
    cap = hard if hard is not None else soft
    remaining = max(cap - spent, Decimal(0)) if cap is not None else None
    percent = None
    if cap is not None:
        percent = spent * 100 / cap if cap > 0 else Decimal(100)
    pace = projected(spent, start, end, now)
    return QuotaStatus(spent, remaining, state, end, start, cap, percent, pace, unpriced)


def projected(spent: Decimal, start: datetime, end: datetime | None, now: datetime) -> Decimal:
    """Spend at the period's end if the rest of it goes at the rate so far (a total quota
    never ends: its spend is its projection)."""
    if end is None:
        return spent
    elapsed = (now - start).total_seconds()
    length = (end - start).total_seconds()
    if elapsed <= 0:
        return spent
    return spent * Decimal(length) / Decimal(elapsed)


STATE_LABELS = {"ok": "ok", "soft": "over soft cap", "hard": "at hard cap"}


def summary(quotas: list[Quota], now: datetime) -> dict | None:
    """Where a team's or a user's quotas stand together: the most serious state first."""
    if not quotas:
        return None
    statuses = [(quota, status(quota, now)) for quota in quotas]
    worst = next(s for s in ("hard", "soft", "ok") if any(st.state == s for _, st in statuses))
    details = [
        {"period": quota.period, "soft_cap_usd": quota.soft_cap_usd,
         "hard_cap_usd": quota.hard_cap_usd, **st.as_dict()}
        for quota, st in statuses
    ]  # fmt: skip
    first = details[0]
    cap = first["hard_cap_usd"] if first["hard_cap_usd"] is not None else first["soft_cap_usd"]
    shown = f"${first['spent_usd']:.2f} of ${cap:.2f} {first['period']}" if cap is not None else ""
    label = " · ".join(part for part in (STATE_LABELS[worst], shown) if part)
    # The bar shows the fullest budget: the one nearest to stopping or alerting.
    percents = [st.percent for _, st in statuses if st.percent is not None]
    return {"state": worst, "label": label, "quotas": details,
            "percent": max(percents) if percents else None}  # fmt: skip


def visible_quotas(viewer: Viewer, scope: Scope | None = None) -> list[Quota]:
    """The quotas with a cap that this viewer may see (staff: all; a user: their teams',
    their own and their keys'; a key: its own), narrowed to the scope's team, user or key
    filter when it has one."""
    quotas = Quota.objects.filter(Q(soft_cap_usd__isnull=False) | Q(hard_cap_usd__isnull=False))
    # Each clause only for a value that is there: no impossible sentinel values, which
    # PostgreSQL refuses outright when they hold a NUL byte.
    nothing = Q(pk__in=[])
    if viewer.kind == "key":
        quotas = quotas.filter(
            Q(key_id=viewer.gateway_key_id) if viewer.gateway_key_id else nothing
        )
    elif viewer.kind == "user":
        quotas = quotas.filter(
            Q(team__name__in=sorted(viewer.team_names))
            | (Q(user__username=viewer.user) if viewer.user else nothing)
            | Q(key_id__in=sorted(viewer.own_key_ids))
        )
    narrowed = [
        Q(**{field: value})
        for field, value in (
            ("team__name", scope.team if scope else None),
            ("user__username", scope.user if scope else None),
            ("key_id", scope.gateway_key if scope else None),
        )
        if value
    ]
    if narrowed:
        quotas = quotas.filter(functools.reduce(operator.or_, narrowed))
    return list(quotas.select_related("team", "user", "key").order_by("id"))


def strip(viewer: Viewer, scope: Scope, now: datetime) -> list[dict]:
    """The Cost tab's budget strip: each visible quota's period spend against its cap,
    the pace to the period's end, and when it resets; fullest first."""
    cards = []
    for quota in visible_quotas(viewer, scope):
        st = status(quota, now)
        kind, scope_id = scope_of(quota)
        name = quota.key.name if kind == "key" else scope_id
        cards.append({
            "scope": kind,
            "id": scope_id,
            "name": name,
            "period": quota.period,
            "adjective": ADJECTIVES[quota.period],
            "cap_kind": "hard" if quota.hard_cap_usd is not None else "soft",
            "soft_cap_usd": quota.soft_cap_usd,
            "hard_cap_usd": quota.hard_cap_usd,
            "status": st,
            "bar": min(st.percent or Decimal(0), Decimal(100)),
            "pace_over": st.cap_usd is not None and st.projected_usd is not None
            and st.resets_at is not None and st.projected_usd > st.cap_usd,
        })  # fmt: skip
    cards.sort(key=lambda c: -(c["status"].percent or 0))
    return cards


def by_team(viewer: Viewer, scope: Scope) -> list[dict]:
    """queries.by_team, each team with its quota status (the dashboard's Quota column).
    A team's status tells its whole spend, so only those who may see the whole team
    (staff, local mode, its budget owners) get it."""
    rows = queries.by_team(viewer, scope)
    names = [row["team"] for row in rows if row["team"] and sees_whole_team(viewer, row["team"])]
    quotas = Quota.objects.filter(team__name__in=names).select_related("team")
    now = timezone.now()
    for row in rows:
        row["quota"] = summary([q for q in quotas if q.team.name == row["team"]], now)
    members = [m for row in rows for m in row["by_user"]]
    for member, quota in zip(members, user_quotas(viewer, members, now), strict=True):
        member["quota"] = quota
    return rows


def by_user(viewer: Viewer, scope: Scope) -> list[dict]:
    """queries.by_user, each user with their quota status: for themselves, their budget
    owners, and staff."""
    rows = queries.by_user(viewer, scope)
    for row, quota in zip(rows, user_quotas(viewer, rows, timezone.now()), strict=True):
        row["quota"] = quota
    return rows


def user_quotas(viewer: Viewer, rows: list[dict], now: datetime) -> list[dict | None]:
    """The quota summary of each row's user, for themselves, their budget owners and
    staff (None where there is none or the viewer may not see it)."""
    names = {row["user"] for row in rows if row["user"]}
    quotas = list(Quota.objects.filter(user__username__in=names).select_related("user"))
    if viewer.kind != "all":
        teams = TeamMembership.objects.filter(team__name__in=viewer.team_names)
        visible = {viewer.user, *teams.values_list("user__username", flat=True)}
        quotas = [q for q in quotas if q.user.username in visible]
    summaries = {
        name: summary([q for q in quotas if q.user.username == name], now) for name in names
    }
    return [summaries.get(row["user"]) for row in rows]


def by_key(viewer: Viewer, scope: Scope) -> list[dict]:
    """queries.by_key, each key with its own quota's status (the key's rows are in the
    viewer's scope, so its budget is too)."""
    rows = queries.by_key(viewer, scope)
    ids = [row["gateway_key_id"] for row in rows if row["gateway_key_id"]]
    quotas = list(Quota.objects.filter(key_id__in=ids))
    now = timezone.now()
    for row in rows:
        row["quota"] = summary([q for q in quotas if q.key_id == row["gateway_key_id"]], now)
    return rows


def sees_whole_team(viewer: Viewer, team: str) -> bool:
    return viewer.kind == "all" or team in viewer.team_names
