"""The reconciliation as the API and the dashboard show it: per day × upstream, and per model."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Max

from reconcile.compare import drift_percent
from reconcile.models import TOKEN_KINDS, ProviderUsage, Reconciliation

SIDES = ("gateway", "provider")


def may_see(viewer) -> bool:
    """Staff (and local mode) and budget owners: the reports are the organisation's bill."""
    return viewer.kind == "all" or (viewer.kind == "user" and bool(viewer.team_names))


def threshold() -> Decimal:
    return Decimal(str(settings.METIS_RECONCILE_DRIFT_PERCENT))


def row_of(r: Reconciliation) -> dict:
    tokens = {
        side: {kind: getattr(r, f"{side}_{kind}_tokens") for kind in TOKEN_KINDS} for side in SIDES
    }
    return {
        "day": r.day,
        "upstream": r.upstream,
        "provider": r.provider,
        "api_key_id": r.api_key_id or None,
        "model": r.model,
        "gateway_calls": r.gateway_calls,
        "provider_requests": r.provider_requests,
        "tokens": tokens,
        "gateway_cost_usd": r.gateway_cost_usd,
        "provider_cost_usd": r.provider_cost_usd,
        "drift_usd": r.drift_usd,
        "drift_percent": drift_percent(r.drift_usd, r.provider_cost_usd, r.gateway_cost_usd),
        "bypass_tokens": r.bypass_tokens,
        "unreported_tokens": r.unreported_tokens,
    }


def summary(start: datetime, end: datetime) -> dict:
    """Every reconciled day touching [start, end), newest first, with its model rows."""
    first, last = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    rows = [row_of(r) for r in Reconciliation.objects.filter(day__gte=first, day__lte=last)]
    days: dict[tuple[date, str], list[dict]] = defaultdict(list)
    for row in rows:
        days[(row["day"], row["upstream"])].append(row)
    limit = threshold()
    day_rows = []
    for (day, upstream), members in sorted(
        days.items(), key=lambda i: (-i[0][0].toordinal(), i[0][1])
    ):
        costs = [m["provider_cost_usd"] for m in members if m["provider_cost_usd"] is not None]
        provider_cost = sum(costs, Decimal(0)) if costs else None
        gateway_cost = sum((m["gateway_cost_usd"] for m in members), Decimal(0))
        drift = (provider_cost or Decimal(0)) - gateway_cost
        percent = drift_percent(drift, provider_cost, gateway_cost)
        day_rows.append({
            "day": day, "upstream": upstream, "provider": members[0]["provider"],
            "gateway_cost_usd": gateway_cost, "provider_cost_usd": provider_cost,
            "drift_usd": drift, "drift_percent": percent,
            "over_threshold": abs(percent) > limit,
            "bypass_tokens": sum(m["bypass_tokens"] for m in members),
            "unreported_tokens": sum(m["unreported_tokens"] for m in members),
            "models": members,
        })  # fmt: skip
    imported = ProviderUsage.objects.aggregate(last=Max("imported_at"))["last"]
    return {
        "threshold_percent": limit,
        "last_import": imported,
        "days": day_rows,
        "totals": {
            "gateway_cost_usd": sum((d["gateway_cost_usd"] for d in day_rows), Decimal(0)),
            "provider_cost_usd": sum(
                (d["provider_cost_usd"] or Decimal(0) for d in day_rows), Decimal(0)
            ),
            "drift_usd": sum((d["drift_usd"] for d in day_rows), Decimal(0)),
            "bypass_tokens": sum(d["bypass_tokens"] for d in day_rows),
            "unreported_tokens": sum(d["unreported_tokens"] for d in day_rows),
            "days_over_threshold": sum(1 for d in day_rows if d["over_threshold"]),
        },
    }
