"""The call journal: what a `kill -9` must not take with it.

Each gateway process appends to its own files, METIS_HOME/journal/<pid>-<run>-<seq>.log
(0600), one `os.write` of one JSON line per record:

- `s` when a call is sent upstream: who, what, where, its budget hold;
- `u` when a stream's first bytes arrive and whenever its usage changes;
- `f` with the call's finished events.

No fsync: a killed process loses nothing the kernel already holds, and a power loss
is another matter (see the README). Who writes the `f`s' events to the database:

- under `metis gateway`, the writer process (gateway/writer_process.py) reads them
  from the files; it publishes how many bytes of each file it has committed;
- otherwise (a gateway run in a test's thread, METIS_EVENT_WRITER_PROCESS=0), and for
  any `f` that could not be journaled, the in-process event writer: its queue is
  FIFO, so "committed up to position N" says which `f`s are in the database.

A file is deleted, by its own process, once it is not the newest, every call started
in it has finished, and all its events are committed; files go oldest first, so an
`s` never outlives its `f`.

Every live process holds an exclusive flock on each of its files: a file whose lock
can be taken belongs to a dead process, and `gateway.recovery` turns it into events.
"""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from django.conf import settings

from analytics.writer import new_id, writer

if TYPE_CHECKING:
    from analytics.writer import EventWriter, PendingEvent

logger = logging.getLogger(__name__)
ROTATE_RECORDS = 5000
ROTATE_SECONDS = 2.0
COMMITTED_CHECK_SECONDS = 0.25  # how often the writer process's offsets are read again
# A file still held by calls in flight this long has their lines copied forward and goes:
# a 20-minute stream (or a call that was never recorded) must not keep every later file.
CARRY_SECONDS = 600.0


def write_holding_gil(fd: int, line: bytes) -> None:
    """`os.write`, without letting go of the GIL. A write to the page cache takes
    microseconds, but `os.write` releases the GIL for it, and the event loop then waits for
    whichever thread took it (the event writer building its rows, a cache load) to hand it
    back, up to the 5 ms switch interval: measured under load, 450 µs per journal write on
    average, against 40 µs holding it. The loop is blocked during the write either way."""
    if _libc_write is None:
        os.write(fd, line)
    elif _libc_write(fd, line, len(line)) < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


try:  # libc's write() through ctypes.PyDLL, which (unlike CDLL) keeps the GIL
    _libc_write = ctypes.PyDLL(None, use_errno=True).write
    _libc_write.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
    _libc_write.restype = ctypes.c_ssize_t
except (OSError, AttributeError):  # no C library to call
    _libc_write = None


def journal_dir() -> Path:
    return Path(settings.METIS_HOME) / "journal"


def committed_path() -> Path:
    """Where the writer process publishes, per journal file, the bytes it has committed
    (outside the journal directory, which a clean stop leaves empty)."""
    return Path(settings.METIS_HOME) / "writer" / "committed"


def read_committed() -> dict[str, int]:
    try:
        return orjson.loads(committed_path().read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}


@dataclass(slots=True, eq=False)
class Segment:
    path: Path
    fd: int
    opened: float
    records: int = 0
    size: int = 0  # bytes written
    open_calls: int = 0  # calls whose latest start lines are here and who have no `f` yet
    last_position: int = 0  # the writer position of the newest `f` written here


