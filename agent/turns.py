"""A turn the provider is answering, read whole or relayed to the client as server-sent
events, and stored when it ends, however it ends (a client that leaves cancels it).

One turn runs at a time in a session; a second gets a 409 while the first runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any

import orjson
from asgiref.sync import sync_to_async

from agent import conversation, pipeline, store
from agent.access import Refused, Who, caller_for_key
from agent.conversation import Answer
from agent.models import AgentSession
from analytics.api import _default
from gateway import calls
from gateway.calls import Call
from gateway.shapes import internal

logger = logging.getLogger(__name__)

# Sessions with a turn in flight (one at a time each). Weak: a turn whose response was
# dropped unread (the client left between the view's return and its first byte) frees
# its session when it is collected.
_running: weakref.WeakValueDictionary[str, RunningTurn] = weakref.WeakValueDictionary()


async def start(who_: Who, session: AgentSession, turns: list, pin: str | None,
                message: str | None, results: list | None) -> RunningTurn:  # fmt: skip
    """Route the turn and send it upstream (refusals raise); the session is busy from here
    until the turn is stored."""
    if session.id in _running:
        raise Refused(409, "conflict_error", "A turn is already running in this session; "
                      "wait for it or cancel it.")  # fmt: skip
    _running[session.id] = placeholder = RunningTurn.placeholder()
    try:
        turn = await send(who_, session, turns, pin, message, results)
    finally:
        _running.pop(session.id, None)
        del placeholder
    _running[session.id] = turn
    return turn


async def send(who_: Who, session: AgentSession, turns: list, pin: str | None,
               message: str | None, results: list | None) -> RunningTurn:  # fmt: skip
    caller = await caller_for_key(who_, session.gateway_key_id)
    route = await pipeline.route(caller, pin, tools=bool(session.tools))
    request = internal.Request(
        model=route.model,
        messages=[*conversation.history(turns), conversation.asked(message, results)],
        system=[internal.Text(session.system)] if session.system else [],
        tools=conversation.tools_of(session),
    )
    prepared = pipeline.prepare(caller, route, request)
    turn = RunningTurn(session.id, store.new_turn_id(), prepared.call, message, results)
    try:
        turn.started = await pipeline.start(prepared)
    except asyncio.CancelledError:  # the client left before the provider answered
        await turn.store("cancelled")
        raise
    turn.consumed = False
    return turn


class RunningTurn:
    """A turn the provider is answering: read whole, or relayed as events; stored when it
    ends, cancelled or not."""

    def __init__(self, session_id: str, turn_id: str, call: Call, message: str | None,
                 results: list | None) -> None:  # fmt: skip
        self.session_id, self.turn_id, self.call = session_id, turn_id, call
        self.message, self.results = message, results
        self.started: pipeline.Started | None = None  # once the provider answered
        self.answer = Answer()
        self.consumed = True  # False from its start until its events are read

    @classmethod
    def placeholder(cls) -> RunningTurn:
        """Holds a session's place while its turn is being routed and sent."""
        turn = cls.__new__(cls)
        turn.consumed = True
        return turn

    def __del__(self) -> None:
        if self.consumed or self.started is None:
            return
        # Never read: the client left before the first byte. Close the provider's
        # connection and record the call as the relay would have.
        self.started.response.close()
        self.call.error_class = "CANCELLED"
        calls.record(self.call)

    def head(self) -> dict:
        route = self.call.route
        return {"turn_id": self.turn_id, "model": route.model, "provider": route.upstream.name,
                "decided_by": route.decided_by}  # fmt: skip

    async def whole(self) -> dict:
        self.consumed, status = True, "cancelled"
        try:
            async with contextlib.aclosing(pipeline.events(self.started)) as events:
                async for event in events:
                    self.answer.read(event)
            status = "error" if self.answer.error else "completed"
        finally:
            saved = await self.store(status)
        if self.answer.error and status == "error":
            raise Refused(502, "api_error", self.answer.error)
        return saved

    async def sse(self) -> AsyncIterator[bytes]:
        self.consumed, status = True, "cancelled"
        try:
            yield event_bytes("turn.started", self.head())
            async with contextlib.aclosing(pipeline.events(self.started)) as events:
                async for event in events:
                    if (out := self.answer.read(event)) is None:
                        continue
                    kind, value = out
                    if kind == "text":
                        yield event_bytes("text.delta", {"text": value})
                    else:
                        yield event_bytes("tool_use", value)
            status = "error" if self.answer.error else "completed"
        finally:
            saved = await self.store(status)
        if status == "error":
            yield event_bytes("error", {"error": {"type": "api_error",
                                                  "message": self.answer.error}})  # fmt: skip
        else:
            yield event_bytes("turn.completed", saved)

    async def store(self, status: str) -> dict:
        """Store the turn, even when the task is being cancelled (shielded)."""
        try:
            return await asyncio.shield(asyncio.ensure_future(self._store(status)))
        finally:
            if _running.get(self.session_id) is self:
                del _running[self.session_id]

    async def _store(self, status: str) -> dict:
        call, answer_ = self.call, self.answer
        outcome = store.Outcome(
            turn_id=self.turn_id, status=status, user_message=self.message,
            tool_results=self.results, text=answer_.text, tool_calls=answer_.tool_calls,
            stop_reason=answer_.stop_reason, error=answer_.error, model=call.route.model,
            provider=call.route.upstream.name, decided_by=call.route.decided_by,
            call_id=call.request_id, usage=call.usage, cost_usd=call.cost_usd,
        )  # fmt: skip
        try:
            saved = await sync_to_async(store.save_turn)(self.session_id, outcome)
        except Exception:
            logger.exception("could not store turn %s of %s", self.turn_id, self.session_id)
            raise
        if saved is None:
            return {"turn": None, "session": None}
        turn, session = saved
        return {"turn": store.turn_json(turn), "session": store.summary(session)}


def event_bytes(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data, default=_default) + b"\n\n"
