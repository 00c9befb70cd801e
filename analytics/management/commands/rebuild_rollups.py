"""`metis manage rebuild_rollups`: make Call, CallHour and CallDay again from the events table."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from analytics import rollup


class Command(BaseCommand):
    help = "Rebuild the analytics tables (Call, CallHour, CallDay) from the events table."

    def handle(self, *args: object, **options: object) -> None:
        with transaction.atomic():
            written = rollup.rebuild()
        self.stdout.write(f"rebuilt {written} calls and their hourly rollups from the events")
