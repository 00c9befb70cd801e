"""`Metis-API-Version` on every Metis-owned endpoint (not on the provider-shape ones).

Absent → the latest version. A deprecated version still answers, with
`Deprecation: true` and `Sunset: <date>`; an unknown one is refused with 400.
The posture, and how a version is deprecated: docs/specs/api-versioning.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings

HEADER = "Metis-API-Version"
LATEST = "1.0"


def deprecated() -> Mapping[str, str]:
    """Version -> sunset date (an HTTP-date) of versions deprecated but still served:
    settings.METIS_API_DEPRECATED, set by the release that ships the next version."""
    return settings.METIS_API_DEPRECATED


def supported() -> frozenset[str]:
    return frozenset({LATEST, *deprecated()})


class UnsupportedVersion(ValueError):
    def __init__(self, requested: str) -> None:
        super().__init__(
            f"Unsupported {HEADER} {requested!r}; supported: {', '.join(sorted(supported()))}"
        )


def negotiate(requested: str | None) -> str:
    version = (requested or "").strip() or LATEST
    if version not in supported():
        raise UnsupportedVersion(version)
    return version


def response_headers(version: str) -> Mapping[str, str]:
    sunsets = deprecated()
    if version in sunsets:
        return {HEADER: version, "Deprecation": "true", "Sunset": sunsets[version]}
    return {HEADER: version}
