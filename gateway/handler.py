"""The gateway's ASGI handler: Django's, with auth before the body, and minus the
per-request thread hops.

Auth first: Django's handler reads (and spools to disk) the whole body before any view
runs, so a 300 MB upload without a token was received in full before its 401. Here the
endpoints that take a body (`shapes.BODY_ENDPOINTS`) authenticate from the headers alone,
then read the body under the shape's size limit and the client body timeout
(gateway/intake.py). A refusal before the body is read is answered at once, in the
caller's shape, and closes the connection so the rest is never read. Other POST, PUT and
PATCH requests are read under the same limits (a new endpoint works before it is listed
there); a GET's body is never read. Aliases of endpoint paths (`/messages`, Metrion's
direct-HTTP path for `/v1/messages`) are served as the path they mean, from the start.

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

The proxied POST endpoints (`api.DIRECT`) are called directly: Django's URL resolving,
ninja's operation (which makes a response object per call for its own use) and the
middleware-less chain between them were 3-4 % of a call's CPU. Their errors are answered
as through that chain: a GatewayError by api.py's handler, anything else by Django's
`response_for_exception` (logged, then `server_error` in the caller's shape), and a 4xx
or 5xx is logged as Django logs it.

The process also drops the request signals' database housekeeping
(`close_old_connections`, `reset_queries`): it only matters to views that use
the ORM on the request thread, and it is what made the close a blocking call.
For the same reason of doing nothing per call that resets nothing, it drops
`close_caches` and `reset_urlconf` (the gateway uses no Django cache and sets no
per-request URLconf), and sets the script prefix only when it is not "/".
"""

from __future__ import annotations

import asyncio
import contextlib
import io

from django.conf import settings
from django.core import signals
from django.core.cache import close_caches
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import reset_urlconf
from django.core.handlers.exception import response_for_exception
from django.db import close_old_connections, reset_queries
from django.http import HttpRequest, HttpResponse
from django.urls import ResolverMatch, set_script_prefix
from django.utils.datastructures import CaseInsensitiveMapping
from django.utils.encoding import escape_uri_path, iri_to_uri
from django.utils.log import log_response

from gateway import api, auth, intake, pacing
from gateway.errors import GatewayError
from gateway.shapes import BODY_ENDPOINTS, PATH_ALIASES, render, shape_for


