"""The trace store. `events` is the record; anything analytics reads is built from it."""

from __future__ import annotations

from django.db import models


class Event(models.Model):
    """One event: `route.decided`, `llm.call_completed`, `turn.completed`, …

    The table name and columns are the seeds' contract: their SQL reads
    `json_extract(payload_json, '$.cost_usd')` from `events` directly.
    """

    id = models.CharField(primary_key=True, max_length=26)  # ULID: sorts by time
    type = models.CharField(max_length=64)
    timestamp_us = models.BigIntegerField()
    payload_json = models.TextField()

    class Meta:
        db_table = "events"
        indexes = [
            models.Index(fields=["timestamp_us"], name="events_ts"),
            models.Index(fields=["type", "timestamp_us"], name="events_type_ts"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"
