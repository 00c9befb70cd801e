"""A key whose prompt-cache hit rate falls from its own baseline: one event, one webhook
(to a real receiver on loopback) and a dashboard notice per drop, until it recovers."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import anthropic
import pytest
from django.test import override_settings
from django.utils import timezone

from analytics import cache_alerts
from analytics.cache_alerts import DROPPED, MIN_CALLS, RECOVERED
from analytics.scope import Viewer
from identity.models import GatewayKey
from metis_site import settings as site
from tests.factories import make_key, make_team
from tests.integration.analytics_seed import call_event, write
from tests.integration.test_quota import Receiver

D = Decimal


@pytest.fixture
def receiver():
    server = Receiver(failures=1)  # the first delivery fails: the retry must deliver it
    yield server
    server.shutdown()


def baseline(key: GatewayKey, *, calls: int = 30, read: int = 1600) -> None:
    """A week of calls that read most of their prompt from the cache."""
    now = timezone.now()
    write([
        call_event(now - timedelta(days=2, hours=3 * i), key=key.id, key_name=key.name,
                   user="alice", team="eng", input_tokens=2000, cache_read=read, cache_write=0)
        for i in range(calls)
    ])  # fmt: skip


def dashboard(client) -> str:
    with override_settings(ROOT_URLCONF="metis_site.urls", MIDDLEWARE=site.MIDDLEWARE):
        return client.get("/dashboard/", {"tab": "cost", "window": "1h"}).content.decode()


def test_a_key_that_stops_hitting_the_cache_alerts_once_until_it_recovers(
    gateway, token, receiver, client, settings
):
    settings.METIS_LOCAL_MODE = True
    key = GatewayKey.objects.get(name="alice-laptop")
    baseline(key)
    # Today the client sends its prompts without cache_control: nothing is read.
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)
    for i in range(MIN_CALLS):
        claude.messages.create(
            model="claude-haiku-4-5", max_tokens=8,
            messages=[{"role": "user", "content": f"{i} " + "no cache here " * 220}],
        )  # fmt: skip
    assert sum(e["input_tokens"] for e in gateway.events("llm.call_completed")[-MIN_CALLS:]) > (
        cache_alerts.MIN_INPUT_TOKENS
    )

    (sent,) = cache_alerts.evaluate(webhook_urls=[receiver.url])
    assert (sent["type"], sent["gateway_key_id"], sent["key_name"]) == (DROPPED, key.id, key.name)
    assert (sent["hit_rate"], sent["baseline_hit_rate"]) == (D("0"), D("0.8"))
    (event,) = gateway.events(DROPPED)
    assert (event["gateway_key_id"], event["team"], D(str(event["baseline_hit_rate"]))) == (
        key.id, "eng", D("0.8"),
    )  # fmt: skip
    (delivered,) = receiver.received  # after one 500, delivered on the retry
    assert (delivered["type"], delivered["gateway_key_id"]) == (DROPPED, key.id)
    assert delivered["hit_rate"] == 0 and delivered["baseline_hit_rate"] == 0.8
    page = dashboard(client)
    assert "key alice-laptop: prompt-cache hit rate fell to 0.0 %" in page
    assert "from 80.0 % the 7 days before" in page

    # Once per drop: later evaluations (a page load included) send nothing more.
    assert cache_alerts.evaluate(webhook_urls=[receiver.url]) == []
    dashboard(client)
    assert len(gateway.events(DROPPED)) == 1 and len(receiver.received) == 1

    # The client caches again: the drop is over, said once, and the notice goes.
    now = timezone.now()
    write([
        call_event(now - timedelta(minutes=30), key=key.id, key_name=key.name, user="alice",
                   team="eng", input_tokens=2000, cache_read=1900, cache_write=0)
        for _ in range(40)
    ])  # fmt: skip
    (recovered,) = cache_alerts.evaluate(webhook_urls=[receiver.url])
    assert recovered["type"] == RECOVERED
    assert [r["type"] for r in receiver.received] == [DROPPED, RECOVERED]
    assert len(gateway.events(RECOVERED)) == 1
    assert "prompt-cache hit rate fell" not in dashboard(client)
    assert cache_alerts.evaluate(webhook_urls=[receiver.url]) == []


def seeded_drop(transactional_db, *, recent_calls: int, baseline_read: int = 1600) -> GatewayKey:
    key, _ = make_key(name="alice-laptop", team=make_team(name="eng"))
    baseline(key, read=baseline_read)
    now = timezone.now()
    write([
        call_event(now - timedelta(minutes=10), key=key.id, key_name=key.name, user="alice",
                   team="eng", input_tokens=2000, cache_read=0, cache_write=0)
        for _ in range(recent_calls)
    ])  # fmt: skip
    return key


def test_too_few_calls_today_say_nothing(transactional_db):
    seeded_drop(transactional_db, recent_calls=MIN_CALLS - 1)
    assert cache_alerts.evaluate() == []


def test_a_key_that_never_cached_much_has_no_baseline_to_fall_from(transactional_db):
    seeded_drop(transactional_db, recent_calls=MIN_CALLS, baseline_read=300)  # 15 %
    assert cache_alerts.evaluate() == []


def test_the_notice_is_seen_by_those_who_see_the_key(transactional_db):
    key = seeded_drop(transactional_db, recent_calls=MIN_CALLS)
    (sent,) = cache_alerts.evaluate()
    assert sent["type"] == DROPPED
    seeing = [
        Viewer(kind="all"),
        Viewer(kind="key", gateway_key_id=key.id),
        Viewer(kind="user", user="olga", team_names=frozenset({"eng"})),
        Viewer(kind="user", user="alice", own_key_ids=frozenset({key.id})),
    ]
    blind = [
        Viewer(kind="key", gateway_key_id="gk_other"),
        Viewer(kind="user", user="bob", team_names=frozenset({"sales"})),
    ]
    assert all(len(cache_alerts.notices(v)) == 1 for v in seeing)
    assert not any(cache_alerts.notices(v) for v in blind)