class GatewayASGIHandler(ASGIHandler):
    RESOLVED_PATHS = 256

    def __init__(self) -> None:
        super().__init__()
        self.resolved: dict[str, ResolverMatch] = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"The gateway serves HTTP only, not {scope['type']}.")
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send) -> None:
        if (meant := PATH_ALIASES.get(scope["path"])) is not None:  # /messages: /v1/messages
            scope = {**scope, "path": meant, "raw_path": meant.encode()}
        headers = headers_of(scope)
        shape = shape_for(scope["path"], headers)
        caller, unread = None, intake.has_body(scope["headers"])
        try:
            if scope["method"] == "POST" and scope["path"] in BODY_ENDPOINTS:
                await pacing.pacer().turn()  # a burst's first bytes before its last setups
                caller = await auth.authenticate(headers)
            if scope["method"] in ("POST", "PUT", "PATCH"):
                limit = intake.gateway_limit(shape.value)
                seconds = settings.METIS_CLIENT_BODY_TIMEOUT
                body_file = await intake.read_body(receive, scope["headers"], limit=limit,
                                                   seconds=seconds)  # fmt: skip
                unread = False
            else:
                body_file = io.BytesIO()
        except GatewayError as exc:
            return await self.refuse(render(exc, shape), send, close=unread)
        except intake.BodyRefused as exc:
            return await self.refuse(render(GatewayError(exc.status, exc.message), shape), send)
        except RequestAborted:
            return
        if (prefix := get_script_prefix(scope)) not in ("", "/"):  # unset already reads "/"
            set_script_prefix(prefix)
        await signals.request_started.asend(sender=self.__class__, scope=scope)
        view = api.DIRECT.get(scope["path"]) if scope["method"] == "POST" else None
        if view is not None:
            request = ProxiedRequest(scope, headers, body_file.getvalue())
        else:
            request, error_response = self.create_request(scope, body_file)
            if request is None:
                body_file.close()
                await self.send_response(error_response, send)
                error_response.close()
                return
            request.headers = CaseInsensitiveMapping(headers)  # not parsed again from META
        request.metis_caller = caller

        async def process_request() -> object:
            if view is not None:
                response = await self.run_direct(view, request)
            else:
                response = await self.run_get_response(request)
            if unread:  # the client sent a body nothing here reads: do not wait for it
                response["Connection"] = "close"
            with contextlib.suppress(asyncio.CancelledError):  # the client left mid-send
                if view is not None and not response.streaming and not response.cookies:
                    await self.send_whole(response, send)
                else:
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

    async def run_direct(self, view, request: ProxiedRequest) -> HttpResponse:
        """`run_get_response` for a view of `api.DIRECT`. Django's handling of an exception
        and its log line of a 4xx or 5xx get Django's request, made then."""
        try:
            response = await view(request)
        except GatewayError as exc:
            response = api.gateway_error(request, exc)
        except Exception as exc:
            response = response_for_exception(self.django_request(request), exc)  # logs it
        response._handler_class = self.__class__
        if response.status_code >= 400 and not getattr(response, "_has_been_logged", False):
            log_response("%s: %s", response.reason_phrase, request.path, response=response,
                         request=self.django_request(request))  # fmt: skip
        return response

    def django_request(self, proxied: ProxiedRequest) -> HttpRequest | ProxiedRequest:
        """Django's request for what `proxied` was made from (itself, should Django refuse
        the scope, which a proxied call's never gives it cause to)."""
        request, _ = self.create_request(proxied.scope, io.BytesIO(proxied.body))
        if request is None:
            return proxied
        if (shape := getattr(proxied, "metis_shape", None)) is not None:
            request.metis_shape = shape  # for server_error, the error in the caller's shape
        return request

    async def send_whole(self, response: HttpResponse, send) -> None:
        """`send_response` for a body held whole and no cookies: one message for the status
        line and headers, one for the body (Django's cuts it into 64 KB pieces)."""
        headers = [(name.encode("ascii"), value.encode("latin-1"))
                   for name, value in response.items()]  # fmt: skip
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": headers})  # fmt: skip
        await send({"type": "http.response.body", "body": response.content})

    def resolve_request(self, request: HttpRequest) -> ResolverMatch:
        """Django's, remembered per path: resolving walks every pattern the API registered,
        2-3 % of a call's CPU, for the same handful of paths. Unknown paths (the catch-all's
        matches, one per path a client makes up) are remembered up to a bound."""
        match = self.resolved.get(request.path_info)
        if match is None:
            match = super().resolve_request(request)
            if len(self.resolved) < self.RESOLVED_PATHS:
                self.resolved[request.path_info] = match
        request.resolver_match = match
        return match

    async def refuse(self, response: HttpResponse, send, *, close: bool = True) -> None:
        """Answer before the body was read; `close`: the connection, so it never is."""
        if close:
            response["Connection"] = "close"
        response["Content-Length"] = str(len(response.content))
        await self.send_response(response, send)

    async def listen_for_disconnect(self, receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestAborted
            # Otherwise a piece of a body this request does not read: dropped.


class ProxiedRequest:
    """What the proxied POST views (`api.DIRECT`) read of a request: its headers, body and
    path, from the ASGI scope. Django's request made its META from the scope and its
    headers again from META, and its response was sent through Django's chunking: with
    them, a call spent 1.04-1.05x the CPU it spends with this (interleaved, 6 rounds)."""

    __slots__ = ("body", "headers", "method", "metis_caller", "metis_shape", "path", "scope")

    def __init__(self, scope: dict, headers: dict[str, str], body: bytes) -> None:
        self.scope = scope
        self.headers = CaseInsensitiveMapping(headers)
        self.body = body
        self.method = scope["method"]
        self.path = scope["path"]
        self.metis_caller: auth.Caller | None = None

    def get_full_path(self) -> str:
        """As Django's: the path, and the query string as the client sent it, as URIs."""
        query = self.scope.get("query_string", b"").decode("latin-1")
        path = escape_uri_path(self.path)
        return f"{path}?{iri_to_uri(query)}" if query else path


def headers_of(scope: dict) -> dict[str, str]:
    """The request's headers by lower-cased name, a repeated one's values joined with
    commas as Django's `request.headers` has them. Made once per request: the handler
    needs them before Django's request exists, and the request then gets them rather than
    parsing them again from its META."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def drop_request_db_housekeeping() -> None:
    """The database housekeeping, and the request_finished receivers that reset what the
    gateway never sets: Django's cache connections (it has none) and a per-request URLconf
    (none is set). Sending the signal to them took 1-2 % of a call's CPU."""
    signals.request_started.disconnect(reset_queries)
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_caches)
    signals.request_finished.disconnect(reset_urlconf)
