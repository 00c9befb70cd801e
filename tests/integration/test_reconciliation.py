"""Reconciliation against the mock provider's own reports, over real HTTP.

Calls go through the gateway with the real SDKs, and some go straight to the mock with the
provider key the gateway holds: those must show as bypass, to the token and to the cent, and
everything else must reconcile to 0. The mock serves its reports a row (or a bucket) a
page, so every figure here was read across pages.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from decimal import Decimal

import anthropic
import openai
import pytest
from django.core.management import CommandError, call_command

from analytics.pricing import cost_usd, find_price
from analytics.usage import Usage
from gateway.models import BudgetWebhook
from identity.models import ProviderCredential
from mock_provider import MockProviderThread
from mock_provider.wire import STATE
from reconcile import imports, schedule, sources
from reconcile.models import ProviderUsage, Reconciliation
from tests.integration.payloads import HELLO
from tests.integration.test_quota import Receiver

ANTHROPIC_KEY = "sk-ant-stored-credential"  # what the gateway fixture holds
OPENAI_KEY = "sk-openai-stored-credential"


@pytest.fixture
def mock_provider():
    """A mock of its own (the session's ledger holds other tests' traffic), one row or
    bucket per report page."""
    with MockProviderThread(report_page_size=1) as provider:
        yield provider


@pytest.fixture
def admin_keys(settings):
    settings.METIS_ANTHROPIC_ADMIN_KEY = "sk-ant-admin01-test"
    settings.METIS_OPENAI_ADMIN_KEY = "sk-admin-test"
    settings.METIS_RECONCILE_DRIFT_PERCENT = 1.0


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.shutdown()


def through_gateway(gateway, token) -> None:
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)
    for model in ("claude-haiku-4-5", "claude-haiku-4-5", "claude-sonnet-4-6"):
        claude.messages.create(model=model, max_tokens=64, messages=HELLO)
    gpt = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0)
    gpt.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    gpt.embeddings.create(model="text-embedding-3-small", input="reconcile me")
    gateway.events()  # flushed: the calls and their rollups are in the database


def straight_to_the_mock(mock) -> dict[str, tuple[int, Decimal]]:
    """Calls that never passed through Metis, on the keys Metis holds: model -> (tokens, $)."""
    claude = anthropic.Anthropic(base_url=mock.url, api_key=ANTHROPIC_KEY, max_retries=0)
    gpt = openai.OpenAI(base_url=f"{mock.url}/v1", api_key=OPENAI_KEY, max_retries=0)
    bypass: dict[str, tuple[int, Decimal]] = {}

    def add(provider: str, model: str, usage: Usage, tokens: int) -> None:
        before = bypass.get(model, (0, Decimal(0)))
        price = find_price(provider, model)
        bypass[model] = (before[0] + tokens, before[1] + cost_usd(price, usage))

    for text in ("one", "two words"):
        reply = claude.messages.create(
            model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": text}]
        )
        u = reply.usage
        add("anthropic", "claude-haiku-4-5",
            Usage(input_tokens=u.input_tokens, output_tokens=u.output_tokens),
            u.input_tokens + u.output_tokens)  # fmt: skip
    reply = gpt.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    u = reply.usage
    add("openai", "gpt-4o-mini",
        Usage(input_tokens=u.prompt_tokens, output_tokens=u.completion_tokens),
        u.prompt_tokens + u.completion_tokens)  # fmt: skip
    return bypass


def by_model() -> dict[str, Reconciliation]:
    return {r.model: r for r in Reconciliation.objects.all()}


def test_calls_that_bypassed_metis_show_as_bypass_and_the_rest_reconciles_to_zero(
    gateway, token, admin_keys, receiver
):
    BudgetWebhook.objects.create(url=receiver.url)
    through_gateway(gateway, token)
    bypass = straight_to_the_mock(gateway.mock)
    since = imports.today() - timedelta(days=3)  # 4 daily buckets: 4 pages of each report

    outcome = imports.run(since)
    assert not outcome.errors
    rows = by_model()
    assert set(rows) == {
        "claude-haiku-4-5", "claude-sonnet-4-6", "gpt-4o-mini", "text-embedding-3-small",
    }  # fmt: skip
    for model, row in rows.items():
        tokens, dollars = bypass.get(model, (0, Decimal(0)))
        assert row.bypass_tokens == tokens, model
        assert row.unreported_tokens == 0, model
        assert row.drift_usd == dollars, model
        assert row.provider_cost_usd == row.gateway_cost_usd + dollars, model
        assert row.api_key_id, model  # matched to the key Metis holds, by its hint
    assert rows["claude-haiku-4-5"].gateway_calls == 2
    assert rows["claude-haiku-4-5"].provider_requests == 4
    assert rows["claude-sonnet-4-6"].drift_usd == 0

    events = gateway.events()
    bypassed = [e for e in events if e["type"] == "reconciliation.bypass"]
    assert {(e["model"], e["total_tokens"]) for e in bypassed} == {
        (model, tokens) for model, (tokens, _) in bypass.items()
    }
    assert not [e for e in events if e["type"] == "reconciliation.unreported"]
    drifts = [e for e in events if e["type"] == "reconciliation.drift"]
    assert {e["upstream"] for e in drifts} == {"anthropic", "openai"}  # both well past 1 %
    delivered = receiver.wait_for(2)
    assert sorted(d["upstream"] for d in delivered) == ["anthropic", "openai"]
    assert all(d["type"] == "reconciliation.drift" for d in delivered)

    # A second run reads the same reports: nothing doubles, nothing alerts again.
    stored = ProviderUsage.objects.count()
    call_command("reconcile", "--since", since.isoformat())
    assert ProviderUsage.objects.count() == stored
    assert {m: (r.bypass_tokens, r.drift_usd) for m, r in by_model().items()} == {
        m: (r.bypass_tokens, r.drift_usd) for m, r in rows.items()
    }
    assert len(gateway.events()) == len(events)
    assert len(receiver.received) == 2


def test_traffic_the_provider_did_not_report_shows_as_unreported(gateway, token, admin_keys):
    through_gateway(gateway, token)
    gateway.mock.app[STATE].ledger.clear()  # the provider lost every line of it
    imports.run()
    rows = by_model()
    assert {m: r.bypass_tokens for m, r in rows.items()} == dict.fromkeys(rows, 0)
    haiku = rows["claude-haiku-4-5"]
    assert haiku.unreported_tokens == (
        haiku.gateway_input_tokens + haiku.gateway_cache_write_tokens
        + haiku.gateway_cache_read_tokens + haiku.gateway_output_tokens
    ) > 0  # fmt: skip
    assert haiku.provider_cost_usd is None and haiku.drift_usd == -haiku.gateway_cost_usd
    unreported = gateway.events("reconciliation.unreported")
    assert {e["model"] for e in unreported} == set(rows)


def test_traffic_on_keys_metis_does_not_hold_is_left_out(gateway, token, admin_keys):
    through_gateway(gateway, token)
    other = anthropic.Anthropic(base_url=gateway.mock.url, api_key="sk-ant-someone-else-1234")
    other.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=HELLO)
    imports.run()
    assert by_model()["claude-haiku-4-5"].bypass_tokens == 0
    assert ProviderUsage.objects.filter(upstream="").count() == 1  # kept, but not Metis's


def test_a_report_that_cannot_be_read_is_named_and_the_rest_still_reconciles(
    gateway, token, admin_keys, settings
):
    through_gateway(gateway, token)
    settings.METIS_OPENAI_BASE_URL = "http://127.0.0.1:9"  # nobody listens
    outcome = imports.run()
    assert len(outcome.errors) == 1 and "openai" in outcome.errors[0]
    assert {r.provider for r in Reconciliation.objects.all()} == {"anthropic"}


def test_an_admin_key_set_in_the_admin_is_write_only(admin_client, database_text):
    admin_key = "sk-ant-admin01-set-in-the-admin-0123456789"
    fields = {"name": "anthropic", "provider": "anthropic", "base_url": "", "is_active": "on",
              "api_key": ANTHROPIC_KEY}  # fmt: skip
    added = admin_client.post(
        "/admin/identity/providercredential/add/", {**fields, "admin_key": admin_key}
    )
    assert added.status_code == 302
    credential = ProviderCredential.objects.get()
    change = f"/admin/identity/providercredential/{credential.pk}/change/"
    page = admin_client.get(change).content.decode()
    admin_client.post(change, {**fields, "api_key": "", "admin_key": ""})
    assert admin_key not in page and credential.admin_key_hint in page
    assert admin_key not in database_text()
    assert ProviderCredential.objects.get().admin_key == admin_key


def test_a_credentials_own_admin_key_reads_its_reports(gateway, token):
    """A credential named like the provider replaces its default account, admin key and all
    (no METIS_*_ADMIN_KEY is set here)."""
    credential = ProviderCredential(name="anthropic", provider="anthropic",
                                    base_url=gateway.mock.url)  # fmt: skip
    credential.set_api_key(ANTHROPIC_KEY)
    credential.set_admin_key("sk-ant-admin01-of-the-credential")
    credential.save()
    through_gateway(gateway, token)
    assert [s.admin_key for s in sources.sources()] == ["sk-ant-admin01-of-the-credential"]
    outcome = imports.run()
    assert not outcome.errors and outcome.reports == 1
    rows = Reconciliation.objects.all()
    assert {r.provider for r in rows} == {"anthropic"}
    assert all(r.bypass_tokens == r.unreported_tokens == r.drift_usd == 0 for r in rows)


@pytest.mark.django_db
def test_the_command_refuses_bad_dates_and_says_when_no_admin_key_is_set(settings):
    settings.METIS_ANTHROPIC_ADMIN_KEY = settings.METIS_OPENAI_ADMIN_KEY = ""
    with pytest.raises(CommandError, match="--since must be a date like 2026-11-01"):
        call_command("reconcile", "--since", "last tuesday")
    with pytest.raises(CommandError, match="--since must not be after --until"):
        call_command("reconcile", "--since", "2026-11-02", "--until", "2026-11-01")
    with pytest.raises(CommandError, match="no admin key"):
        call_command("reconcile")
    assert schedule.schedule() is None  # nothing to reconcile: no thread


def test_metis_serve_reconciles_whole_days_on_its_own(gateway, token, admin_keys, caplog):
    through_gateway(gateway, token)  # today's calls: not a whole day yet, so not compared
    caplog.set_level(logging.INFO, logger="reconcile.schedule")
    thread = schedule.schedule()
    assert thread is not None and thread.daemon
    deadline = time.monotonic() + 60
    while "reconciled" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    yesterday = imports.today() - timedelta(days=1)
    assert f"to {imports.today()}: 2 reports, 0 rows, 0 errors" in caplog.text, caplog.text
    assert not Reconciliation.objects.exclude(day__lte=yesterday).exists()
