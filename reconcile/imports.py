"""One reconciliation run: read every configured report for whole UTC days, store it, compare.

Idempotent: a day's rows of a report are replaced, never added to, and the comparison only
raises events for figures that changed. Run daily by `metis serve` (reconcile.schedule) and
on demand by `metis manage reconcile [--since DATE]`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.db import transaction

from reconcile import compare, sources
from reconcile.models import ProviderUsage, Reconciliation
from reconcile.reports import Report, ReportError, anthropic, holds, openai

logger = logging.getLogger(__name__)

READERS = {"anthropic": anthropic.read, "openai": openai.read}
# Reports settle over a day or two (late batch and cache lines): each daily run re-reads them.
LOOKBACK = timedelta(days=3)


@dataclass
class Outcome:
    since: date
    until: date
    reports: int = 0
    rows: int = 0
    errors: list[str] = field(default_factory=list)
    results: list[Reconciliation] = field(default_factory=list)


def today() -> date:
    return datetime.now(UTC).date()


def run(since: date | None = None, until: date | None = None) -> Outcome:
    """Import [since, until) (default: the last LOOKBACK days through today) and compare."""
    until = until or today() + timedelta(days=1)
    since = since or until - LOOKBACK - timedelta(days=1)
    outcome = Outcome(since, until)
    upstreams: dict[str, str] = {}
    for source in sources.sources():
        try:
            report = READERS[source.provider](
                source.base_url, source.admin_key, compare.midnight(since), compare.midnight(until)
            )
        except ReportError as exc:
            outcome.errors.append(f"{source.provider} ({source.base_url}): {exc}")
            logger.warning("reconciliation: %s report not read: %s", source.provider, exc)
            continue
        outcome.reports += 1
        outcome.rows += store(source, report, since, until)
        upstreams.update(dict.fromkeys(source.upstreams, source.provider))
    if upstreams:
        outcome.results = compare.reconcile(since, until, upstreams)
    return outcome


def owners(source: sources.Source, report: Report) -> dict[str, str]:
    """Key id -> the upstream holding that key. Without the key list (the admin key may not
    read it), a report of a single upstream's organisation is all that upstream's."""
    ids = {key_id for _, key_id, _ in report.rows if key_id}
    if report.key_hints is None:
        if len(source.upstreams) == 1:
            return dict.fromkeys(ids, next(iter(source.upstreams)))
        return {}
    found = {}
    for key_id in ids:
        hint = report.key_hints.get(key_id, "")
        for name, api_key in source.upstreams.items():
            if hint and holds(api_key, hint):
                found[key_id] = name
    return found


def store(source: sources.Source, report: Report, since: date, until: date) -> int:
    held = owners(source, report)
    rows = [
        ProviderUsage(
            source=source.id,
            provider=source.provider,
            upstream=held.get(r.api_key_id, ""),
            day=r.day,
            api_key_id=r.api_key_id,
            model=r.model,
            input_tokens=r.input_tokens,
            cache_write_5m_tokens=r.cache_write_5m_tokens,
            cache_write_1h_tokens=r.cache_write_1h_tokens,
            cache_read_tokens=r.cache_read_tokens,
            output_tokens=r.output_tokens,
            requests=r.requests,
            cost_usd=r.cost_usd,
        )
        for r in report.rows.values()
        if since <= r.day < until
    ]
    with transaction.atomic():
        ProviderUsage.objects.filter(source=source.id, day__gte=since, day__lt=until).delete()
        ProviderUsage.objects.bulk_create(rows)
    return len(rows)
