"""`reconciliation.drift` to the operator's webhooks (the budget alerts' receivers).

Sent from the import's own thread (the daily run or `metis manage reconcile`), with the
budget alerts' retries and backoff; a failing receiver is logged, never raised.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

import httpx
import orjson
from django.apps import apps

logger = logging.getLogger(__name__)

RETRY_DELAYS = (1, 2, 4, 8)


def plain(payload: dict[str, Any]) -> dict[str, Any]:
    """Decimals as exact JSON numbers (orjson fragments), for events and webhooks alike."""
    return {k: orjson.Fragment(format(v, "f")) if isinstance(v, Decimal) else v
            for k, v in payload.items()}  # fmt: skip


def webhook_urls() -> list[str]:
    # By app label: the gateway app owns the receivers' table, and nothing imports gateway.
    webhook = apps.get_model("gateway", "BudgetWebhook")
    return list(webhook.objects.filter(is_active=True).values_list("url", flat=True))


def send(payload: dict[str, Any]) -> None:
    body = orjson.dumps(plain(payload))
    headers = {"content-type": "application/json", "user-agent": "metis-reconciliation"}
    for url in webhook_urls():
        for attempt, delay in enumerate((0, *RETRY_DELAYS)):
            time.sleep(delay)
            try:
                response = httpx.post(url, content=body, headers=headers, timeout=10)
                if response.status_code < 300:
                    break
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = str(exc) or type(exc).__name__
            logger.warning("drift webhook %s failed (attempt %d): %s", url, attempt + 1, problem)
        else:
            logger.error("drift webhook %s gave up after %d attempts", url, len(RETRY_DELAYS) + 1)
