"""`Metis-API-Version` on every Metis-owned endpoint (not on the provider-shape ones).

Absent → the latest version. A deprecated version still answers, with
`Deprecation: true` and `Sunset: <date>`; an unknown one is refused with 400.
"""

from __future__ import annotations

from collections.abc import Mapping

HEADER = "Metis-API-Version"
LATEST = "1.0"
# version -> sunset date (HTTP-date) for versions that are deprecated but still served.
DEPRECATED: dict[str, str] = {}
SUPPORTED = frozenset({LATEST, *DEPRECATED})


class UnsupportedVersion(ValueError):
    def __init__(self, requested: str) -> None:
        super().__init__(
            f"Unsupported {HEADER} {requested!r}; supported: {', '.join(sorted(SUPPORTED))}"
        )


def negotiate(requested: str | None) -> str:
    version = (requested or "").strip() or LATEST
    if version not in SUPPORTED:
        raise UnsupportedVersion(version)
    return version


def response_headers(version: str) -> Mapping[str, str]:
    if version in DEPRECATED:
        return {HEADER: version, "Deprecation": "true", "Sunset": DEPRECATED[version]}
    return {HEADER: version}
