"""A hold as the call journal keeps it, and its release by the process that recovers it.

An in-process hold dies with its process; a hold in Redis outlives it until it expires,
so the gateway that recovers a dead one's calls (gateway/recovery.py) settles it at the
cost it recovered.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from gateway.budgets import shared_ledger
from gateway.budgets.reservations import Reservation
from gateway.budgets.rules import Rule


def journal_form(held: Reservation | None) -> dict | None:
    if held is None:
        return None
    slots = [[rule.scope, rule.scope_id, start.isoformat()] for rule, start in held.capped]
    return {"shared": held.shared, "amount": str(held.amount), "slots": slots}


async def release(holds: list[tuple[str, dict, Decimal]]) -> None:
    """Settle the dead calls' holds in Redis at their recovered cost; a hold already
    expired is left alone (reconciliation raises the spend from the events)."""
    if not holds or not shared_ledger.enabled():
        return
    for request_id, hold, cost in holds:
        if not hold.get("shared"):
            continue
        slots = [
            (Rule(scope, scope_id, "", None, None, None, None), datetime.fromisoformat(start))
            for scope, scope_id, start in hold["slots"]
        ]
        try:
            await shared_ledger.settle(request_id, slots, cost)
        except shared_ledger.StoreDown:  # logged by shared_ledger; the holds expire
            return
