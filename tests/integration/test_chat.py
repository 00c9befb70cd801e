"""`metis chat` in a pseudo-terminal against a real `metis serve`, whose sessions call the
mock provider in-process: a conversation, a pin, a Ctrl-C cancel, a resume, and the one
line said for each kind of mistake. The key is the local one `metis chat` makes itself,
for a workspace whose `.metis/routing.yaml` chooses the model."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from identity import keys
from identity.models import GatewayKey
from metis_site.chat import local_key
from mock_provider import MockProviderThread
from tests.integration.gateway_process import gateway_env
from tests.integration.processes import REPO, free_port
from tests.integration.terminal import Terminal

FOOTER = re.compile(r"\[(\d+) in · (\d+) out · \$([0-9.]+) · session \$([0-9.]+)\]")


@dataclass
class Setup:
    url: str
    env: dict[str, str]
    project: Path
    mock: MockProviderThread
    home: Path

    def chat(self, *args: str, **env: str) -> Terminal:
        command = [sys.executable, "-m", "metis_site.cli", "chat", "--url", self.url, *args]
        return Terminal(command, env={**self.env, **env}, cwd=self.project)

    def token(self) -> str:
        keys = json.loads((self.home / "chat-keys.json").read_text())
        return keys[str(self.project.resolve())]["token"]

    def api(self, path: str) -> dict:
        headers = {"Authorization": f"Bearer {self.token()}"}
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=10).json()


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("chat")
    home, project = root / "home", root / "project"
    (project / ".metis").mkdir(parents=True)
    (project / ".metis" / "routing.yaml").write_text("default: haiku\n")
    with MockProviderThread(token_delay=0.005) as mock:
        env = gateway_env(home, mock.url)
        env.update(METIS_SERVE_GATEWAY="0", TERM="dumb", PYTHONUNBUFFERED="1")
        env.pop("METIS_GATEWAY_KEY", None)
        port = free_port()
        home.mkdir()
        with (home / "serve.log").open("wb") as log:
            serve = subprocess.Popen(
                [sys.executable, "-m", "metis_site.cli", "serve", "--port", str(port)],
                env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(f"{url}/health", serve, home / "serve.log")
            yield Setup(url, env, project, mock, home)
        finally:
            serve.terminate()
            serve.wait(60)


def wait_for(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"metis serve did not start\n{log.read_text()}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)


def footer(terminal: Terminal) -> tuple[Decimal, Decimal]:
    """(this turn's cost, the session's total), as the turn's last line shows them."""
    found = terminal.expect(FOOTER)
    return Decimal(found[3]), Decimal(found[4])


def test_a_conversation_a_pin_a_cancel_and_a_resume(setup):
    chat = setup.chat()
    try:
        chat.expect("created the local gateway key metis-chat (gk_")
        chat.expect(f"for {setup.project.resolve()}; its token is in {setup.home}/chat-keys.json")
        chat.expect("you> ")

        # Two turns; routing.yaml in the key's workspace chooses the model.
        chat.line("Hello, who are you?")
        chat.expect("[claude-haiku-4-5 · routing_rules]")
        chat.expect("You said: Hello, who are you?")  # the mock's answer, streamed
        first, total = footer(chat)
        assert first > 0 and total == first
        chat.line("Tell me more.")
        chat.expect("[claude-haiku-4-5 · routing_rules]")
        second, total = footer(chat)
        assert second > 0 and total == first + second
        chat.expect("you> ")

        # A pin overrides routing until it is taken off.
        chat.line("/model sonnet")
        chat.expect("pinned to sonnet")
        chat.expect("you (sonnet)> ")
        chat.line("And now?")
        chat.expect("[claude-sonnet-4-6 · ")
        footer(chat)
        chat.line("/model off")
        chat.expect("unpinned")
        chat.expect("you> ")

        # Ctrl-C while the answer streams (the mock stalls mid-answer) cancels the turn.
        chat.line("A long story, please [[fault:hang]]")
        chat.expect("[claude-haiku-4-5 · routing_rules]")
        chat.type("\x03")
        chat.expect("[cancelled]")
        chat.expect("you> ")
        # The next message goes on at once, in the same session.
        chat.line("Still there?")
        chat.expect("[claude-haiku-4-5 · routing_rules]")
        _, total = footer(chat)
        chat.expect("you> ")
        # Ctrl-C at the prompt says how to leave; a second one in a row leaves, saying how
        # to come back.
        chat.type("\x03")
        chat.expect("(Ctrl-C again or Ctrl-D to leave)")
        # At the prompt again, as a person would be: a SIGINT that lands between the
        # message and readline's start may be taken by readline for the new line.
        chat.expect("you> ")
        chat.type("\x03")
        session_id = chat.expect(re.compile(r"continue with: metis chat --resume (ses_\S+)"))[1]
        assert chat.finish() == 0
    finally:
        chat.kill()

    session = setup.api(f"/sessions/{session_id}")
    statuses = [t["status"] for t in session["turns"]]
    assert statuses == ["completed"] * 3 + ["cancelled", "completed"]
    assert [t["decided_by"] for t in session["turns"]][:2] == ["routing_rules"] * 2
    costs = [Decimal(str(t["cost_usd"])) for t in session["turns"]]
    assert Decimal(str(session["total_cost_usd"])) == sum(costs) == total
    assert gone_upstream(setup.mock), "the provider call was not cancelled"
    call = recorded_call(setup, session["turns"][3]["call_id"])
    assert (call["error_class"], call["inbound_shape"]) == ("CANCELLED", "in-process")

    # Resume: the earlier turns, briefly, then the conversation goes on where it was.
    chat = setup.chat("--resume", session_id)
    try:
        chat.expect("you> Hello, who are you?")
        chat.expect("you> A long story, please [[fault:hang]]")
        chat.expect("(cancelled)")
        chat.expect(f"session {session_id}: 5 turns, $")
        assert "created the local gateway key" not in chat.screen  # made once, reused
        chat.expect("you> ")
        chat.line("One more thing.")
        chat.expect("[claude-haiku-4-5 · routing_rules]")
        chat.expect(FOOTER)
        chat.expect("you> ")
        chat.type("\x04")  # Ctrl-D
        chat.expect(f"continue with: metis chat --resume {session_id}")
        assert chat.finish() == 0
    finally:
        chat.kill()
    sent = setup.mock.requests[-1]["body"]["messages"]
    said = json.dumps(sent)
    assert "Hello, who are you?" in said and "One more thing." in said  # the server kept it


