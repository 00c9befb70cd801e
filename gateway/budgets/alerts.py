"""Budget alerts: an event, and a POST to each webhook the operator configured.

Thresholds of a soft cap (50 %, 80 %, 100 %) alert once per period and scope:
`budget.threshold_crossed` below the cap, `budget.soft_cap_crossed` at it.
Webhooks are sent in the background with retries and backoff; a slow or
failing receiver never delays or breaks a call.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

import aiohttp
import orjson

from analytics.writer import make_event, writer
from gateway import routing, upstream
from gateway.budgets.rules import Rule

logger = logging.getLogger(__name__)

RETRY_DELAYS = (1, 2, 4, 8)  # seconds between the attempts after the first
_tasks: set[asyncio.Task[None]] = set()  # held so pending sends are not garbage-collected


def budget_alert(
    rule: Rule, start: datetime, spent: Decimal, percent: int, key_id: str, request_id: str
) -> None:
    kind = "budget.soft_cap_crossed" if percent >= 100 else "budget.threshold_crossed"
    payload = {
        "type": kind,
        "scope": rule.scope,
        "scope_id": rule.scope_id,
        "period": rule.period,
        "period_start": start.isoformat(),
        "percent": percent,
        "soft_cap_usd": money(rule.soft),
        "hard_cap_usd": money(rule.hard),
        "spent_usd": money(spent),
        "gateway_key_id": key_id,
        "request_id": request_id,
    }
    writer.submit([make_event(kind, payload, gateway_key_id=key_id)])
    logger.warning("%s: %s at %d%% of its soft cap (%s)", kind, rule.label, percent, spent)
    for url in routing.webhook_urls():
        try:
            task = asyncio.get_running_loop().create_task(deliver(url, payload))
        except RuntimeError:  # no loop: called outside the gateway (a script, a test)
            logger.error("budget webhook %s not sent: no event loop", url)
            continue
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)


async def deliver(url: str, payload: dict[str, Any]) -> None:
    body = orjson.dumps(payload)
    headers = {"content-type": "application/json", "user-agent": "metis-budget-alerts"}
    session = upstream.session_for("webhooks")
    for attempt, delay in enumerate((0, *RETRY_DELAYS)):
        await asyncio.sleep(delay)
        try:
            async with session.post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=10)
            ) as response:
                if response.status < 300:
                    return
                problem = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            problem = str(exc) or type(exc).__name__
        logger.warning("budget webhook %s failed (attempt %d): %s", url, attempt + 1, problem)
    logger.error("budget webhook %s gave up after %d attempts", url, len(RETRY_DELAYS) + 1)


def money(value: Decimal | None) -> Any:
    return orjson.Fragment(format(value, "f")) if value is not None else None
