"""What happened to the budgets lately, as dated lines for the people who own them.

Read from the record, never from the gateway: soft-cap alerts are the
`budget.threshold_crossed` / `budget.soft_cap_crossed` events the gateway writes (50, 80
and 100 % of a soft cap, once per period), and hard-cap refusals are the calls it
recorded with `error_class: "QUOTA_EXCEEDED"`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Max

from analytics.models import Call, Event
from analytics.periods import ADJECTIVES
from analytics.scope import Viewer
from identity.models import GatewayKey

ALERTS = ("budget.threshold_crossed", "budget.soft_cap_crossed")
REFUSED = "QUOTA_EXCEEDED"
LOOKBACK = timedelta(days=31)
SCAN = 500  # alert events read at most: a few per scope and period, so plenty


def sees(viewer: Viewer, scope: str, scope_id: str) -> bool:
    if viewer.kind == "all":
        return True
    if viewer.kind == "key":
        return scope == "key" and scope_id == viewer.gateway_key_id
    return (
        (scope == "team" and scope_id in viewer.team_names)
        or (scope == "user" and scope_id == viewer.user)
        or (scope == "key" and scope_id in viewer.own_key_ids)
    )


def recent(viewer: Viewer, now: datetime, *, limit: int = 8) -> list[dict]:
    """Newest first: {"at", "kind" ("alert" | "refused"), "text"}."""
    since = now - LOOKBACK
    lines = alerts(viewer, since) + refusals(viewer, since)
    lines.sort(key=lambda line: line["at"], reverse=True)
    return lines[:limit]


def alerts(viewer: Viewer, since: datetime) -> list[dict]:
    rows = (
        Event.objects.filter(type__in=ALERTS, timestamp_us__gte=int(since.timestamp() * 1e6))
        .order_by("-timestamp_us")
        .values_list("type", "timestamp_us", "payload_json")[:SCAN]
    )
    found = []
    for type_, timestamp_us, payload_json in rows:
        try:
            p = json.loads(payload_json, parse_float=Decimal)
            scope, scope_id = str(p["scope"]), str(p["scope_id"])
        except (ValueError, KeyError, TypeError):
            continue  # not an alert this page can read: skip it, the record keeps it
        if not sees(viewer, scope, scope_id):
            continue
        found.append({"at": datetime.fromtimestamp(timestamp_us / 1_000_000, tz=UTC),
                      "kind": "alert", "payload": p, "type": type_})  # fmt: skip
    names = key_names(p["payload"]["scope_id"] for p in found if p["payload"]["scope"] == "key")
    for line in found:
        p = line.pop("payload")
        who = names.get(p["scope_id"], p["scope_id"]) if p["scope"] == "key" else p["scope_id"]
        who = who if p["scope"] == "team" else f"{p['scope']} {who}"
        period = ADJECTIVES.get(p.get("period"), str(p.get("period")))
        cap = f" (${Decimal(str(p['soft_cap_usd'])):,.2f})" if p.get("soft_cap_usd") else ""
        if line.pop("type") == "budget.soft_cap_crossed":
            line["text"] = f"{who} reached its {period} soft cap{cap}"
        else:
            line["text"] = f"{who} passed {p.get('percent')} % of its {period} soft cap{cap}"
    return found


def refusals(viewer: Viewer, since: datetime) -> list[dict]:
    """One line per key refused by a hard cap since `since`, at its latest refusal."""
    rows = (
        Call.objects.filter(viewer.q(), error_class=REFUSED, timestamp__gte=since)
        .values("gateway_key_id", "key_name")
        .annotate(refused=Count("id"), last=Max("timestamp"))
        .order_by()
    )
    lines = []
    for row in rows:
        last = row["last"] if row["last"].tzinfo else row["last"].replace(tzinfo=UTC)
        calls = f"{row['refused']:,} call{'s' if row['refused'] != 1 else ''}"
        name = row["key_name"] or row["gateway_key_id"] or "a key"
        text = f"key {name}: {calls} refused by a hard cap, the last"
        lines.append({"at": last, "kind": "refused", "text": text})
    return lines


def key_names(ids) -> dict[str, str]:
    return dict(GatewayKey.objects.filter(pk__in=list(set(ids))).values_list("id", "name"))
