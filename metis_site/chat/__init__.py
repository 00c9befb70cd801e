"""`metis chat`: a terminal chat on the sessions of `metis serve` (the agent surface).

    metis chat [--url http://127.0.0.1:8421] [--token gw_…] [--resume SESSION_ID]

The server keeps the conversation and its routing chooses each turn's model; this side
reads lines, streams answers, and prints what each turn cost. api.py speaks the wire
contract, render.py formats, repl.py is the loop, local_key.py finds a token on the
operator's own machine.
"""

from __future__ import annotations

import argparse
import os
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8421"  # where `metis serve` listens by default
TOKEN_ENV = "METIS_GATEWAY_KEY"
URL_ENV = "METIS_URL"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", help=f"where 'metis serve' answers ({URL_ENV}, else {DEFAULT_URL})"
    )
    parser.add_argument(
        "--token",
        help=f"a gw_ gateway token ({TOKEN_ENV}); on the server's own machine, a local key "
        "is made once without it",
    )
    parser.add_argument("--resume", metavar="SESSION_ID", help="continue an earlier session")


def run(args: argparse.Namespace) -> int:
    import readline  # noqa: F401 - line editing and history for input()

    from metis_site.chat.api import ChatError, Sessions
    from metis_site.chat.repl import Chat

    if args.resume is not None and not args.resume.strip():
        raise ChatError("--resume needs a session id (ses_…)")
    url = server_url(args.url or os.environ.get(URL_ENV) or DEFAULT_URL)
    token, local = find_token(args.token, url)
    api = Sessions(url, token)
    chat = Chat(api)
    try:
        api.list(limit=1)  # is the server there, and does it take this token? Say so now.
        resumed = api.get(args.resume.strip()) if args.resume else None
    except ChatError as exc:
        if exc.status == 401 and local:
            raise ChatError(
                f"{exc}; this directory's local key in {local} was revoked (remove its entry"
                " to make a new one), or 'metis serve' uses another METIS_HOME or DATABASE_URL"
            ) from None
        raise
    chat.say(f"metis chat on {url}; /help for commands, Ctrl-D to leave")
    if resumed:
        chat.show(resumed)
    try:
        return chat.run()
    finally:
        api.close()


def server_url(value: str) -> str:
    from metis_site.chat.api import ChatError

    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ChatError(f"--url must look like {DEFAULT_URL}, got {value!r}")
    return value.strip().rstrip("/")


def find_token(given: str | None, url: str) -> tuple[str, str | None]:
    """(token, the file it came from when it is the local key, else None)."""
    from metis_site.chat import local_key
    from metis_site.chat.api import ChatError, check_reachable

    token = (given or os.environ.get(TOKEN_ENV) or "").strip()
    if token:
        if not token.startswith("gw_"):
            source = "--token" if given else TOKEN_ENV
            raise ChatError(f"{source} must be a gateway token, which starts with gw_")
        return token, None
    home = local_key.metis_home()
    if urlsplit(url).hostname not in LOOPBACK or not home.is_dir():
        raise ChatError(
            f"metis chat needs a gateway token: --token gw_… or {TOKEN_ENV} (issue one with"
            " 'metis gateway issue-key'); a local key is made only beside a local metis serve"
        )
    check_reachable(url)
    token, notice = local_key.token_for(os.getcwd())
    if notice:
        print(notice, flush=True)
    return token, str(home / local_key.FILE_NAME)
