"""The one place analytics numbers are computed (docs/analytics-contract.md).

The JSON API and the dashboard both call these functions and add only presentation.
Everything here is read from `Call` (one typed row per `llm.call_completed` event) and
its rollups `CallHour` and `CallDay`, all built from the events by the event writer; how
a window is cut and summed across them is `analytics.aggregate`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.db.models import QuerySet

from analytics.aggregate import Agg, aggregate, merged, money
from analytics.cache import cache_figures
from analytics.models import Call
from analytics.scope import GROUP_BY, Scope, ScopeError, Viewer

MAX_HOURLY_WINDOW = timedelta(days=7)
MAX_PAGE = 1_000_000
OWNERS_BY_ID = 100  # keys looked up by id at most (among_keys)


# -- the contract's functions ---------------------------------------------------------


def totals(viewer: Viewer, scope: Scope) -> dict:
    """cost_usd, calls, tokens, errors, cancelled, unpriced_calls, p50/p95 latency."""
    groups, exact = aggregate(viewer, scope, latency=True)
    return groups.get((), Agg()).totals(exact=exact)


def cost(viewer: Viewer, scope: Scope, group_by: str | None) -> dict:
    """Totals and, with `group_by`, one row per group (`key` = the group's value):
    sorted by cost (highest first), or by time for day and hour (hour: windows of up to
    7 days). Percentiles per day or hour always come from the histogram. `user` groups
    by account (the key's owner, as quotas count), `label` by x-metis-user label."""
    if group_by is not None and group_by not in GROUP_BY:
        raise ScopeError(
            "group_by", f"unknown group_by {group_by!r}; use one of {', '.join(GROUP_BY)}"
        )
    if group_by == "hour" and scope.end - scope.start > MAX_HOURLY_WINDOW:
        raise ScopeError("group_by", "group_by=hour covers at most 7 days; use group_by=day")
    result: dict[str, Any] = {
        "window": {"from": scope.start, "to": scope.end},
        "group_by": group_by,
        "filters": scope.filters,
        "totals": None,
        "groups": [],
    }
    if group_by is None or group_by in ("day", "hour"):
        result["totals"] = totals(viewer, scope)
    if group_by is None:
        return result
    if group_by == "user":
        by_key, exact = aggregate(viewer, scope, ("gateway_key_id",), latency=True)
        owners = key_owners(k for (k,) in by_key)
        keys_of: dict[tuple, list[Agg]] = {}
        for (key_id,), agg in by_key.items():
            keys_of.setdefault((owners.get(key_id, {}).get("user"),), []).append(agg)
        groups: dict[tuple, Agg] = {user: merged(aggs) for user, aggs in keys_of.items()}
    else:
        groups, exact = aggregate(viewer, scope, (group_by,), latency=True)
    if result["totals"] is None:  # the groups partition the window: their merge is the total
        result["totals"] = merged(groups.values()).totals(exact=exact)
    rows = [{"key": key[0], **agg.totals(exact=exact)} for key, agg in groups.items()]
    if group_by in ("day", "hour"):
        rows.sort(key=lambda r: r["key"])
    else:
        rows.sort(key=lambda r: (-r["cost_usd"], -r["calls"], str(r["key"])))
    result["groups"] = rows
    return result


def cache_by_team_and_key(viewer: Viewer, scope: Scope) -> tuple[list[dict], list[dict]]:
    """The prompt-cache figures (`analytics.cache`) per team and per key, from one read
    of the key grain's rollups (a key's team is its own), no latency: each list holds the
    groups that read or wrote the cache, most input first; key rows carry the key's name."""
    groups, _ = aggregate(viewer, scope, ("team", "gateway_key_id"))
    teams: dict[str | None, Agg] = {}
    for (team, _key), agg in groups.items():
        teams.setdefault(team, Agg()).merge(agg)
    team_rows = cache_rows_of(cache_row(team, agg) for team, agg in teams.items())
    key_rows = cache_rows_of(cache_row(key, agg) for (_team, key), agg in groups.items())
    names = key_owners(r["key"] for r in key_rows)
    for row in key_rows:
        row["name"] = names.get(row["key"], {}).get("name")
    return team_rows, key_rows


def cache_row(key: Any, agg: Agg) -> dict:
    return {"key": key, "calls": agg.sums["calls"], "input_tokens": agg.sums["input_tokens"],
            "cache": cache_figures(agg.sums)}  # fmt: skip


def cache_rows_of(rows: Iterable[dict]) -> list[dict]:
    """The rows (of `cost`'s groups, or `cache_by_team_and_key`'s) that read or wrote the prompt
    cache, most input first."""
    found = [r for r in rows if r["cache"]["read_tokens"] or r["cache"]["write_5m_tokens"]
             or r["cache"]["write_1h_tokens"]]  # fmt: skip
    return sorted(found, key=lambda r: (-r["input_tokens"], str(r["key"])))


def key_owners(key_ids: Iterable[str | None]) -> dict[str, dict]:
    """{key id: {"name", "user" (the owner's username), "team"}} for the keys that exist."""
    from identity.models import GatewayKey

    wanted = {k for k in key_ids if k}
    if not wanted:
        return {}
    keys = among_keys(GatewayKey.objects.all(), "pk", wanted)
    rows = keys.values_list("id", "name", "user__username", "team__name")
    return {
        key_id: {"name": n, "user": u, "team": t} for key_id, n, u, t in rows if key_id in wanted
    }


def among_keys(rows: QuerySet, field: str, key_ids: set[str]) -> QuerySet:
    """`rows` narrowed to `key_ids` by `field` when they are few; the caller keeps only
    those it wants. Thousands (a company's keys in a window) read every row instead, as
    building and parsing an IN list of thousands of literals took 200 ms, the read 3 ms."""
    if len(key_ids) <= OWNERS_BY_ID:
        return rows.filter(**{f"{field}__in": sorted(key_ids)})
    return rows


def _add(row: dict, sums: dict) -> None:
    row["cost_usd"] += sums["cost_usd"]
    row["calls"] += sums["calls"]
    row["unpriced_calls"] += sums["unpriced_calls"]


# by_key's groups; by_user and by_team are summed from them, so a page showing all three
# reads the window once. Only the sums these tables show are read: thousands of groups.
KEY_DIMS = ("gateway_key_id", "inbound_shape", "team", "label")
KEY_SUMS = ("calls", "cost_usd", "unpriced_calls")  # also all a budget's spend reads


class Groups(dict[tuple, Agg]):
    """`key_groups`' read, with what by_key, by_user and by_team each derive from it (the
    sums per team and key, the keys' owners) worked out once for the page showing all
    three: each pass over a company's thousands of groups, and each owner lookup, cost
    milliseconds."""

    @cached_property
    def team_key_sums(self) -> dict[tuple, dict[str, Any]]:
        """{(team, key id): the cost, calls and unpriced calls of its groups}."""
        out: dict[tuple, dict[str, Any]] = {}
        for (key_id, _shape, team, _label), agg in self.items():
            into = out.get((team, key_id))
            if into is None:
                out[team, key_id] = into = dict.fromkeys(KEY_SUMS, 0)
            _add(into, agg.sums)
        return out

    @cached_property
    def owners(self) -> dict[str, dict]:
        """`key_owners` of the groups' keys."""
        return key_owners(key_id for key_id, *_ in self)


def key_groups(viewer: Viewer, scope: Scope) -> Groups:
    """Sums per (key, inbound shape, team, label) over the scope."""
    return Groups(aggregate(viewer, scope, KEY_DIMS, sums=KEY_SUMS)[0])


def _key_team_sums(
    viewer: Viewer, scope: Scope, groups: Groups | None
) -> tuple[dict[tuple, dict[str, Any]], dict[str, dict]]:
    """({(team, key id): sums}, the keys' owners) from `key_groups` (or read so): the
    cost, calls and unpriced calls that by_user and by_team add up per owner."""
    if groups is not None:
        return groups.team_key_sums, groups.owners
    read = aggregate(viewer, scope, ("team", "gateway_key_id"), sums=KEY_SUMS)[0]
    return {key: agg.sums for key, agg in read.items()}, key_owners(k for (_, k) in read)


def _fresh(**names: Any) -> dict:
    return {**names, "cost_usd": Decimal(0), "calls": 0, "unpriced_calls": 0}


def _rounded(rows: list[dict]) -> list[dict]:
    for row in rows:
        row["cost_usd"] = money(row["cost_usd"])
    return rows


def by_key(viewer: Viewer, scope: Scope, groups: Groups | None = None) -> list[dict]:
    """One row per gateway key: name, owner, team, cost, calls, unpriced calls, last call,
    inbound shapes, and the x-metis-user labels its calls carried (other than its owner's
    name), each with its calls: a label describes what called inside the key's scope.
    `groups`: the scope's `key_groups`, when already read."""
    groups = key_groups(viewer, scope) if groups is None else groups
    keys: dict[str | None, dict] = {}
    for (key_id, shape, team, label), agg in groups.items():
        row = keys.get(key_id)
        if row is None:
            row = keys[key_id] = {
                "gateway_key_id": key_id, "name": None, "user": None, "team": team,
                "cost_usd": Decimal(0), "calls": 0, "unpriced_calls": 0,
                "last_call_at": None, "inbound_shapes": {}, "labels": {}, "quota": None,
            }  # fmt: skip
        _add(row, agg.sums)
        calls = agg.sums["calls"]
        if shape is not None:
            row["inbound_shapes"][shape] = row["inbound_shapes"].get(shape, 0) + calls
        if label is not None:
            row["labels"][label] = row["labels"].get(label, 0) + calls
        last = agg.last_call_at
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        if last is not None and (row["last_call_at"] is None or last > row["last_call_at"]):
            row["last_call_at"] = last
    for key_id, known in groups.owners.items():
        keys[key_id].update(known)
    rows = list(keys.values())
    for row in rows:
        row["cost_usd"] = money(row["cost_usd"])
        row["inbound_shapes"] = dict(sorted(row["inbound_shapes"].items(), key=lambda kv: -kv[1]))
        row["labels"].pop(row["user"], None)  # no label: the gateway records the owner
        row["labels"] = dict(sorted(row["labels"].items(), key=lambda kv: (-kv[1], kv[0])))
    rows.sort(key=lambda r: (-r["cost_usd"], -r["calls"], str(r["gateway_key_id"])))
    return rows


def by_user(viewer: Viewer, scope: Scope, groups: Groups | None = None) -> list[dict]:
    """One row per account (None = keys with no owner): the calls of the keys they own,
    whatever label those calls carried, as their quota counts them."""
    per_key, owners = _key_team_sums(viewer, scope, groups)
    users: dict[str | None, dict] = {}
    for (_team, key_id), sums in per_key.items():
        user = owners.get(key_id, {}).get("user")
        row = users.get(user)
        if row is None:
            row = users[user] = {**_fresh(user=user), "quota": None}
        _add(row, sums)
    return _by_cost(_rounded(list(users.values())), "user")


def by_team(viewer: Viewer, scope: Scope, groups: Groups | None = None) -> list[dict]:
    """One row per team (None = no team) with its members inline (`by_user`: accounts,
    counted as `by_user` counts them)."""
    per_key, owners = _key_team_sums(viewer, scope, groups)
    teams: dict[str | None, dict] = {}
    for (team, key_id), sums in per_key.items():
        row = teams.get(team)
        if row is None:
            row = teams[team] = {**_fresh(team=team), "users": 0, "quota": None, "by_user": {}}
        _add(row, sums)
        user = owners.get(key_id, {}).get("user")
        member = row["by_user"].get(user)
        if member is None:
            member = row["by_user"][user] = _fresh(user=user)
        _add(member, sums)
    for row in teams.values():
        row["users"] = sum(1 for u in row["by_user"] if u is not None)
        row["by_user"] = _by_cost(_rounded(list(row["by_user"].values())), "user")
    return _by_cost(_rounded(list(teams.values())), "team")


def _by_cost(rows: list[dict], name: str) -> list[dict]:
    return sorted(rows, key=lambda r: (-r["cost_usd"], -r["calls"], str(r[name])))


def top(rows: Iterable[dict], field: str) -> dict | None:
    """The row holding more than 50 % of the rows' total cost, or None. Rows whose
    `field` is None (untagged) count towards the total but are never the top."""
    rows = list(rows)
    total = sum((Decimal(r.get("cost_usd") or 0) for r in rows), Decimal(0))
    if total <= 0:
        return None
    for row in rows:
        if row.get(field) is not None and Decimal(row.get("cost_usd") or 0) * 2 > total:
            return row
    return None


ACTIVITY_FIELDS = (
    "id", "timestamp", "gateway_key_id", "key_name", "user", "team", "workspace",
    "inbound_shape", "provider", "model", "requested_model", "stream", "input_tokens",
    "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd",
    "latency_ms", "ttft_ms", "status", "error_class", "retries", "request_id",
)  # fmt: skip


def activity(viewer: Viewer, scope: Scope, *, page: int, page_size: int) -> dict:
    """Calls in the scope, newest first: {"calls", "page", "next_page" (None at the end)}."""
    if page < 1:
        raise ScopeError("page", "page starts at 1")
    if page > MAX_PAGE:  # the database's OFFSET is a 64-bit integer; no one pages this far
        raise ScopeError("page", f"page must be at most {MAX_PAGE}")
    if page_size < 1:
        raise ScopeError("page_size", "page_size must be at least 1")
    offset = (page - 1) * page_size
    rows = list(
        Call.objects.filter(
            viewer.q(), scope.q(), timestamp__gte=scope.start, timestamp__lt=scope.end
        )
        .order_by("-timestamp", "-id")
        .values(*ACTIVITY_FIELDS)[offset : offset + page_size + 1]
    )
    more = len(rows) > page_size
    calls = rows[:page_size]
    owners = key_owners(row["gateway_key_id"] for row in calls)
    for row in calls:
        for name in ("gateway_key_id", "key_name", "user", "team", "workspace", "error_class"):
            row[name] = row[name] or None
        # `user` is the account (the key's owner); `label` what the call said it was.
        owner = owners.get(row["gateway_key_id"], {}).get("user")
        label = row.pop("user")
        row["user"], row["label"] = owner, (label if label != owner else None)
    return {"calls": calls, "page": page, "next_page": page + 1 if more else None}


def series(
    viewer: Viewer, scope: Scope, bucket: str, step: timedelta
) -> list[tuple[datetime, Decimal, int, int]]:
    """(bucket start, cost, calls, unpriced calls) over time, oldest first: per day (in
    METIS_TIME_ZONE) or hour from the rollups, per `step` minutes from the calls (short
    windows only: every call in the window is read)."""
    if bucket in ("day", "hour"):
        groups, _ = aggregate(viewer, scope, (bucket,))  # no latency: the chart has none
        return sorted(
            (moment(t), money(agg.sums["cost_usd"]), agg.sums["calls"],
             agg.sums["unpriced_calls"])
            for (t,), agg in groups.items()
        )  # fmt: skip
    rows = Call.objects.filter(
        viewer.q(), scope.q(), timestamp__gte=scope.start, timestamp__lt=scope.end
    ).values_list("timestamp", "cost_usd")
    seconds = step.total_seconds()
    buckets: dict[datetime, list] = {}
    for at, cost_usd in rows.iterator():
        at = moment(at)
        start = datetime.fromtimestamp(at.timestamp() // seconds * seconds, tz=UTC)
        entry = buckets.setdefault(start, [Decimal(0), 0, 0])
        entry[0] += cost_usd or 0
        entry[1] += 1
        entry[2] += cost_usd is None
    return [(t, money(c), n, u) for t, (c, n, u) in sorted(buckets.items())]


def moment(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
