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

from analytics import periods

ROLLING = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
# Calendar windows end now (last_month: at this month's start) and start where a quota's
# period does, so "this month" shows what a monthly budget counts.
CALENDAR = {
    "today": periods.DAY,
    "this_week": periods.WEEK,
    "this_month": periods.MONTH,
    "last_month": periods.MONTH,
}
WINDOWS = (*ROLLING, *CALENDAR)
DEFAULT_WINDOW = "24h"
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)  # `from` and `to` are clamped to these
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
GROUP_BY = ("model", "key", "user", "label", "team", "workspace", "provider", "day", "hour")
FILTERS = ("gateway_key", "user", "label", "team", "workspace")


@dataclass(frozen=True)
class Viewer:
    """Who is asking (built by `analytics.access.viewer_for`): everything ("all"), a
    user (the calls of the keys they own plus the teams they are budget owner of) or a
    gateway key used as a bearer token (that key's calls only).

    An x-metis-user label never widens a view: it says what called inside a key's scope,
    and anyone can send any label, so a user's view is their keys, not their name."""

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
        if self.own_key_ids:
            allowed |= Q(gateway_key_id__in=sorted(self.own_key_ids))
        if self.team_names:
            allowed |= Q(team__in=sorted(self.team_names))
        return allowed


@dataclass(frozen=True)
class Scope:
    """What was asked for: the half-open window [start, end) and exact-match filters.
    `user` is an account: the calls of the keys that user owns, as their quota counts
    them; `label` is the x-metis-user label the calls carried (else the key's owner)."""

    start: datetime
    end: datetime
    gateway_key: str | None = None
    user: str | None = None
    label: str | None = None
    team: str | None = None
    workspace: str | None = None
    # The window ends when it is read (a rolling or this-period window, `from` without
    # `to`): nothing is stamped after it, so the rest of its last day (or week) is read
    # whole from the day (or week) rollups (analytics.aggregate.segments).
    until_now: bool = False

    @property
    def filters(self) -> dict[str, str]:
        return {n: getattr(self, n) for n in FILTERS if getattr(self, n) is not None}

    def q(self) -> Q:
        from identity.models import GatewayKey

        columns = {"gateway_key": "gateway_key_id", "label": "user"}
        q = Q(**{columns.get(n, n): v for n, v in self.filters.items() if n != "user"})
        if self.user is not None:
            owned = GatewayKey.objects.filter(user__username=self.user).values("id")
            q &= Q(gateway_key_id__in=owned)
        return q


class ScopeError(ValueError):
    """A bad parameter: the API answers 422 naming `param`."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


def parse_scope(params: Mapping[str, str], now: datetime) -> Scope:
    """`window` (1h, 24h, 7d, 30d, today, this_week, this_month, last_month; default 24h)
    or `from` [+ `to`, default now] as ISO 8601 dates or datetimes (naive = UTC), plus the
    filters gateway_key, user, label, team, workspace."""
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
        start, end = window_bounds(window, now)
    filters = {}
    for name in FILTERS:
        value = params.get(name)
        if value is not None and value.strip():
            if not value.isprintable():  # no name has them, and PostgreSQL refuses NUL
                raise ScopeError(name, "must not contain control characters")
            filters[name] = value.strip()
    return Scope(start=start, end=end, until_now=end == now, **filters)


def window_bounds(window: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of a named window: rolling ones end now, calendar ones are cut in
    METIS_TIME_ZONE by the same maths as the quotas' periods."""
    if window in ROLLING:
        return now - ROLLING[window], now
    if window == "last_month":
        return periods.previous_bounds(periods.MONTH, now)
    if window in CALENDAR:
        return periods.period_bounds(CALENDAR[window], now)[0], now
    raise ScopeError("window", f"unknown window {window!r}; use one of {', '.join(WINDOWS)}")


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
    return LATEST if utc > LATEST else utc  # PostgreSQL reads no offset with seconds
