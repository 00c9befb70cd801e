"""The loop of `metis chat`: read a line, run a command or a turn, print, repeat.

A session is made on the first message (or pin), so starting and leaving at once leaves
nothing behind. Ctrl-C while a turn streams closes the stream, which the server records
as a cancelled turn; at the prompt the first Ctrl-C only says how to leave, a second one
in a row leaves, as Ctrl-D does.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

from metis_site.chat import render
from metis_site.chat.api import ChatError, Sessions

PROMPT = "you> "
CONFLICT_TRIES, CONFLICT_PAUSE = 20, 0.25  # up to 5 s for a cancelled turn to be put away


class Chat:
    def __init__(self, api: Sessions, *, out: TextIO | None = None) -> None:
        self.api = api
        self.out = out or sys.stdout
        self.session: dict[str, Any] | None = None
        self.pin: str | None = None  # asked for before the session exists
        self.interrupted = False  # the last thing the person did was Ctrl-C
        self.cancelled = False  # the last turn was cancelled

    def say(self, text: str = "", end: str = "\n") -> None:
        self.out.write(text + end)
        self.out.flush()

    def fail(self, error: ChatError) -> None:
        self.say(f"metis: {error}")

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> int:
        while True:
            try:
                line = input(self.prompt())
            except EOFError:
                self.say()
                break
            except KeyboardInterrupt:
                self.say()
                if self.interrupted:
                    break
                self.interrupted = True
                self.say("(Ctrl-C again or Ctrl-D to leave)")
                continue
            self.interrupted = False
            if not self.handle(line.strip()):
                break
        self.goodbye()
        return 0

    def prompt(self) -> str:
        model = self.session.get("model") if self.session else self.pin
        return f"you ({model})> " if model else PROMPT

    def handle(self, line: str) -> bool:
        """Run one line; False means leave."""
        if not line:
            return True
        try:
            if line.startswith("/"):
                return self.command(line)
            self.turn(line)
        except ChatError as exc:
            self.fail(exc)
        except KeyboardInterrupt:  # during a command's request: drop it, back to the prompt
            self.say("\n(interrupted)")
            self.interrupted = True
        return True

    def command(self, line: str) -> bool:
        name, _, argument = line.partition(" ")
        argument = argument.strip()
        if name in ("/quit", "/exit", "/q"):
            return False
        if name == "/help":
            self.say(render.HELP)
        elif name == "/model":
            self.set_model(None if argument.lower() in ("", "off", "none") else argument)
        elif name == "/new":
            self.session, self.pin = None, None
            self.say("new session (it starts with your next message)")
        elif name == "/sessions":
            self.list_sessions()
        elif name == "/resume" and argument:
            self.resume(argument)
        elif name == "/resume":
            self.say("metis: /resume needs a session id (/sessions lists them)")
        else:
            self.say(f"metis: unknown command {name}; /help lists the commands")
        return True

    # -- commands ------------------------------------------------------------------------

    def set_model(self, model: str | None) -> None:
        if self.session is None:
            if model is None:
                self.pin = None
                self.say("unpinned: the server's routing chooses the model each turn")
                return
            self.session = self.api.create(model=model)
        else:
            self.session = self.api.pin(self.session["id"], model)
        self.pin = None
        if model is None:
            self.say("unpinned: the server's routing chooses the model each turn")
        else:
            self.say(f"pinned to {self.session.get('model') or model}")

    def list_sessions(self) -> None:
        sessions = self.api.list()
        if not sessions:
            self.say("no sessions yet")
        for session in sessions:
            mark = "*" if self.session and session["id"] == self.session["id"] else " "
            self.say(f"{mark} {render.session_line(session)}")

    def resume(self, session_id: str) -> None:
        self.show(self.api.get(session_id))

    def show(self, session: dict[str, Any]) -> None:
        """Take up `session`, showing its earlier turns briefly."""
        self.session, self.pin = session, None
        for line in render.history(session):
            self.say(line)
        self.say(render.totals(session))

    # -- a turn --------------------------------------------------------------------------

    def turn(self, text: str) -> None:
        if self.session is None:
            self.session = self.api.create(model=self.pin)
            self.pin = None
        streamed = completed = False
        try:
            events = self.first_event(text)
            with contextlib.closing(events):
                for name, data in events:
                    if name == "turn.started":
                        self.say(render.turn_header(data))
                    elif name == "text.delta":
                        self.say(data.get("text", ""), end="")
                        streamed = True
                    elif name == "tool_use":
                        self.say(f"{chr(10) if streamed else ''}[tool call {data.get('name')}]")
                    elif name == "turn.completed":
                        completed = True
                        self.finish(data, streamed)
                    elif name == "error":
                        error = data.get("error") or {}
                        self.say("\n" if streamed else "", end="")
                        raise ChatError(error.get("message") or "the turn failed")
        except KeyboardInterrupt:
            # The terminal echoed ^C where the cursor was: below the answer, or over it.
            self.say(f"{chr(10) if streamed else self.line_start()}[cancelled]")
            self.say("(Ctrl-C again to leave)")
            self.interrupted = self.cancelled = True
            return
        if not completed:
            self.say("\n" if streamed else "", end="")
            raise ChatError("the answer stopped before the turn completed")

    def first_event(self, text: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The turn's events, the first already read. Just after a cancel the server may
        still be putting that turn away (a 409 for a moment): then wait for it, briefly."""
        attempt = 0
        while True:
            events = self.api.send(self.session["id"], text)
            try:
                first = next(events)
            except StopIteration:
                return events
            except ChatError as exc:
                attempt += 1
                if exc.status != 409 or not self.cancelled or attempt >= CONFLICT_TRIES:
                    raise
                time.sleep(CONFLICT_PAUSE)
                continue
            self.cancelled = False
            return replay(first, events)

    def finish(self, data: dict[str, Any], streamed: bool) -> None:
        turn, summary = data.get("turn") or {}, data.get("session") or {}
        if not streamed and turn.get("text"):
            self.say(turn["text"], end="")  # a server that sent the answer whole
        self.say()
        self.say(render.turn_footer(turn, summary))
        self.session = {**(self.session or {}), **summary}

    def line_start(self) -> str:
        return "\r" if self.out.isatty() else ""

    def goodbye(self) -> None:
        if self.session and self.session.get("id"):
            sid = self.session["id"]
            self.say(f"session {sid}; continue with: metis chat --resume {sid}")


def replay(first: tuple[str, dict[str, Any]], events: Iterator) -> Iterator:
    yield first
    yield from events  # closing this closes `events`, and so the connection
