"""The mock provider's app, and three ways to run it: `serve`, `run` (the CLI) and a thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from mock_provider import anthropic, embeddings, openai, reports, responses
from mock_provider.wire import STATE, MockState


def make_app(
    *,
    token_delay: float = 0.0,
    fixed: bool = False,
    gzip: bool = False,
    report_page_size: int = 0,
) -> web.Application:
    """Both provider shapes on one app; `token_delay` seconds between streamed pieces;
    `fixed`: every reply is the precomputed one (as with `x-mock-fixed: 1`);
    `report_page_size`: rows (buckets) per page of the organisation reports, 0 = theirs."""
    app = web.Application(client_max_size=64 * 1024 * 1024)  # Claude Code sends multi-MB prompts
    app[STATE] = MockState(
        token_delay=token_delay,
        always_fixed=fixed,
        always_gzip=gzip,
        report_page_size=report_page_size,
    )
    app.router.add_post("/v1/messages", anthropic.messages)
    app.router.add_post("/v1/messages/count_tokens", anthropic.count_tokens)
    app.router.add_post("/v1/chat/completions", openai.chat_completions)
    app.router.add_post("/v1/embeddings", embeddings.embeddings)
    app.router.add_post("/v1/responses", responses.create)
    app.router.add_get("/v1/responses/{response_id}", responses.retrieve)
    app.router.add_delete("/v1/responses/{response_id}", responses.delete)
    app.router.add_get("/v1/responses/{response_id}/input_items", responses.input_items)
    app.router.add_post("/v1/responses/{response_id}/cancel", responses.cancel)
    app.router.add_get("/v1/models", _models)
    reports.add_routes(app)
    app.router.add_get("/_mock/requests", _list_requests)
    app.router.add_delete("/_mock/requests", _clear_requests)
    app.router.add_post("/_mock/reset", _reset)
    return app


async def serve(host: str, port: int, *, token_delay: float = 0.0, fixed: bool = False) -> None:
    """Serve until cancelled, printing the URL once the socket is bound."""
    runner, url = await _start(make_app(token_delay=token_delay, fixed=fixed), host, port)
    print(f"mock provider listening on {url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def run(host: str, port: int, token_delay: float = 0.0, fixed: bool = False) -> None:
    """Blocking entry point for `metis mock-provider`; Ctrl-C stops it quietly."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(host, port, token_delay=token_delay, fixed=fixed))


class MockProviderThread:
    """Run the mock provider on an ephemeral loopback port in a background thread.

    >>> with MockProviderThread() as mock:
    ...     client = anthropic.Anthropic(base_url=mock.url, api_key="k")
    """

    def __init__(
        self, *, token_delay: float = 0.0, gzip: bool = False, report_page_size: int = 0
    ) -> None:
        self.app = make_app(token_delay=token_delay, gzip=gzip, report_page_size=report_page_size)
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="mock-provider", daemon=True)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A snapshot of the request log, oldest first (the same data as GET /_mock/requests)."""
        return list(self.app[STATE].requests)

    def reset(self) -> None:
        self._loop.call_soon_threadsafe(self.app[STATE].reset)

    def __enter__(self) -> MockProviderThread:
        self._thread.start()
        self._ready.wait(timeout=10)
        if self._failure is not None:
            raise RuntimeError("mock provider failed to start") from self._failure
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            # A short shutdown timeout: a `hang` request must not hold up the test run.
            runner, self.url = self._loop.run_until_complete(
                _start(self.app, "127.0.0.1", 0, shutdown_timeout=0.5)
            )
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(runner.cleanup())
            self._loop.close()


async def _start(
    app: web.Application, host: str, port: int, *, shutdown_timeout: float = 5.0
) -> tuple[web.AppRunner, str]:
    # handler_cancellation: a client that leaves cancels its handler, which is how the request
    # log learns about disconnects while the mock is sleeping rather than writing.
    runner = web.AppRunner(
        app, access_log=None, handler_cancellation=True, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}"


async def _models(request: web.Request) -> web.StreamResponse:
    if "anthropic-version" in request.headers:
        return await anthropic.models(request)
    return await openai.models(request)


async def _list_requests(request: web.Request) -> web.Response:
    log = list(request.app[STATE].requests)
    return web.json_response(body=orjson.dumps(log, option=orjson.OPT_NON_STR_KEYS))


async def _clear_requests(request: web.Request) -> web.Response:
    request.app[STATE].requests.clear()
    return web.Response(status=204)


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.Response(status=204)
