"""The event writer: the one place gateway events are inserted.

The request path only appends to an in-memory queue; a background thread
inserts in batches. No accepted event is lost: a locked or slow database is
retried with backoff, `close()` (run at exit, after uvicorn has drained its
requests on SIGTERM / Ctrl-C) writes everything still queued, and if the
database still refuses then, the rest goes to a spool file in METIS_HOME
that the next writer loads first. An event whose content the database refuses
outright is set aside in METIS_HOME/spool/refused.jsonl, so it cannot hold back
the events after it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from django.conf import settings
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    close_old_connections,
    connection,
    transaction,
)

from analytics import rollup
from analytics.models import Event
from identity.models import GatewayKey

logger = logging.getLogger(__name__)
# What a database says of the content itself, not of its own state: no retry helps.
# (SQLite's driver refuses an integer over 64 bits with OverflowError before the query.)
REFUSED = (DataError, IntegrityError, OverflowError)


@dataclass(frozen=True, slots=True)
class PendingEvent:
    id: str
    type: str
    timestamp_us: int
    payload_json: str
    gateway_key_id: str | None = None


class Clock:
    """Monotonic ULIDs and timestamps: events of one call sort in the order they were
    made, by id and by timestamp_us alike, even within one millisecond."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_us = 0
        self._last_ulid = 0

    def tick(self) -> tuple[str, int]:
        with self._lock:
            now_us = max(time.time_ns() // 1000, self._last_us + 1)
            ms = now_us // 1000
            if ms <= self._last_ulid >> 80:
                value = self._last_ulid + 1
            else:
                # Ids need uniqueness, not secrecy: the fast PRNG, not a syscall per id.
                value = (ms << 80) | random.getrandbits(79)  # top bit clear: room to increment
            self._last_us, self._last_ulid = now_us, value
        return ulid_text(value), now_us


# Crockford's base32 by pairs of digits: 13 lookups for a 26-character ULID, where
# python-ulid's str() took three times as long (four ids per call).
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PAIRS = [a + b for a in CROCKFORD for b in CROCKFORD]


def ulid_text(value: int) -> str:
    """The ULID of a 128-bit integer, as `str(ulid.ULID.from_int(value))` writes it."""
    return "".join([PAIRS[(value >> shift) & 1023] for shift in range(120, -1, -10)])


clock = Clock()


def new_id() -> str:
    return clock.tick()[0]


def make_event(type_: str, payload: dict, *, gateway_key_id: str | None = None) -> PendingEvent:
    event_id, ts = clock.tick()
    return PendingEvent(event_id, type_, ts, orjson.dumps(payload).decode(), gateway_key_id)


class EventWriter:
    def __init__(self, *, batch_size: int = 2000, linger: float = 0.25) -> None:
        self.batch_size = batch_size
        # How long the first event of a batch waits for others. Each transaction costs its
        # rollup upserts, key touches and commit whatever its size, on the gateway's core:
        # at 20 ms they were a fifth of a busy gateway's CPU. Nothing waits on it: calls
        # are journaled, and flush() and close() cut it short.
        self.linger = linger
        self._hurry = False
        self._queue: deque[PendingEvent] = deque()
        self._cv = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._inflight: list[PendingEvent] = []  # the batch the thread is trying to insert
        # Set by close() when the thread outlived its grace: its batch is spooled, so it
        # must write nothing more (a late success would land behind the spool's back).
        self._abandoned = False
        self._attempting = threading.Lock()  # held by the thread for one insert attempt
        self.written = 0
        # Positions in the FIFO queue: every event up to `committed` is in the database,
        # spooled or set aside (gateway/journal.py deletes its files by this).
        self._submitted = 0
        self._taken = 0
        self._done: dict[int, int] = {}  # first position of a finished batch -> its last
        self.committed = 0
        self._spooled: list[tuple[int, Path]] = []  # spool files loaded, until committed
        # Off in a gateway whose writer process loads the spool: two loaders could both
        # find a spooled call not yet recorded, and sum it twice into the rollups.
        self.loads_spool = True

    def submit(self, events: Iterable[PendingEvent]) -> int:
        """Queue the events; returns the position the writer must reach to have them all."""
        with self._cv:
            before = len(self._queue)
            self._queue.extend(events)
            self._submitted += len(self._queue) - before
            if self._thread is None and not self._closed:
                self._start()
            position = self._submitted
            if not before or len(self._queue) >= self.batch_size:
                # Only the idle thread needs waking, or a full batch: a wake-up per call
                # would hand the writer the GIL for nothing.
                self._cv.notify()
        if self._closed:  # late events after shutdown began: write them ourselves
            self._drain()
        return position

    def _start(self) -> None:
        if self.loads_spool:
            self._load_spool()
        self._thread = threading.Thread(target=self._run, name="metis-event-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if self._abandoned or (not self._queue and self._closed):
                    return
                deadline = time.monotonic() + self.linger  # let a burst gather
                while not (self._closed or self._hurry or len(self._queue) >= self.batch_size):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cv.wait(remaining)
                self._hurry = False
            self._drain()

    def _drain(self, *, give_up_after: float | None = None) -> None:
        mine = threading.current_thread() is self._thread
        while True:
            with self._cv:
                if not self._queue or (mine and self._abandoned):
                    self._cv.notify_all()
                    return
                batch = [
                    self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))
                ]
                first = self._taken + 1
                self._taken += len(batch)
                self._busy = True
                if mine:
                    self._inflight = batch
            try:
                self._insert(batch, give_up_after=give_up_after)
                with self._cv:
                    self._finished(first, first + len(batch) - 1)
            finally:
                with self._cv:
                    self._busy = False
                    if mine:
                        self._inflight = []
                    self._cv.notify_all()

    def _insert(self, batch: list[PendingEvent], *, give_up_after: float | None) -> None:
        started, attempt = time.monotonic(), 0
        mine = threading.current_thread() is self._thread
        while True:
            try:
                with self._attempting if mine else contextlib.nullcontext():
                    if mine and self._abandoned:
                        return  # close() spooled this batch
                    with transaction.atomic():
                        insert_events(batch)
                        record_calls(batch)
                        touch_keys(batch)
                self.written += len(batch)
                return
            except REFUSED as exc:
                self._isolate(batch, exc, give_up_after=give_up_after)
                return
            except (DatabaseError, InterfaceError) as exc:
                # The database's state, not the content: locked, restarting, connection lost
                # (InterfaceError is "connection already closed"). Retried until it is back.
                attempt += 1
                if give_up_after is not None and time.monotonic() - started > give_up_after:
                    spool(batch)
                    return
                log = logger.warning if attempt < 5 else logger.error
                log("event write failed (attempt %d, %d events held): %s", attempt, len(batch), exc)
                with contextlib.suppress(DatabaseError, InterfaceError):
                    close_old_connections()
                    connection.close()  # the next attempt connects afresh
                time.sleep(min(0.05 * 2**attempt, 2.0))
            except Exception as exc:  # a bug in building the rows must not kill the thread
                logger.exception("event write failed on its content")
                # Nor leave a transaction open behind it: an exception raised while Django
                # ended the block (seen in tests) kept one, whose locks then held every
                # TRUNCATE and DDL of the database. Closing rolls it back.
                with contextlib.suppress(Exception):
                    connection.close()
                self._isolate(batch, exc, give_up_after=give_up_after)
                return

    def write(self, batch: list[PendingEvent]) -> None:
        """Insert `batch` now, in the calling thread, retried and isolated as the thread's
        batches are (the writer process, gateway/writer_process.py)."""
        self._insert(batch, give_up_after=None)

    def _finished(self, first: int, last: int) -> None:
        self._done[first] = last
        while self.committed + 1 in self._done:
            self.committed = self._done.pop(self.committed + 1)
        while self._spooled and self._spooled[0][0] <= self.committed:
            self._spooled.pop(0)[1].unlink(missing_ok=True)

    def _isolate(
        self, batch: list[PendingEvent], exc: BaseException, *, give_up_after: float | None
    ) -> None:
        """The database refuses this content however often it is asked (a NUL in a
        PostgreSQL text column, an integer out of range): retrying would hold back every
        later event. Halve the batch until the refused events stand alone, and set them
        aside."""
        if len(batch) == 1:
            set_aside(batch[0], exc)
            return
        half = len(batch) // 2
        self._insert(batch[:half], give_up_after=give_up_after)
        self._insert(batch[half:], give_up_after=give_up_after)

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every submitted event is in the database (tests, shutdown). The bound
        is generous: 5,000 calls' events on a loaded PostgreSQL took more than 10 s in CI."""
        deadline = time.monotonic() + timeout
        with self._cv:
            self._hurry = True
            self._cv.notify_all()
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cv.wait(remaining)
        return True

    def close(self) -> None:
        with self._cv:
            if self._closed:
                return
            self._closed = True
            self._cv.notify_all()
        if self._thread is not None:
            grace = settings.METIS_EVENT_SHUTDOWN_SECONDS
            self._thread.join(timeout=grace)
            if self._thread.is_alive():
                # Still retrying a batch: stop it between attempts and spool the batch (an
                # attempt that outlasts a second grace may land too: ids dedupe on load).
                got = self._attempting.acquire(timeout=grace)
                try:
                    with self._cv:
                        self._abandoned = True
                        stuck = list(self._inflight)
                finally:
                    if got:
                        self._attempting.release()
                if stuck:
                    spool(stuck)
        # Whatever the thread could not write in time: try once more, then spool.
        self._drain(give_up_after=settings.METIS_EVENT_SHUTDOWN_SECONDS)

    def _load_spool(self) -> None:
        """Queue the spooled events first; each file is deleted once its events are in
        (a crash before that loads it again: ids make that harmless)."""
        loaded: list[tuple[list[PendingEvent], Path]] = []
        for path in sorted(spool_dir().glob("events-*.jsonl")):
            rows = [PendingEvent(**orjson.loads(line)) for line in path.read_bytes().splitlines()]
            loaded.append((rows, path))
            logger.warning("loaded %d spooled events from %s", len(rows), path)
        # Ahead of the events already queued, which move back by as many positions.
        for rows, _ in reversed(loaded):
            self._queue.extendleft(reversed(rows))
        position = self._taken
        for rows, path in loaded:
            position += len(rows)
            self._spooled.append((position, path))
        self._submitted += position - self._taken


