"""`metis manage backup PATH`: a consistent copy of the SQLite database, taken online.

SQLite's backup API (Python's `Connection.backup`) copies every page in one step inside
one read transaction: in WAL mode the gateway keeps writing meanwhile, and the copy is the
database as of that transaction's start, never a torn file as `cp` of a live database can
be. The copy is written beside PATH, checked with `PRAGMA integrity_check`, and only then
renamed to PATH, so PATH is either a whole, checked database or absent.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Copy the SQLite database to PATH while Metis runs (PostgreSQL: use pg_dump)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", metavar="PATH", help="the file to create (must not exist)")

    def handle(self, *args: object, path: str, **options: object) -> None:
        database = settings.DATABASES["default"]
        if database["ENGINE"] != "django.db.backends.sqlite3":
            raise CommandError(
                "the database is PostgreSQL: back it up with pg_dump "
                "(pg_dump --format=custom --file=metis.dump DATABASE_URL), see docs/deployment.md"
            )
        target = Path(path).expanduser().absolute()
        if target.exists():
            raise CommandError(f"{target} already exists; name a new file")
        if not target.parent.is_dir():
            raise CommandError(f"{target.parent} is not a directory")
        source = Path(database["NAME"])
        partial = target.with_name(f".{target.name}.partial")
        partial.unlink(missing_ok=True)
        try:
            pages = copy(source, partial, timeout=database["OPTIONS"].get("timeout", 20))
            os.replace(partial, target)
        except (sqlite3.Error, OSError) as exc:
            partial.unlink(missing_ok=True)
            raise CommandError(f"backup failed: {exc}") from None
        size = target.stat().st_size
        self.stdout.write(f"backed up {source} to {target} ({pages} pages, {size:,} bytes)")


def copy(source: Path, target: Path, *, timeout: float) -> int:
    """Copy `source` to a new file `target`, checked; returns its page count."""
    fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)  # secrets inside
    os.close(fd)
    src = sqlite3.connect(source, timeout=timeout)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)  # pages=-1: all at once, one snapshot however busy the writer is
        # A single self-contained file: no -wal beside it to forget. Metis puts it back in
        # WAL mode when it opens it.
        dst.execute("PRAGMA journal_mode=DELETE")
        (result,) = dst.execute("PRAGMA integrity_check").fetchone()
        if result != "ok":
            raise sqlite3.DatabaseError(f"the copy failed its integrity check: {result}")
        return dst.execute("PRAGMA page_count").fetchone()[0]
    finally:
        dst.close()
        src.close()
