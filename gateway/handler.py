"""The gateway's ASGI handler: Django's, minus the per-request thread machinery.

Django wraps every ASGI request in asgiref's ThreadSensitiveContext, so the
`sync_to_async(response.close)` it runs after each response starts a new
thread per request; profiled under load that was a third of the gateway's
CPU. The gateway does no thread-sensitive work per request (keys and routing
are cached and refreshed on the shared executor), so it skips the context,
and its process drops the request signals' database housekeeping
(`close_old_connections`, `reset_queries`), which only matter to views that
use the ORM on the request thread.
"""

from __future__ import annotations

from django.core import signals
from django.core.handlers.asgi import ASGIHandler
from django.db import close_old_connections, reset_queries


class GatewayASGIHandler(ASGIHandler):
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"The gateway serves HTTP only, not {scope['type']}.")
        await self.handle(scope, receive, send)


def drop_request_db_housekeeping() -> None:
    signals.request_started.disconnect(reset_queries)
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
