"""Provider API keys at rest: Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`.

METIS_ENCRYPTION_KEY may hold several comma-separated keys, newest first: new
values are encrypted with the first, and any of them decrypts (MultiFernet), so
the key can be rotated without losing stored credentials.
"""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@cache
def _fernet(keys: str) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.strip()) for k in keys.split(",") if k.strip()])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "METIS_ENCRYPTION_KEY must be one or more comma-separated Fernet keys "
            "(make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())')"
        ) from exc


def check_keys() -> None:
    _fernet(settings.METIS_ENCRYPTION_KEYS)


def encrypt(plaintext: str) -> str:
    return _fernet(settings.METIS_ENCRYPTION_KEYS).encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _fernet(settings.METIS_ENCRYPTION_KEYS).decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored provider credential cannot be decrypted with METIS_ENCRYPTION_KEY: "
            "was the key changed? Put the old key after the new one, comma-separated."
        ) from None
