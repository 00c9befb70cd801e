"""Typed rows and hourly and daily rollups from `llm.call_completed` events.

The event writer (`analytics/writer.py`) calls `record()` in the transaction that inserts
the events, so `Call` and the rollups (`CallHour`, `CallDay` and their narrower grains,
`models.GRAINS`) never disagree with `events`; `rebuild()` makes them again from the
events (`metis manage rebuild_rollups`). Nothing is written here that is not in an event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection

from analytics.aggregate import CANCELLED, latency_bucket
from analytics.models import (
    CACHE_MONEY,
    GRAINS,
    LATENCY_BUCKETS,
    ROLLUP_GROUP,
    Call,
    Event,
    to_units,
)

CALL_COMPLETED = "llm.call_completed"
# (id, type, timestamp_us, payload_json): an event as the writer holds it.
EventRow = tuple[str, str, int, str]

CALL_COLUMNS = (
    "id", "timestamp", "gateway_key_id", "key_name", "user", "team", "workspace",
    "inbound_shape", "provider", "model", "requested_model", "stream", "input_tokens",
    "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd",
    "latency_ms", "ttft_ms", "status", "error_class", "retries", "request_id",
    "cache_write_1h_tokens", *CACHE_MONEY,
)  # fmt: skip
HOUR_SUMS = (
    "calls", "errors", "cancelled", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "cost_usd", "unpriced_calls",
    "cache_write_1h_tokens", *CACHE_MONEY,
)  # fmt: skip
LAT_COLUMNS = tuple(f"lat_{i:02d}" for i in range(LATENCY_BUCKETS))


@dataclass
class Rollup:
    """A batch's `Call` rows and its `CallHour` increments, one per (hour, group)."""

    calls: list[tuple] = field(default_factory=list)
    hours: dict[tuple, list] = field(default_factory=dict)  # group -> sums + histogram + last


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _units(value: Any) -> int:
    try:
        return to_units(value) or 0
    except (ArithmeticError, TypeError, ValueError):
        return 0


def rows_from_events(events: Iterable[EventRow]) -> Rollup:
    """Build the rows for every `llm.call_completed` event (others are skipped).

    The payload is parsed with Decimal floats so `cost_usd` keeps its exact digits."""
    rollup = Rollup()
    width = len(HOUR_SUMS)
    for event_id, type_, timestamp_us, payload_json in events:
        if type_ != CALL_COMPLETED:
            continue
        p = json.loads(payload_json, parse_float=Decimal)
        moment = datetime.fromtimestamp(timestamp_us / 1_000_000, tz=UTC)
        cost = p.get("cost_usd")
        cost_units = to_units(cost) if cost is not None else None
        latency = float(p.get("latency_ms") or 0)
        ttft = p.get("ttft_ms")
        status, error_class = _int(p.get("status")), _text(p.get("error_class"))
        tokens = (
            _int(p.get("input_tokens")),
            _int(p.get("output_tokens")),
            _int(p.get("cache_read_input_tokens")),
            _int(p.get("cache_creation_input_tokens")),
            _int(p.get("reasoning_tokens")),
        )
        group = (
            _text(p.get("gateway_key_id")),
            _text(p.get("user")),
            _text(p.get("team")),
            _text(p.get("workspace")),
            _text(p.get("provider")),
            _text(p.get("model")),
            _text(p.get("inbound_shape")),
        )
        key_id, user, team, workspace, provider, model, shape = group
        # Priced with the call (gateway.calls); absent from unpriced calls and from events
        # recorded before the gateway priced its cache (those count 0).
        cache = (
            _int(p.get("cache_creation_1h_input_tokens")),
            *(_units(p.get(name)) for name in CACHE_MONEY),
        )
        rollup.calls.append(
            (event_id, moment, key_id, _text(p.get("key_name")), user, team, workspace, shape,
             provider, model, _text(p.get("requested_model")), bool(p.get("stream")), *tokens,
             cost_units, latency, float(ttft) if ttft is not None else None, status,
             error_class, _int(p.get("retries")), _text(p.get("request_id")), *cache)
        )  # fmt: skip
        hour_key = (moment.replace(minute=0, second=0, microsecond=0), *group)
        sums = rollup.hours.get(hour_key)
        if sums is None:
            sums = rollup.hours[hour_key] = [0] * (width + LATENCY_BUCKETS) + [moment]
        cancelled = error_class == CANCELLED
        sums[0] += 1
        sums[1] += (not cancelled) and (status >= 400 or error_class != "")
        sums[2] += cancelled
        for i, count in enumerate(tokens):
            sums[3 + i] += count
        if cost_units is None:
            sums[9] += 1
        else:
            sums[8] += cost_units
        for i, value in enumerate(cache):
            sums[10 + i] += value
        sums[width + latency_bucket(latency)] += 1
        if moment > sums[-1]:
            sums[-1] = moment
    return rollup


