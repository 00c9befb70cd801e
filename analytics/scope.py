"""Who is asking (`Viewer`) and what they asked for (`Scope`), parsed in one place so
the JSON API, the dashboard and the quota check read the same words as the same window
and filters (docs/analytics-contract.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from django.db.models import Q
from django.utils.dateparse import parse_date, parse_datetime

WINDOWS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_WINDOW = "24h"
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)  # `from` and `to` are clamped to these
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
GROUP_BY = ("model", "key", "user", "team", "workspace", "provider", "day", "hour")


@dataclass(frozen=True)
class Viewer:
    """Who is asking (built by `analytics.access.viewer_for`): everything ("all"), a
    user (their own calls and keys plus the teams they are budget owner of) or a gateway
    key used as a bearer token (that key's calls only)."""

    kind: Literal["all", "user", "key"]
    user: str | None = None
    team_names: frozenset[str] = frozenset()
    gateway_key_id: str | None = None
    own_key_ids: frozenset[str] = frozenset()

    def q(self) -> Q:
        """The rows this viewer may see, on `Call` and `CallHour` alike."""
        if self.kind == "all":
            return Q()
        if self.kind == "key":
            return Q(gateway_key_id=self.gateway_key_id or "\0no key")
        allowed = Q(pk__in=[])
        if self.user:
            allowed |= Q(user=self.user)
        if self.own_key_ids:
            allowed |= Q(gateway_key_id__in=sorted(self.own_key_ids))
        if self.team_names:
            allowed |= Q(team__in=sorted(self.team_names))
        return allowed


@dataclass(frozen=True)
class Scope:
    """What was asked for: the half-open window [start, end) and exact-match filters."""

    start: datetime
    end: datetime
    gateway_key: str | None = None
    user: str | None = None
    team: str | None = None
    workspace: str | None = None

    @property
    def filters(self) -> dict[str, str]:
        names = ("gateway_key", "user", "team", "workspace")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def q(self) -> Q:
        columns = {"gateway_key": "gateway_key_id"}
        return Q(**{columns.get(n, n): v for n, v in self.filters.items()})


class ScopeError(ValueError):
    """A bad parameter: the API answers 422 naming `param`."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


def parse_scope(params: Mapping[str, str], now: datetime) -> Scope:
    """`window` (1h, 24h, 7d, 30d; default 24h) or `from` [+ `to`, default now] as ISO 8601
    dates or datetimes (naive = UTC), plus the filters gateway_key, user, team, workspace."""
    window = (params.get("window") or "").strip()
    start_text = (params.get("from") or "").strip()
    end_text = (params.get("to") or "").strip()
    if window and (start_text or end_text):
        raise ScopeError("window", "give either window or from/to, not both")
    if start_text or end_text:
        if not start_text:
            raise ScopeError("from", "give from with to (an ISO 8601 date or datetime)")
        start = _parse_moment("from", start_text)
        end = _parse_moment("to", end_text) if end_text else now
        if start > end:
            raise ScopeError("from", f"from ({start_text}) is after to ({end_text or 'now'})")
    else:
        window = window or DEFAULT_WINDOW
        if window not in WINDOWS:
            raise ScopeError(
                "window", f"unknown window {window!r}; use one of {', '.join(WINDOWS)}"
            )
        end, start = now, now - WINDOWS[window]
    filters = {}
    for name in ("gateway_key", "user", "team", "workspace"):
        value = params.get(name)
        if value is not None and value.strip():
            if not value.isprintable():  # no name has them, and PostgreSQL refuses NUL
                raise ScopeError(name, "must not contain control characters")
            filters[name] = value.strip()
    return Scope(start=start, end=end, **filters)


def _parse_moment(param: str, text: str) -> datetime:
    try:
        value = parse_datetime(text)
        if value is None and (day := parse_date(text)) is not None:
            value = datetime(day.year, day.month, day.day)
    except ValueError:
        value = None
    if value is None:
        raise ScopeError(param, f"{text!r} is not an ISO 8601 date or datetime")
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is in year 0 in UTC
        raise ScopeError(param, f"{text!r} is out of range once converted to UTC") from None
    # Windows are cut at whole UTC hours and days, and shown in METIS_TIME_ZONE: a day's
    # room at either end keeps that arithmetic inside datetime's years 1 to 9999.
    if utc < EARLIEST:
        return EARLIEST
    return LATEST if utc > LATEST else value
