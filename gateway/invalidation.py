"""Changes take effect at once, in every gateway.

Saving or deleting anything the gateway caches (a key, its owner, team or
workspace, a quota, an alias, a route, a price, a credential, a webhook) drops
this process's caches and, with REDIS_URL, publishes on `metis:invalidate`;
every gateway process listens there and drops its own. The admin, the CLI and
the gateway itself all save through the ORM, so all of them publish. Without
Redis (one machine, SQLite) the caches' METIS_KEY_CACHE_SECONDS lifetime is
the bound for other processes.
"""

from __future__ import annotations

import asyncio
import logging

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.db.models.signals import post_delete, post_save

from gateway import cache

logger = logging.getLogger(__name__)
CHANNEL = "metis:invalidate"
_publisher: redis.Redis | None = None


def watched_models() -> list[type]:
    from gateway.models import BudgetWebhook, ModelAlias, PriceOverride, RoutePattern
    from identity.models import (
        GatewayKey,
        ProviderCredential,
        Quota,
        Team,
        TeamMembership,
        User,
        Workspace,
    )

    return [GatewayKey, Quota, ProviderCredential, Team, TeamMembership, User, Workspace,
            ModelAlias, RoutePattern, PriceOverride, BudgetWebhook]  # fmt: skip


def connect_signals() -> None:
    for model in watched_models():
        post_save.connect(changed, sender=model, dispatch_uid=f"metis-invalidate-save-{model}")
        post_delete.connect(changed, sender=model, dispatch_uid=f"metis-invalidate-del-{model}")


def changed(sender: type, **kwargs: object) -> None:
    global _publisher
    cache.forget_everything()
    if not settings.REDIS_URL:
        return
    try:
        if _publisher is None:
            _publisher = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1)
        _publisher.publish(CHANNEL, sender._meta.label)
    except (redis.RedisError, OSError) as exc:
        logger.warning("could not tell the gateways that %s changed: %s", sender.__name__, exc)


async def listen() -> None:
    """For the gateway's whole life: drop the caches whenever a change is published."""
    if not settings.REDIS_URL:
        return
    deaf = False  # said once per outage, not once a second
    while True:
        try:
            client = aioredis.Redis.from_url(settings.REDIS_URL)
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(CHANNEL)
                cache.forget_everything()  # whatever changed while we were not listening
                if deaf:
                    logger.warning("hearing about changes again")
                    deaf = False
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        cache.forget_everything()
        except (redis.RedisError, OSError) as exc:
            if not deaf:
                logger.warning("not hearing about changes (%s); caches expire in %s s meanwhile",
                               exc, settings.METIS_KEY_CACHE_SECONDS)  # fmt: skip
                deaf = True
            await asyncio.sleep(1)
