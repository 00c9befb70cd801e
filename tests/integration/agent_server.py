"""`metis serve`'s application (ServeASGIHandler, the main URLconf and middleware) on a
loopback port, in a thread of the test process, in front of the mock provider: what
`/sessions/*` clients see."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import orjson
import pytest

from analytics.models import Event
from analytics.writer import writer
from gateway import auth, budgets, metrics, routing
from metis_site.server import ServeASGIHandler
from mock_provider import MockProviderThread
from tests.integration.conftest import ServerThread


@dataclass
class AgentServer:
    url: str
    mock: MockProviderThread

    def events(self, type_: str | None = None) -> list[dict]:
        deadline = time.monotonic() + 5
        while metrics.in_flight._value.get() > 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert writer.flush(), "the event writer did not drain"
        rows = Event.objects.order_by("id")
        if type_:
            rows = rows.filter(type=type_)
        return [{"id": r.id, "type": r.type, **orjson.loads(r.payload_json)} for r in rows]

    def upstream_requests(self) -> list[dict]:
        return httpx.get(f"{self.mock.url}/_mock/requests").json()


@pytest.fixture
def agent_server(transactional_db: None, mock_provider: MockProviderThread, settings
                 ) -> Iterator[AgentServer]:  # fmt: skip
    settings.METIS_ANTHROPIC_BASE_URL = mock_provider.url
    settings.METIS_OPENAI_BASE_URL = mock_provider.url
    settings.METIS_ANTHROPIC_API_KEY = "sk-ant-stored-credential"
    settings.METIS_OPENAI_API_KEY = "sk-openai-stored-credential"
    settings.METIS_UPSTREAM_RETRY_SECONDS = 5.0
    settings.METIS_LOCAL_MODE = False
    httpx.delete(f"{mock_provider.url}/_mock/requests")
    auth.forget_cached_keys()
    routing.forget_catalog()
    budgets.reset()
    with ServerThread(ServeASGIHandler()) as server:
        yield AgentServer(url=f"http://127.0.0.1:{server.port}", mock=mock_provider)
        assert writer.flush()
    auth.forget_cached_keys()
    routing.forget_catalog()
