"""Metis-API-Version with a deprecated version declared in settings: it still answers, with
Deprecation and Sunset, on the analytics API and on the gateway's /healthz
(docs/specs/api-versioning.md)."""

from __future__ import annotations

import httpx
import pytest
from django.test import override_settings

SUNSET = "Sun, 30 May 2027 00:00:00 GMT"
DEPRECATED = {"0.9": SUNSET}


@pytest.fixture
def analytics(client, settings, transactional_db):
    settings.METIS_LOCAL_MODE = True

    def get(path: str, **headers: str):
        with override_settings(ROOT_URLCONF="metis_site.urls"):
            return client.get(path, headers=headers)

    return get


@override_settings(METIS_API_DEPRECATED=DEPRECATED)
def test_a_deprecated_version_answers_with_deprecation_and_sunset_on_analytics(analytics):
    pinned = analytics("/analytics/cost", **{"Metis-API-Version": "0.9"})
    assert pinned.status_code == 200, pinned.content
    assert pinned["Metis-API-Version"] == "0.9"
    assert (pinned["Deprecation"], pinned["Sunset"]) == ("true", SUNSET)

    latest = analytics("/analytics/cost")
    assert latest["Metis-API-Version"] == "1.0"
    assert "Deprecation" not in latest and "Sunset" not in latest


@override_settings(METIS_API_DEPRECATED=DEPRECATED)
def test_a_deprecated_version_answers_with_deprecation_and_sunset_on_healthz(gateway):
    pinned = httpx.get(f"{gateway.url}/healthz", headers={"Metis-API-Version": "0.9"})
    assert pinned.status_code == 200
    assert pinned.json() == {"status": "ok", "api_version": "0.9"}
    assert (pinned.headers["Deprecation"], pinned.headers["Sunset"]) == ("true", SUNSET)
    latest = httpx.get(f"{gateway.url}/healthz")
    assert latest.headers["Metis-API-Version"] == "1.0" and "Deprecation" not in latest.headers


def test_once_sunset_the_version_is_refused_with_the_supported_ones(analytics):
    # Its sunset passed, the release removed it from METIS_API_DEPRECATED: a 400 naming
    # what is served, never a silent answer in another version.
    refused = analytics("/analytics/cost", **{"Metis-API-Version": "0.9"})
    assert refused.status_code == 400
    assert "supported: 1.0" in refused.json()["detail"]
