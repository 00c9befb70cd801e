"""The trace store. `events` is the record; anything analytics reads is built from it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from django.db import models
from django.db.models.lookups import In


@models.CharField.register_lookup
class AnyOf(In):
    """`column__any_of=[…]`: `IN (…)` on SQLite; on PostgreSQL `= ANY(%s)` with the
    values as one array. A budget page reads hundreds of keys' spend over a window's
    parts, and each value of an IN list was a parameter Django and psycopg handled in
    Python, part after part: milliseconds per hundred."""

    lookup_name = "any_of"

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*lhs_params, [str(value) for value in self.rhs])


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


class MoneyField(models.BigIntegerField):
    """USD, exact: stored as an integer count of 1e-10 dollars (pricing's quantum), read
    back as a `Decimal`. Integers sum exactly on SQLite and PostgreSQL alike, where a
    SQLite DECIMAL column would sum as floats."""

    SCALE = 10

    def from_db_value(self, value, expression, connection):
        return None if value is None else Decimal(value).scaleb(-self.SCALE)

    def to_python(self, value):
        return None if value is None else Decimal(value)

    def get_prep_value(self, value):
        return to_units(value)


def to_units(value: Decimal | int | str | None) -> int | None:
    """Dollars → integer 1e-10 units (what MoneyField stores)."""
    if value is None:
        return None
    return int(Decimal(value).scaleb(MoneyField.SCALE).to_integral_value(ROUND_HALF_EVEN))


# The prompt cache's money, summed like cost_usd (analytics.pricing.CacheCosts).
CACHE_MONEY = ("cache_write_5m_usd", "cache_write_1h_usd", "cache_saved_usd",
               "cache_write_premium_usd")  # fmt: skip

# The rollup's latency histogram: bucket 0 is [0, 1) ms, bucket i is
# [2^((i-1)/2), 2^(i/2)) ms, the last bucket is open-ended (≥ 2^19 ms ≈ 8.7 min).
LATENCY_BUCKETS = 40


class Call(models.Model):
    """One typed row per `llm.call_completed` event (same id), written with the event.

    Absent strings (no user label, no team) are stored as "" so the rollup's unique key
    works on every database (NULLs never conflict); queries give them back as None.
    """

    id = models.CharField(primary_key=True, max_length=26)
    timestamp = models.DateTimeField()
    gateway_key_id = models.CharField(max_length=32, blank=True, default="")
    key_name = models.CharField(max_length=100, blank=True, default="")
    user = models.CharField(max_length=200, blank=True, default="")
    team = models.CharField(max_length=100, blank=True, default="")
    workspace = models.CharField(max_length=1024, blank=True, default="")
    inbound_shape = models.CharField(max_length=20, blank=True, default="")
    provider = models.CharField(max_length=100, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    requested_model = models.CharField(max_length=200, blank=True, default="")
    stream = models.BooleanField(default=False)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost_usd = MoneyField(null=True, blank=True)  # None: unpriced
    # The prompt cache's economics (analytics.pricing.CacheCosts); 0 when unpriced.
    cache_write_1h_tokens = models.BigIntegerField(default=0, db_default=0)
    cache_write_5m_usd = MoneyField(default=0, db_default=0)
    cache_write_1h_usd = MoneyField(default=0, db_default=0)
    cache_saved_usd = MoneyField(default=0, db_default=0)
    cache_write_premium_usd = MoneyField(default=0, db_default=0)
    latency_ms = models.FloatField(default=0)
    ttft_ms = models.FloatField(null=True, blank=True)
    status = models.IntegerField(default=0)
    error_class = models.CharField(max_length=64, blank=True, default="")
    retries = models.IntegerField(default=0)
    request_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["timestamp"], name="call_ts"),
            models.Index(fields=["gateway_key_id", "timestamp"], name="call_key_ts"),
            models.Index(fields=["team", "timestamp"], name="call_team_ts"),
            models.Index(fields=["user", "timestamp"], name="call_user_ts"),
            # Hard-cap refusals for the dashboard's budget events, without a scan of
            # every call in the month (the error classes are few, refusals rare).
            models.Index(fields=["error_class", "timestamp"], name="call_error_ts"),
        ]

    def __str__(self) -> str:
        return f"{self.model} call {self.id}"


# The rollups' group, besides their time column (hour or day).
ROLLUP_GROUP = (
    "gateway_key_id", "user", "team", "workspace", "provider", "model", "inbound_shape",
)  # fmt: skip
CALL_HOUR_GROUP = ("hour", *ROLLUP_GROUP)
CALL_DAY_GROUP = ("day", *ROLLUP_GROUP)
# The narrower rollups' groups (a key's workspace and team are the key's own, so the key
# grain is as narrow as keys × labels; the model grain drops every identity but the team).
KEY_GROUP = ("gateway_key_id", "user", "team", "workspace", "inbound_shape")
MODEL_GROUP = ("team", "provider", "model", "inbound_shape")


class Sums(models.Model):
    """What every rollup keeps per period and group: sums of `Call`, the latency
    histogram, the latest call. Upserted by the event writer in the events' transaction
    and rebuildable from the events (`metis manage rebuild_rollups`)."""

    calls = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    cancelled = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost_usd = MoneyField(default=0)  # priced calls only
    unpriced_calls = models.BigIntegerField(default=0)
    # Database defaults too: rows written by SQL that predates these columns still insert.
    cache_write_1h_tokens = models.BigIntegerField(default=0, db_default=0)
    cache_write_5m_usd = MoneyField(default=0, db_default=0)  # priced calls only, as cost_usd
    cache_write_1h_usd = MoneyField(default=0, db_default=0)
    cache_saved_usd = MoneyField(default=0, db_default=0)
    cache_write_premium_usd = MoneyField(default=0, db_default=0)
    last_call_at = models.DateTimeField()
    locals().update(
        {f"lat_{i:02d}": models.BigIntegerField(default=0) for i in range(LATENCY_BUCKETS)}
    )

    class Meta:
        abstract = True


def _text(max_length: int) -> models.CharField:
    return models.CharField(max_length=max_length, blank=True, default="")


class Rollup(Sums):
    """Sums of `Call` per period and (key, user, team, workspace, provider, model,
    inbound shape)."""

    gateway_key_id = _text(32)
    user = _text(200)
    team = _text(100)
    workspace = _text(1024)
    provider = _text(100)
    model = _text(200)
    inbound_shape = _text(20)

    class Meta:
        abstract = True


class CallHour(Rollup):
    """The hourly rollup: whole hours of a window are read from here."""

    hour = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=list(CALL_HOUR_GROUP), name="callhour_group_unique")
        ]
        indexes = [
            models.Index(fields=["gateway_key_id", "hour"], name="callhour_key_hour"),
            models.Index(fields=["team", "hour"], name="callhour_team_hour"),
            models.Index(fields=["user", "hour"], name="callhour_user_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.model}: {self.calls} calls"


class CallDay(Rollup):
    """The daily (UTC) rollup: whole days of a long window are read from here."""

    day = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=list(CALL_DAY_GROUP), name="callday_group_unique")
        ]
        indexes = [
            models.Index(fields=["gateway_key_id", "day"], name="callday_key_day"),
            models.Index(fields=["team", "day"], name="callday_team_day"),
            models.Index(fields=["user", "day"], name="callday_user_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.model}: {self.calls} calls"


class KeyDay(Sums):
    """`CallDay` without the provider and model: the per-key, per-account and per-team
    views and budgets read long windows from here, a fraction of `CallDay`'s rows."""

    day = models.DateTimeField()
    gateway_key_id = _text(32)
    user = _text(200)
    team = _text(100)
    workspace = _text(1024)
    inbound_shape = _text(20)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", *KEY_GROUP], name="keyday_group_unique")
        ]
        indexes = [
            models.Index(fields=["gateway_key_id", "day"], name="keyday_key_day"),
            models.Index(fields=["team", "day"], name="keyday_team_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.gateway_key_id}: {self.calls} calls"


class KeyWeek(Sums):
    """`KeyDay` per week (UTC, from Monday): a month's per-key read is four weeks' rows
    and a few days', where it was thirty days'. Every key calls most weeks, with nearly
    the same labels, so a week holds little more than a day."""

    week = models.DateTimeField()
    gateway_key_id = _text(32)
    user = _text(200)
    team = _text(100)
    workspace = _text(1024)
    inbound_shape = _text(20)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["week", *KEY_GROUP], name="keyweek_group_unique")
        ]
        indexes = [
            models.Index(fields=["gateway_key_id", "week"], name="keyweek_key_week"),
            models.Index(fields=["team", "week"], name="keyweek_team_week"),
        ]

    def __str__(self) -> str:
        return f"week of {self.week:%Y-%m-%d} {self.gateway_key_id}: {self.calls} calls"


