"""Metis's own figures against the imported reports, per day × upstream × model.

The gateway side is the daily model rollup (`ModelDay`: UTC days, every call priced by the
one price lookup); the provider side is `ProviderUsage` of the keys Metis holds. Results go
to `Reconciliation`; a row whose figures changed since the last run raises its events again,
one that did not raises nothing, so a re-run is silent.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum

from analytics.models import ModelDay
from analytics.writer import make_event, writer
from reconcile import alerts
from reconcile.models import TOKEN_KINDS, ProviderUsage, Reconciliation


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def drift_percent(drift: Decimal, provider_cost: Decimal | None, gateway_cost: Decimal) -> Decimal:
    """Drift as a share of the provider's cost (the invoice is the reference)."""
    if provider_cost:
        return (drift / provider_cost * 100).quantize(Decimal("0.01"))
    return Decimal(100) if gateway_cost else Decimal(0)


@dataclass
class Change:
    row: Reconciliation
    new: bool


def reconcile(since: date, until: date, upstreams: dict[str, str]) -> list[Reconciliation]:
    """Rebuild the comparison of [since, until) for these upstreams (name -> provider)."""
    merged: dict[tuple[date, str, str], Reconciliation] = {}

    def row(day: date, upstream: str, model: str) -> Reconciliation:
        key = (day, upstream, model)
        if key not in merged:
            merged[key] = Reconciliation(
                day=day, upstream=upstream, provider=upstreams[upstream], model=model,
                provider_cost_usd=None,
            )  # fmt: skip
        return merged[key]

    gateway = (
        ModelDay.objects.filter(
            day__gte=midnight(since), day__lt=midnight(until), provider__in=list(upstreams)
        )
        .values("day", "provider", "model")
        .annotate(
            calls=Sum("calls"),
            input=Sum("input_tokens"),
            read=Sum("cache_read_tokens"),
            write=Sum("cache_write_tokens"),
            output=Sum("output_tokens"),
            cost=Sum("cost_usd"),
        )
    )
    for g in gateway:
        r = row(g["day"].astimezone(UTC).date(), g["provider"], g["model"])
        r.gateway_calls = g["calls"] or 0
        r.gateway_input_tokens = max((g["input"] or 0) - (g["read"] or 0) - (g["write"] or 0), 0)
        r.gateway_cache_write_tokens = g["write"] or 0
        r.gateway_cache_read_tokens = g["read"] or 0
        r.gateway_output_tokens = g["output"] or 0
        r.gateway_cost_usd = g["cost"] or Decimal(0)
    reported = ProviderUsage.objects.filter(
        day__gte=since, day__lt=until, upstream__in=list(upstreams)
    )
    for p in reported:
        r = row(p.day, p.upstream, p.model)
        r.api_key_id = p.api_key_id
        r.provider_requests += p.requests
        r.provider_input_tokens += p.input_tokens
        r.provider_cache_write_tokens += p.cache_write_5m_tokens + p.cache_write_1h_tokens
        r.provider_cache_read_tokens += p.cache_read_tokens
        r.provider_output_tokens += p.output_tokens
        if p.cost_usd is not None:
            r.provider_cost_usd = (r.provider_cost_usd or Decimal(0)) + p.cost_usd
    for r in merged.values():
        gaps = [
            getattr(r, f"provider_{k}_tokens") - getattr(r, f"gateway_{k}_tokens")
            for k in TOKEN_KINDS
        ]
        r.bypass_tokens = sum(gap for gap in gaps if gap > 0)
        r.unreported_tokens = -sum(gap for gap in gaps if gap < 0)
        r.drift_usd = (r.provider_cost_usd or Decimal(0)) - r.gateway_cost_usd
    changes = _store(since, until, upstreams, merged)
    _raise_events(changes, merged)
    return sorted(merged.values(), key=lambda r: (r.day, r.upstream, r.model))


def _store(since, until, upstreams, merged) -> list[Change]:
    changes = []
    with transaction.atomic():
        old = {
            (r.day, r.upstream, r.model): r
            for r in Reconciliation.objects.filter(
                day__gte=since, day__lt=until, upstream__in=list(upstreams)
            )
        }
        gone = [r.pk for key, r in old.items() if key not in merged]
        Reconciliation.objects.filter(pk__in=gone).delete()
        for key, r in merged.items():
            before = old.get(key)
            if before is not None:
                r.pk = before.pk
                if before.figures() == r.figures():
                    continue
            r.save()
            changes.append(Change(r, before is None))
    return changes


def _raise_events(changes: list[Change], merged) -> None:
    events, days = [], set()
    for change in changes:
        r = change.row
        days.add((r.day, r.upstream))
        for kind, count in (("bypass", r.bypass_tokens), ("unreported", r.unreported_tokens)):
            if count:
                events.append(make_event(f"reconciliation.{kind}", _payload(r, kind)))
    threshold = Decimal(str(settings.METIS_RECONCILE_DRIFT_PERCENT))
    totals: dict[tuple[date, str], list[Reconciliation]] = defaultdict(list)
    for r in merged.values():
        totals[(r.day, r.upstream)].append(r)
    for day, upstream in sorted(days):
        rows = totals[(day, upstream)]
        reported = [r.provider_cost_usd for r in rows if r.provider_cost_usd is not None]
        provider_cost = sum(reported, Decimal(0)) if reported else None
        gateway_cost = sum((r.gateway_cost_usd for r in rows), Decimal(0))
        drift = (provider_cost or Decimal(0)) - gateway_cost
        percent = drift_percent(drift, provider_cost, gateway_cost)
        if abs(percent) > threshold:
            payload = {
                "type": "reconciliation.drift", "day": day.isoformat(), "upstream": upstream,
                "provider": rows[0].provider, "gateway_cost_usd": gateway_cost,
                "provider_cost_usd": provider_cost, "drift_usd": drift,
                "drift_percent": percent, "threshold_percent": threshold,
                "bypass_tokens": sum(r.bypass_tokens for r in rows),
                "unreported_tokens": sum(r.unreported_tokens for r in rows),
            }  # fmt: skip
            events.append(make_event("reconciliation.drift", alerts.plain(payload)))
            alerts.send(payload)
    if events:
        writer.submit(events)


def _payload(r: Reconciliation, kind: str) -> dict:
    sign = 1 if kind == "bypass" else -1
    tokens = {
        k: max(sign * (getattr(r, f"provider_{k}_tokens") - getattr(r, f"gateway_{k}_tokens")), 0)
        for k in TOKEN_KINDS
    }
    return alerts.plain({
        "type": f"reconciliation.{kind}", "day": r.day.isoformat(), "upstream": r.upstream,
        "provider": r.provider, "api_key_id": r.api_key_id, "model": r.model,
        "tokens": tokens, "total_tokens": sum(tokens.values()), "drift_usd": r.drift_usd,
    })  # fmt: skip
