"""ASGI entry point for both processes; METIS_ROLE (set by the CLI) picks the URLconf.

The gateway also answers ASGI lifespan: on startup it loads what every request
will need and freezes it out of the garbage collector's sight (`settle()`), and
listens for published changes (gateway/invalidation.py), after recovering the calls
of gateways that died without shutting down (gateway/recovery.py); on shutdown
(SIGTERM / Ctrl-C, after uvicorn has drained in-flight requests) it closes the
upstream pools and waits until every event is written (by the writer process that
`metis gateway` runs, or by its own thread) before the process exits.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os

import django
from django.conf import settings

from analytics import local_mode

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis_site.settings")

if os.environ.get("METIS_ROLE") == "gateway":
    from metis_site import servers

    servers.stop_with_parent()  # a worker of `metis gateway --workers N` dies with it
    django.setup(set_prefix=False)
    from gateway.handler import GatewayASGIHandler, drop_request_db_housekeeping

    drop_request_db_housekeeping()
    django_application = GatewayASGIHandler()
    CHECKS_LOCAL_MODE = False
else:
    django.setup(set_prefix=False)
    from metis_site.server import ServeASGIHandler

    django_application = ServeASGIHandler()  # Django's, reading bodies under limits
    # Every connection to `metis serve` is judged here, where the socket is known.
    CHECKS_LOCAL_MODE = True


async def application(scope, receive, send) -> None:
    if scope["type"] == "http" and CHECKS_LOCAL_MODE and settings.METIS_LOCAL_MODE:
        scope["metis.local"] = local_mode.is_local(scope)  # read by analytics.access
    if scope["type"] != "lifespan":
        return await django_application(scope, receive, send)
    listening = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            from gateway import invalidation

            settle()
            await recover()
            listening = asyncio.ensure_future(invalidation.listen())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if listening is not None:
                listening.cancel()
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


def settle() -> None:
    """Import the URLconf, views and price table now, then move everything alive into
    the collector's permanent generation (and collect the young less often). Its full
    collections scan every tracked object; with Django and the price table left in view,
    each took 60-100 ms at 64 concurrent streams, every few seconds, and every request in
    flight waited them out."""
    from django.urls import get_resolver

    from analytics import pricing

    get_resolver().url_patterns  # noqa: B018 - imports the gateway's API and views
    pricing.find_price("anthropic", "claude-haiku-4-5")
    gc.collect()
    gc.freeze()
    # A call allocates thousands of short-lived containers, so at the default 700 the
    # youngest generation is collected several times per call; at 10,000 a call cost
    # 3-4 % less CPU (interleaved A/B, Anthropic JSON at c=16).
    gc.set_threshold(10_000, 10, 10)


async def recover() -> None:
    """Turn the journals of gateways that died (kill -9) into events before serving."""
    from gateway import recovery
    from gateway.journal import journal
    from metis_site.servers import WRITER_ENV

    if os.environ.get(WRITER_ENV):  # `metis gateway` started one for its workers
        journal.use_writer_process()

    try:
        await recovery.at_start()
    except Exception:  # serve all the same: the journals stay for the next start
        logging.getLogger(__name__).exception("could not recover the calls of a dead gateway")


async def shutdown() -> None:
    from asgiref.sync import sync_to_async

    from gateway import upstream
    from gateway.journal import journal

    await upstream.close_sessions()
    # Writes every queued event, then deletes the journal the events no longer need.
    await sync_to_async(journal.close, thread_sensitive=False)()
    from gateway import telemetry

    await sync_to_async(telemetry.close, thread_sensitive=False)()  # the spans still queued
