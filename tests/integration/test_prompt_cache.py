"""Prompt-cache economics: real SDK calls through the gateway to the mock provider, which
reads and writes its prompt cache as the providers do, and the exact figures
`/analytics/cost` and the dashboard's Cost tab give for them, per role."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import anthropic
import openai
import pytest
from django.core.management import call_command
from django.test import override_settings

from analytics.models import CallDay, CallHour, KeyDay, ModelDay, ModelHour
from identity.models import TeamMembership
from metis_site import settings as site
from tests.factories import make_key, make_team, make_user
from tests.integration.analytics_seed import call_event, write

D = Decimal
M = D("1e-6")  # a per-million rate, per token
# Published prices (anthropic.com/pricing, openai.com/api/pricing), per million tokens,
# written out here so the test does not take them from the code it checks.
HAIKU = {"input": D("1"), "read": D("0.1"), "write_5m": D("1.25"), "write_1h": D("2")}
GPT5_MINI = {"input": D("0.25"), "read": D("0.025")}


def long_text(tag: str) -> str:
    # ~1,500 tokens by the mock's count (bytes / 4): past every provider's cache minimum.
    return f"[{tag} {uuid.uuid4()}] " + "Answer in the house style, briefly. " * 170


def cached_system(text: str, ttl: str | None = None) -> list[dict]:
    control = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return [{"type": "text", "text": text, "cache_control": control}]


def send_cached_traffic(gateway, token: str) -> None:
    """Anthropic: a 5-minute write, a read of it, a 1-hour write; OpenAI: a prompt sent
    twice, the second read from its automatic cache."""
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)
    five, hour = long_text("5m"), long_text("1h")
    for system in (cached_system(five), cached_system(five), cached_system(hour, "1h")):
        claude.messages.create(
            model="claude-haiku-4-5", max_tokens=16, system=system,
            messages=[{"role": "user", "content": "Say hello"}],
        )  # fmt: skip
    gpt = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0)
    prompt = long_text("openai")
    for _ in range(2):
        gpt.chat.completions.create(
            model="gpt-5-mini", messages=[{"role": "user", "content": prompt}]
        )


def expected(events: list[dict]) -> dict:
    """The figures, by hand: each call's tokens (as the gateway recorded them) at the
    published rates."""
    out = dict.fromkeys(("write_5m_usd", "write_1h_usd", "saved_usd", "premium"), D(0))
    reads = inputs = 0
    for e in events:
        rates = HAIKU if e["model"].startswith("claude") else GPT5_MINI
        read, write = e["cache_read_input_tokens"], e["cache_creation_input_tokens"]
        write_1h = e["cache_creation_1h_input_tokens"]
        write_5m = write - write_1h
        reads, inputs = reads + read, inputs + e["input_tokens"]
        out["saved_usd"] += read * (rates["input"] - rates["read"]) * M
        if write:
            out["write_5m_usd"] += write_5m * rates["write_5m"] * M
            out["write_1h_usd"] += write_1h * rates["write_1h"] * M
            out["premium"] += (write_5m * (rates["write_5m"] - rates["input"])
                               + write_1h * (rates["write_1h"] - rates["input"])) * M  # fmt: skip
    return {
        "hit_rate": (D(reads) / D(inputs)).quantize(D("0.0001")),
        "read_tokens": reads,
        "write_5m_usd": out["write_5m_usd"],
        "write_1h_usd": out["write_1h_usd"],
        "saved_usd": out["saved_usd"],
        "write_premium_usd": out["premium"],
        "net_saved_usd": out["saved_usd"] - out["premium"],
    }


def figures(cache: dict) -> dict:
    """The API's figures, as Decimals from the JSON's exact digits."""
    return {
        name: D(str(value)) if name != "read_tokens" else value
        for name, value in cache.items()
        if name not in ("write_5m_tokens", "write_1h_tokens")
    }


@pytest.fixture
def api(client, settings, transactional_db):
    settings.METIS_LOCAL_MODE = True

    def get(path: str, *, headers: dict | None = None, **params) -> dict:
        with override_settings(ROOT_URLCONF="metis_site.urls"):
            response = client.get(f"/analytics/{path}", params, headers=headers or {})
        assert response.status_code == 200, response.content
        return response.json()

    return get


def test_cache_reads_and_writes_through_the_gateway_add_up_to_the_cent_fraction(
    gateway, token, api
):
    send_cached_traffic(gateway, token)
    events = gateway.events("llm.call_completed")
    assert len(events) == 5
    claude = [e for e in events if e["model"] == "claude-haiku-4-5"]
    first, second, third = claude
    # The mock provider cached as Anthropic does: written once, read after, 1h apart.
    assert first["cache_creation_input_tokens"] > 0 == first["cache_creation_1h_input_tokens"]
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert third["cache_creation_1h_input_tokens"] == third["cache_creation_input_tokens"] > 0
    gpt = [e for e in events if e["model"] == "gpt-5-mini"]
    assert gpt[0]["cache_read_input_tokens"] == 0 < gpt[1]["cache_read_input_tokens"]

    want = expected(events)
    assert want["write_1h_usd"] > 0 and want["saved_usd"] > 0
    totals = api("cost", window="1h")["totals"]
    assert figures(totals["cache"]) == want
    assert totals["cache"]["write_1h_tokens"] == third["cache_creation_1h_input_tokens"]
    assert totals["cache"]["write_5m_tokens"] == first["cache_creation_input_tokens"]
    # Per model, key and team: each group its own calls' figures.
    by_model = {g["key"]: g["cache"] for g in api("cost", window="1h", group_by="model")["groups"]}
    assert figures(by_model["claude-haiku-4-5"]) == expected(claude)
    assert figures(by_model["gpt-5-mini"]) == expected(gpt)
    assert by_model["gpt-5-mini"]["write_5m_usd"] == 0
    for group_by in ("key", "team"):
        (group,) = api("cost", window="1h", group_by=group_by)["groups"]
        assert figures(group["cache"]) == want

    # The rollups hold the split (every grain), and a rebuild from the events gives it again.
    for table in (CallHour, CallDay, KeyDay, ModelHour, ModelDay):
        rows = table.objects.all()
        assert sum(r.cache_write_1h_tokens for r in rows) == third["cache_creation_1h_input_tokens"]
        assert sum(r.cache_saved_usd for r in rows) == want["saved_usd"]
    call_command("rebuild_rollups")
    assert figures(api("cost", window="1h")["totals"]["cache"]) == want


def test_a_window_without_input_has_no_hit_rate(api, transactional_db):
    cache = api("cost", window="1h")["totals"]["cache"]
    assert cache["hit_rate"] is None
    assert cache["saved_usd"] == cache["net_saved_usd"] == 0


@pytest.fixture
def teams(transactional_db):
    """Team alpha (budget owner olga; dana's key) and beta (bob's key), with cache
    traffic of different sizes so a figure that includes another's calls cannot pass."""
    alpha, beta = make_team(name="alpha"), make_team(name="beta")
    users = {name: make_user(username=name) for name in ("olga", "dana", "bob")}
    TeamMembership.objects.create(user=users["olga"], team=alpha, role="budget_owner")
    TeamMembership.objects.create(user=users["dana"], team=alpha)
    TeamMembership.objects.create(user=users["bob"], team=beta)
    dana, dana_token = make_key(name="dana-laptop", user=users["dana"], team=alpha)
    bob, bob_token = make_key(name="bob-laptop", user=users["bob"], team=beta)
    now = datetime.now(UTC) - timedelta(minutes=5)
    write([
        call_event(now, key=dana.id, user="dana", team="alpha", input_tokens=1000,
                   cache_read=600, cache_write=0),
        call_event(now, key=bob.id, user="bob", team="beta", input_tokens=1000,
                   cache_read=100, cache_write=0),
    ])  # fmt: skip
    return {"users": users, "tokens": {"dana": dana_token, "bob": bob_token}}


