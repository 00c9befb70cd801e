"""`metis serve`'s application (ServeASGIHandler, the main URLconf and middleware) on a
loopback port, in a thread of the test process, in front of the mock provider: what
`/sessions/*` clients see."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from analytics.writer import writer
from gateway import auth, budgets, routing
from metis_site.server import ServeASGIHandler
from mock_provider import MockProviderThread
from tests.integration.conftest import Gateway, ServerThread


class AgentServer(Gateway):
    """The same helpers as the gateway fixture's (events, upstream requests), in front of
    `metis serve`'s application instead of the gateway's."""


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
