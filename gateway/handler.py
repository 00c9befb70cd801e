"""The gateway's ASGI handler: Django's, minus the per-request thread hops.

Django wraps every ASGI request in asgiref's ThreadSensitiveContext and closes
each response with `sync_to_async(response.close)`: a new thread per request,
or at best a hop through one shared thread that every request queues on.
Profiled under load that was a third of the gateway's CPU and most of its
latency at concurrency 64. The gateway's views do no blocking work on the
request path (keys and routing are cached and refreshed on the shared executor,
events are queued), and its responses close without I/O, so this handler
closes them inline. `handle()` otherwise follows Django 5.2's ASGIHandler.handle
(on a client disconnect the view task is cancelled, which is how the proxy
learns to cancel the upstream call), except that it reads its tasks' outcomes
instead of re-raising them, so a finished request is freed at once.

The process also drops the request signals' database housekeeping
(`close_old_connections`, `reset_queries`): it only matters to views that use
the ORM on the request thread, and it is what made the close a blocking call.
"""

from __future__ import annotations

import asyncio
import contextlib

from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import close_old_connections, reset_queries
from django.urls import set_script_prefix


class GatewayASGIHandler(ASGIHandler):
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"The gateway serves HTTP only, not {scope['type']}.")
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        await signals.request_started.asend(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            error_response.close()
            return

        async def process_request() -> object:
            response = await self.run_get_response(request)
            with contextlib.suppress(asyncio.CancelledError):  # the client left mid-send
                await self.send_response(response, send)
            return response

        disconnect = asyncio.create_task(self.listen_for_disconnect(receive))
        respond = asyncio.create_task(process_request())
        tasks = (disconnect, respond)
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if not task.done():
                task.cancel()  # a disconnect cancels the view: the proxy's cue
        await asyncio.wait(tasks)
        # The tasks' outcomes are read, never re-raised here: an exception raised into this
        # frame would hold it (and through it the request, the response and both tasks) in a
        # reference cycle, leaving every request's objects to the cyclic garbage collector,
        # whose pauses were the gateway's worst latency under load.
        if not disconnect.cancelled() and not isinstance(disconnect.exception(), RequestAborted):
            raise disconnect.exception() or AssertionError("the disconnect listener returned")
        if respond.cancelled():
            await signals.request_finished.asend(sender=self.__class__)
        elif respond.exception() is not None:
            raise respond.exception()
        else:
            respond.result().close()
        body_file.close()


def drop_request_db_housekeeping() -> None:
    signals.request_started.disconnect(reset_queries)
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
