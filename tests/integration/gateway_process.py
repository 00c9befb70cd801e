"""A real `metis gateway` subprocess in front of the mock provider, and a load of mixed
clients that remember what each of their calls got: for the tests that kill processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.integration.processes import free_port

ANTHROPIC = {"model": "claude-haiku-4-5", "max_tokens": 64}
OPENAI = {"model": "gpt-5-mini"}


def gateway_env(home: Path, mock_url: str, database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        METIS_HOME=str(home),
        METIS_ANTHROPIC_BASE_URL=mock_url,
        METIS_OPENAI_BASE_URL=mock_url,
        METIS_ANTHROPIC_API_KEY="x",
        METIS_OPENAI_API_KEY="x",
        METIS_LOG_LEVEL="WARNING",
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def issue_key(env: dict[str, str], name: str = "crash-test") -> str:
    out = subprocess.run(
        [sys.executable, "-m", "metis_site.cli", "gateway", "issue-key",
         "--name", name, "--workspace", "/srv/crash"],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return next(
        line.split(": ", 1)[1] for line in out.stdout.splitlines() if line.startswith("token:")
    )


class GatewayProcess:
    """`metis gateway` on a free port; its output goes to METIS_HOME/gateway-N.log."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env, self.port = env, free_port()
        home = Path(env["METIS_HOME"])
        self.log = home / f"gateway-{len(list(home.glob('gateway-*.log')))}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "metis_site.cli", "gateway", "--port", str(self.port)],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, f"the gateway did not start\n{self.output()}"
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=90)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@dataclass
class Outcome:
    """What the client saw: `status` once the response began, `complete` once it was
    read to its end."""

    label: str
    status: int | None = None
    complete: bool = False


@dataclass
class Load:
    """Clients that call the gateway in a loop, both shapes, streamed and not, each call
    tagged with its own `x-metis-user` label so its event can be found."""

    url: str
    token: str
    outcomes: list[Outcome] = field(default_factory=list)
    stopping: bool = False
    wanted: int = 0
    enough: asyncio.Event = field(default_factory=asyncio.Event)

    def plan(self, n: int) -> tuple[str, dict]:
        """Streamed and not, in turn; Anthropic, OpenAI, and an OpenAI client calling a
        Claude model (translated), in turn."""
        stream = n % 2 == 0
        path, model = [
            ("/v1/messages", ANTHROPIC),
            ("/v1/chat/completions", OPENAI),
            ("/v1/chat/completions", ANTHROPIC),
        ][(n // 2) % 3]
        # Slow enough that calls are always in flight, in every phase of a call (the mock
        # streams slowly too: MockProviderThread(token_delay=...)).
        fault = "" if stream else " [[fault:slow:0.2]]"
        content = f"call {n}: tell me a story{fault}"
        body = {**model, "stream": stream, "messages": [{"role": "user", "content": content}]}
        return path, body

    async def client(self, http: httpx.AsyncClient, first: int, step: int) -> None:
        n = first
        while not self.stopping:
            outcome = Outcome(label=f"load-{n}")
            self.outcomes.append(outcome)
            path, body = self.plan(n)
            headers = {"x-api-key": self.token, "x-metis-user": outcome.label}
            try:
                async with http.stream("POST", path, json=body, headers=headers) as response:
                    outcome.status = response.status_code
                    async for _ in response.aiter_bytes():
                        pass
                    outcome.complete = True
                if outcome.status == 200 and self.answered() >= self.wanted:
                    self.enough.set()
            except httpx.TransportError:
                await asyncio.sleep(0.05)  # the gateway is gone: wait for the test to stop us
            n += step

    def answered(self) -> int:
        return sum(o.complete and o.status == 200 for o in self.outcomes)

    async def run(self, clients: int, answers: int, during=None) -> None:
        """Run the clients until they have `answers` complete 200s (however slow the
        machine), then call `during()` (in a thread) while they still run, then stop them."""
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=60) as http:
            tasks = [asyncio.ensure_future(self.client(http, i, clients)) for i in range(clients)]
            self.wanted, self.enough = answers, asyncio.Event()
            await asyncio.wait_for(self.enough.wait(), timeout=300)
            if during is not None:
                await asyncio.to_thread(during)
            self.stopping = True
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