def days_of(hours: dict[tuple, list]) -> dict[tuple, list]:
    """The hour rows merged into UTC days (same group, sums added, latest call kept)."""
    return _merged(hours, lambda hour, group: (hour.replace(hour=0), *group))


def week_of(moment: datetime) -> datetime:
    """The UTC Monday 00:00 that starts the week of `moment` (a UTC datetime)."""
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def weeks_of(days: dict[tuple, list]) -> dict[tuple, list]:
    """The day rows merged into UTC weeks."""
    return _merged(days, lambda day, group: (week_of(day), *group))


def week_sql(column: str) -> str:
    """`week_of` in SQL, on a quoted datetime column."""
    if connection.vendor == "postgresql":
        return f"(date_trunc('week', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
    # SQLite keeps UTC text; back six days, then on to a Monday: the week's own Monday.
    return f"datetime({column}, '-6 days', 'weekday 1', 'start of day')"


def refill_weeks(cursor: Any, grain: Any, since: datetime | None = None) -> None:
    """Sum a grain's weeks again from its days, from the week of `since` on (all if None)."""
    q = connection.ops.quote_name
    week, day = q(grain.week._meta.db_table), q(grain.day._meta.db_table)
    group = ", ".join(q(c) for c in grain.group)
    counters = ", ".join(q(c) for c in (*HOUR_SUMS, *LAT_COLUMNS))
    sums = ", ".join(f"SUM({q(c)})" for c in (*HOUR_SUMS, *LAT_COLUMNS))
    if since is None:
        where_week = where_day = ""
        params = None
    else:
        where_week, where_day = f" WHERE {q('week')} >= %s", f" WHERE {q('day')} >= %s"
        params = [connection.ops.adapt_datetimefield_value(week_of(since))]
    cursor.execute(f"DELETE FROM {week}{where_week}", params)
    cursor.execute(
        f"INSERT INTO {week} ({q('week')}, {group}, {counters}, {q('last_call_at')}) "
        f"SELECT {week_sql(q('day'))}, {group}, {sums}, MAX({q('last_call_at')}) "
        f"FROM {day}{where_day} GROUP BY {week_sql(q('day'))}, {group} ORDER BY 1",
        params,
    )


def narrowed(hours: dict[tuple, list], group: tuple[str, ...]) -> dict[tuple, list]:
    """The hour rows merged into a narrower group (a grain's: `models.GRAINS`)."""
    if group == ROLLUP_GROUP:
        return hours
    kept = [ROLLUP_GROUP.index(column) for column in group]
    return _merged(hours, lambda hour, values: (hour, *(values[i] for i in kept)))


def _merged(rows: dict[tuple, list], key_of) -> dict[tuple, list]:
    merged: dict[tuple, list] = {}
    for (moment, *group), sums in rows.items():
        key = key_of(moment, group)
        into = merged.get(key)
        if into is None:
            merged[key] = list(sums)
            continue
        for i in range(len(sums) - 1):
            into[i] += sums[i]
        into[-1] = max(into[-1], sums[-1])
    return merged


def write_rollups(cursor: Any, rollup: Rollup) -> None:
    """Insert the `Call` rows and upsert every grain's hour and day sums (SQLite and
    PostgreSQL alike: INSERT … ON CONFLICT … DO UPDATE)."""
    ops = connection.ops
    if rollup.calls:
        q = ops.quote_name
        table = q(Call._meta.db_table)
        columns = ", ".join(q(c) for c in CALL_COLUMNS)
        marks = ", ".join(["%s"] * len(CALL_COLUMNS))
        cursor.executemany(
            f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING",
            [(r[0], ops.adapt_datetimefield_value(r[1]), *r[2:]) for r in rollup.calls],
        )
    if not rollup.hours:
        return
    done = set()
    # Widest first: an hourly table a narrower grain borrows (the key grain's) is written
    # once, with the group it was made for.
    for grain in reversed(GRAINS):
        hours = narrowed(rollup.hours, grain.group)
        if grain.hour not in done:
            _upsert(cursor, grain.hour._meta.db_table, ("hour", *grain.group), hours)
            done.add(grain.hour)
        days = days_of(hours)
        _upsert(cursor, grain.day._meta.db_table, ("day", *grain.group), days)
        if grain.week is not None:
            _upsert(cursor, grain.week._meta.db_table, ("week", *grain.group), weeks_of(days))


