"""Who is calling: the gateway token → a cached, immutable snapshot of its key.

The ORM is off the hot path: keys are loaded through gateway.cache, so a
revoked key, a changed model list or a new expiry takes effect within
METIS_KEY_CACHE_SECONDS (1 s by default) in every process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from gateway import passthrough
from gateway.cache import LoadCache
from gateway.errors import GatewayError
from gateway.passthrough import ClientKey
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
    # Cross-shape fields with no equivalent: drop them (True) or refuse with a 400 (False).
    # The effective value: the key's own choice, else its workspace's.
    drop_unsupported_params: bool = False


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated key, plus the provider key when the client brought its own."""

    key: KeySnapshot
    user: str | None  # x-metis-user, else the key's owner
    # Pass-through mode only (empty otherwise); never stored or logged.
    provider_keys: tuple[ClientKey, ...] = ()


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
        drop_unsupported_params=row.drops_unsupported_params,
    )


_keys: LoadCache[str, KeySnapshot | None] = LoadCache(_load)

# token -> its hash, for the tokens that found a key: an HMAC-SHA256 per call was 2 % of the
# gateway's CPU, for the same few tokens. Which key a hash finds (revoked, expired, gone)
# still comes from _keys each call. Tokens that find nothing are not kept, so made-up ones
# cannot fill it; it is emptied when full (and with the keys, forget_cached_keys()).
_hashes: dict[str, str] = {}
KEPT_HASHES = 10_000


async def lookup(token: str) -> KeySnapshot | None:
    token_hash = _hashes.get(token) or keys.hash_token(token)
    key = await _keys.get(token_hash)
    if key is not None and token not in _hashes:
        if len(_hashes) >= KEPT_HASHES:
            _hashes.clear()
        _hashes[token] = token_hash
    return key


async def lookup_hash(token_hash: str) -> KeySnapshot | None:
    """A key by its token's hash (agent sessions: the key a session belongs to)."""
    return await _keys.get(token_hash)


def forget_cached_keys() -> None:
    _keys.clear()
    _hashes.clear()


def credentials(headers: dict[str, str] | object) -> tuple[str | None, tuple[ClientKey, ...]]:
    """(gateway token, provider keys) from the request headers.

    Normal mode: our token in `x-api-key` or `Authorization: Bearer`. Pass-through
    mode: our token in `x-metis-token`, the provider's own keys in those headers
    (gateway/passthrough.py says whose each is).
    """
    bearer = headers.get("authorization") or ""  # type: ignore[attr-defined]
    if bearer[:7].lower() == "bearer ":
        bearer = bearer[7:].strip()
    x_api_key = headers.get("x-api-key")  # type: ignore[attr-defined]
    metis_token = headers.get(PASS_THROUGH_HEADER)  # type: ignore[attr-defined]
    if metis_token:
        return metis_token.strip(), passthrough.client_keys(x_api_key, bearer)
    return x_api_key or bearer or None, ()


async def authenticate(headers: dict[str, str] | object) -> Caller:
    token, provider_keys = credentials(headers)
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
    return Caller(key=key, user=label or key.user, provider_keys=provider_keys)
