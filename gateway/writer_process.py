"""The writer process: the events of finished calls, from the journal into the database.

`metis gateway` starts it (metis_site/servers.py), one per METIS_HOME whatever the number
of workers: the inserts, rollups and key touches then run on another core than the event
loop's, under another GIL. The gateway's hot path only appends its `f` line.

It tails every journal file (gateway/journal.py), reads the `f` records of the complete
lines after the offset it has committed for that file, inserts their events in one
transaction per batch (the event writer's own insert code, retries and set-aside), and
then publishes the files' committed byte offsets in METIS_HOME/writer/committed. A
gateway deletes a file of its own once that offset reaches the file's end (and its calls
are finished), so deleting stays with the owner and its flock, as recovery expects; the
writer only reads. A crash between insert and publish reads a batch again: event ids are
primary keys, and a `Call` already recorded is not summed again (analytics/rollup.py).

Only one runs per METIS_HOME: it holds METIS_HOME/writer/lock; a second waits for it.
SIGTERM or SIGINT: it reads until nothing new is left, writes it, and exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import time
from pathlib import Path

import orjson

from analytics.writer import EventWriter, PendingEvent
from gateway.journal import committed_path, journal_dir, read_committed

logger = logging.getLogger(__name__)
POLL_SECONDS = 0.2  # an idle pass; also how long a batch gathers
READ_BYTES = 16 << 20  # per file per pass: a long backlog goes in several batches
FINISHED = b'{"k":"f"'  # orjson keeps the order the journal wrote the keys in


class Tailer:
    """The `f` records of the journal files, from the offsets already committed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        names = {path.name for path in directory.glob("*.log")}
        self.offsets = {name: n for name, n in read_committed().items() if name in names}

    def read(self) -> tuple[list[PendingEvent], dict[str, int]]:
        """The new events (each once), and the offsets to commit once they are in."""
        events: dict[str, PendingEvent] = {}
        offsets: dict[str, int] = {}
        for path in sorted(self.directory.glob("*.log")):  # a run's files in their order
            start = self.offsets.get(path.name, 0)
            try:
                with path.open("rb") as file:
                    file.seek(start)
                    data = file.read(READ_BYTES)
                    if len(data) == READ_BYTES and b"\n" not in data:
                        data += file.read()  # one line longer than a pass reads
            except FileNotFoundError:
                continue  # deleted by its gateway, or by recovery
            complete = data.rfind(b"\n") + 1  # a line being written is read next time
            for line in data[:complete].splitlines():
                if not line.startswith(FINISHED):
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    logger.warning("skipped a torn record in %s", path)
                    continue
                for event in record.get("events") or ():
                    events[event["id"]] = PendingEvent(**event)
            offsets[path.name] = start + complete
        return list(events.values()), offsets

    def commit(self, offsets: dict[str, int]) -> None:
        if offsets == self.offsets:
            return
        self.offsets = offsets
        path = committed_path()
        temporary = path.with_suffix(".new")
        temporary.write_bytes(orjson.dumps(offsets))
        os.replace(temporary, path)


def run() -> int:
    stopping = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.append(True))
    home = committed_path().parent
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    with (home / "lock").open("a") as lock:
        while True:  # a standby behind another gateway's writer, until it goes
            with contextlib.suppress(BlockingIOError):
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            if stopping:
                return 0
            time.sleep(0.5)
        with contextlib.suppress(OSError):  # gateways then write through their threads
            journal_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
        tail(Tailer(journal_dir()), stopping)
    return 0


def tail(tailer: Tailer, stopping: list) -> None:
    spooled = EventWriter()  # what a gateway's thread could not write at its last stop
    spooled.submit([])
    spooled.close()  # written, or spooled again if the database still refuses
    events = EventWriter()
    while True:
        last_pass = bool(stopping)  # everything written before the signal is read now
        batch, offsets = tailer.read()
        for i in range(0, len(batch), events.batch_size):
            events.write(batch[i : i + events.batch_size])
        tailer.commit(offsets)
        if last_pass and not batch:
            return
        if not stopping:
            time.sleep(POLL_SECONDS)  # each transaction costs its rollups: let calls gather
