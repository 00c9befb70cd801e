"""What `metis chat` prints about turns and sessions: pure functions of the API's objects."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

CLIP = 72  # a resumed session's earlier turns are shown one line each, clipped to this


def money(amount: Any) -> str:
    """`$0.000546`: the exact digits the server sent, never an exponent or float noise."""
    value = Decimal(str(amount if amount is not None else 0))
    return f"${value:f}"


def clip(text: str | None, width: int = CLIP) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[: width - 1] + "…"


def turn_header(started: dict[str, Any]) -> str:
    """The model the server chose for this turn, and the routing step that chose it."""
    return f"[{started.get('model') or '?'} · {started.get('decided_by') or '?'}]"


def turn_footer(turn: dict[str, Any], session: dict[str, Any]) -> str:
    parts = [
        f"{turn.get('input_tokens', 0)} in",
        f"{turn.get('output_tokens', 0)} out",
        money(turn.get("cost_usd")),
        f"session {money(session.get('total_cost_usd'))}",
    ]
    return f"[{' · '.join(parts)}]"


def session_line(session: dict[str, Any]) -> str:
    """One row of /sessions."""
    turns = session.get("turn_count", 0)
    pinned = f" · pinned {session['model']}" if session.get("model") else ""
    title = clip(session.get("title") or "", 40)
    return (
        f"{session['id']}  {str(session.get('updated_at', ''))[:16].replace('T', ' ')}  "
        f"{turns} turn{'s' if turns != 1 else ''} · {money(session.get('total_cost_usd'))}"
        f"{pinned}{'  ' + title if title else ''}"
    )


def history(session: dict[str, Any]) -> list[str]:
    """A resumed session's earlier turns, briefly: what was asked, who answered, the cost."""
    lines = []
    for turn in session.get("turns", []):
        asked = turn.get("user_message")
        if asked is None and turn.get("tool_results"):
            asked = f"({len(turn['tool_results'])} tool result(s))"
        lines.append(f"you> {clip(asked)}")
        status = turn.get("status", "completed")
        answer = clip(turn.get("text"), CLIP - 10) or "(no text)"
        if status != "completed":
            answer = f"({status}) {answer if turn.get('text') else ''}".rstrip()
        lines.append(f"  [{turn.get('model') or '?'} · {money(turn.get('cost_usd'))}] {answer}")
    return lines


def totals(session: dict[str, Any]) -> str:
    turns = session.get("turn_count", len(session.get("turns", [])))
    pinned = f", pinned to {session['model']}" if session.get("model") else ""
    return (
        f"session {session['id']}: {turns} turn{'s' if turns != 1 else ''}, "
        f"{money(session.get('total_cost_usd'))} so far{pinned}"
    )


HELP = """\
  type a message and press Enter; the answer streams in
  /model NAME    pin this session to a model (an alias like sonnet, or a model id)
  /model         unpin (also /model off): the server's routing chooses each turn
  /new           start a new session
  /sessions      list your recent sessions
  /resume ID     continue another session
  /help          this list
  /quit          leave (also Ctrl-D, or Ctrl-C twice)
  Ctrl-C while an answer streams cancels that turn"""