def _upsert(cursor: Any, table_name: str, group: tuple[str, ...], rows: dict[tuple, list]) -> None:
    ops = connection.ops
    q = ops.quote_name
    table = q(table_name)
    counters = (*HOUR_SUMS, *LAT_COLUMNS)
    all_columns = (*group, *counters, "last_call_at")
    updates = [f"{q(c)} = {table}.{q(c)} + excluded.{q(c)}" for c in counters]
    last = q("last_call_at")
    updates.append(
        f"{last} = CASE WHEN excluded.{last} > {table}.{last} "
        f"THEN excluded.{last} ELSE {table}.{last} END"
    )
    sql = (
        f"INSERT INTO {table} ({', '.join(q(c) for c in all_columns)}) "
        f"VALUES ({', '.join(['%s'] * len(all_columns))}) "
        f"ON CONFLICT ({', '.join(q(c) for c in group)}) DO UPDATE SET {', '.join(updates)}"
    )
    cursor.executemany(
        sql,
        [
            (ops.adapt_datetimefield_value(key[0]), *key[1:], *sums[:-1],
             ops.adapt_datetimefield_value(sums[-1]))
            for key, sums in rows.items()
        ],
    )  # fmt: skip


def refill_narrow_grains() -> None:
    """Sum the narrower grains' tables again from `CallHour` and `CallDay` (after rows
    of the full grain were moved or deleted by hand, as the demo's backdating does)."""
    full = next(grain for grain in GRAINS if grain.group == ROLLUP_GROUP)
    q = connection.ops.quote_name
    with connection.cursor() as cursor:
        for grain in GRAINS:
            if grain.group == ROLLUP_GROUP:
                continue
            for column, narrow, source in (("hour", grain.hour, full.hour),
                                           ("day", grain.day, full.day)):  # fmt: skip
                if narrow is source:
                    continue
                group = ", ".join(q(c) for c in (column, *grain.group))
                counters = (*HOUR_SUMS, *LAT_COLUMNS)
                sums = ", ".join(f"SUM({q(c)})" for c in counters)
                cursor.execute(f"DELETE FROM {q(narrow._meta.db_table)}")
                cursor.execute(
                    f"INSERT INTO {q(narrow._meta.db_table)} ({group}, "
                    f"{', '.join(q(c) for c in counters)}, {q('last_call_at')}) "
                    f"SELECT {group}, {sums}, MAX({q('last_call_at')}) "
                    # In time order, as the writer appends them: a window's rows then
                    # sit on a window's pages, not one to a page across the table.
                    f"FROM {q(source._meta.db_table)} GROUP BY {group} ORDER BY {q(column)}"
                )
            if grain.week is not None:
                refill_weeks(cursor, grain)


def record(events: Sequence[EventRow]) -> None:
    """Rows for the events not recorded before (a spooled batch may be written twice);
    call inside the transaction that inserts the events."""
    completed = [e for e in events if e[1] == CALL_COMPLETED]
    if not completed:
        return
    ids = [e[0] for e in completed]
    seen: set[str] = set()
    for i in range(0, len(ids), 500):
        seen.update(Call.objects.filter(pk__in=ids[i : i + 500]).values_list("pk", flat=True))
    rollup = rows_from_events(e for e in completed if e[0] not in seen)
    with connection.cursor() as cursor:
        write_rollups(cursor, rollup)


def rebuild(*, chunk: int = 5000) -> int:
    """Make `Call` and every rollup again from the events; returns the calls written.
    Run inside a transaction (the management command does). Rows older than the oldest
    kept event (pruned, analytics.retention) are kept as they are: only whole UTC days
    from that event's on are rebuilt."""
    first = (
        Event.objects.filter(type=CALL_COMPLETED)
        .order_by("timestamp_us")
        .values_list("timestamp_us", flat=True)
        .first()
    )
    if first is None:
        return 0
    since = datetime.fromtimestamp(first / 1_000_000, tz=UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    for grain in GRAINS:
        grain.hour.objects.filter(hour__gte=since).delete()
        grain.day.objects.filter(day__gte=since).delete()
    with connection.cursor() as cursor:
        for grain in GRAINS:
            if grain.week is not None:  # the kept days of `since`'s week stay in it
                refill_weeks(cursor, grain, since)
    Call.objects.filter(timestamp__gte=since).delete()
    written, after = 0, ""
    rows = Event.objects.filter(type=CALL_COMPLETED).order_by("id")
    while True:
        batch = list(rows.filter(id__gt=after).values_list("id", "type", "timestamp_us",
                                                             "payload_json")[:chunk])  # fmt: skip
        if not batch:
            return written
        rollup = rows_from_events(batch)
        with connection.cursor() as cursor:
            write_rollups(cursor, rollup)
        written += len(rollup.calls)
        after = batch[-1][0]