class ModelHour(Sums):
    """`CallHour` per team, provider, model and inbound shape only: totals and the
    per-model, per-provider, per-team and over-time views read from here (a few dozen
    rows an hour, whatever the number of keys)."""

    hour = models.DateTimeField()
    team = _text(100)
    provider = _text(100)
    model = _text(200)
    inbound_shape = _text(20)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hour", *MODEL_GROUP], name="modelhour_group_unique")
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.model}: {self.calls} calls"


class ModelDay(Sums):
    """`CallDay` per team, provider, model and inbound shape only (as `ModelHour`)."""

    day = models.DateTimeField()
    team = _text(100)
    provider = _text(100)
    model = _text(200)
    inbound_shape = _text(20)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", *MODEL_GROUP], name="modelday_group_unique")
        ]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.model}: {self.calls} calls"


@dataclass(frozen=True)
class Grain:
    """A rollup's group and its tables per hour, per UTC day and, for the grain whose
    days hold thousands of rows, per UTC week (Monday to Monday)."""

    group: tuple[str, ...]
    hour: type[Sums]
    day: type[Sums]
    week: type[Sums] | None = None


# Narrowest first: a read takes the first grain holding every column it groups or
# filters by. No hourly key grain: within an hour nearly every call of a busy gateway
# has a (key, model) of its own, so it would be as large as `CallHour`.
GRAINS = (
    Grain(MODEL_GROUP, ModelHour, ModelDay),
    Grain(KEY_GROUP, CallHour, KeyDay, KeyWeek),
    Grain(ROLLUP_GROUP, CallHour, CallDay),
)
