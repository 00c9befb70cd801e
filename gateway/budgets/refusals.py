"""The answers a call gets when its budgets refuse it, in the caller's shape."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from gateway.budgets.rules import Rule
from gateway.errors import GatewayError
from identity.models import Quota


def exceeded(rule: Rule, committed: Decimal, end: datetime | None) -> GatewayError:
    period = "total" if rule.period == Quota.Period.TOTAL else f"{rule.period}ly"
    period = {"dayly": "daily"}.get(period, period)
    resets = f"; it resets at {end.isoformat()}" if end else "; it does not reset"
    # Final (x-should-retry: false): the SDKs and Claude Code would otherwise retry a spent
    # budget for minutes. OpenAI's own answer for a spent quota is `insufficient_quota`.
    return GatewayError(
        429,
        f"Budget exceeded: {rule.label}'s {period} hard cap of ${rule.hard:.2f} is spent or "
        f"held by calls in flight (${committed:.4f}){resets}.",
        error_class="QUOTA_EXCEEDED",
        code="insufficient_quota",
        openai_type="insufficient_quota",
        final=True,
    )


def rate_limited(rule: Rule, limit: str, wait: float) -> GatewayError:
    seconds = max(1, int(wait + 0.999))
    return GatewayError(
        429,
        f"Rate limit: {rule.label} may send {limit} per minute; retry in {seconds} s.",
        error_class="RATE_LIMITED",
        headers={"retry-after": str(seconds)},
    )


def unavailable() -> GatewayError:
    return GatewayError(
        503,
        "Budgets cannot be checked right now: the shared budget store (Redis) is not "
        "answering, and this gateway refuses calls that have budgets until it does "
        "(METIS_REDIS_FAILURE=closed). Try again shortly.",
        error_class="BUDGET_STORE_UNAVAILABLE",
        code="budget_store_unavailable",
    )
