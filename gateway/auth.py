"""Who is calling: the gateway token → a cached, immutable snapshot of its key.

The ORM is off the hot path: keys are loaded through gateway.cache, so a
revoked key, a changed model list or a new expiry takes effect within
METIS_KEY_CACHE_SECONDS (1 s by default) in every process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from gateway.cache import LoadCache
from gateway.errors import GatewayError
from identity import keys
from identity.models import GatewayKey

PASS_THROUGH_HEADER = "x-metis-token"
USER_HEADER = "x-metis-user"


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    id: str
    name: str
    user: str | None
    team: str | None
    workspace: str
    workspace_path: str
    default_model: str
    allowed_models: tuple[str, ...]
    expires_at: datetime | None
    revoked: bool
    # Cross-shape calls: drop fields with no equivalent (listed on the call) instead of
    # a 400 naming them. The workspace's default, or the key's own override.
    drop_unsupported_params: bool = False


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated key, plus the provider key when the client brought its own."""

    key: KeySnapshot
    user: str | None  # x-metis-user, else the key's owner
    provider_key: str | None  # pass-through mode only; never stored or logged


def _load(token_hash: str) -> KeySnapshot | None:
    row = (
        GatewayKey.objects.select_related("user", "team", "workspace")
        .filter(token_hash=token_hash)
        .first()
    )
    if row is None:
        return None
    return KeySnapshot(
        id=row.id,
        name=row.name,
        user=row.user.username if row.user else None,
        team=row.team.name if row.team else None,
        workspace=row.workspace.name,
        workspace_path=row.workspace.path,
        default_model=row.workspace.default_model,
        allowed_models=tuple(row.allowed_models or ()),
        expires_at=row.expires_at,
        revoked=row.revoked_at is not None,
    )


_keys: LoadCache[str, KeySnapshot | None] = LoadCache(_load)


async def lookup(token: str) -> KeySnapshot | None:
    return await _keys.get(keys.hash_token(token))


def forget_cached_keys() -> None:
    _keys.clear()


def credentials(headers: dict[str, str] | object) -> tuple[str | None, str | None]:
    """(gateway token, provider key) from the request headers.

    Normal mode: our token in `x-api-key` or `Authorization: Bearer`. Pass-through
    mode: our token in `x-metis-token`, the provider's own key in those headers.
    """
    bearer = headers.get("authorization") or ""  # type: ignore[attr-defined]
    if bearer[:7].lower() == "bearer ":
        bearer = bearer[7:].strip()
    presented = headers.get("x-api-key") or bearer or None  # type: ignore[attr-defined]
    metis_token = headers.get(PASS_THROUGH_HEADER)  # type: ignore[attr-defined]
    if metis_token:
        return metis_token.strip(), presented
    return presented, None


async def authenticate(headers: dict[str, str] | object) -> Caller:
    token, provider_key = credentials(headers)
    if not token:
        raise GatewayError(
            401,
            "Missing gateway key: send your gw_ token in x-api-key or Authorization: Bearer "
            "(or in x-metis-token with your own provider key).",
        )
    key = await lookup(token) if keys.looks_like_token(token) else None
    if key is None:
        raise GatewayError(401, "Invalid gateway key: this token is not known to Metis.")
    if key.revoked:
        raise GatewayError(401, f"Gateway key {key.id} has been revoked.")
    if key.expires_at is not None and key.expires_at <= timezone.now():
        raise GatewayError(401, f"Gateway key {key.id} expired at {key.expires_at.isoformat()}.")
    label = (headers.get(USER_HEADER) or "").strip()[:200]  # type: ignore[attr-defined]
    return Caller(key=key, user=label or key.user, provider_key=provider_key)