@pytest.mark.parametrize(
    ("who", "rate"),
    [("root", "0.35"), ("olga", "0.6"), ("dana", "0.6"), ("bob", "0.1"), ("bob-key", "0.1")],
)
def test_each_role_sees_the_cache_figures_of_the_calls_it_may_see(
    teams, client, settings, who, rate
):
    settings.METIS_LOCAL_MODE = False
    headers = {}
    if who == "root":
        client.force_login(make_user(username="root", is_superuser=True))
    elif who == "bob-key":
        headers = {"Authorization": f"Bearer {teams['tokens']['bob']}"}
    else:
        client.force_login(teams["users"][who])
    with override_settings(ROOT_URLCONF="metis_site.urls"):
        response = client.get("/analytics/cost", {"window": "1h"}, headers=headers)
    assert response.status_code == 200, response.content
    assert D(str(response.json()["totals"]["cache"]["hit_rate"])) == D(rate)


def test_the_cost_tab_shows_the_cache_figures_of_the_window(gateway, token, client, settings):
    settings.METIS_LOCAL_MODE = True
    send_cached_traffic(gateway, token)
    want = expected(gateway.events("llm.call_completed"))
    with override_settings(ROOT_URLCONF="metis_site.urls", MIDDLEWARE=site.MIDDLEWARE):
        page = client.get("/dashboard/", {"tab": "cost", "window": "1h"}).content.decode()
    assert 'id="prompt-cache"' in page
    assert f"{want['hit_rate'] * 100:.1f} %" in page
    assert f'title="${format(want["saved_usd"].normalize(), "f")}"' in page
    assert 'hx-get="/dashboard/cache/?window=1h"' in page  # the tables follow, fetched
    with override_settings(ROOT_URLCONF="metis_site.urls", MIDDLEWARE=site.MIDDLEWARE):
        tables = client.get("/dashboard/cache/", {"window": "1h"}).content.decode()
    assert 'id="cache-by-key"' in tables and "alice-laptop" in tables
    assert 'id="cache-by-team"' in tables and ">eng<" in tables
    assert f"{want['hit_rate'] * 100:.1f} %" in tables


def test_the_cache_tables_keep_to_what_the_viewer_may_see(teams, client, settings):
    settings.METIS_LOCAL_MODE = False
    with override_settings(ROOT_URLCONF="metis_site.urls", MIDDLEWARE=site.MIDDLEWARE):
        assert client.get("/dashboard/cache/").status_code == 302  # to the login
        client.force_login(teams["users"]["dana"])
        tables = client.get("/dashboard/cache/", {"window": "1h"}).content.decode()
        assert "dana-laptop" in tables and "bob-laptop" not in tables
        assert ">alpha<" in tables and ">beta<" not in tables
        bad = client.get("/dashboard/cache/", {"window": "fortnight"})
        assert bad.status_code == 400 and b"window" in bad.content
