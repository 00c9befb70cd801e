"""The `metis` command line, run in-process (and once as the real console script)."""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from identity.keys import hash_token
from identity.models import GatewayKey, Workspace
from metis_site.cli import main
from tests.factories import make_key, make_team, make_user

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def restore_role(monkeypatch) -> None:
    # main() sets METIS_ROLE for the process it starts; keep it out of later tests.
    monkeypatch.setenv("METIS_ROLE", "serve")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def issue(capsys, tmp_path: Path, *extra: str) -> tuple[GatewayKey, str]:
    code, out, _ = run(
        capsys, "gateway", "issue-key", "--name", "alice-laptop", "--workspace", str(tmp_path),
        *extra,
    )  # fmt: skip
    assert code == 0
    key_line, token_line = out.splitlines()
    key = GatewayKey.objects.get(pk=key_line.removeprefix("key_id: "))
    return key, token_line.removeprefix("token: ")


def assert_one_clear_error(code: int, out: str, err: str, *, says: str) -> None:
    assert code != 0
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("metis: ")
    assert says in err
    assert "Traceback" not in err


@pytest.mark.django_db
def test_issue_key_prints_the_key_id_and_token_lines_and_nothing_else(capsys, tmp_path) -> None:
    code, out, err = run(
        capsys, "gateway", "issue-key", "--name", "alice-laptop", "--workspace", str(tmp_path)
    )

    assert code == 0
    key_line, token_line = out.splitlines()
    assert key_line.startswith("key_id: gk_")
    assert token_line.startswith("token: gw_")
    assert "save the token now" in err
    token = token_line.removeprefix("token: ")
    key = GatewayKey.objects.active().get(token_hash=hash_token(token))
    assert key_line == f"key_id: {key.pk}"
    assert key.name == "alice-laptop"


@pytest.mark.django_db
def test_issue_key_creates_the_workspace_from_the_path(capsys, tmp_path) -> None:
    project = tmp_path / "buyer-project"
    project.mkdir()

    key, _ = issue(capsys, project)

    assert key.workspace == Workspace.objects.get(path=str(project.resolve()))
    assert key.workspace.name == "buyer-project"


@pytest.mark.django_db
def test_issue_key_reuses_an_existing_workspace(capsys, tmp_path) -> None:
    first, _ = issue(capsys, tmp_path)
    first.revoke()

    second, _ = issue(capsys, tmp_path)

    assert second.workspace == first.workspace
    assert Workspace.objects.count() == 1


@pytest.mark.django_db
def test_issue_key_with_models_expiry_user_and_team(capsys, tmp_path) -> None:
    user, team = make_user(username="alice"), make_team(name="eng")

    key, _ = issue(
        capsys, tmp_path, "--models", "haiku, gpt-5-mini", "--expires", "30d",
        "--user", "alice", "--team", "eng",
    )  # fmt: skip

    assert key.allowed_models == ["haiku", "gpt-5-mini"]
    assert abs(key.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    assert (key.user, key.team) == (user, team)


@pytest.mark.django_db
def test_issue_key_accepts_a_future_date_for_expires(capsys, tmp_path) -> None:
    key, _ = issue(capsys, tmp_path, "--expires", "2099-01-31")

    assert key.expires_at.date().isoformat() == "2099-01-31"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--user", "nobody"], "no user 'nobody'"),
        (["--team", "no-such-team"], "no team 'no-such-team'"),
        (["--expires", "3x"], "--expires must look like 30d"),
        (["--expires", "0d"], "--expires must be in the future"),
        (["--expires", "2001-01-01"], "in the past"),
        (["--expires", "99999999999d"], "too far in the future"),
        (["--models", ","], "--models needs at least one model name"),
        (["--name", "  "], "--name must not be empty"),
    ],
)
def test_issue_key_rejects_bad_arguments_with_one_clear_line(
    capsys, tmp_path, extra: list[str], says: str
) -> None:
    argv = ["gateway", "issue-key", "--name", "k", "--workspace", str(tmp_path), *extra]

    assert_one_clear_error(*run(capsys, *argv), says=says)
    assert not GatewayKey.objects.exists()


@pytest.mark.django_db
def test_issue_key_refuses_a_duplicate_live_name(capsys, tmp_path) -> None:
    make_key(name="alice-laptop")

    code, out, err = run(
        capsys, "gateway", "issue-key", "--name", "alice-laptop", "--workspace", str(tmp_path)
    )

    assert_one_clear_error(code, out, err, says="a live key named 'alice-laptop' already exists")
    assert GatewayKey.objects.count() == 1


@pytest.mark.django_db
def test_revoke_key_stops_the_token(capsys) -> None:
    key, token = make_key()

    code, out, _ = run(capsys, "gateway", "revoke-key", key.pk)

    assert code == 0
    assert out == f"revoked: {key.pk}\n"
    assert not GatewayKey.objects.active().filter(token_hash=hash_token(token)).exists()


