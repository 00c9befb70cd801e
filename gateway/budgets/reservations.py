"""Reservations: a call's worst case held against its budgets before it goes upstream.

A key's call counts against the quotas of its key, its owner and its team; all
must pass. Periods (day, week, month, total) follow calendar boundaries in
METIS_TIME_ZONE, computed from timestamps: nothing resets them.

Hard caps are exact under concurrency: `check()` reserves the call's worst-case
cost (its input at the input price plus max_tokens at the output price) before
it is sent, and refuses when spent + reserved + worst case would pass the cap;
`settle()` (from calls.record) swaps the reservation for the real cost, on
success, error or cancel alike. Unpriced models cost nothing against USD caps,
but count against request and token rates.

This ledger lives in the process: spend is loaded from the typed call rows
(analytics.budgets) the first time a period is seen, then kept in memory, so
a restart loses nothing. With REDIS_URL, the same is held in Redis instead
(shared_ledger.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from analytics import budgets as analytics_budgets
from analytics import pricing
from analytics.periods import current_bounds
from analytics.usage import Usage
from gateway import routing
from gateway.budgets import alerts, shared_ledger
from gateway.budgets.refusals import exceeded, rate_limited, unavailable
from gateway.budgets.rules import Rule, forget_rules, rules_for
from gateway.routing import Route

logger = logging.getLogger(__name__)

THRESHOLDS = (50, 80, 100)  # percent of the soft cap that raise an alert, once per period


@dataclass(slots=True)
class Reservation:
    amount: Decimal  # the worst case held against each capped slot
    rules: tuple[Rule, ...]
    capped: list[tuple[Rule, datetime]]  # (rule, period start) the amount is held against
    request_id: str  # the call it holds for: its hold in Redis, and what an alert names
    key_id: str
    settled: bool = False
    shared: bool = False  # held in Redis (shared_ledger) rather than in this process


@dataclass(slots=True)
class Ledger:
    spent: dict[tuple[str, str, datetime], Decimal] = field(default_factory=dict)
    reserved: dict[tuple[str, str, datetime], Decimal] = field(default_factory=dict)
    alerted: dict[tuple[str, str, datetime], int] = field(default_factory=dict)  # highest %
    requests: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    tokens: dict[tuple[str, str], deque[tuple[float, int]]] = field(default_factory=dict)
    loading: dict[tuple[str, str, datetime], asyncio.Future[None]] = field(default_factory=dict)


ledger = Ledger()


def reset() -> None:
    """Forget everything held in memory (tests; a changed database)."""
    global ledger
    ledger = Ledger()
    forget_rules()


# -- spend --------------------------------------------------------------------------


async def ensure_loaded(rule: Rule, start: datetime) -> None:
    slot = (rule.scope, rule.scope_id, start)
    if slot in ledger.spent:
        return
    pending = ledger.loading.get(slot)
    if pending is None:
        pending = ledger.loading[slot] = asyncio.ensure_future(_load_spend(rule, start, slot))
    await asyncio.shield(pending)


async def _load_spend(rule: Rule, start: datetime, slot: tuple[str, str, datetime]) -> None:
    spent = await seed_spend(rule, start)
    ledger.spent.setdefault(slot, spent)
    if rule.soft is not None:
        # Thresholds already behind us were alerted by whoever crossed them: not again.
        ledger.alerted[slot] = max([p for p in THRESHOLDS if spent >= rule.soft * p / 100] or [0])
    ledger.loading.pop(slot, None)


# -- check and settle ---------------------------------------------------------------


def worst_case_cost(route: Route, body: dict[str, Any], body_bytes: int) -> Decimal:
    """What the call could cost at most: every byte of the body as an input token (a
    generous bound) and its whole output allowance, at the price the call will be charged
    (operator overrides included). Unpriced models: 0."""
    price = routing.price(route.upstream.price_provider, route.model)
    if price is None:
        return Decimal(0)
    output = (
        body.get("max_tokens") or body.get("max_completion_tokens") or body.get("max_output_tokens")
    )
    if type(output) is not int or output < 1:
        output = settings.METIS_QUOTA_DEFAULT_MAX_TOKENS
    return pricing.cost_usd(price, Usage(input_tokens=body_bytes, output_tokens=output))


async def check(
    key_id: str, request_id: str, route: Route, body: dict[str, Any], body_bytes: int
) -> Reservation | None:
    """Refuse the call (429 in the caller's shape) or hold its worst case; None when the
    key has no quotas."""
    found = await rules_for(key_id)
    if not found:
        return None
    return await hold(key_id, request_id, found, worst_case_cost(route, body, body_bytes))


async def check_free(key_id: str, request_id: str) -> Reservation | None:
    """`check()` for a call the provider does not bill (count_tokens): it holds $0, so
    only rates and a budget with nothing left refuse it."""
    found = await rules_for(key_id)
    if not found:
        return None
    return await hold(key_id, request_id, found, Decimal(0))


async def hold(
    key_id: str, request_id: str, rules: tuple[Rule, ...], worst: Decimal
) -> Reservation:
    now = timezone.now()
    capped = [
        (rule, current_bounds(rule.period, now))
        for rule in rules
        if rule.hard is not None or rule.soft is not None
    ]
    if shared_ledger.enabled():
        try:
            return await check_shared(key_id, request_id, rules, capped, worst)
        except shared_ledger.StoreDown:
            if settings.METIS_REDIS_FAILURE == "closed":
                raise unavailable() from None
    for rule, (start, _) in capped:
        await ensure_loaded(rule, start)
    # From here to the reservation nothing awaits: concurrent calls see each other's holds.
    check_rates(rules)
    for rule, (start, end) in capped:
        slot = (rule.scope, rule.scope_id, start)
        committed = ledger.spent[slot] + ledger.reserved.get(slot, Decimal(0))
        if rule.hard is not None and passes_cap(committed, worst, rule.hard):
            raise exceeded(rule, committed, end)
    for rule, (start, _) in capped:
        slot = (rule.scope, rule.scope_id, start)
        ledger.reserved[slot] = ledger.reserved.get(slot, Decimal(0)) + worst
    moment = time.monotonic()
    for rule in rules:
        if rule.rpm:
            ledger.requests.setdefault((rule.scope, rule.scope_id), deque()).append(moment)
    slots = [(rule, start) for rule, (start, _) in capped]
    return Reservation(worst, rules, slots, request_id, key_id)


def passes_cap(committed: Decimal, worst: Decimal, cap: Decimal) -> bool:
    # A budget with nothing left refuses even calls that cost nothing (count_tokens, unpriced
    # models): so a $0 hard cap stops everything. shared_ledger.RESERVE says the same in Lua.
    return committed + worst > cap or committed >= cap


def check_rates(rules: tuple[Rule, ...]) -> None:
    now = time.monotonic()
    for rule in rules:
        slot = (rule.scope, rule.scope_id)
        if rule.rpm:
            seen = ledger.requests.setdefault(slot, deque())
            while seen and seen[0] <= now - 60:
                seen.popleft()
            if len(seen) >= rule.rpm:
                raise rate_limited(rule, f"{rule.rpm} requests", seen[0] + 60 - now)
        if rule.tpm:
            used = ledger.tokens.setdefault(slot, deque())
            while used and used[0][0] <= now - 60:
                used.popleft()
            if sum(count for _, count in used) >= rule.tpm:
                raise rate_limited(rule, f"{rule.tpm} tokens", used[0][0] + 60 - now)


def settle(held: Reservation | None, cost_usd: Decimal | None, usage: Usage) -> None:
    """Swap the call's reservation for what it really cost (`cost_usd`, None when
    unpriced), and count its tokens against token rates. Idempotent."""
    if held is None or held.settled:
        return
    held.settled = True
    actual = cost_usd or Decimal(0)
    tokens = usage.input_tokens + usage.output_tokens
    if held.shared:
        spawn(settle_shared(held, actual, tokens))
        return
    for rule in held.rules:
        if rule.tpm and tokens:
            used = ledger.tokens.setdefault((rule.scope, rule.scope_id), deque())
            used.append((time.monotonic(), tokens))
    for rule, start in held.capped:
        slot = (rule.scope, rule.scope_id, start)
        ledger.reserved[slot] = ledger.reserved.get(slot, Decimal(0)) - held.amount
        ledger.spent[slot] = ledger.spent.get(slot, Decimal(0)) + actual
        if rule.soft is not None:
            alert_crossings(rule, start, ledger.spent[slot], held)


def alert_crossings(rule: Rule, start: datetime, spent: Decimal, held: Reservation) -> None:
    slot = (rule.scope, rule.scope_id, start)
    crossed = [p for p in THRESHOLDS if spent >= rule.soft * p / 100]
    if crossed and crossed[-1] > ledger.alerted.get(slot, 0):
        ledger.alerted[slot] = crossed[-1]
        alerts.budget_alert(rule, start, spent, crossed[-1], held.key_id, held.request_id)


# -- several processes: the same, held in Redis -------------------------------------


async def check_shared(
    key_id: str, request_id: str, rules: tuple[Rule, ...], capped: list, worst: Decimal
) -> Reservation:
    for rule in rules:
        if rule.rpm:
            member = f"{request_id}|1"
            wait = await shared_ledger.check_rate(rule, "rpm", rule.rpm, member, record=True)
            if wait is not None:
                raise rate_limited(rule, f"{rule.rpm} requests", wait)
        if rule.tpm:
            wait = await shared_ledger.check_rate(rule, "tpm", rule.tpm, "", record=False)
            if wait is not None:
                raise rate_limited(rule, f"{rule.tpm} tokens", wait)
    slots = [(rule, start) for rule, (start, _) in capped]
    refused = await shared_ledger.reserve(request_id, slots, worst, seed_spend)
    if refused is not None:
        rule, committed = refused
        raise exceeded(rule, committed, current_bounds(rule.period, timezone.now())[1])
    return Reservation(worst, rules, slots, request_id, key_id, shared=True)


async def seed_spend(rule: Rule, start: datetime) -> Decimal:
    return await sync_to_async(analytics_budgets.spend, thread_sensitive=False)(
        rule.scope, rule.scope_id, start
    )


async def settle_shared(held: Reservation, actual: Decimal, tokens: int) -> None:
    try:
        after = await shared_ledger.settle(held.request_id, held.capped, actual)
        for rule in held.rules:
            if rule.tpm and tokens:
                await shared_ledger.record_tokens(rule, f"{held.request_id}|{tokens}")
        for (rule, start), spent in zip(held.capped, after, strict=True):
            if spent is None or rule.soft is None:
                continue
            crossed = [p for p in THRESHOLDS if spent >= rule.soft * p / 100]
            if crossed and await shared_ledger.claim_alert(rule, start, crossed[-1]):
                alerts.budget_alert(rule, start, spent, crossed[-1], held.key_id, held.request_id)
            await reconcile_now_and_then(rule, start)
    except shared_ledger.StoreDown:
        # Logged by shared_ledger. The hold expires by itself; reconcile() restores the
        # spend from the events.
        pass


_reconciled: dict[tuple[str, str, datetime], float] = {}


async def reconcile_now_and_then(rule: Rule, start: datetime) -> None:
    """Once a minute per slot and process: raise Redis' spend to the event record's."""
    slot = (rule.scope, rule.scope_id, start)
    if time.monotonic() - _reconciled.get(slot, 0.0) < 60:
        return
    _reconciled[slot] = time.monotonic()
    await shared_ledger.reconcile(rule, start, await seed_spend(rule, start))


_tasks: set[asyncio.Task[None]] = set()


def spawn(work) -> None:
    try:
        task = asyncio.get_running_loop().create_task(work)
    except RuntimeError:
        work.close()
        logger.error("budget settlement skipped: no event loop")
        return
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
