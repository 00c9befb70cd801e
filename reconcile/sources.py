"""Which provider reports to read: one per organisation (kind, base URL, admin key), each
with the Metis upstreams whose API keys it covers.

An upstream is reconciled when an admin key reaches its organisation: its credential's own
(set in the admin), else METIS_ANTHROPIC_ADMIN_KEY / METIS_OPENAI_ADMIN_KEY. Reports are read
from the upstream's base URL, as its calls are.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from django.conf import settings

from identity.models import ProviderCredential

KINDS = ("anthropic", "openai")


@dataclass
class Source:
    provider: str  # anthropic | openai
    base_url: str
    admin_key: str
    upstreams: dict[str, str] = field(default_factory=dict)  # upstream name -> its API key

    @property
    def id(self) -> str:
        """Stable and secret-free: names the report in stored rows."""
        digest = hashlib.sha256(f"{self.provider}\0{self.base_url}\0{self.admin_key}".encode())
        return f"{self.provider}:{digest.hexdigest()[:16]}"


def env_defaults() -> dict[str, tuple[str, str, str]]:
    """kind -> (base URL, API key, admin key) from the environment."""
    return {
        "anthropic": (
            settings.METIS_ANTHROPIC_BASE_URL,
            settings.METIS_ANTHROPIC_API_KEY,
            settings.METIS_ANTHROPIC_ADMIN_KEY,
        ),
        "openai": (
            settings.METIS_OPENAI_BASE_URL,
            settings.METIS_OPENAI_API_KEY,
            settings.METIS_OPENAI_ADMIN_KEY,
        ),
    }


def sources() -> list[Source]:
    defaults = env_defaults()
    found: dict[tuple[str, str, str], Source] = {}

    def add(kind: str, name: str, base_url: str, api_key: str, admin_key: str) -> None:
        if not admin_key or not api_key:
            return
        base_url = base_url.rstrip("/")
        source = found.setdefault((kind, base_url, admin_key), Source(kind, base_url, admin_key))
        source.upstreams[name] = api_key

    names = set()
    for cred in ProviderCredential.objects.filter(is_active=True, provider__in=KINDS):
        base_url, _, env_admin = defaults[cred.provider]
        add(cred.provider, cred.name, cred.base_url or base_url, cred.api_key,
            cred.admin_key or env_admin)  # fmt: skip
        names.add(cred.name)
    for kind, (base_url, api_key, admin_key) in defaults.items():
        if kind not in names:  # a credential named like the provider replaces its env upstream
            add(kind, kind, base_url, api_key, admin_key)
    return list(found.values())


def configured() -> bool:
    """Any admin key at all: otherwise there is nothing to schedule."""
    if settings.METIS_ANTHROPIC_ADMIN_KEY or settings.METIS_OPENAI_ADMIN_KEY:
        return True
    return (
        ProviderCredential.objects.filter(is_active=True).exclude(encrypted_admin_key="").exists()
    )
