"""What the gateway reads from the database, kept off the hot path.

A value is loaded on the shared executor (never on the event loop, never on a
per-request thread), reused for METIS_KEY_CACHE_SECONDS, and loaded once at a
time: when an entry expires under load, one query refreshes it and the other
requests for it wait for that same result. An entry in use is refreshed ahead, once
past half its lifetime, while it is still served: under steady traffic no request
waits for a load. A load runs on another thread, and while the event loop is busy
that thread gets the GIL back only every switch interval (5 ms) after each database
call: profiled with 64 streams started together, requests queued 50-150 ms behind
one expired key or route. A change saved anywhere also drops
every cache at once (gateway/invalidation.py); the lifetime is the bound only
when that message cannot arrive.

When the database is away (a PostgreSQL restart), a value that was loaded before
is kept and tried again after another lifetime: cached keys keep authenticating;
one never loaded gets a 503 in the caller's shape.
The loading thread's connection is closed once it has failed, so the next load
connects afresh (the gateway has no per-request hook that would do it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, InterfaceError, connections

from gateway.errors import GatewayError

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


_every_cache: list[LoadCache] = []


def forget_everything() -> None:
    """Drop every cached value: something they were loaded from has changed."""
    for cache in _every_cache:
        cache.clear()


class LoadCache(Generic[K, V]):
    def __init__(self, load: Callable[[K], V], *, max_entries: int = 10_000) -> None:
        _every_cache.append(self)
        self._load = sync_to_async(with_fresh_connections(load), thread_sensitive=False)
        self._max_entries = max_entries
        self._values: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}
        self._generation = 0  # one more at each clear(): a load begun before it is not kept

    async def get(self, key: K) -> V:
        cached = self._values.get(key)
        if cached is not None:
            age, lifetime = time.monotonic() - cached[0], settings.METIS_KEY_CACHE_SECONDS
            if age < lifetime:
                if age >= lifetime / 2:  # refreshed ahead, so that no request waits for it
                    self._loading_of(key)
                return cached[1]
        return await asyncio.shield(self._loading_of(key))

    def _loading_of(self, key: K) -> asyncio.Future[V]:
        """The load of `key` under way, or a new one: one query however many ask."""
        pending = self._loading.get(key)
        if pending is None or pending.get_loop() is not asyncio.get_running_loop():
            pending = self._loading[key] = asyncio.ensure_future(self._refresh(key))
            pending.add_done_callback(lambda done: self._loaded(key, done))
        return pending

    def _loaded(self, key: K, done: asyncio.Future[V]) -> None:
        if self._loading.get(key) is done:
            del self._loading[key]
        if not done.cancelled():
            done.exception()  # read: an early refresh nobody awaited must not log "never retrieved"

    async def _refresh(self, key: K) -> V:
        # Its age counts from the query, and a clear() while it runs (a change saved, say a
        # revoked key) means it may have read what changed: served to those waiting, not kept.
        began, generation = time.monotonic(), self._generation
        try:
            value = await self._load(key)
        except (DatabaseError, InterfaceError) as exc:
            complain(exc)
            cached = self._values.get(key)
            if cached is None:
                raise unavailable() from None
            self._values[key] = (time.monotonic(), cached[1])
            return cached[1]
        if generation != self._generation:
            return value
        if len(self._values) >= self._max_entries:  # unknown tokens are cached too: stay bounded
            self._values.clear()
        self._values[key] = (began, value)
        return value

    def peek(self, key: K) -> V | None:
        """The last loaded value, however old; None before the first load."""
        cached = self._values.get(key)
        return cached[1] if cached is not None else None

    def clear(self) -> None:
        self._generation += 1
        self._values.clear()
        self._loading.clear()


def with_fresh_connections(load: Callable[[K], V]) -> Callable[[K], V]:
    def run(key: K) -> V:
        close_broken_connections()  # left broken by an earlier query on this thread
        try:
            return load(key)
        except (DatabaseError, InterfaceError):
            close_broken_connections()
            raise

    return run


def close_broken_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if not connection.errors_occurred:
            # Kept, whatever CONN_MAX_AGE says: SQLite's is 0, and connecting afresh for
            # every load (its PRAGMAs included) was a quarter of each load's time.
            continue
        try:
            connection.close_if_unusable_or_obsolete()
        except (DatabaseError, InterfaceError):
            connection.close()


def unavailable() -> GatewayError:
    return GatewayError(
        503,
        "Metis cannot reach its database right now and has not loaded this key or route "
        "before; try again shortly.",
        error_class="DATABASE_UNAVAILABLE",
        code="database_unavailable",
        headers={"retry-after": "2"},
    )


_last_complaint = 0.0


def complain(exc: Exception) -> None:
    global _last_complaint
    if time.monotonic() - _last_complaint > 10:
        _last_complaint = time.monotonic()
        logger.error("DATABASE UNAVAILABLE (%s): serving keys and routes as last loaded", exc)