def recorded_call(setup: Setup, call_id: str) -> dict:
    """The call as the analytics API lists it, once its events are written."""
    deadline = time.monotonic() + 30
    while True:
        calls = setup.api("/analytics/activity?window=24h")["calls"]
        if found := [c for c in calls if call_id in (c["id"], c["request_id"])]:
            return found[0]
        assert time.monotonic() < deadline, calls
        time.sleep(0.2)


def gone_upstream(mock: MockProviderThread) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(
            "[[fault:hang]]" in json.dumps(r["body"]) and (r["disconnected"] or r["status"] == 499)
            for r in mock.requests
        ):
            return True
        time.sleep(0.2)
    return False


def run_chat(setup: Setup, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "metis_site.cli", "chat", *args],
        env={**setup.env, **env}, cwd=setup.project, capture_output=True, text=True,
        timeout=120, input="",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (["--resume", "ses_nope"], {}, "metis: no session 'ses_nope' (/sessions lists yours)"),
        (["--url", "http://127.0.0.1:9"], {},
         "metis: cannot reach Metis at http://127.0.0.1:9 (is 'metis serve' running?)"),
        (["--token", "sk-ant-nope"], {},
         "metis: --token must be a gateway token, which starts with gw_"),
        ([], {"METIS_GATEWAY_KEY": "gw_01JNOTAREALTOKEN"},
         "metis: the server refused the token: "),
    ],
    ids=["unknown-session", "unreachable", "not-a-token", "refused-token"],
)  # fmt: skip
def test_a_mistake_is_one_line_and_no_traceback(setup, args, env, line):
    url = [] if "--url" in args else ["--url", setup.url]
    result = run_chat(setup, *url, *args, **env)

    assert result.returncode == 1
    assert result.stderr.startswith(line), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr + result.stdout


def test_a_refused_budget_is_one_line_and_the_chat_goes_on(setup):
    issued = subprocess.run(
        [sys.executable, "-m", "metis_site.cli", "gateway", "issue-key", "--name", "broke",
         "--workspace", str(setup.project)],
        env=setup.env, cwd=REPO, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    token = re.search(r"token: (gw_\S+)", issued.stdout)[1]
    key_id = re.search(r"key_id: (\S+)", issued.stdout)[1]
    subprocess.run(
        [sys.executable, "-m", "metis_site.cli", "manage", "shell", "-c",
         "from identity.models import Quota; "
         f"Quota.objects.create(key_id='{key_id}', period='total', hard_cap_usd=0)"],
        env=setup.env, cwd=REPO, check=True, timeout=120,
    )  # fmt: skip
    chat = setup.chat("--token", token)
    try:
        chat.expect("you> ")
        chat.line("Anything at all?")
        refusal = chat.expect(re.compile(r"\nmetis: (.*)\n"))[1]
        chat.expect("you> ")  # still here: the next message may go to a pinned, cheaper model
        chat.type("\x04")
        assert chat.finish() == 0
    finally:
        chat.kill()
    assert "budget" in refusal.lower(), refusal
    assert "Traceback" not in chat.screen


@pytest.mark.django_db
def test_the_local_key_is_made_once_and_kept_readable_only_by_its_owner(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("METIS_HOME", str(home))
    project = tmp_path / "project"
    project.mkdir()

    token, notice = local_key.token_for(str(project))
    again, second = local_key.token_for(str(project))

    assert again == token and second is None
    assert notice.startswith("metis: created the local gateway key metis-chat (gk_")
    saved = home / "chat-keys.json"
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    key = GatewayKey.objects.get(token_hash=keys.hash_token(token))
    assert key.name == "metis-chat" and key.workspace.path == str(project.resolve())
    assert token not in "".join(str(v) for v in GatewayKey.objects.values_list())
