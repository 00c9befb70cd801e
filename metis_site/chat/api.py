"""The `/sessions/*` API of `metis serve`, as `metis chat` calls it.

Every failure becomes a `ChatError` whose text is one line a person can act on: the
server's own `{"error": {"message"}}`, or what went wrong on the way to it. Money arrives
as JSON numbers with their exact digits and is read as Decimal, never float.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx

from gateway.sse import SSEParser

API_VERSION = "1.0"  # the Metis-API-Version this client was written against


class ChatError(Exception):
    """Something the person at the terminal should read, in one line."""

    def __init__(self, message: str, *, status: int | None = None, kind: str = "") -> None:
        super().__init__(" ".join(message.split()))  # one line, whatever the server sent
        self.status, self.kind = status, kind


def loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)


SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def path(session_id: str) -> str:
    # An id typed as `../x` must not become another path on the server.
    if not SESSION_ID.fullmatch(session_id):
        raise ChatError(f"no session {session_id!r} (/sessions lists yours)", status=404)
    return f"/sessions/{session_id}"


def unreachable(url: str, exc: httpx.TransportError) -> ChatError:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ChatError(f"cannot reach Metis at {url} (is 'metis serve' running?)")
    return ChatError(f"lost the connection to {url}: {exc or type(exc).__name__}")


def check_reachable(url: str) -> None:
    """Before anything is made for a server (a local key), that it is there at all."""
    try:
        httpx.get(f"{url}/health", timeout=10)
    except httpx.TransportError as exc:
        raise unreachable(url, exc) from None


class Sessions:
    """A client of one server with one token; `transport` lets unit tests fake the server."""

    def __init__(self, url: str, token: str, *, transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url,
            headers={
                "Authorization": f"Bearer {token}",
                "Metis-API-Version": API_VERSION,
                "User-Agent": "metis-chat",
            },
            # No read deadline: a long answer may pause, and Ctrl-C is the way out.
            timeout=httpx.Timeout(30, read=None),
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def create(self, *, model: str | None = None) -> dict[str, Any]:
        return self.call("POST", "/sessions", json={"model": model} if model else {})

    def list(self, limit: int = 20) -> list[dict[str, Any]]:
        return self.call("GET", "/sessions", params={"limit": limit})["sessions"]

    def get(self, session_id: str) -> dict[str, Any]:
        return self.call("GET", path(session_id), missing=session_id)

    def pin(self, session_id: str, model: str | None) -> dict[str, Any]:
        return self.call("PATCH", path(session_id), json={"model": model})

    def send(self, session_id: str, content: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield the turn's events as (name, data). Leaving the loop early (Ctrl-C) closes
        the connection, which is how a turn is cancelled."""
        body = {"content": content, "stream": True}
        try:
            url = f"{path(session_id)}/messages"
            with self.http.stream("POST", url, json=body) as reply:
                if reply.status_code >= 400:
                    reply.read()
                    raise self.refusal(reply, missing=session_id)
                if not reply.headers.get("content-type", "").startswith("text/event-stream"):
                    raise self.not_metis(reply)
                parser = SSEParser()
                for chunk in reply.iter_bytes():
                    for event in parser.feed(chunk):
                        if event.data:
                            yield event.event or "message", loads(event.data)
                for event in parser.flush():
                    if event.data:
                        yield event.event or "message", loads(event.data)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None
        except ValueError:  # json.JSONDecodeError: not the event stream of the contract
            raise ChatError("the server sent an event that is not JSON") from None

    def call(self, method: str, path: str, *, missing: str = "", **kwargs: Any) -> Any:
        try:
            reply = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None
        if reply.status_code >= 400:
            raise self.refusal(reply, missing=missing)
        if reply.status_code == 204:
            return None
        try:
            return loads(reply.content)
        except ValueError:
            raise self.not_metis(reply) from None

    def unreachable(self, exc: httpx.TransportError) -> ChatError:
        return unreachable(self.url, exc)

    def refusal(self, reply: httpx.Response, *, missing: str = "") -> ChatError:
        """The server's own message; a few statuses get a hint of what to do about them."""
        kind, message = "", ""
        try:
            body = loads(reply.content)
        except ValueError:
            body = None
        if isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, dict):
                kind, message = str(error.get("type", "")), str(error.get("message", ""))
            elif isinstance(body.get("detail"), str):  # django-ninja's own refusals
                message = body["detail"]
        status = reply.status_code
        if status == 404 and missing and (not message or message.lower().startswith("no session")):
            # Not every 404 here is the session's: an unknown model is one too.
            message = f"no session {missing!r} (/sessions lists yours)"
        elif status == 404 and not message:
            message = f"{self.url} has no /sessions API (is it 'metis serve', up to date?)"
        elif status == 401:
            message = f"the server refused the token: {message or 'unauthorized'}"
        return ChatError(message or f"the server answered HTTP {status}", status=status, kind=kind)

    def not_metis(self, reply: httpx.Response) -> ChatError:
        kind = reply.headers.get("content-type", "no content type").split(";")[0]
        return ChatError(
            f"{self.url} did not answer as Metis does (HTTP {reply.status_code}, {kind});"
            " is --url the address of 'metis serve'?"
        )
