"""Where a quota stands: its calendar period, the spend in it, and its status.

Periods (day, week, month, total) follow calendar boundaries in METIS_TIME_ZONE
and are computed from timestamps: nothing resets them. Spend is read from the
rollups the event writer keeps beside the events (analytics.aggregate). The gateway holds
budgets with this (gateway/quota.py); the admin and the analytics API show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from analytics import queries
from analytics.aggregate import aggregate, money
from analytics.scope import Scope, Viewer
from identity.models import GatewayKey, Quota, TeamMembership

EPOCH = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))
EVERYONE = Viewer(kind="all")


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime | None]:
    """[start, end) of the calendar period containing `now`, in METIS_TIME_ZONE."""
    if period == Quota.Period.TOTAL:
        return EPOCH, None
    zone = ZoneInfo(settings.TIME_ZONE)
    today = now.astimezone(zone).date()
    if period == Quota.Period.DAY:
        first, after = today, today + timedelta(days=1)
    elif period == Quota.Period.WEEK:
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(days=7)
    else:
        first = today.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    # Built from dates, so a day that DST makes 23 or 25 hours long still ends at midnight.
    start = datetime(first.year, first.month, first.day, tzinfo=zone)
    return start, datetime(after.year, after.month, after.day, tzinfo=zone)


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
    now = timezone.now()
    if scope == "user":
        keys = GatewayKey.objects.filter(user__username=scope_id).values_list("id", flat=True)
        windows = [Scope(start=start, end=now, gateway_key=key_id) for key_id in keys]
    elif scope == "key":
        windows = [Scope(start=start, end=now, gateway_key=scope_id)]
    else:
        windows = [Scope(start=start, end=now, team=scope_id)]
    total = Decimal(0)
    for window in windows:
        groups, _ = aggregate(EVERYONE, window)
        total += sum((money(g.sums["cost_usd"]) for g in groups.values()), Decimal(0))
    return total


@dataclass(frozen=True)
class QuotaStatus:
    spent_usd: Decimal
    remaining_usd: Decimal | None  # to the hard cap (or the soft one when there is no hard)
    state: str  # "ok" | "soft" (past the soft cap) | "hard" (at or past the hard cap)
    resets_at: datetime | None

    def as_dict(self) -> dict:
        return {
            "spent_usd": self.spent_usd,
            "remaining_usd": self.remaining_usd,
            "state": self.state,
            "resets_at": self.resets_at,
        }


def status(quota: Quota, now: datetime) -> QuotaStatus:
    start, end = period_bounds(quota.period, now)
    spent = spend(*scope_of(quota), start)
    soft, hard = quota.soft_cap_usd, quota.hard_cap_usd
    if hard is not None and spent >= hard:
        state = "hard"
    elif soft is not None and spent >= soft:
        state = "soft"
    else:
        state = "ok"
    cap = hard if hard is not None else soft
    remaining = max(cap - spent, Decimal(0)) if cap is not None else None
    return QuotaStatus(spent, remaining, state, end)


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
    return {"state": worst, "label": label, "quotas": details}


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
    return rows


def by_user(viewer: Viewer, scope: Scope) -> list[dict]:
    """queries.by_user, each user with their quota status: for themselves, their budget
    owners, and staff."""
    rows = queries.by_user(viewer, scope)
    names = [row["user"] for row in rows if row["user"]]
    quotas = Quota.objects.filter(user__username__in=names).select_related("user")
    if viewer.kind != "all":
        teams = TeamMembership.objects.filter(team__name__in=viewer.team_names)
        visible = {viewer.user, *teams.values_list("user__username", flat=True)}
        quotas = [q for q in quotas if q.user.username in visible]
    now = timezone.now()
    for row in rows:
        row["quota"] = summary([q for q in quotas if q.user.username == row["user"]], now)
    return rows


def sees_whole_team(viewer: Viewer, team: str) -> bool:
    return viewer.kind == "all" or team in viewer.team_names
