"""Who is asking: the one place a request becomes a `Viewer` (API and dashboard alike).

- Local mode (`metis serve` on loopback, `METIS_REQUIRE_LOGIN` unset; the CLI sets
  `METIS_LOCAL_MODE`): no login, the viewer sees everything, but only on a connection
  that `analytics.local_mode` judged to be the developer's own (never through a proxy).
- `Authorization: Bearer gw_…`: a live gateway key sees that key's calls only.
- A Django session login: staff see everything; anyone else sees their own keys and
  calls plus the teams they are budget owner of.
- Otherwise None: the caller answers 401 (API) or sends to the login page (dashboard).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from analytics.scope import Viewer
from identity import keys
from identity.models import GatewayKey, TeamMembership

ALL = Viewer(kind="all")


def viewer_for(request: HttpRequest) -> Viewer | None:
    """The viewer this request acts as, or None when it must log in first."""
    token = bearer_token(request)
    if token is not None:
        return viewer_for_token(token)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_active:
        if user.is_staff or user.is_superuser:
            return ALL
        return viewer_for_user(user.username, user.pk)
    if settings.METIS_LOCAL_MODE and local_connection(request):
        return ALL
    return None


def local_connection(request: HttpRequest) -> bool:
    """`metis serve`'s ASGI entry point judged this connection (metis_site/asgi.py); any
    other ASGI request is refused. A WSGI request (Django's test client) has no socket to
    judge and only the setting, which only `metis serve` ever turns on."""
    scope = getattr(request, "scope", None)
    if scope is None:
        return True
    return scope.get("metis.local", False)


def bearer_token(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def viewer_for_token(token: str) -> Viewer | None:
    """A live (not revoked, not expired) gateway key's token: that key's calls only."""
    if not keys.looks_like_token(token):
        return None
    key_id = (
        GatewayKey.objects.active()
        .filter(token_hash=keys.hash_token(token))
        .values_list("id", flat=True)
        .first()
    )
    return None if key_id is None else Viewer(kind="key", gateway_key_id=key_id)


def viewer_for_user(username: str, user_id: int) -> Viewer:
    teams = TeamMembership.objects.filter(
        user_id=user_id, role=TeamMembership.Role.BUDGET_OWNER
    ).values_list("team__name", flat=True)
    own_keys = GatewayKey.objects.filter(user_id=user_id).values_list("id", flat=True)
    return Viewer(
        kind="user",
        user=username,
        team_names=frozenset(teams),
        own_key_ids=frozenset(own_keys),
    )
