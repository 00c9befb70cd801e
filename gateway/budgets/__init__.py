"""Budget enforcement: what the gateway holds a call to before it goes upstream.

Not to be confused with analytics/budgets.py, which says where a quota stands (its
period, the spend in it, its status) for the dashboard, the admin and the analytics
API. This package enforces; it reads spend from analytics.budgets, never the reverse.

- reservations.py: `check()` holds a call's worst case against its caps and rate
  limits, or refuses it; `settle()` swaps the hold for the priced cost. In-process.
- shared_ledger.py: the same ledger in Redis for several processes, with its
  circuit breaker.
- alerts.py: soft-cap thresholds as events and webhooks.
- rules.py: the quotas a key is held to; refusals.py: the 429 and 503 answers.
- journaled.py: a hold as the call journal keeps it, and its release after a crash.

The dependency goes one way: gateway.calls and the handlers call this package with
plain values (the key id, the request id, the route, the priced cost); nothing here
imports gateway.calls.
"""

from __future__ import annotations

from gateway.budgets.journaled import journal_form, release
from gateway.budgets.reservations import Reservation, check, check_free, reset, settle
from gateway.budgets.rules import Rule

__all__ = [
    "Reservation",
    "Rule",
    "check",
    "check_free",
    "journal_form",
    "release",
    "reset",
    "settle",
]
