"""The dashboard shows agent turns as the seed draws them: `in-process N` in the per-key
table's inbound shapes, for turns made through `/sessions/*` (agent/)."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.factories import make_key, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]


def test_the_per_key_table_counts_agent_turns_as_in_process(page, agent_server, settings):
    settings.METIS_LOCAL_MODE = True
    _, token = make_key(name="agent-loop", user=make_user(username="alice"),
                        team=make_team(name="eng"))  # fmt: skip
    with httpx.Client(base_url=agent_server.url, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as http:  # fmt: skip
        session = http.post("/sessions", json={"model": "haiku"}).json()
        for text in ("one", "two", "three"):
            answered = http.post(f"/sessions/{session['id']}/messages", json={"content": text})
            assert answered.status_code == 200, answered.text
    agent_server.events()  # the writer has stored them
    page.goto("/dashboard/?tab=identity")
    page.get_by_role("link", name="Per-key").click()
    row = page.locator("#keys tr", has_text="agent-loop")
    expect(row.locator("td.shapes")).to_have_text("in-process 3")
