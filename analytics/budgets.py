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
from collections import defaultdict
from collections.abc import Callable, Iterable
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
    return usages([(scope, scope_id, start)])[(scope, scope_id, start)]


Wanted = tuple[str, str, datetime]  # (scope, scope id, period start), as `usage` takes them


def usages(wanted: Iterable[Wanted]) -> dict[Wanted, tuple[Decimal, int]]:
    """`usage` of many scopes at once: per period start, one read grouped by team and
    one by key (a user's spend is their keys'), whatever the number of quotas, so a
    page of budgets costs a few queries rather than a few per quota."""
    wanted = set(wanted)
    usernames = {scope_id for scope, scope_id, _ in wanted if scope == "user"}
    owned: dict[str, list[str]] = defaultdict(list)
    for username, key_id in GatewayKey.objects.filter(user__username__in=usernames).values_list(
        "user__username", "id"
    ):
        owned[username].append(key_id)
    now = timezone.now()
    result: dict[Wanted, tuple[Decimal, int]] = {}
    for start in {start for _, _, start in wanted}:
        ids = {scope: {i for s, i, t in wanted if s == scope and t == start}
               for scope in ("team", "user", "key")}  # fmt: skip
        keys = ids["key"] | {k for user in ids["user"] for k in owned[user]}
        window = Scope(start=start, end=now, until_now=True)
        teams = _sums(window, "team", ids["team"])
        per_key = _sums(window, "gateway_key_id", keys)
        zero = (Decimal(0), 0)
        for team in ids["team"]:
            result["team", team, start] = teams.get(team, zero)
        for key_id in ids["key"]:
            result["key", key_id, start] = per_key.get(key_id, zero)
        for user in ids["user"]:
            sums = [per_key.get(k, zero) for k in owned[user]]
            result["user", user, start] = (
                sum((s[0] for s in sums), Decimal(0)),
                sum(s[1] for s in sums),
            )
    return result


def _sums(window: Scope, column: str, values: set[str]) -> dict[str, tuple[Decimal, int]]:
    """{value: (spend, unpriced calls)} of the calls whose `column` is one of `values`."""
    if not values:
        return {}
    where = Q(**{f"{column}__any_of": sorted(values)})
    groups, _ = aggregate(EVERYONE, window, (column,), where=where, sums=queries.KEY_SUMS)
    return {
        key: (money(agg.sums["cost_usd"]), agg.sums["unpriced_calls"])
        for (key,), agg in groups.items()
    }


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
    return statuses([quota], now)[quota.pk]


# Statuses a page has already read, by quota id: its tables share quotas (a team's
# members' are the per-user table's), and each read is a query over the period.
Memo = dict[int, QuotaStatus] | None


def statuses(quotas: Iterable[Quota], now: datetime, memo: Memo = None) -> dict[int, QuotaStatus]:
    """{quota id: its status}, their spends read together (`usages`); with `memo`, only
    those not in it are read (and added to it)."""
    quotas = list(quotas)
    if memo is not None:
        memo.update(statuses([q for q in quotas if q.pk not in memo], now))
        return {quota.pk: memo[quota.pk] for quota in quotas}
    periods = {quota.pk: period_bounds(quota.period, now) for quota in quotas}
    used = usages((*scope_of(quota), periods[quota.pk][0]) for quota in quotas)
    found = {}
    for quota in quotas:
        start, end = periods[quota.pk]
        found[quota.pk] = _status(quota, now, start, end, *used[(*scope_of(quota), start)])
    return found


def _status(
    quota: Quota, now: datetime, start: datetime, end: datetime | None, spent: Decimal,
    unpriced: int,
) -> QuotaStatus:  # fmt: skip
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


def summary(
    quotas: list[Quota], now: datetime, known: dict[int, QuotaStatus] | None = None
) -> dict | None:
    """Where a team's or a user's quotas stand together: the most serious state first.
    `known`: their statuses, when read with others' (`statuses`)."""
    if not quotas:
        return None
    known = known if known is not None else statuses(quotas, now)
    statuses_ = [(quota, known[quota.pk]) for quota in quotas]
    worst = next(s for s in ("hard", "soft", "ok") if any(st.state == s for _, st in statuses_))
    details = [
        {"period": quota.period, "soft_cap_usd": quota.soft_cap_usd,
         "hard_cap_usd": quota.hard_cap_usd, **st.as_dict()}
        for quota, st in statuses_
    ]  # fmt: skip
    first = details[0]
    cap = first["hard_cap_usd"] if first["hard_cap_usd"] is not None else first["soft_cap_usd"]
    shown = f"${first['spent_usd']:.2f} of ${cap:.2f} {first['period']}" if cap is not None else ""
    label = " · ".join(part for part in (STATE_LABELS[worst], shown) if part)
    # The bar shows the fullest budget: the one nearest to stopping or alerting.
    percents = [st.percent for _, st in statuses_ if st.percent is not None]
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
    quotas = visible_quotas(viewer, scope)
    known = statuses(quotas, now)
    for quota in quotas:
        st = known[quota.pk]
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