def open_locked(path: Path) -> int:
    """Create `path` already locked: made under a temporary name and renamed, so a
    recovering process never sees it unlocked."""
    temporary = path.with_suffix(".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.rename(temporary, path)
    return fd


class Journal:
    def __init__(
        self,
        events: EventWriter = writer,
        *,
        rotate_records: int = ROTATE_RECORDS,
        carry_seconds: float = CARRY_SECONDS,
    ) -> None:
        self.writer = events
        self.rotate_records = rotate_records
        self.carry_seconds = carry_seconds
        self.by_process = False  # a writer process reads the `f`s (use_writer_process())
        self._committed: dict[str, int] = {}
        self._committed_read = 0.0
        self._begin()
        os.register_at_fork(after_in_child=self._begin)

    def _begin(self) -> None:
        """A fresh run: at start, and in a forked child (whose parent keeps the files,
        and the locks, it inherited)."""
        self.run = f"{os.getpid()}-{new_id()}"
        self._lock = threading.Lock()  # (another thread may have held the parent's)
        self._segments: list[Segment] = []
        self._open: dict[str, tuple[Segment, list[bytes]]] = {}  # call -> its `s`, last `u`
        self._seq = 0
        self._broken_since = 0.0  # when writing last failed; retried after a while

    # -- the hot path ---------------------------------------------------------------

    def started(self, request_id: str, record: dict) -> None:
        line = orjson.dumps(record) + b"\n"
        with self._lock:
            segment = self._append(line)
            if segment is not None:
                segment.open_calls += 1
                self._open[request_id] = (segment, [line])

    def progress(self, request_id: str, record: dict) -> None:
        line = orjson.dumps(record) + b"\n"
        with self._lock:
            self._append(line)
            if (entry := self._open.get(request_id)) is not None:
                entry[1][1:] = [line]

    def finished(self, request_id: str | None, events: list[PendingEvent]) -> bool:
        """Write the call's events; the writer process takes them from here. Without one,
        or when they could not be journaled, hand them to the in-process writer too, in
        that order: a crash between the two finds them here; after, the writer's position
        tells when they are in. False when they could not be journaled."""
        # orjson writes the PendingEvent dataclasses as objects; recovery reads them back.
        line = orjson.dumps({"k": "f", "id": request_id, "events": events}) + b"\n"
        with self._lock:
            segment = self._append(line)
            if segment is None or not self.by_process:
                position = self.writer.submit(events)
                if segment is not None:
                    segment.last_position = max(segment.last_position, position)
            if request_id is not None and (entry := self._open.pop(request_id, None)):
                entry[0].open_calls -= 1
            self._collect()
            return segment is not None

    # -- segments -------------------------------------------------------------------

    def _append(self, line: bytes) -> Segment | None:
        segment = self._current()
        if segment is None:
            return None
        try:
            write_holding_gil(segment.fd, line)
        except OSError as exc:
            self._broken(exc)
            return None
        segment.records += 1
        segment.size += len(line)
        return segment

    def _current(self) -> Segment | None:
        if self._broken_since and time.monotonic() - self._broken_since < 10:
            return None
        current = self._segments[-1] if self._segments else None
        if current is not None and (
            current.records < self.rotate_records
            and time.monotonic() - current.opened < ROTATE_SECONDS
        ):
            return current
        try:
            directory = journal_dir()
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._seq += 1
            path = directory / f"{self.run}-{self._seq:06d}.log"
            segment = Segment(path, open_locked(path), time.monotonic())
        except OSError as exc:
            self._broken(exc)
            return current  # keep writing to the old one if there is one
        self._broken_since = 0.0
        if not self._segments and self._seq == 1:
            atexit.register(self.close)
        self._segments.append(segment)
        self._collect()
        return segment

    def _collect(self) -> None:
        """Delete the oldest segments whose calls are all finished and committed."""
        committed = self.writer.committed
        while len(self._segments) > 1:
            oldest = self._segments[0]
            if oldest.last_position > committed or not self._read_out(oldest, fresh=False):
                return
            young = time.monotonic() - oldest.opened < self.carry_seconds
            if oldest.open_calls > 0 and (young or not self._carry(oldest)):
                return
            self._delete(self._segments.pop(0))

    def _carry(self, oldest: Segment) -> bool:
        """Copy the lines of the calls still open in `oldest` to the newest segment."""
        current = self._segments[-1]
        for request_id, (segment, lines) in list(self._open.items()):
            if segment is not oldest:
                continue
            try:
                write_holding_gil(current.fd, b"".join(lines))
            except OSError as exc:
                self._broken(exc)
                return False
            current.records += len(lines)
            current.size += sum(map(len, lines))
            oldest.open_calls -= 1
            current.open_calls += 1
            self._open[request_id] = (current, lines)
        return True

    def _delete(self, segment: Segment) -> None:
        try:
            segment.path.unlink(missing_ok=True)
        finally:
            os.close(segment.fd)

    def _broken(self, exc: OSError) -> None:
        if not self._broken_since:
            logger.error(
                "cannot write the call journal in %s (%s): a crash now would lose the calls "
                "in flight",
                journal_dir(),
                exc,
            )
        self._broken_since = time.monotonic()

    def _read_out(self, segment: Segment, *, fresh: bool) -> bool:
        """Whether the writer process has committed all of `segment` (always, without
        one). Its offsets are read again at most every COMMITTED_CHECK_SECONDS, unless
        `fresh`: this runs on the hot path."""
        if not self.by_process:
            return True
        if self._committed.get(segment.path.name, 0) >= segment.size:
            return True
        now = time.monotonic()
        if fresh or now - self._committed_read > COMMITTED_CHECK_SECONDS:
            self._committed, self._committed_read = read_committed(), now
        return self._committed.get(segment.path.name, 0) >= segment.size

    def use_writer_process(self) -> None:
        """The writer process inserts what this journal's `f`s hold (`metis gateway`), and
        loads the spool."""
        self.by_process = True
        self.writer.loads_spool = False

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event this process has finished is in the database."""
        deadline = time.monotonic() + timeout
        if not self.writer.flush(timeout):
            return False
        while True:
            with self._lock:
                if all(self._read_out(segment, fresh=True) for segment in self._segments):
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def close(self) -> None:
        """Close the writer (everything written or spooled) and wait, a while, for the
        writer process, then delete every segment whose calls have all finished and are
        written; keep the rest for the next start."""
        self.writer.close()
        if self.by_process and not self.flush(settings.METIS_EVENT_SHUTDOWN_SECONDS):
            logger.error("the writer process has not written this gateway's calls yet")
        with self._lock:
            committed = self.writer.committed
            while self._segments:
                oldest = self._segments[0]
                if (
                    oldest.open_calls > 0
                    or oldest.last_position > committed
                    or not self._read_out(oldest, fresh=False)
                ):
                    logger.error("calls open or unwritten at exit: kept %s for the next start",
                                 oldest.path)  # fmt: skip
                    return
                self._delete(self._segments.pop(0))

    def files(self) -> list[Path]:
        with self._lock:
            return [segment.path for segment in self._segments]


def read(path: Path) -> list[dict]:
    """The records of one file; a torn last line (the process died mid-write) is skipped."""
    records = []
    for line in path.read_bytes().splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            logger.warning("skipped a torn record in %s", path)
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


journal = Journal()
