"""Gateway key ids and tokens.

A key has a public id `gk_<ULID>` and a secret token `gw_<ULID><secret>`. The
secret is 32 random bytes (256 bits); the ULID only makes tokens recognisable
and sortable, it adds no secrecy. Only an HMAC-SHA256 of the whole token under
a dedicated secret (METIS_KEY_HASH_SECRET) is stored: a leaked database does
not yield usable tokens, and rotating Django's SECRET_KEY does not revoke keys.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from ulid import ULID

KEY_ID_PREFIX = "gk_"
TOKEN_PREFIX = "gw_"
SECRET_BYTES = 32


def new_key_id() -> str:
    return f"{KEY_ID_PREFIX}{ULID()}"


def new_token() -> str:
    return f"{TOKEN_PREFIX}{ULID()}{secrets.token_urlsafe(SECRET_BYTES)}"


def hash_token(token: str) -> str:
    secret = settings.METIS_KEY_HASH_SECRET.encode()
    # Not hmac.digest(): it lets go of the GIL for any input, and on the gateway's event
    # loop the GIL then comes back only after the writer's thread yields it (up to 5 ms).
    return hmac.new(secret, token.encode(), hashlib.sha256).hexdigest()


def looks_like_token(value: str) -> bool:
    # Cheap shape check so a provider key is never hashed and looked up as ours.
    return value.startswith(TOKEN_PREFIX) and 40 <= len(value) <= 128


def display_prefix(token: str) -> str:
    """Enough of a token for an operator to recognise it, far too little to use it."""
    return token[:12]
