"""`metis demo`: a populated dashboard in a minute.

Makes a few teams, users and keys, starts the built-in mock provider and a real gateway
process in front of it, and sends a realistic mix of calls through the gateway, so every
number on the dashboard came the way production numbers come: events from the gateway.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import httpx

TEAMS = {"eng": "alice", "sales": "carol", "research": "erin"}  # team → its budget owner
MEMBERS = {"alice": "eng", "bob": "eng", "carol": "sales", "dave": "sales", "erin": "research"}
# How often each key calls: eng spends most, so the dashboard has a Top team to show.
WEIGHTS = {"alice": 8, "bob": 4, "carol": 3, "dave": 2, "erin": 2, None: 1}
AGENT_KEY = "demo-agent-loop"
# A fine-tuned model has no list price: its calls show as unpriced, as they would for real.
FINE_TUNED = "ft:gpt-4o-mini:acme::support-bot"
WORKSPACE = "/srv/demo/metis-demo"
HELLO = "Summarise the design doc in three bullet points."
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@dataclass(frozen=True)
class DemoKey:
    id: str
    name: str
    user: str | None
    token: str


def make_identities() -> list[DemoKey]:
    """Teams, users with memberships and one key each, plus an untagged agent key.
    Rerunnable: existing rows are reused and their keys get new tokens (a token
    exists only when it is issued)."""
    from identity.models import Team, TeamMembership, User

    teams = {name: Team.objects.get_or_create(name=name)[0] for name in TEAMS}
    keys = []
    for username, team_name in MEMBERS.items():
        user, _ = User.objects.get_or_create(username=username)
        role = "budget_owner" if TEAMS[team_name] == username else "member"
        TeamMembership.objects.update_or_create(
            user=user, team=teams[team_name], defaults={"role": role}
        )
        keys.append(live_key(f"demo-{username}-laptop", username, user, teams[team_name]))
    keys.append(live_key(AGENT_KEY, None, None, None))
    return keys


def live_key(name: str, username: str | None, user: object, team: object) -> DemoKey:
    from identity.models import GatewayKey, Workspace

    key = GatewayKey.objects.active().filter(name=name).first()
    if key is None:
        key, token = GatewayKey.issue(
            name=name, workspace=Workspace.for_path(WORKSPACE), user=user, team=team
        )
    else:
        token = key.rotate()
    return DemoKey(key.id, name, username, token)


# -- the gateway and its provider ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gateway(provider_url: str) -> tuple[subprocess.Popen, str]:
    """`metis gateway` as its own process, as a user runs it, pointed at the mock."""
    port = free_port()
    env = {
        **os.environ,
        "METIS_ANTHROPIC_BASE_URL": provider_url,
        "METIS_OPENAI_BASE_URL": provider_url,
        "METIS_ANTHROPIC_API_KEY": "sk-ant-demo",
        "METIS_OPENAI_API_KEY": "sk-openai-demo",
        "METIS_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "metis_site.cli", "gateway", "--port", str(port)]
    # The gateway logs each refused call; the demo's own errors are on purpose, so its log
    # goes to a file that is shown only when the gateway fails to start.
    log = tempfile.TemporaryFile()  # noqa: SIM115 (the process writes to it until stopped)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise RuntimeError(f"the gateway exited with status {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("the gateway did not start within 30 s")


def stop_gateway(process: subprocess.Popen) -> None:
    """SIGTERM: the gateway drains its requests and writes every queued event first."""
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


# -- traffic ------------------------------------------------------------------------------


def anthropic_call(client: httpx.Client, key: DemoKey, rng: random.Random) -> int:
    body: dict = {
        "model": rng.choice(["haiku", "haiku", "sonnet", "claude-haiku-4-5"]),
        "max_tokens": rng.choice([64, 256, 512]),
        "messages": [{"role": "user", "content": prompt(rng)}],
    }
    headers = {"x-api-key": key.token, "anthropic-version": "2023-06-01", **label(key, rng)}
    stream = rng.random() < 0.4
    body |= cached_system(rng.random())
    if stream:
        body["stream"] = True
        with client.stream("POST", "/v1/messages", json=body, headers=headers) as reply:
            for _ in reply.iter_bytes():
                pass
            return reply.status_code
    return client.post("/v1/messages", json=body, headers=headers).status_code


# Half the Anthropic calls share a long system prompt marked for the prompt cache (one in
# five of those with the 1-hour TTL), so the Cost tab's prompt-cache figures have a story.
HANDBOOK = "You answer for the Metis demo team. House style: " + "be brief and exact. " * 400


def cached_system(draw: float) -> dict:
    if draw >= 0.5:
        return {}
    ttl = {"ttl": "1h"} if draw < 0.1 else {}
    control = {"type": "ephemeral", **ttl}
    return {"system": [{"type": "text", "text": HANDBOOK, "cache_control": control}]}


def openai_call(
    client: httpx.Client, key: DemoKey, rng: random.Random, model: str | None = None
) -> int:
    body: dict = {
        "model": model or rng.choice(["gpt-5-mini", "gpt-5-mini", "gpt-5"]),
        "messages": [{"role": "user", "content": prompt(rng)}],
    }
    if rng.random() < 0.1:
        body["tools"] = [WEATHER_TOOL]
        body["messages"] = [{"role": "user", "content": "What is the weather in Lisbon?"}]
    headers = {"authorization": f"Bearer {key.token}", **label(key, rng)}
    if rng.random() < 0.4:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
        with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as reply:
            for _ in reply.iter_bytes():
                pass
            return reply.status_code
    return client.post("/v1/chat/completions", json=body, headers=headers).status_code


def prompt(rng: random.Random) -> str:
    text = HELLO + " Context: " + "lorem ipsum dolor sit amet " * rng.randint(5, 400)
    if rng.random() < 0.03:  # a few calls fail upstream, as real ones do
        text += f" [[fault:400 id={uuid.uuid4()}]]"
    return text


def label(key: DemoKey, rng: random.Random) -> dict[str, str]:
    """The agent key labels most calls with the developer it acts for (x-metis-user)."""
    if key.user is None and rng.random() < 0.6:
        return {"x-metis-user": rng.choice(["ci-bot", "dave"])}
    return {}


def send_traffic(url: str, keys: list[DemoKey], calls: int, *, seed: int = 7) -> dict[int, int]:
    rng = random.Random(seed)
    weights = [WEIGHTS[k.user] for k in keys]
    plan = [
        (rng.choices(keys, weights)[0], rng.random() < 0.55, rng.randrange(1 << 30))
        for _ in range(calls)
    ]
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=url, timeout=60) as client:

        def one(number: int, item: tuple[DemoKey, bool, int]) -> int:
            key, anthropic_shape, call_seed = item
            call_rng = random.Random(call_seed)
            try:
                if number % 25 == 12:  # one call in 25: the unpriced fine-tuned model
                    return openai_call(client, key, call_rng, FINE_TUNED)
                send = anthropic_call if anthropic_shape else openai_call
                return send(client, key, call_rng)
            except httpx.HTTPError:
                return 0

        with ThreadPoolExecutor(max_workers=8) as pool:
            for status in pool.map(one, range(calls), plan):
                statuses[status] = statuses.get(status, 0) + 1
    return statuses


BYPASS_CALLS = 3  # a script calling Anthropic directly with the key the gateway holds


def reconcile_against(provider_url: str) -> list[str]:
    """Reconcile the demo's traffic against the mock's own usage and cost reports, as
    `metis serve` does daily against the providers' (before the calls are spread over the
    past month, which the mock's reports know nothing of). A few calls go straight to the
    mock with the gateway's provider key first: they show as bypass."""
    from django.test.utils import override_settings

    from reconcile import imports

    for n in range(BYPASS_CALLS):
        body = {
            "model": "claude-haiku-4-5",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": f"{HELLO} (direct call {n})"}],
        }
        headers = {"x-api-key": "sk-ant-demo", "anthropic-version": "2023-06-01"}
        httpx.post(f"{provider_url}/v1/messages", json=body, headers=headers, timeout=30)
    with override_settings(
        METIS_ANTHROPIC_BASE_URL=provider_url, METIS_OPENAI_BASE_URL=provider_url,
        METIS_ANTHROPIC_API_KEY="sk-ant-demo", METIS_OPENAI_API_KEY="sk-openai-demo",
        METIS_ANTHROPIC_ADMIN_KEY="sk-ant-admin-demo", METIS_OPENAI_ADMIN_KEY="sk-admin-demo",
    ):  # fmt: skip
        outcome = imports.run(imports.today())
    lines = [f"metis demo: reconciliation: {problem}" for problem in outcome.errors]
    by_upstream: dict[str, list] = {}
    for row in outcome.results:
        by_upstream.setdefault(row.upstream, []).append(row)
    for upstream, rows in sorted(by_upstream.items()):
        gateway = sum(r.gateway_cost_usd for r in rows)
        reported = sum(r.provider_cost_usd or 0 for r in rows)
        lines.append(
            f"metis demo: reconciled {upstream} against the mock's reports: Metis ${gateway:.6f},"
            f" provider ${reported:.6f}, drift ${reported - gateway:.6f};"
            f" bypass {sum(r.bypass_tokens for r in rows)} tokens,"
            f" unreported {sum(r.unreported_tokens for r in rows)} tokens"
        )
    return lines


def run(*, calls: int) -> None:
    from django.conf import settings
    from django.utils import timezone

    from metis_site import demo_history
    from mock_provider import MockProviderThread

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per call is noise here
    keys = make_identities()
    print(f"metis demo: teams {', '.join(TEAMS)}; users {', '.join(MEMBERS)}; {len(keys)} keys")
    with MockProviderThread(token_delay=0.002) as provider:
        process, url = start_gateway(provider.url)
        print(f"metis demo: gateway on {url}, mock provider on {provider.url}")
        started, since_us = time.monotonic(), time.time_ns() // 1000
        try:
            statuses = send_traffic(url, keys, calls)
        finally:
            stop_gateway(process)  # every event is written when it exits
        reconciled = reconcile_against(provider.url)
    zone = ZoneInfo(settings.TIME_ZONE)
    demo_history.backdate(since_us, [k.id for k in keys], timezone.now(), zone)
    took = time.monotonic() - started
    summary = ", ".join(f"{n}× {status or 'failed'}" for status, n in sorted(statuses.items()))
    print(f"metis demo: sent {calls} calls in {took:.0f} s ({summary}), over the past 30 days")
    print("\n".join(reconciled))
    print("open http://127.0.0.1:8421/dashboard/ (run: uv run metis serve)")
