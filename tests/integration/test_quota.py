"""Budgets and rate limits, held by the running gateway against real calls."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import orjson
import pytest
from django.utils import timezone
from ulid import ULID

from analytics import pricing
from analytics.usage import Usage
from analytics.writer import PendingEvent, writer
from gateway import budgets, routing
from gateway.models import BudgetWebhook, PriceOverride
from identity.models import GatewayKey, Quota, Team, TeamMembership, User
from tests.calls import record_calls

BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "Say hello"}],
}
RAW = orjson.dumps(BODY)


def worst_case() -> Decimal:
    """What the gateway reserves for BODY: every byte as input, all of max_tokens as output."""
    price = pricing.find_price("anthropic", "claude-haiku-4-5")
    return pricing.cost_usd(price, Usage(input_tokens=len(RAW), output_tokens=16))


def call(gateway, token: str) -> httpx.Response:
    headers = {"x-api-key": token, "anthropic-version": "2023-06-01"}
    return httpx.post(f"{gateway.url}/v1/messages", headers=headers, content=RAW)


def recorded_spend(gateway) -> Decimal:
    events = gateway.events("llm.call_completed")
    return sum((Decimal(str(e["cost_usd"] or 0)) for e in events), Decimal(0))


def team_quota(**limits) -> Quota:
    return Quota.objects.create(team=Team.objects.get(name="eng"), **limits)


def test_a_call_that_would_pass_the_hard_cap_is_refused_in_the_callers_shape(gateway, token):
    team_quota(period="month", hard_cap_usd=worst_case() / 2)
    refused = call(gateway, token)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert "team eng's monthly hard cap" in error["message"]
    assert "resets at" in error["message"]
    openai_refused = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {token}"},
        json={"model": "haiku", "max_tokens": 16, "messages": [{"role": "user", "content": "x"}]},
    )
    assert openai_refused.status_code == 429
    assert "hard cap" in openai_refused.json()["error"]["message"]
    events = gateway.events("llm.call_completed")
    assert [e["error_class"] for e in events] == ["QUOTA_EXCEEDED", "QUOTA_EXCEEDED"]
    assert all(e["status"] == 429 and e["cost_usd"] == 0 for e in events)
    assert gateway.upstream_requests() == []  # nothing reached the provider


def test_a_model_priced_only_by_an_override_reserves_its_worst_case_at_that_price(gateway, token):
    # Not in the bundled table: without the override's price the reservation would be $0.
    PriceOverride.objects.create(
        model="claude-unreleased-9", input_per_mtok=Decimal("3"), output_per_mtok=Decimal("15")
    )
    routing.forget_catalog()
    body = {**BODY, "model": "claude-unreleased-9", "max_tokens": 1000}
    raw = orjson.dumps(body)
    worst = pricing.cost_usd(
        pricing.Price(input=Decimal("3"), output=Decimal("15")),
        Usage(input_tokens=len(raw), output_tokens=1000),
    )
    team_quota(period="month", hard_cap_usd=(worst / 2).quantize(Decimal("1e-6")))
    headers = {"x-api-key": token, "anthropic-version": "2023-06-01"}
    refused = httpx.post(f"{gateway.url}/v1/messages", headers=headers, content=raw)
    assert refused.status_code == 429
    assert "team eng's monthly hard cap" in refused.json()["error"]["message"]
    assert gateway.upstream_requests() == []  # refused up front, not after the spend


def test_200_concurrent_calls_never_spend_past_a_hard_cap_with_room_for_10(gateway, token):
    cap = worst_case() * 10
    team_quota(period="day", hard_cap_usd=cap)

    async def burst() -> list[int]:
        headers = {"x-api-key": token, "anthropic-version": "2023-06-01"}
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            responses = await asyncio.gather(
                *(
                    client.post(f"{gateway.url}/v1/messages", headers=headers, content=RAW)
                    for _ in range(200)
                )
            )
        return [r.status_code for r in responses]

    statuses = asyncio.run(burst())
    assert set(statuses) == {200, 429}
    assert statuses.count(200) >= 10
    spent = recorded_spend(gateway)
    assert 0 < spent <= cap
    # Without reservations, 200 calls at this cost would have spent far past the cap.
    one_call = spent / statuses.count(200)
    assert one_call * 200 > cap * 2


def test_requests_per_minute_are_limited_with_retry_after(gateway, token):
    key = GatewayKey.objects.get(name="alice-laptop")
    Quota.objects.create(key=key, period="day", requests_per_minute=2)
    assert [call(gateway, token).status_code for _ in range(2)] == [200, 200]
    limited = call(gateway, token)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert f"key {key.id} may send 2 requests per minute" in limited.json()["error"]["message"]
    assert gateway.events("llm.call_completed")[-1]["error_class"] == "RATE_LIMITED"


def test_tokens_per_minute_count_what_calls_really_used(gateway, token):
    Quota.objects.create(user=User.objects.get(username="alice"), period="day", tokens_per_minute=5)
    assert call(gateway, token).status_code == 200  # nothing used yet this minute
    limited = call(gateway, token)
    assert limited.status_code == 429
    assert "user alice may send 5 tokens per minute" in limited.json()["error"]["message"]


def test_spend_survives_a_restart_because_it_is_loaded_from_the_database(gateway, token):
    for _ in range(3):
        assert call(gateway, token).status_code == 200
    spent = recorded_spend(gateway)
    budgets.reset()  # a new process: nothing in memory
    team_quota(period="month", hard_cap_usd=spent + worst_case() / 2)
    assert call(gateway, token).status_code == 429


def test_a_new_quota_and_a_revocation_take_effect_within_the_cache_time(gateway, token, settings):
    settings.METIS_KEY_CACHE_SECONDS = 0.2
    assert call(gateway, token).status_code == 200
    team_quota(period="day", hard_cap_usd=Decimal("0"))
    time.sleep(0.25)
    assert call(gateway, token).status_code == 429
    GatewayKey.objects.get(name="alice-laptop").revoke()
    time.sleep(0.25)
    assert call(gateway, token).status_code == 401


class Receiver(ThreadingHTTPServer):
    """A webhook endpoint on loopback that records what it is sent."""

    def __init__(self, failures: int = 0) -> None:
        self.received: list[dict] = []
        self.failures = failures
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if outer.failures > 0:
                    outer.failures -= 1
                    self.send_response(500)
                else:
                    outer.received.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/budget"

    def wait_for(self, count: int, timeout: float = 10) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.received


@pytest.fixture
def receiver():
    server = Receiver(failures=1)  # the first delivery fails: the retry must deliver it
    yield server
    server.shutdown()


def test_crossing_a_soft_cap_alerts_once_by_event_and_webhook(gateway, token, receiver):
    BudgetWebhook.objects.create(url=receiver.url)
    routing.forget_catalog()
    # About $0.00006 a call: the first passes 50 % of the soft cap, the second all of it.
    team_quota(period="month", soft_cap_usd=Decimal("0.0001"), hard_cap_usd=Decimal("100"))
    assert [call(gateway, token).status_code for _ in range(4)] == [200] * 4
    (halfway,) = gateway.events("budget.threshold_crossed")
    (alert,) = gateway.events("budget.soft_cap_crossed")  # once, however many calls follow
    assert halfway["percent"] == 50
    assert (alert["scope"], alert["scope_id"], alert["percent"]) == ("team", "eng", 100)
    delivered = receiver.wait_for(2)  # the first attempt got a 500: delivered on retry
    assert sorted(d["type"] for d in delivered) == [
        "budget.soft_cap_crossed",
        "budget.threshold_crossed",
    ]
    assert all(d["scope_id"] == "eng" for d in delivered)
    assert Decimal(str(alert["spent_usd"])) >= Decimal("0.0001")


def test_a_dead_webhook_never_breaks_a_call(gateway, token):
    BudgetWebhook.objects.create(url="http://127.0.0.1:9/nobody-listens")
    routing.forget_catalog()
    team_quota(period="month", soft_cap_usd=Decimal("0.0001"))
    assert [call(gateway, token).status_code for _ in range(4)] == [200] * 4
    assert len(gateway.events("budget.soft_cap_crossed")) == 1


def test_the_admin_shows_where_each_quota_stands(transactional_db, token, admin_client):
    key = GatewayKey.objects.get(name="alice-laptop")
    record_calls(key, count=3, cost_usd="0.0100")
    team_quota(period="month", soft_cap_usd=Decimal("0.02"), hard_cap_usd=Decimal("1"))
    page = admin_client.get("/admin/identity/quota/").content.decode()
    assert "$0.0300 spent · $0.9700 left · over the soft cap · resets" in page


def test_teams_and_users_carry_their_quota_status_in_the_api_and_the_dashboard(
    transactional_db, token, client, settings
):
    settings.METIS_LOCAL_MODE = True
    key = GatewayKey.objects.get(name="alice-laptop")
    record_calls(key, count=3, cost_usd="0.0100")
    team_quota(period="month", soft_cap_usd=Decimal("0.02"), hard_cap_usd=Decimal("1"))
    Quota.objects.create(user=User.objects.get(username="alice"), period="day",
                         hard_cap_usd=Decimal("0.03"))  # fmt: skip
    teams = client.get("/analytics/by_team").json()["teams"]
    (eng,) = [t for t in teams if t["team"] == "eng"]
    assert eng["quota"]["state"] == "soft"
    assert eng["quota"]["label"] == "over soft cap · $0.03 of $1.00 month"
    (alice,) = [u for u in client.get("/analytics/by_user").json()["users"] if u["user"] == "alice"]
    assert alice["quota"]["state"] == "hard"
    page = client.get("/dashboard/?tab=identity").content.decode()
    eng_row = page[page.index('data-team="eng"') :]
    eng_row = eng_row[: eng_row.index("</tr>")]
    assert "3 %" in eng_row and "$1.00 month · hard" in eng_row and "past the soft cap" in eng_row
    assert "quota-hard" in page


def test_a_developer_sees_their_own_quota_but_not_their_teams_spend(
    transactional_db, token, client
):
    alice = User.objects.get(username="alice")
    alice.set_password("pw-alice-123")
    alice.save()
    record_calls(GatewayKey.objects.get(name="alice-laptop"), count=2, cost_usd="0.0100")
    team_quota(period="month", hard_cap_usd=Decimal("1"))
    Quota.objects.create(user=alice, period="month", hard_cap_usd=Decimal("0.5"))
    assert client.login(username="alice", password="pw-alice-123")
    (eng,) = client.get("/analytics/by_team").json()["teams"]
    assert eng["team"] == "eng" and eng["quota"] is None  # not a budget owner: no team total
    (own,) = client.get("/analytics/by_user").json()["users"]
    assert own["quota"]["state"] == "ok"
    TeamMembership.objects.create(user=alice, team=Team.objects.get(name="eng"),
                                  role="budget_owner")  # fmt: skip
    (eng,) = client.get("/analytics/by_team").json()["teams"]
    assert eng["quota"]["label"] == "ok · $0.02 of $1.00 month"


def test_yesterdays_spend_counts_against_the_month_but_not_today(gateway, token, settings):
    """Periods reset by their timestamps: nothing has to run at midnight."""
    key = GatewayKey.objects.get(name="alice-laptop")
    yesterday = timezone.now() - timedelta(days=1)
    if yesterday.month != timezone.now().month:
        pytest.skip("on the first of the month yesterday is in another month")
    micros = int(yesterday.timestamp() * 1_000_000)
    payload = {"gateway_key_id": key.id, "team": "eng", "user": "alice", "status": 200,
               "model": "claude-haiku-4-5", "cost_usd": orjson.Fragment(b"0.5000")}  # fmt: skip
    event_id = str(ULID.from_timestamp(yesterday.timestamp()))
    writer.submit([PendingEvent(event_id, "llm.call_completed", micros,
                                orjson.dumps(payload).decode(), key.id)])  # fmt: skip
    assert writer.flush()
    team_quota(period="day", hard_cap_usd=Decimal("0.10"))
    assert call(gateway, token).status_code == 200  # today: a new day, nothing spent
    team_quota(period="month", hard_cap_usd=Decimal("0.10"))
    budgets.reset()
    refused = call(gateway, token)  # this month: yesterday's $0.50 is past the cap
    assert refused.status_code == 429
    assert "monthly hard cap of $0.10" in refused.json()["error"]["message"]
