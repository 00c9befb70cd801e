"""A key that stopped hitting the prompt cache: an event, a webhook and a dashboard notice.

The rule (the README's "Prompt-cache figures"): a key's hit rate over the last 24 hours
against its own baseline, the 7 days before them. It has dropped when

- the baseline is worth keeping: a hit rate of at least 20 %, over at least
  `MIN_CALLS` calls and `MIN_INPUT_TOKENS` input tokens;
- the last 24 hours carry as much volume (fewer calls say nothing either way);
- their hit rate is under half the baseline's.

A drop alerts once (`cache.hit_rate_dropped`, and a POST to each webhook); the key is
then quiet until an evaluation finds it out of the drop with the minimum volume
(`cache.hit_rate_recovered`, also sent), after which a new drop alerts again. The state
is the latest of these events per key, so a restart neither repeats nor forgets an alert.

`metis serve` evaluates every `EVERY` in a daemon thread (`schedule`); each evaluation
reads the key grain's rollups for 8 days (a few rows per key and day), never the calls
but the partial hours at the window's edges.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
from django.db import connection
from django.utils import timezone

from analytics.aggregate import Agg, aggregate
from analytics.cache import hit_rate
from analytics.models import Event
from analytics.scope import Scope, Viewer
from analytics.writer import make_event, writer

logger = logging.getLogger(__name__)

DROPPED = "cache.hit_rate_dropped"
RECOVERED = "cache.hit_rate_recovered"
RECENT = timedelta(hours=24)
BASELINE = timedelta(days=7)
MIN_BASELINE_RATE = Decimal("0.20")
DROP_RATIO = Decimal("0.5")  # dropped: under half the baseline's rate
MIN_CALLS = 20
MIN_INPUT_TOKENS = 10_000
EVERY = timedelta(minutes=15)
STATE_LOOKBACK = timedelta(days=31)
RETRY_DELAYS = (1, 2, 4, 8)  # as the budget webhooks (gateway.budgets.alerts)


@dataclass(frozen=True)
class Verdict:
    key_id: str
    dropped: bool
    recent: Agg
    baseline: Agg


def _rate(agg: Agg) -> Decimal | None:
    return hit_rate(agg.sums["cache_read_tokens"], agg.sums["input_tokens"])


def _enough(agg: Agg) -> bool:
    return agg.sums["calls"] >= MIN_CALLS and agg.sums["input_tokens"] >= MIN_INPUT_TOKENS


def verdicts(now: datetime) -> list[Verdict]:
    """Every key with enough volume in the last 24 hours, dropped or not."""
    everyone = Viewer(kind="all")
    recent, _ = aggregate(everyone, Scope(now - RECENT, now, until_now=True), ("gateway_key_id",))
    base, _ = aggregate(everyone, Scope(now - RECENT - BASELINE, now - RECENT), ("gateway_key_id",))
    found = []
    for (key_id,), agg in recent.items():
        if not key_id or not _enough(agg):
            continue
        before = base.get((key_id,), Agg())
        rate, baseline_rate = _rate(agg), _rate(before)
        dropped = (
            _enough(before)
            and baseline_rate is not None
            and baseline_rate >= MIN_BASELINE_RATE
            and rate is not None
            and rate < baseline_rate * DROP_RATIO
        )
        found.append(Verdict(key_id, dropped, agg, before))
    return found


def open_drops(since: datetime) -> dict[str, dict]:
    """{key id: its drop event's payload, with "at"} for the keys whose latest cache
    event is a drop."""
    rows = (
        Event.objects.filter(
            type__in=(DROPPED, RECOVERED), timestamp_us__gte=int(since.timestamp() * 1e6)
        )
        .order_by("timestamp_us", "id")
        .values_list("type", "timestamp_us", "payload_json")
    )
    state: dict[str, dict | None] = {}
    for type_, timestamp_us, payload_json in rows:
        try:
            payload = json.loads(payload_json, parse_float=Decimal)
            key_id = str(payload["gateway_key_id"])
        except (ValueError, KeyError, TypeError):
            continue
        payload["at"] = datetime.fromtimestamp(timestamp_us / 1_000_000, tz=UTC)
        state[key_id] = payload if type_ == DROPPED else None
    return {key_id: payload for key_id, payload in state.items() if payload is not None}


def evaluate(now: datetime | None = None, webhook_urls: Sequence[str] = ()) -> list[dict]:
    """Record (and send) the drops and recoveries since the last evaluation; returns the
    payloads sent."""
    from analytics.queries import key_owners

    now = now or timezone.now()
    open_ = open_drops(now - STATE_LOOKBACK)
    changed = [v for v in verdicts(now) if v.dropped != (v.key_id in open_)]
    if not changed:
        return []
    owners = key_owners(v.key_id for v in changed)
    events, payloads = [], []
    for v in changed:
        owner = owners.get(v.key_id, {})
        payload = {
            "type": DROPPED if v.dropped else RECOVERED,
            "gateway_key_id": v.key_id,
            "key_name": owner.get("name"),
            "user": owner.get("user"),
            "team": owner.get("team"),
            "hit_rate": _rate(v.recent),
            "baseline_hit_rate": _rate(v.baseline),
            "calls": v.recent.sums["calls"],
            "input_tokens": v.recent.sums["input_tokens"],
            "baseline_calls": v.baseline.sums["calls"],
            "baseline_input_tokens": v.baseline.sums["input_tokens"],
            "window_from": (now - RECENT).isoformat(),
            "baseline_from": (now - RECENT - BASELINE).isoformat(),
            "to": now.isoformat(),
        }
        payloads.append(payload)
        body = {k: _decimal(v) if isinstance(v, Decimal) else v for k, v in payload.items()}
        events.append(make_event(payload["type"], body, gateway_key_id=v.key_id))
        logger.warning("%s: key %s at %s (baseline %s)", payload["type"],
                       owner.get("name") or v.key_id, payload["hit_rate"],
                       payload["baseline_hit_rate"])  # fmt: skip
    writer.submit(events)
    writer.flush()  # the next evaluation reads this state back
    for payload in payloads:
        for url in webhook_urls:
            deliver(url, payload)
    return payloads


def _decimal(value: object) -> object:
    if isinstance(value, Decimal):
        return orjson.Fragment(format(value, "f"))
    raise TypeError


def deliver(url: str, payload: dict, *, delays: Sequence[float] = RETRY_DELAYS) -> bool:
    """POST the payload, retrying with backoff; False when every attempt failed."""
    body = orjson.dumps(payload, default=_decimal)
    headers = {"content-type": "application/json", "user-agent": "metis-cache-alerts"}
    for attempt, delay in enumerate((0, *delays)):
        time.sleep(delay)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status < 300:
                    return True
                problem = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            problem = str(exc) or type(exc).__name__
        logger.warning("cache webhook %s failed (attempt %d): %s", url, attempt + 1, problem)
    logger.error("cache webhook %s gave up after %d attempts", url, len(delays) + 1)
    return False


def schedule(
    webhook_urls: Callable[[], Sequence[str]], every: timedelta = EVERY
) -> threading.Thread:
    """Evaluate now and then every `every`, in a daemon thread of `metis serve`."""

    def run() -> None:
        while True:
            try:
                evaluate(webhook_urls=webhook_urls())
            except Exception:  # a locked or unreachable database: try again next time
                logger.exception("evaluating prompt-cache alerts failed")
            finally:
                connection.close()  # this thread's own; not held open between runs
            time.sleep(every.total_seconds())

    thread = threading.Thread(target=run, name="metis-cache-alerts", daemon=True)
    thread.start()
    return thread


# -- the dashboard's notices ------------------------------------------------------------


def sees(viewer: Viewer, drop: dict) -> bool:
    if viewer.kind == "all":
        return True
    if viewer.kind == "key":
        return drop["gateway_key_id"] == viewer.gateway_key_id
    return drop["gateway_key_id"] in viewer.own_key_ids or drop.get("team") in viewer.team_names


def notices(viewer: Viewer, now: datetime | None = None) -> list[dict]:
    """The drops still open that the viewer may see, newest first: {"at", "text"}."""
    now = now or timezone.now()
    lines = []
    for drop in open_drops(now - STATE_LOOKBACK).values():
        if not sees(viewer, drop):
            continue
        name = drop.get("key_name") or drop["gateway_key_id"]
        text = (
            f"key {name}: prompt-cache hit rate fell to {_percent(drop.get('hit_rate'))} "
            f"over 24 hours, from {_percent(drop.get('baseline_hit_rate'))} the 7 days before"
        )
        lines.append({"at": drop["at"], "text": text})
    lines.sort(key=lambda line: line["at"], reverse=True)
    return lines


def _percent(value: object) -> str:
    return "—" if value is None else f"{Decimal(str(value)) * 100:.1f} %"
