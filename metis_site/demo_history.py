"""`metis demo`'s past month: the calls it just sent, moved back over the last 30 days.

A real gateway records the demo's calls as they happen, a few seconds' worth. So that the
first chart a user sees has a shape, the demo then moves each call (its three events,
together) to a moment in the past 30 days, shaped like a team's working month, and builds
the demo keys' analytics rows again from their events with the event writer's own code
(`analytics.rollup`). Events stay the record: only their time (and so their ULID's time
part) changes, and the typed rows and rollups are rebuilt from them.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
from ulid import ULID

SPAN = timedelta(days=30)
HOUR = timedelta(hours=1)
WEEKEND = 0.15  # a weekend day's traffic, against a weekday's
CHUNK = 500  # ids per IN (...): well under SQLite's variable limit


def hour_weight(local: datetime) -> float:
    """How busy an hour is: office hours most, the evening a little, the night hardly."""
    busy = 1.0 if 9 <= local.hour < 18 else 0.35 if 7 <= local.hour < 21 else 0.05
    return busy * (WEEKEND if local.weekday() >= 5 else 1.0)


def moments(count: int, now: datetime, zone: ZoneInfo, rng: random.Random) -> list[datetime]:
    """`count` moments in the 30 days before `now`, oldest first: weekdays busier than
    weekends, working hours (in `zone`) busier than nights, and traffic growing over the
    month as a team takes the gateway up. Each moment is drawn from its own equal slice
    of that shape (stratified), so even a hundred calls reach every weekday."""
    start = now - SPAN
    edges, cumulative, total = [], [], 0.0
    hour = start
    while hour < now:
        growth = 0.6 + 0.4 * (hour - start) / SPAN
        total += hour_weight(hour.astimezone(zone)) * growth * (min(hour + HOUR, now) - hour) / HOUR
        edges.append(hour)
        cumulative.append(total)
        hour += HOUR
    result = []
    for i in range(count):
        target = (i + rng.random()) / count * total
        slot = min(bisect.bisect_left(cumulative, target), len(edges) - 1)
        below = cumulative[slot - 1] if slot else 0.0
        share = (target - below) / ((cumulative[slot] - below) or 1.0)
        moment = edges[slot] + min(share, 1.0) * (min(edges[slot] + HOUR, now) - edges[slot])
        result.append(min(moment, now - timedelta(microseconds=1)))
    return result


def backdate(since_us: int, key_ids: Iterable[str], now: datetime, zone: ZoneInfo) -> int:
    """Move the calls made on `key_ids` since `since_us` into the past month; rebuild those
    keys' `Call`, `CallHour` and `CallDay` rows, and the narrower rollups from those.
    Returns the number of calls moved."""
    from django.db import connection, transaction

    from analytics import rollup
    from analytics.models import Call, CallDay, CallHour, Event, KeyDay

    keys = set(key_ids)
    with transaction.atomic():
        calls: dict[str, list[tuple[str, int]]] = {}
        recent = Event.objects.filter(timestamp_us__gte=since_us).order_by("id")
        for event_id, ts, payload in recent.values_list("id", "timestamp_us", "payload_json"):
            p = orjson.loads(payload)
            if p.get("gateway_key_id") in keys and p.get("request_id"):
                calls.setdefault(p["request_id"], []).append((event_id, ts))
        when = moments(len(calls), now, zone, random.Random(len(calls)))
        moves = []
        for events, moment in zip(calls.values(), when, strict=True):
            # Whole milliseconds, so each event's ULID moves with its timestamp and the
            # call's events keep their order.
            shift_ms = (int(moment.timestamp() * 1_000_000) - events[0][1]) // 1000
            for event_id, ts in events:
                moved = ULID.from_int(int(ULID.from_str(event_id)) + (shift_ms << 80))
                moves.append((str(moved), ts + shift_ms * 1000, event_id))
        # Every call of these keys, under its id after the move: the rows to build again.
        renamed = {old: new for new, _, old in moves}
        mine = Call.objects.filter(gateway_key_id__in=keys).values_list("id", flat=True)
        ids = [renamed.get(call_id, call_id) for call_id in mine]
        table = connection.ops.quote_name(Event._meta.db_table)
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET id = %s, timestamp_us = %s WHERE id = %s", moves
            )
            for model in (CallDay, CallHour, KeyDay, Call):
                model.objects.filter(gateway_key_id__in=keys).delete()
            columns = ("id", "type", "timestamp_us", "payload_json")
            for i in range(0, len(ids), CHUNK):
                rows = Event.objects.filter(id__in=ids[i : i + CHUNK]).values_list(*columns)
                rollup.write_rollups(cursor, rollup.rows_from_events(rows))
        rollup.refill_narrow_grains()  # the model grain has no key to delete by
    return len(calls)