@pytest.mark.django_db
def test_rotate_key_keeps_the_id_and_only_the_new_token_works(capsys) -> None:
    key, old_token = make_key()

    code, out, err = run(capsys, "gateway", "rotate-key", key.pk)

    assert code == 0
    key_line, token_line = out.splitlines()
    assert key_line == f"key_id: {key.pk}"
    new_token = token_line.removeprefix("token: ")
    active = GatewayKey.objects.active()
    assert active.get(token_hash=hash_token(new_token)).pk == key.pk
    assert not active.filter(token_hash=hash_token(old_token)).exists()
    assert "old token no longer works" in err


@pytest.mark.django_db
def test_rotate_key_refuses_a_revoked_key(capsys) -> None:
    key, _ = make_key(revoked=True)

    assert_one_clear_error(*run(capsys, "gateway", "rotate-key", key.pk), says="is revoked")


@pytest.mark.django_db
@pytest.mark.parametrize("command", ["revoke-key", "rotate-key"])
def test_unknown_key_id_is_one_clear_line(capsys, command: str) -> None:
    assert_one_clear_error(
        *run(capsys, "gateway", command, "gk_nope"), says="no gateway key 'gk_nope'"
    )


@pytest.mark.django_db
def test_list_keys_shows_every_key_with_its_status_and_no_token(capsys) -> None:
    live, live_token = make_key(name="alice-laptop", team=make_team(name="eng"))
    revoked, _ = make_key(name="old-ci", revoked=True)

    code, out, _ = run(capsys, "gateway", "list-keys")

    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["KEY_ID", "NAME", "STATUS"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows[live.pk][1:3] == ["alice-laptop", "active"] and "eng" in rows[live.pk]
    assert rows[revoked.pk][1:3] == ["old-ci", "revoked"]
    assert live_token not in out


@pytest.mark.parametrize(("command", "port_flag"), [("gateway", "--port"), ("serve", "--port")])
def test_a_port_already_in_use_is_one_clear_line_and_exit_1(capsys, command, port_flag) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        code, out, err = run(capsys, command, port_flag, str(port))

    assert code == 1
    assert_one_clear_error(code, out, err, says=f"port {port} on 127.0.0.1 is already in use")


def test_the_console_script_stores_no_plaintext_token_in_the_database_file(tmp_path) -> None:
    home = tmp_path / "metis-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METIS_", "DATABASE_URL"))}
    env["METIS_HOME"] = str(home)
    script = Path(sys.executable).with_name("metis")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "metis_site.cli"]

    result = subprocess.run(
        [*command, "gateway", "issue-key", "--name", "smoke", "--workspace", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    key_line, token_line = result.stdout.splitlines()
    key_id, token = key_line.removeprefix("key_id: "), token_line.removeprefix("token: ")
    stored = b"".join(
        path.read_bytes() for path in (home / "metis.db", home / "metis.db-wal") if path.exists()
    )
    assert key_id.encode() in stored  # the key row really is in these bytes
    assert token.encode() not in stored
    assert token[29:].encode() not in stored  # nor the secret part alone
    hash_secret = (home / "secrets" / "METIS_KEY_HASH_SECRET").read_text().strip()
    digest = hmac.new(hash_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
    assert digest.encode() in stored  # the token works: its hash is what was stored


BAD_SETUPS = {
    "METIS_HOME is a file": ({"METIS_HOME": "{file}"}, "must be a directory Metis can write"),
    "an unsupported database": (
        {"DATABASE_URL": "mysql://metis:s3cret@db/metis"},
        "DATABASE_URL must be sqlite:///PATH or postgres://",
    ),
    "no scheme": ({"DATABASE_URL": "metis.db"}, "not a value without a scheme"),
    "an unknown log level": ({"METIS_LOG_LEVEL": "loud"}, "METIS_LOG_LEVEL must be one of"),
}


@pytest.mark.parametrize(("overrides", "says"), BAD_SETUPS.values(), ids=BAD_SETUPS.keys())
@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--port", "0", "--no-gateway"],
        ["gateway", "--port", "0"],
        ["gateway", "list-keys"],
    ],
)
def test_a_bad_setup_is_one_clear_line_before_anything_starts(tmp_path, overrides, says, command):
    file = tmp_path / "a-file"
    file.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METIS_", "DATABASE_URL"))}
    env["METIS_HOME"] = str(tmp_path / "home")
    env.update({name: value.format(file=file) for name, value in overrides.items()})

    result = subprocess.run(
        [sys.executable, "-m", "metis_site.cli", *command],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert_one_clear_error(result.returncode, result.stdout, result.stderr, says=says)
    assert "s3cret" not in result.stderr  # a database password is never echoed


def test_a_log_level_in_lower_case_is_accepted(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METIS_", "DATABASE_URL"))}
    env.update(METIS_HOME=str(tmp_path / "home"), METIS_LOG_LEVEL="warning")
    result = subprocess.run(
        [sys.executable, "-m", "metis_site.cli", "gateway", "list-keys"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