def insert_events(batch: list[PendingEvent]) -> None:
    # A plain executemany: the ORM's bulk_create spent more CPU building SQL than
    # the database spent inserting. Conflicts are skipped: a spooled batch may have
    # landed before the process died.
    table = connection.ops.quote_name(Event._meta.db_table)
    sql = (
        f"INSERT INTO {table} (id, type, timestamp_us, payload_json) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (id) DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, [(e.id, e.type, e.timestamp_us, e.payload_json) for e in batch])


def record_calls(batch: list[PendingEvent]) -> None:
    """Typed `Call` rows and `CallHour` rollups for the batch's completed calls (analytics
    reads them); in the events' transaction, so they never disagree with the record."""
    rollup.record([(e.id, e.type, e.timestamp_us, e.payload_json) for e in batch])


def touch_keys(batch: list[PendingEvent]) -> None:
    last: dict[str, int] = {}
    for e in batch:
        if e.gateway_key_id:
            last[e.gateway_key_id] = max(last.get(e.gateway_key_id, 0), e.timestamp_us)
    for key_id, ts in last.items():
        GatewayKey.objects.filter(pk=key_id).update(
            last_used_at=datetime.fromtimestamp(ts / 1e6, tz=UTC)
        )


def set_aside(event: PendingEvent, exc: BaseException) -> None:
    """Keep an event the database refused where an operator finds it, out of the spool
    (which is loaded again at every start), and say so loudly."""
    path = spool_dir()
    path.mkdir(parents=True, exist_ok=True)
    with (path / "refused.jsonl").open("ab") as refused:
        refused.write(orjson.dumps(event) + b"\n")
    logger.error("the database refused event %s (%s): %s; kept in %s",
                 event.id, event.type, exc, path / "refused.jsonl")  # fmt: skip


def spool_dir() -> Path:
    return Path(settings.METIS_HOME) / "spool"


def spool(batch: list[PendingEvent]) -> None:
    path = spool_dir()
    path.mkdir(parents=True, exist_ok=True)
    target = path / f"events-{time.time_ns()}.jsonl"
    target.write_bytes(b"\n".join(orjson.dumps(e) for e in batch))  # orjson encodes dataclasses
    logger.error("database unavailable at shutdown: spooled %d events to %s", len(batch), target)


writer = EventWriter()
