"""The calls a dead gateway left in its journal, made into events when a gateway starts.

A journal file whose flock can be taken belongs to a process that is gone (kill -9,
OOM, power cut of a container). For each such process, all its files are locked
together, then:

- its finished calls' events (`f`) are journaled again, for the writer (which skips
  ids it already has, so events that were committed before the crash are not doubled;
  the writer process may have read the dead files too);
- each call it started but never finished becomes `route.decided`,
  `llm.call_completed` and `turn.completed` with error_class GATEWAY_STOPPED, the
  usage its stream had reported, priced, and status 0 when the client had no answer
  yet, or the status it was already relaying (200 for a stream cut short). Usage not
  seen is estimated, as `usage_estimated`: input from the request's size, output
  from the text the stream had relayed. Its budget hold in Redis is settled at that
  cost (an in-process hold died with its process);
- the events are journaled again by this process before the dead files are
  deleted, and their ids derive from the request id, so a crash during recovery
  only repeats it.

Only `metis gateway` recovers, at start-up, before it serves: every worker of
`--workers` does, and each dead process is taken by exactly one of them.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import logging
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import orjson
from asgiref.sync import sync_to_async
from ulid import ULID

from analytics.usage import Usage
from analytics.writer import PendingEvent
from gateway import budgets, calls, routing
from gateway.journal import Journal, journal, journal_dir, read

logger = logging.getLogger(__name__)
STOPPED = "GATEWAY_STOPPED"
CHARS_PER_TOKEN = 4
CHUNK = 3000  # events per journal line
LEFTOVER_SECONDS = 60  # a `.new` file this old was never renamed: its process died at once


@dataclass
class Recovered:
    finished: int = 0  # calls whose events were journaled
    stopped: int = 0  # calls in flight, recorded as GATEWAY_STOPPED
    holds: list[tuple[str, dict, Decimal]] = field(default_factory=list)


async def at_start() -> Recovered:
    """Recover every dead journal; settle their Redis holds; wait (a while) for their
    events to be written, so budgets loaded after this see them."""
    try:
        await routing.catalog()  # the operator's price overrides, for pricing
    except Exception as exc:
        logger.warning("recovering calls without the operator's prices (%s)", exc)
    found = await sync_to_async(recover, thread_sensitive=False)(journal_dir(), journal)
    await budgets.release(found.holds)
    if found.finished or found.stopped:
        logger.warning(
            "recovered %d calls from a gateway that did not shut down (%d were in flight: %s)",
            found.finished + found.stopped,
            found.stopped,
            STOPPED,
        )
        await sync_to_async(journal.flush, thread_sensitive=False)(10.0)
    return found


def recover(directory: Path, into: Journal) -> Recovered:
    total = Recovered()
    if not directory.is_dir():
        return total
    runs: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(directory.glob("*.log")):
        run = path.stem.rsplit("-", 1)[0]
        if run != into.run:
            runs[run].append(path)
    for paths in runs.values():
        fds = lock_all(paths)
        if fds is None:
            continue  # alive, or being recovered by another process
        try:
            found = recover_run(paths)
            journaled = [
                into.finished(None, found.events[i : i + CHUNK])
                for i in range(0, len(found.events), CHUNK)
            ]
            if not all(journaled):
                logger.error("could not journal recovered calls: kept %s", paths[0].parent)
                continue
            for path in paths:
                path.unlink(missing_ok=True)
        finally:
            for fd in fds:
                os.close(fd)
        total.finished += found.finished
        total.stopped += found.stopped
        total.holds += found.holds
    remove_leftovers(directory)
    return total


def lock_all(paths: list[Path]) -> list[int] | None:
    """Lock every file of one run, or none: a run is recovered whole, by one process."""
    fds: list[int] = []
    try:
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            fds.append(fd)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                raise FileNotFoundError(path)  # recovered and deleted meanwhile
    except OSError:
        for fd in fds:
            os.close(fd)
        return None
    return fds


def remove_leftovers(directory: Path) -> None:
    for path in directory.glob("*.new"):
        try:
            if time.time() - path.stat().st_mtime < LEFTOVER_SECONDS:
                continue
            fds = lock_all([path])
        except OSError:
            continue
        if fds is not None:
            path.unlink(missing_ok=True)
            os.close(fds[0])


@dataclass
class RunFound(Recovered):
    events: list[PendingEvent] = field(default_factory=list)


def recover_run(paths: list[Path]) -> RunFound:
    finished: dict[str, PendingEvent] = {}
    started: dict[str, dict] = {}
    last_seen: dict[str, dict] = {}
    done: set[str] = set()
    for record in (record for path in paths for record in read(path)):
        kind, request_id = record.get("k"), record.get("id")
        if kind == "s":
            started[request_id] = record
        elif kind == "u":
            last_seen[request_id] = record
        elif kind == "f":
            done.add(request_id)
            for event in record.get("events") or ():
                finished[event["id"]] = PendingEvent(**event)
    found = RunFound(finished=len([r for r in done if r]), events=list(finished.values()))
    for request_id, record in started.items():
        if request_id in done:
            continue
        events, cost = stopped_call(record, last_seen.get(request_id))
        found.events += events
        found.stopped += 1
        if record.get("hold"):
            found.holds.append((request_id, record["hold"], cost or Decimal(0)))
    return found


def stopped_call(started: dict, last: dict | None) -> tuple[list[PendingEvent], Decimal | None]:
    call = started["call"]
    usage = seen_usage(started, last)
    cost, source, cache = calls.priced(started["price_provider"], call["model"], usage)
    at = (last or started)["at"]
    events = calls.events_from(
        call,
        usage=usage,
        cost_usd=cost,
        price_source=source,
        latency_ms=last["ms"] if last else 0.0,
        ttft_ms=last.get("ttft") if last else None,
        overhead_ms=0.0,
        status=last["status"] if last else 0,
        error_class=STOPPED,
        retries=0,
        upstream_request_id=None,
        cache_costs=cache,
        make=fixed_ids(started["id"], at),
    )
    return events, cost


def seen_usage(started: dict, last: dict | None) -> Usage:
    counts = list(last["usage"]) if last else [0] * 6
    estimated = False
    if counts[0] == 0:  # the provider had the whole request: it bills the input
        counts[0] = max(1, started.get("bytes", 0) // CHARS_PER_TOKEN)
        estimated = True
    if counts[1] == 0 and last and last.get("chars"):
        counts[1] = max(1, last["chars"] // CHARS_PER_TOKEN)
        estimated = True
    return Usage(*counts, estimated=estimated)


def fixed_ids(request_id: str, at_us: int):
    """Event ids the same at every attempt: the time the call was last seen, and a
    hash of its request id (2 bits keep the three events in order)."""
    digest = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:10]) & ((1 << 78) - 1)
    counter = itertools.count()

    def make(type_: str, payload: dict, *, gateway_key_id: str | None = None) -> PendingEvent:
        n = next(counter)
        ts = at_us + n
        event_id = str(ULID.from_int(((at_us // 1000) << 80) | (n << 78) | digest))
        return PendingEvent(event_id, type_, ts, orjson.dumps(payload).decode(), gateway_key_id)

    return make
