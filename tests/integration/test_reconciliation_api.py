"""`GET /analytics/reconciliation` and the dashboard's Reconciliation tab: who may see them,
and what they say of stored results."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from reconcile.models import Reconciliation
from tests.integration.test_analytics_access import login_required, world  # noqa: F401

TODAY = datetime.now(UTC).date()


def result(day: date, model: str, *, gateway: str, provider: str | None, **tokens) -> None:
    gateway_cost, provider_cost = Decimal(gateway), None if provider is None else Decimal(provider)
    Reconciliation.objects.create(
        day=day, upstream="anthropic", provider="anthropic", api_key_id="apikey_01", model=model,
        gateway_cost_usd=gateway_cost, provider_cost_usd=provider_cost,
        drift_usd=(provider_cost or 0) - gateway_cost, **tokens,
    )  # fmt: skip


@pytest.fixture
def results(world):  # noqa: F811
    result(TODAY, "claude-haiku-4-5", gateway="0.0100", provider="0.0125",
           gateway_input_tokens=1000, provider_input_tokens=1250, bypass_tokens=250)  # fmt: skip
    result(TODAY, "claude-sonnet-4-5", gateway="0.0300", provider="0.0300",
           gateway_output_tokens=500, provider_output_tokens=500)  # fmt: skip
    result(TODAY - timedelta(days=1), "claude-haiku-4-5", gateway="0.0200", provider="0.0200")
    result(TODAY - timedelta(days=20), "claude-haiku-4-5", gateway="1", provider="2")


def fetch(client, **params):
    response = client.get("/analytics/reconciliation", {"window": "7d", **params})
    return response.status_code, response.json(), response


def test_staff_read_each_day_with_its_models_drift_and_bypass(
    client,
    login_required,  # noqa: F811
    world,  # noqa: F811
    results,
):
    client.force_login(world.users["root"])
    status, body, response = fetch(client)
    assert status == 200 and response["Metis-API-Version"] == "1.0"
    assert [(d["day"], d["upstream"]) for d in body["days"]] == [
        (TODAY.isoformat(), "anthropic"),
        ((TODAY - timedelta(days=1)).isoformat(), "anthropic"),
    ]  # newest first; the day 20 days back is outside 7d
    today = body["days"][0]
    assert Decimal(str(today["drift_usd"])) == Decimal("0.0025")
    assert Decimal(str(today["drift_percent"])) == Decimal("5.88")  # of the provider's $0.0425
    assert today["over_threshold"] is True and today["bypass_tokens"] == 250
    haiku = next(m for m in today["models"] if m["model"] == "claude-haiku-4-5")
    assert haiku["tokens"]["provider"]["input"] == 1250
    assert haiku["tokens"]["gateway"]["input"] == 1000
    assert body["days"][1]["over_threshold"] is False
    assert body["totals"]["days_over_threshold"] == 1
    assert Decimal(str(body["threshold_percent"])) == 1


def test_a_budget_owner_may_read_it(client, login_required, world, results):  # noqa: F811
    client.force_login(world.users["olga"])
    assert fetch(client)[0] == 200


def test_a_developer_and_a_gateway_token_may_not(client, login_required, world, results):  # noqa: F811
    client.force_login(world.users["dana"])
    status, body, _ = fetch(client)
    assert status == 403 and "staff and budget owners" in body["detail"]
    client.logout()
    response = client.get(
        "/analytics/reconciliation", HTTP_AUTHORIZATION=f"Bearer {world.tokens['bob']}"
    )
    assert response.status_code == 403


def test_anonymous_gets_401_and_local_mode_sees_it(client, settings, results):
    settings.METIS_LOCAL_MODE = False
    assert fetch(client)[0] == 401
    settings.METIS_LOCAL_MODE = True
    assert fetch(client)[0] == 200


def test_bad_parameters_get_clear_errors(client, settings, results):
    settings.METIS_LOCAL_MODE = True
    status, body, _ = fetch(client, window="fortnight")
    assert status == 422 and body["detail"][0]["loc"] == ["query", "window"]
    response = client.get("/analytics/reconciliation", headers={"Metis-API-Version": "0.1"})
    assert response.status_code == 400


def test_the_dashboard_tab_is_there_for_staff_and_budget_owners_only(
    client,
    login_required,  # noqa: F811
    world,  # noqa: F811
    results,
):
    for name, shown in (("root", True), ("olga", True), ("dana", False)):
        client.force_login(world.users[name])
        page = client.get("/dashboard/", {"tab": "reconciliation", "window": "7d"}).content
        assert (b'id="tab-reconciliation"' in page) is shown, name
        assert (b'id="reconciliation"' in page) is shown, name  # dana gets the Cost tab
        client.logout()