def by_team(
    viewer: Viewer,
    scope: Scope,
    groups: queries.Groups | None = None,
    *,
    memo: Memo = None,
    members: bool = True,
) -> list[dict]:
    """queries.by_team, each team with its quota status (the dashboard's Quota column),
    and each member with theirs unless not `members`. A team's status tells its whole
    spend, so only those who may see the whole team (staff, local mode, its budget
    owners) get it."""
    rows = queries.by_team(viewer, scope, groups)
    names = [row["team"] for row in rows if row["team"] and sees_whole_team(viewer, row["team"])]
    quotas = list(Quota.objects.filter(team__name__in=names).select_related("team"))
    now = timezone.now()
    known = statuses(quotas, now, memo)
    by_team_name = _grouped(quotas, lambda q: q.team.name)
    for row in rows:
        row["quota"] = summary(by_team_name.get(row["team"], []), now, known)
    if not members:
        return rows
    people = [m for row in rows for m in row["by_user"]]
    for member, quota in zip(people, user_quotas(viewer, people, now, memo), strict=True):
        member["quota"] = quota
    return rows


def by_user(
    viewer: Viewer, scope: Scope, groups: queries.Groups | None = None, *, memo: Memo = None
) -> list[dict]:
    """queries.by_user, each user with their quota status: for themselves, their budget
    owners, and staff."""
    rows = queries.by_user(viewer, scope, groups)
    for row, quota in zip(rows, user_quotas(viewer, rows, timezone.now(), memo), strict=True):
        row["quota"] = quota
    return rows


def user_quotas(
    viewer: Viewer, rows: list[dict], now: datetime, memo: Memo = None
) -> list[dict | None]:
    """The quota summary of each row's user, for themselves, their budget owners and
    staff (None where there is none or the viewer may not see it)."""
    names = {row["user"] for row in rows if row["user"]}
    quotas = list(Quota.objects.filter(user__username__in=names).select_related("user"))
    if viewer.kind != "all":
        teams = TeamMembership.objects.filter(team__name__in=viewer.team_names)
        visible = {viewer.user, *teams.values_list("user__username", flat=True)}
        quotas = [q for q in quotas if q.user.username in visible]
    known = statuses(quotas, now, memo)
    by_name = _grouped(quotas, lambda q: q.user.username)
    summaries = {name: summary(by_name.get(name, []), now, known) for name in names}
    return [summaries.get(row["user"]) for row in rows]


def by_key(
    viewer: Viewer, scope: Scope, groups: queries.Groups | None = None, *, memo: Memo = None
) -> list[dict]:
    """queries.by_key, each key with its own quota's status (the key's rows are in the
    viewer's scope, so its budget is too)."""
    rows = queries.by_key(viewer, scope, groups)
    ids = {row["gateway_key_id"] for row in rows if row["gateway_key_id"]}
    quotas = queries.among_keys(Quota.objects.filter(key__isnull=False), "key_id", ids)
    quotas = [quota for quota in quotas.order_by("id") if quota.key_id in ids]
    now = timezone.now()
    known = statuses(quotas, now, memo)
    by_key_id = _grouped(quotas, lambda q: q.key_id)
    for row in rows:
        row["quota"] = summary(by_key_id.get(row["gateway_key_id"], []), now, known)
    return rows


def _grouped(quotas: list[Quota], key: Callable[[Quota], str | None]) -> dict:
    """The quotas by `key`, in their order (rows look theirs up; no scan per row)."""
    grouped: dict[str | None, list[Quota]] = defaultdict(list)
    for quota in quotas:
        grouped[key(quota)].append(quota)
    return grouped


def sees_whole_team(viewer: Viewer, team: str) -> bool:
    return viewer.kind == "all" or team in viewer.team_names
