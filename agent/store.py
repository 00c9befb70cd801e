"""Sessions and turns in the database, and as the API shows them (sync: run them through
sync_to_async from the views)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction

from agent.access import not_found
from agent.models import AgentSession, Turn
from analytics.scope import Viewer
from analytics.usage import Usage
from analytics.writer import new_id


def new_session_id() -> str:
    return f"ses_{new_id()}"


def new_turn_id() -> str:
    return f"turn_{new_id()}"


def visible(viewer: Viewer):
    return AgentSession.objects.filter(viewer.q())


def get(viewer: Viewer, session_id: str) -> AgentSession:
    session = visible(viewer).filter(pk=session_id).first()
    if session is None:
        raise not_found(session_id)
    return session


def turns_of(session: AgentSession) -> list[Turn]:
    # A turn and the session's count are committed together, but read in two statements:
    # a turn stored between them would show without its count and totals. Turns below the
    # count are exactly those the session row already counts.
    return list(session.turns.filter(index__lt=session.turn_count).order_by("index"))


def summary(session: AgentSession) -> dict[str, Any]:
    return {
        "id": session.id,
        "title": session.title,
        "model": session.model or None,
        "created_at": session.created_at,
        "updated_at": session.updated_at,
        "turn_count": session.turn_count,
        "total_cost_usd": session.total_cost_usd,
        "total_input_tokens": session.total_input_tokens,
        "total_output_tokens": session.total_output_tokens,
        "key_id": session.gateway_key_id,
        "user": session.user or None,
        "team": session.team or None,
        "workspace": session.workspace,
    }


def whole(session: AgentSession) -> dict[str, Any]:
    turns = [turn_json(t) for t in turns_of(session)]
    return {**summary(session), "system": session.system, "tools": session.tools, "turns": turns}


def turn_json(turn: Turn) -> dict[str, Any]:
    return {
        "id": turn.id,
        "index": turn.index,
        "status": turn.status,
        "user_message": None if turn.tool_results else turn.user_message,
        "tool_results": turn.tool_results,
        "text": turn.text,
        "tool_calls": turn.tool_calls,
        "stop_reason": turn.stop_reason or None,
        "error": turn.error or None,
        "model": turn.model,
        "provider": turn.provider,
        "decided_by": turn.decided_by,
        "call_id": turn.call_id,
        "input_tokens": turn.input_tokens,
        "output_tokens": turn.output_tokens,
        "cache_read_tokens": turn.cache_read_tokens,
        "cache_write_tokens": turn.cache_write_tokens,
        "cost_usd": turn.cost_usd,
        "created_at": turn.created_at,
    }


@dataclass
class Outcome:
    """What a turn came to, to store."""

    turn_id: str
    status: str
    user_message: str | None
    tool_results: list | None
    text: str
    tool_calls: list[dict]
    stop_reason: str
    error: str
    model: str
    provider: str
    decided_by: str
    call_id: str
    usage: Usage
    cost_usd: Decimal | None


def save_turn(session_id: str, outcome: Outcome) -> tuple[Turn, AgentSession] | None:
    """Store the turn and add it to the session's totals; None if the session was deleted
    meanwhile (its call is recorded all the same)."""
    usage = outcome.usage
    with transaction.atomic():
        session = AgentSession.objects.select_for_update().filter(pk=session_id).first()
        if session is None:
            return None
        turn = Turn.objects.create(
            id=outcome.turn_id,
            session=session,
            index=session.turn_count,
            status=outcome.status,
            user_message=outcome.user_message or "",
            tool_results=outcome.tool_results,
            text=outcome.text,
            tool_calls=outcome.tool_calls,
            stop_reason=outcome.stop_reason,
            error=outcome.error,
            model=outcome.model,
            provider=outcome.provider,
            decided_by=outcome.decided_by,
            call_id=outcome.call_id,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cost_usd=outcome.cost_usd,
        )
        # One turn at a time runs in a session (agent/api.py), and this row is locked.
        session.turn_count += 1
        session.total_cost_usd += outcome.cost_usd or Decimal(0)
        session.total_input_tokens += usage.input_tokens
        session.total_output_tokens += usage.output_tokens
        session.save(update_fields=["turn_count", "total_cost_usd", "total_input_tokens",
                                    "total_output_tokens", "updated_at"])  # fmt: skip
    return turn, session
