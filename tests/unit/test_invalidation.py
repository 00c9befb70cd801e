"""The gateway's change listener, when Redis cannot be reached."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway import invalidation


def test_an_unreachable_redis_is_reported_once_per_outage_not_every_retry(settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    async def listen_a_while() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(invalidation.listen(), timeout=2.5)  # two retries or more

    with caplog.at_level(logging.WARNING, logger="gateway.invalidation"):
        asyncio.run(listen_a_while())
    said = [r.getMessage() for r in caplog.records if r.name == "gateway.invalidation"]
    assert len(said) == 1 and said[0].startswith("not hearing about changes")
