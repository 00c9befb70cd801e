"""The one place analytics numbers are computed (docs/analytics-contract.md).

The JSON API and the dashboard both call these functions and add only presentation.
Everything here is read from `Call` (one typed row per `llm.call_completed` event) and
its rollups `CallHour` and `CallDay`, all built from the events by the event writer.

A window is cut at hour and UTC-day boundaries (`segments`): whole days are read from
`CallDay`, whole hours from `CallHour`, the partial hours at either edge from `Call`, so
totals are exact at the edges without scanning a month of calls. Latency percentiles are
exact (from `Call`) for windows of 24 hours or less; for longer windows they come from
the rollups' log-bucket histogram and are approximate to the bucket (buckets are a
factor √2 wide; the value is interpolated linearly within its bucket).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from django.db.models import Case, Count, F, IntegerField, Max, Q, Sum, Value, When
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from analytics.models import LATENCY_BUCKETS, Call, CallDay, CallHour

WINDOWS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_WINDOW = "24h"
GROUP_BY = ("model", "key", "user", "team", "workspace", "provider", "day", "hour")
EXACT_PERCENTILES_UP_TO = timedelta(hours=24)
MAX_HOURLY_WINDOW = timedelta(days=7)
CANCELLED = "CANCELLED"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

# group_by name -> the column both tables share (day and hour are computed).
_COLUMN = {
    "model": "model",
    "key": "gateway_key_id",
    "user": "user",
    "team": "team",
    "workspace": "workspace",
    "provider": "provider",
    "inbound_shape": "inbound_shape",
    "gateway_key_id": "gateway_key_id",
}
SUMS = (
    "calls", "errors", "cancelled", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "cost_usd", "unpriced_calls",
)  # fmt: skip
LAT_COLUMNS = tuple(f"lat_{i:02d}" for i in range(LATENCY_BUCKETS))


@dataclass(frozen=True)
class Viewer:
    """Who is asking (built by `analytics.access.viewer_for`): everything ("all"), a
    user (their own calls and keys plus the teams they are budget owner of) or a gateway
    key used as a bearer token (that key's calls only)."""

    kind: Literal["all", "user", "key"]
    user: str | None = None
    team_names: frozenset[str] = frozenset()
    gateway_key_id: str | None = None
    own_key_ids: frozenset[str] = frozenset()

    def q(self) -> Q:
        """The rows this viewer may see, on `Call` and `CallHour` alike."""
        if self.kind == "all":
            return Q()
        if self.kind == "key":
            return Q(gateway_key_id=self.gateway_key_id or "\0no key")
        allowed = Q(pk__in=[])
        if self.user:
            allowed |= Q(user=self.user)
        if self.own_key_ids:
            allowed |= Q(gateway_key_id__in=sorted(self.own_key_ids))
        if self.team_names:
            allowed |= Q(team__in=sorted(self.team_names))
        return allowed


@dataclass(frozen=True)
class Scope:
    """What was asked for: the half-open window [start, end) and exact-match filters."""

    start: datetime
    end: datetime
    gateway_key: str | None = None
    user: str | None = None
    team: str | None = None
    workspace: str | None = None

    @property
    def filters(self) -> dict[str, str]:
        names = ("gateway_key", "user", "team", "workspace")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def q(self) -> Q:
        columns = {"gateway_key": "gateway_key_id"}
        return Q(**{columns.get(n, n): v for n, v in self.filters.items()})


class ScopeError(ValueError):
    """A bad parameter: the API answers 422 naming `param`."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


def parse_scope(params: Mapping[str, str], now: datetime) -> Scope:
    """`window` (1h, 24h, 7d, 30d; default 24h) or `from` [+ `to`, default now] as ISO 8601
    dates or datetimes (naive = UTC), plus the filters gateway_key, user, team, workspace."""
    window = (params.get("window") or "").strip()
    start_text = (params.get("from") or "").strip()
    end_text = (params.get("to") or "").strip()
    if window and (start_text or end_text):
        raise ScopeError("window", "give either window or from/to, not both")
    if start_text or end_text:
        if not start_text:
            raise ScopeError("from", "give from with to (an ISO 8601 date or datetime)")
        start = _parse_moment("from", start_text)
        end = _parse_moment("to", end_text) if end_text else now
        if start > end:
            raise ScopeError("from", f"from ({start_text}) is after to ({end_text or 'now'})")
    else:
        window = window or DEFAULT_WINDOW
        if window not in WINDOWS:
            raise ScopeError(
                "window", f"unknown window {window!r}; use one of {', '.join(WINDOWS)}"
            )
        end, start = now, now - WINDOWS[window]
    filters = {}
    for name in ("gateway_key", "user", "team", "workspace"):
        value = params.get(name)
        if value is not None and value.strip():
            filters[name] = value.strip()
    return Scope(start=start, end=end, **filters)


def _parse_moment(param: str, text: str) -> datetime:
    try:
        value = parse_datetime(text)
        if value is None and (day := parse_date(text)) is not None:
            value = datetime(day.year, day.month, day.day)
    except ValueError:
        value = None
    if value is None:
        raise ScopeError(param, f"{text!r} is not an ISO 8601 date or datetime")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# -- aggregation ----------------------------------------------------------------------


@dataclass
class Agg:
    """Sums for one group, plus what its percentiles need."""

    sums: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(SUMS, 0))
    histogram: list[int] = field(default_factory=lambda: [0] * LATENCY_BUCKETS)
    latencies: list[float] = field(default_factory=list)
    last_call_at: datetime | None = None

    def add(self, row: Mapping[str, Any]) -> None:
        for name in SUMS:
            self.sums[name] += row.get(f"s_{name}") or 0
        last = row.get("s_last_call_at")
        if last is not None and (self.last_call_at is None or last > self.last_call_at):
            self.last_call_at = last

    def merge(self, other: Agg) -> None:
        self.add({f"s_{n}": v for n, v in other.sums.items()})
        if other.last_call_at is not None:
            self.add({"s_last_call_at": other.last_call_at})
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]
        self.latencies.extend(other.latencies)

    def totals(self, *, exact: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"cost_usd": money(self.sums["cost_usd"])}
        out.update((name, self.sums[name]) for name in SUMS if name != "cost_usd")
        if exact:
            ordered = sorted(self.latencies)
            out["p50_latency_ms"] = exact_percentile(ordered, 0.50)
            out["p95_latency_ms"] = exact_percentile(ordered, 0.95)
        else:
            out["p50_latency_ms"] = histogram_percentile(self.histogram, 0.50)
            out["p95_latency_ms"] = histogram_percentile(self.histogram, 0.95)
        return out


def money(value: Decimal | int | None) -> Decimal:
    return Decimal(value or 0).quantize(Decimal("1e-10"))


def _count(condition: Q) -> Sum:
    return Sum(Case(When(condition, then=Value(1)), default=Value(0), output_field=IntegerField()))


ERROR_Q = (Q(status__gte=400) | ~Q(error_class="")) & ~Q(error_class=CANCELLED)
# Aliased "s_…": an annotation named like a column would shadow it in later expressions.
CALL_SUMS = {
    "s_calls": Count("id"),
    "s_errors": _count(ERROR_Q),
    "s_cancelled": _count(Q(error_class=CANCELLED)),
    **{f"s_{n}": Sum(n) for n in SUMS[3:9]},
    "s_unpriced_calls": _count(Q(cost_usd__isnull=True)),
    "s_last_call_at": Max("timestamp"),
}
HOUR_SUMS = {**{f"s_{n}": Sum(n) for n in SUMS}, "s_last_call_at": Max("last_call_at")}


def _dimension(name: str, time_column: str) -> Any:
    if name == "day":
        return F("day") if time_column == "day" else TruncDay(time_column)
    if name == "hour":
        return F("hour") if time_column == "hour" else TruncHour(time_column)
    return F(_COLUMN[name])


def _key(row: Mapping[str, Any], dims: tuple[str, ...]) -> tuple:
    out = []
    for d in dims:
        value = row[f"g_{d}"]
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        out.append(None if value == "" else value)
    return tuple(out)


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floored = floor_hour(moment)
    return floored if floored == moment else floored + HOUR


def floor_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def ceil_day(moment: datetime) -> datetime:
    floored = floor_day(moment)
    return floored if floored == moment else floored + DAY


Source = Literal["call", "hour", "day"]


Part = tuple[Source, datetime, datetime]


def segments(start: datetime, end: datetime, *, days: bool = True) -> list[Part]:
    """The window [start, end) cut into parts, each read from one table: whole UTC days
    from `CallDay`, whole hours from `CallHour`, the partial hours at the edges from
    `Call`."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    first_hour, last_hour = ceil_hour(start), floor_hour(end)
    if first_hour >= last_hour:
        return [("call", start, end)] if start < end else []
    parts: list[Part] = [
        ("call", start, first_hour), ("call", last_hour, end),
    ]  # fmt: skip
    first_day, last_day = ceil_day(first_hour), floor_day(last_hour)
    if days and first_day < last_day:
        parts += [("hour", first_hour, first_day), ("day", first_day, last_day),
                  ("hour", last_day, last_hour)]  # fmt: skip
    else:
        parts.append(("hour", first_hour, last_hour))
    return [(source, a, b) for source, a, b in parts if a < b]


def _rows(qs: Any, dim_exprs: dict[str, Any], sums: dict[str, Any]) -> list[dict]:
    if not dim_exprs:  # .values() with no fields would group by every column
        return [qs.aggregate(**sums)]
    return list(qs.annotate(**dim_exprs).values(*dim_exprs).annotate(**sums).order_by())


def aggregate(
    viewer: Viewer, scope: Scope, dims: tuple[str, ...] = (), *, latency: bool = False
) -> tuple[dict[tuple, Agg], bool]:
    """Sums per group of `dims` over the scope; returns (groups, exact_percentiles)."""
    base = viewer.q() & scope.q()
    # Exact percentiles read every call's latency: for short windows, and not per hour or
    # day (truncating each call's timestamp costs more than the histogram's precision).
    time_dims = "hour" in dims or "day" in dims
    exact = latency and not time_dims and scope.end - scope.start <= EXACT_PERCENTILES_UP_TO
    # Days are UTC days: group by day from CallDay only when days are UTC days here.
    utc = timezone.get_current_timezone_name() in ("UTC", "Etc/UTC")
    use_days = "hour" not in dims and ("day" not in dims or utc)
    parts = segments(scope.start, scope.end, days=use_days)
    groups: dict[tuple, Agg] = defaultdict(Agg)
    dim_calls = {f"g_{d}": _dimension(d, "timestamp") for d in dims}
    for source, a, b in parts:
        if source == "call":
            qs = Call.objects.filter(base, timestamp__gte=a, timestamp__lt=b)
            rows = _rows(qs, dim_calls, CALL_SUMS)
            lat: dict[str, Any] = {}
        else:
            model, column = (CallHour, "hour") if source == "hour" else (CallDay, "day")
            qs = model.objects.filter(base, **{f"{column}__gte": a, f"{column}__lt": b})
            lat = {f"s_{c}": Sum(c) for c in LAT_COLUMNS} if latency and not exact else {}
            dim_exprs = {f"g_{d}": _dimension(d, column) for d in dims}
            rows = _rows(qs, dim_exprs, {**HOUR_SUMS, **lat})
        for row in rows:
            if not row.get("s_calls"):
                continue
            agg = groups[_key(row, dims)]
            agg.add(row)
            for i, column in enumerate(LAT_COLUMNS if lat else ()):
                agg.histogram[i] += row[f"s_{column}"] or 0
    if latency:
        edges = [(a, b) for source, a, b in parts if source == "call"]
        ranges = [(scope.start, scope.end)] if exact else edges
        for a, b in ranges:
            rows = (
                Call.objects.filter(base, timestamp__gte=a, timestamp__lt=b)
                .annotate(**dim_calls)
                .values_list(*dim_calls, "latency_ms")
                .order_by()
            )
            for *values, ms in rows:
                agg = groups[_key(dict(zip(dim_calls, values, strict=True)), dims)]
                if exact:
                    agg.latencies.append(ms)
                else:
                    agg.histogram[latency_bucket(ms)] += 1
    return dict(groups), exact


# -- latency percentiles --------------------------------------------------------------


def latency_bucket(ms: float) -> int:
    """Bucket 0 is [0, 1) ms; bucket i is [2^((i-1)/2), 2^(i/2)) ms; the last is open."""
    if ms < 1:
        return 0
    return min(math.floor(2 * math.log2(ms)) + 1, LATENCY_BUCKETS - 1)


def bucket_bounds(i: int) -> tuple[float, float]:
    if i == 0:
        return 0.0, 1.0
    return 2 ** ((i - 1) / 2), 2 ** (i / 2)


def exact_percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    return round(ordered[max(math.ceil(q * len(ordered)) - 1, 0)], 3)


def histogram_percentile(histogram: list[int], q: float) -> float | None:
    """Approximate to the bucket: the rank's position interpolated linearly inside it."""
    total = sum(histogram)
    if not total:
        return None
    rank = max(math.ceil(q * total), 1)
    seen = 0
    for i, count in enumerate(histogram):
        if count and seen + count >= rank:
            low, high = bucket_bounds(i)
            if i == LATENCY_BUCKETS - 1:
                return round(low, 3)
            return round(low + (high - low) * (rank - seen) / count, 3)
        seen += count
    return None  # pragma: no cover


# -- the contract's functions ---------------------------------------------------------


def totals(viewer: Viewer, scope: Scope) -> dict:
    """cost_usd, calls, tokens, errors, cancelled, unpriced_calls, p50/p95 latency."""
    groups, exact = aggregate(viewer, scope, latency=True)
    return groups.get((), Agg()).totals(exact=exact)


def cost(viewer: Viewer, scope: Scope, group_by: str | None) -> dict:
    """Totals and, with `group_by`, one row per group (`key` = the group's value):
    sorted by cost (highest first), or by time for day and hour (hour: windows of up to
    7 days). Percentiles per day or hour always come from the histogram."""
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
    groups, exact = aggregate(viewer, scope, (group_by,), latency=True)
    if result["totals"] is None:  # the groups partition the window: their merge is the total
        whole = Agg()
        for agg in groups.values():
            whole.merge(agg)
        result["totals"] = whole.totals(exact=exact)
    rows = [{"key": key[0], **agg.totals(exact=exact)} for key, agg in groups.items()]
    if group_by in ("day", "hour"):
        rows.sort(key=lambda r: r["key"])
    else:
        rows.sort(key=lambda r: (-r["cost_usd"], -r["calls"], str(r["key"])))
    result["groups"] = rows
    return result


def by_key(viewer: Viewer, scope: Scope) -> list[dict]:
    """One row per gateway key: name, owner, team, cost, calls, last call, inbound shapes."""
    from identity.models import GatewayKey

    groups, _ = aggregate(viewer, scope, ("gateway_key_id", "inbound_shape", "team"))
    keys: dict[str | None, dict] = {}
    for (key_id, shape, team), agg in groups.items():
        row = keys.setdefault(
            key_id,
            {"gateway_key_id": key_id, "name": None, "user": None, "team": team,
             "cost_usd": money(0), "calls": 0, "last_call_at": None,
             "inbound_shapes": {}, "quota": None},
        )  # fmt: skip
        row["cost_usd"] += money(agg.sums["cost_usd"])
        row["calls"] += agg.sums["calls"]
        if shape is not None:
            row["inbound_shapes"][shape] = row["inbound_shapes"].get(shape, 0) + agg.sums["calls"]
        last = agg.last_call_at
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        if last is not None and (row["last_call_at"] is None or last > row["last_call_at"]):
            row["last_call_at"] = last
    known = GatewayKey.objects.filter(pk__in=[k for k in keys if k]).values_list(
        "id", "name", "user__username", "team__name"
    )
    for key_id, name, owner, team in known:
        keys[key_id].update(name=name, user=owner, team=team)
    rows = list(keys.values())
    for row in rows:
        row["inbound_shapes"] = dict(sorted(row["inbound_shapes"].items(), key=lambda kv: -kv[1]))
    rows.sort(key=lambda r: (-r["cost_usd"], -r["calls"], str(r["gateway_key_id"])))
    return rows


def by_user(viewer: Viewer, scope: Scope) -> list[dict]:
    """One row per user label (None = untagged): cost, calls, quota."""
    groups, _ = aggregate(viewer, scope, ("user",))
    rows = [
        {"user": user, "cost_usd": money(agg.sums["cost_usd"]), "calls": agg.sums["calls"],
         "quota": None}
        for (user,), agg in groups.items()
    ]  # fmt: skip
    return _by_cost(rows, "user")


def by_team(viewer: Viewer, scope: Scope) -> list[dict]:
    """One row per team (None = untagged) with its users inline (`by_user`)."""
    groups, _ = aggregate(viewer, scope, ("team", "user"))
    teams: dict[str | None, dict] = {}
    for (team, user), agg in groups.items():
        row = teams.setdefault(
            team,
            {"team": team, "cost_usd": money(0), "calls": 0, "users": 0, "quota": None,
             "by_user": []},
        )  # fmt: skip
        row["cost_usd"] += money(agg.sums["cost_usd"])
        row["calls"] += agg.sums["calls"]
        row["by_user"].append(
            {"user": user, "cost_usd": money(agg.sums["cost_usd"]), "calls": agg.sums["calls"]}
        )
    for row in teams.values():
        row["users"] = sum(1 for u in row["by_user"] if u["user"] is not None)
        row["by_user"] = _by_cost(row["by_user"], "user")
    return _by_cost(list(teams.values()), "team")


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
    calls = []
    for row in rows[:page_size]:
        for name in ("gateway_key_id", "key_name", "user", "team", "workspace", "error_class"):
            row[name] = row[name] or None
        calls.append(row)
    return {"calls": calls, "page": page, "next_page": page + 1 if more else None}
