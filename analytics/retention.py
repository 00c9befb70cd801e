"""Retention of raw events: what `metis manage prune` and `metis serve`'s daily pruning delete.

Only rows of the `events` table go. The `Call` rows and the hourly and daily rollups are
kept for good: the dashboard, the analytics API and every budget read those, so pruning
changes no figure Metis shows or enforces. Events are still read raw in two places, and
the horizon never reaches them:

- the budget alerts the dashboard lists (analytics.budget_events) look back 31 days;
- the current calendar day, week and month of every quota period, so a period is never
  cut short even for someone reading its events with the seeds' own SQL.

The horizon is a UTC midnight, so a day's events are kept or pruned whole, and
`rebuild_rollups` (which can only rebuild what is kept) rebuilds whole days.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from analytics.budget_events import LOOKBACK
from analytics.models import Event
from analytics.periods import DAY, MONTH, WEEK, period_bounds

logger = logging.getLogger(__name__)

MINIMUM = LOOKBACK  # never fewer days of events than the dashboard reads raw
CHUNK = 5000  # events per delete: short write locks, so the gateway's writer keeps going
EVERY = timedelta(days=1)


@dataclass(frozen=True)
class Horizon:
    """Events before `before` may be pruned; `reason` says what set it."""

    before: datetime
    reason: str


def horizon(older_than: timedelta, now: datetime | None = None) -> Horizon:
    now = now or timezone.now()
    wanted = now - older_than
    reason = f"older than {older_than.days} days"
    if now - MINIMUM < wanted:
        wanted, reason = now - MINIMUM, f"the dashboard reads {MINIMUM.days} days of alerts"
    for period in (DAY, WEEK, MONTH):
        start, _ = period_bounds(period, now)
        if start < wanted:
            wanted, reason = start, f"the current {period} of the budgets"
    midnight = wanted.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return Horizon(midnight, reason)


def to_us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def count(before: datetime) -> int:
    return Event.objects.filter(timestamp_us__lt=to_us(before)).count()


def prune(before: datetime, *, chunk: int = CHUNK) -> int:
    """Delete the events before `before`, in chunks; returns how many went."""
    deleted = 0
    old = Event.objects.filter(timestamp_us__lt=to_us(before))
    while True:
        with transaction.atomic():
            ids = list(old.order_by("timestamp_us").values_list("id", flat=True)[:chunk])
            if not ids:
                return deleted
            Event.objects.filter(id__in=ids).delete()
        deleted += len(ids)


def configured() -> timedelta | None:
    """METIS_EVENT_RETENTION_DAYS as a timedelta; None (0, the default): keep forever."""
    days = settings.METIS_EVENT_RETENTION_DAYS
    return timedelta(days=days) if days > 0 else None


def prune_configured() -> int:
    """One scheduled run: prune by METIS_EVENT_RETENTION_DAYS, if set."""
    older_than = configured()
    if older_than is None:
        return 0
    edge = horizon(older_than)
    deleted = prune(edge.before)
    if deleted:
        logger.info(
            "pruned %d events before %s (%s)", deleted, edge.before.date().isoformat(), edge.reason
        )
    return deleted


def schedule(every: timedelta = EVERY) -> threading.Thread | None:
    """Prune now and then once a day, in a daemon thread of `metis serve`; nothing to do
    (and no thread) when retention is off."""
    if configured() is None:
        return None

    def run() -> None:
        while True:
            try:
                prune_configured()
            except Exception:  # a locked or unreachable database: try again tomorrow
                logger.exception("pruning events failed")
            finally:
                connection.close()  # this thread's own; not held open for a day
            time.sleep(every.total_seconds())

    thread = threading.Thread(target=run, name="metis-prune", daemon=True)
    thread.start()
    return thread
