"""A real gateway on loopback (uvicorn in a thread, the gateway's own URLconf and empty
middleware stack) in front of the built-in mock provider, as the SDKs see them."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import orjson
import pytest
import uvicorn
from django.test import override_settings

from analytics.models import Event
from analytics.writer import writer
from gateway import auth, budgets, invalidation, metrics, routing, upstream
from gateway.handler import GatewayASGIHandler
from mock_provider import MockProviderThread
from tests.factories import make_key, make_team, make_user, make_workspace


@pytest.fixture(scope="session")
def mock_provider() -> Iterator[MockProviderThread]:
    with MockProviderThread() as provider:
        yield provider


@dataclass
class Gateway:
    url: str
    mock: MockProviderThread

    def events(self, type_: str | None = None) -> list[dict]:
        """Every event written so far, oldest first, payload decoded."""
        # A client may finish reading a stream just before the relay records the call.
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


class ServerThread(threading.Thread):
    def __init__(self, app: GatewayASGIHandler) -> None:
        super().__init__(daemon=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan="off",
                                log_level="warning", timeout_graceful_shutdown=5)  # fmt: skip
        self.server = uvicorn.Server(config)

    def run(self) -> None:
        asyncio.run(self.serve())

    async def serve(self) -> None:
        listening = asyncio.ensure_future(invalidation.listen())  # as the lifespan does
        await self.server.serve()
        listening.cancel()
        await upstream.close_sessions()

    def __enter__(self) -> ServerThread:
        self.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.join(10)


GATEWAY_SETTINGS = {"ROOT_URLCONF": "metis_site.urls_gateway", "MIDDLEWARE": []}


@pytest.fixture
def gateway(
    transactional_db: None, mock_provider: MockProviderThread, settings
) -> Iterator[Gateway]:
    settings.METIS_ANTHROPIC_BASE_URL = mock_provider.url
    settings.METIS_OPENAI_BASE_URL = mock_provider.url
    settings.METIS_ANTHROPIC_API_KEY = "sk-ant-stored-credential"
    settings.METIS_OPENAI_API_KEY = "sk-openai-stored-credential"
    settings.METIS_UPSTREAM_RETRY_SECONDS = 5.0
    httpx.delete(f"{mock_provider.url}/_mock/requests")
    auth.forget_cached_keys()
    routing.forget_catalog()
    budgets.reset()
    with override_settings(**GATEWAY_SETTINGS), ServerThread(GatewayASGIHandler()) as server:
        yield Gateway(url=f"http://127.0.0.1:{server.port}", mock=mock_provider)
        assert writer.flush()
    auth.forget_cached_keys()
    routing.forget_catalog()


@pytest.fixture
def token(transactional_db: None) -> str:
    """A live key owned by alice in team eng, for workspace /srv/buyer-project."""
    alice = make_user(username="alice")
    _, token = make_key(
        name="alice-laptop",
        user=alice,
        team=make_team(name="eng"),
        workspace=make_workspace(path="/srv/buyer-project"),
    )
    return token


# `metis serve`'s application in a thread, for /sessions/* (agent/).
from tests.integration.agent_server import agent_server  # noqa: E402, F401
