"""The token `metis chat` uses when none is given, on the operator's own machine.

The first `metis chat` against a local `metis serve` issues a gateway key named
`metis-chat` for the current directory's workspace (so that workspace's
`.metis/routing.yaml` decides its models) and keeps its token in
`$METIS_HOME/chat-keys.json`, mode 0600; later runs in that directory reuse it. Only the
hash is in the database, as for every key; the file is what `metis gateway issue-key`'s
printout would be for a person who saved it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

KEY_NAME = "metis-chat"
FILE_NAME = "chat-keys.json"


def metis_home() -> Path:
    # The same default as metis_site/settings.py, read without starting Django.
    return Path(os.environ.get("METIS_HOME") or Path.home() / ".metis").expanduser()


def stored(home: Path, workspace: str) -> str | None:
    try:
        keys = json.loads((home / FILE_NAME).read_text())
    except (OSError, ValueError):
        return None
    entry = keys.get(workspace) if isinstance(keys, dict) else None
    return entry.get("token") if isinstance(entry, dict) else None


def token_for(workspace: str) -> tuple[str, str | None]:
    """(token, what was done, to say in one line, or None when a stored key was reused)."""
    home = metis_home()
    workspace = str(Path(workspace).resolve())
    if token := stored(home, workspace):
        return token, None
    from metis_site.chat.api import ChatError
    from metis_site.cli import CommandError, home_lock, setup_django

    try:
        setup_django()
    except CommandError as exc:  # raised by the imported cli, not the one running as __main__
        raise ChatError(str(exc)) from None
    with home_lock():  # two first runs at once make one key
        if token := stored(home, workspace):
            return token, None
        from identity.models import GatewayKey, Workspace

        key, token = GatewayKey.issue(name=KEY_NAME, workspace=Workspace.for_path(workspace))
        save(home, workspace, key.id, token)
    notice = (
        f"metis: created the local gateway key {KEY_NAME} ({key.id}) for {workspace};"
        f" its token is in {home / FILE_NAME} (mode 0600)"
    )
    return token, notice


def save(home: Path, workspace: str, key_id: str, token: str) -> None:
    path = home / FILE_NAME
    try:
        keys = json.loads(path.read_text())
    except (OSError, ValueError):
        keys = {}
    keys[workspace] = {"key_id": key_id, "token": token}
    # Written whole to a new 0600 file, then renamed over the old one: never readable by
    # others, even for a moment, and never half written.
    fresh = path.with_suffix(".tmp")
    fresh.unlink(missing_ok=True)
    descriptor = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(keys, out, indent=2)
    os.replace(fresh, path)
