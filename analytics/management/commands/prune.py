"""`metis manage prune [--older-than 90d] [--dry-run]`: delete raw events past retention."""

from __future__ import annotations

import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from analytics import retention

AGE = re.compile(r"^(\d+)\s*([dw]?)$")


def parse_age(text: str) -> timedelta:
    match = AGE.match(text.strip().lower())
    if not match or int(match.group(1)) < 1:
        raise CommandError(f"--older-than must look like 90d or 12w, got {text!r}")
    days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
    return timedelta(days=days)


class Command(BaseCommand):
    help = (
        "Delete raw events older than an age (default METIS_EVENT_RETENTION_DAYS). Calls and "
        "rollups are kept; the last 31 days and the current budget periods always stay."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--older-than", metavar="AGE", help="e.g. 90d or 12w")
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def handle(self, *args: object, older_than: str | None, dry_run: bool, **options) -> None:
        if older_than is not None:
            age = parse_age(older_than)
        elif (age := retention.configured()) is None:
            raise CommandError(
                "no age given: pass --older-than 90d, or set METIS_EVENT_RETENTION_DAYS"
            )
        edge = retention.horizon(age)
        day = edge.before.date().isoformat()
        if dry_run:
            found = retention.count(edge.before)
            self.stdout.write(f"would prune {found} events before {day} ({edge.reason})")
            return
        deleted = retention.prune(edge.before)
        self.stdout.write(f"pruned {deleted} events before {day} ({edge.reason})")
