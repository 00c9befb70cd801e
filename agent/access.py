"""Who may use which session: the analytics API's viewers, plus who may act for a key.

A request is a `Who`: its viewer (analytics.access, so a session is visible exactly when
its calls would be: the key that made it, the key's owner, budget owners of its team,
staff and local mode) and, with a bearer token, the gateway caller it authenticates as.
Reading is the viewer's; writing (a message, a pin, a delete) is for the session's own
key, its owner, staff and local mode: a budget owner reads a member's sessions but does
not spend through the member's key.
"""

from __future__ import annotations

from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest

from agent import pipeline
from agent.models import AgentSession
from analytics import access
from analytics.scope import Viewer
from gateway import auth
from gateway.errors import GatewayError
from identity.models import GatewayKey


class Refused(Exception):
    """An answer other than the one asked for: `{"error": {"type", "message"}}`."""

    def __init__(self, status: int, type_: str, message: str) -> None:
        super().__init__(message)
        self.status, self.type, self.message = status, type_, message


def not_found(session_id: str) -> Refused:
    return Refused(404, "not_found_error", f"No session {session_id!r}.")


@dataclass(frozen=True)
class Who:
    viewer: Viewer
    caller: auth.Caller | None = None  # with a bearer token: the key it authenticates

    def may_write(self, session: AgentSession) -> bool:
        if self.viewer.kind == "all":
            return True
        if self.viewer.kind == "key":
            return session.gateway_key_id == self.viewer.gateway_key_id
        return session.gateway_key_id in self.viewer.own_key_ids

    def may_use_key(self, key_id: str) -> bool:
        return self.viewer.kind == "all" or key_id in self.viewer.own_key_ids


async def who(request: HttpRequest) -> Who:
    if access.bearer_token(request) is not None:
        try:
            caller = await auth.authenticate(request.headers)
        except GatewayError as exc:
            raise Refused(401, "authentication_error", exc.message) from None
        return Who(Viewer(kind="key", gateway_key_id=caller.key.id), caller)
    user = await request.auser()
    if user.is_authenticated and user.is_active:
        if user.is_staff or user.is_superuser:
            return Who(access.ALL)
        return Who(await sync_to_async(access.viewer_for_user)(user.username, user.pk))
    if settings.METIS_LOCAL_MODE and access.local_connection(request):
        return Who(access.ALL)
    message = "Sign in (/login/) or send a gateway token as Authorization: Bearer gw_…"
    raise Refused(401, "authentication_error", message)


async def caller_for_key(who_: Who, key_id: str) -> auth.Caller:
    """The caller a session's turn is made as: the bearer's own when it is the session's
    key (its x-metis-user label included), else the session's key, still live."""
    if who_.caller is not None and who_.caller.key.id == key_id:
        return who_.caller
    token_hash = await sync_to_async(token_hash_of)(key_id)
    if token_hash is None:
        raise Refused(404, "not_found_error", f"No gateway key {key_id!r}.")
    try:
        return await pipeline.caller_for(token_hash)
    except GatewayError as exc:
        raise Refused(401, "authentication_error", exc.message) from None


def token_hash_of(key_id: str) -> str | None:
    return GatewayKey.objects.filter(pk=key_id).values_list("token_hash", flat=True).first()
