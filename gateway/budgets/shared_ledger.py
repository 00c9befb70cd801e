"""Budgets shared by several gateway processes or machines, in Redis (REDIS_URL).

Each (scope, period) has a spend counter in exact 1e-10 USD units, seeded from
the database the first time any process sees it, and a hash of the holds of
calls in flight (request id → units and expiry). Both are read and changed in
Lua scripts, so a check-and-hold is atomic across every process:

- a hold expires on its own (METIS_QUOTA_HOLD_SECONDS) if its process died;
- settling deletes the call's hold and adds its cost only if the hold was still
  there, so a call is settled once, however often settle runs;
- `reconcile()` raises a counter to the event record when the record is ahead
  (a process that died between writing its events and settling), never lowers
  it (calls settled here may still be in a writer's queue).

When Redis cannot be reached, METIS_REDIS_FAILURE decides: "closed" (default)
refuses calls that have budgets with a 503, "open" holds them in this process
alone. A Redis that hangs rather than refuses would make every such call wait
METIS_REDIS_TIMEOUT first, so a circuit breaker stops asking it: after
METIS_REDIS_BREAKER_FAILURES failures in a row, calls get the policy's answer at
once, and one call probes Redis again every METIS_REDIS_BREAKER_SECONDS. Each
change of state is logged once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as redis
from django.conf import settings
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError

from gateway.budgets.refusals import unavailable
from gateway.budgets.rules import Rule
from gateway.metrics import registry

logger = logging.getLogger(__name__)
UNIT = Decimal("1e-10")
PREFIX = "metis:budget"

# KEYS: spent and held key per slot. ARGV: request id, now, hold expiry, worst units, then
# the hard cap per slot ("" = none). Returns {0} when held, {i, committed} when slot i
# would pass its cap, {-i} when slot i's counter is not seeded yet.
RESERVE = """
local n = #KEYS / 2
local committed = {}
for i = 1, n do
  local spent = redis.call('GET', KEYS[2*i-1])
  if not spent then return {-i} end
  local held = 0
  local entries = redis.call('HGETALL', KEYS[2*i])
  for j = 1, #entries, 2 do
    local units, expires = string.match(entries[j+1], '(%d+)|(%d+)')
    if tonumber(expires) < tonumber(ARGV[2]) then
      redis.call('HDEL', KEYS[2*i], entries[j])
    else
      held = held + tonumber(units)
    end
  end
  committed[i] = tonumber(spent) + held
  local cap = ARGV[4 + i]
  -- as reservations.passes_cap: a budget with nothing left refuses even a call that costs nothing
  if cap ~= '' and (committed[i] + tonumber(ARGV[4]) > tonumber(cap)
                    or committed[i] >= tonumber(cap)) then
    return {i, tostring(committed[i])}
  end
end
for i = 1, n do
  redis.call('HSET', KEYS[2*i], ARGV[1], ARGV[4] .. '|' .. ARGV[3])
end
return {0}
"""
# KEYS: spent and held key per slot. ARGV: request id, actual units. Returns the spend
# after, per slot ("" where the call was settled before).
SETTLE = """
local out = {}
for i = 1, #KEYS / 2 do
  if redis.call('HDEL', KEYS[2*i], ARGV[1]) == 1 then
    out[i] = tostring(redis.call('INCRBY', KEYS[2*i-1], ARGV[2]))
  else
    out[i] = ''
  end
end
return out
"""
RAISE_TO = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""
# A sliding minute of requests (ZSET scored by time). ARGV: now, limit, member, record?
RATE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - 60)
local used = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  used = used + tonumber(string.match(member, '|(%d+)$'))
end
if used >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(oldest[2])
end
if ARGV[4] == '1' then redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3]) end
redis.call('EXPIRE', KEYS[1], 120)
return ''
"""

failures = Counter(
    "metis_budget_store_failures", "Budget store (Redis) operations that failed or timed out",
    registry=registry,
)  # fmt: skip
skipped = Counter(
    "metis_budget_store_skipped", "Budget store operations not tried: the breaker was open",
    registry=registry,
)  # fmt: skip
breaker_open = Gauge(
    "metis_budget_store_breaker_open", "1 while the gateway has stopped asking Redis",
    registry=registry,
)  # fmt: skip


class StoreDown(Exception):
    """Redis failed, or was not asked because it has been failing (the breaker is open)."""


class Breaker:
    """Consecutive failures open it; after the cool-down one call probes Redis (half-open)
    while the others still get the policy's answer at once; a success closes it."""

    def __init__(self) -> None:
        self.state = "closed"  # closed: Redis is asked; open: it is not; half-open: probing
        self.failures = 0  # in a row
        self.opened_at = 0.0

    def allows(self) -> bool:
        if self.state == "closed":
            return True
        if self.state == "open" and time.monotonic() - self.opened_at >= cooldown():
            self.state = "half-open"
            return True  # this call is the probe
        return False

    def succeeded(self) -> None:
        if self.state != "closed":
            logger.warning("Redis at %s answers again: budgets are held in Redis", redis_url())
            breaker_open.set(0)
        self.state, self.failures = "closed", 0

    def failed(self, exc: BaseException) -> None:
        failures.inc()
        self.failures += 1
        policy = settings.METIS_REDIS_FAILURE
        if self.state == "closed" and self.failures == 1:
            logger.error("REDIS UNAVAILABLE at %s (%s): budgets fail %s", redis_url(),
                         describe(exc), policy)  # fmt: skip
        if self.state == "half-open" or self.failures >= settings.METIS_REDIS_BREAKER_FAILURES:
            if self.state == "closed":
                logger.error(
                    "REDIS UNAVAILABLE at %s: %d failures in a row; budgets fail %s at once, "
                    "without asking Redis, which is tried again every %g s",
                    redis_url(), self.failures, policy, cooldown(),
                )  # fmt: skip
                breaker_open.set(1)
            self.state, self.opened_at = "open", time.monotonic()

    def abandoned(self) -> None:
        """The call went away mid-operation: a probe that never ended must not wedge it."""
        if self.state == "half-open":
            self.state, self.opened_at = "open", time.monotonic() - cooldown()


breaker = Breaker()
_clients: dict[int, redis.Redis] = {}


def enabled() -> bool:
    return bool(settings.REDIS_URL)


def cooldown() -> float:
    return settings.METIS_REDIS_BREAKER_SECONDS


def client() -> redis.Redis:
    # One per event loop: a redis.asyncio pool is bound to the loop that made it.
    loop = id(asyncio.get_running_loop())
    if loop not in _clients:
        timeout = settings.METIS_REDIS_TIMEOUT
        _clients[loop] = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout
        )
    return _clients[loop]


async def ask(command: str, *args: Any, **kwargs: Any) -> Any:
    """Run one Redis command through the breaker; StoreDown when it fails or is skipped."""
    if not breaker.allows():
        skipped.inc()
        raise StoreDown("Redis has been failing; not asked until the breaker's cool-down ends")
    try:
        result = await getattr(client(), command)(*args, **kwargs)
    except (RedisError, OSError) as exc:
        breaker.failed(exc)
        raise StoreDown(describe(exc)) from exc
    except asyncio.CancelledError:
        breaker.abandoned()
        raise
    breaker.succeeded()
    return result


def reset() -> None:
    global breaker
    _clients.clear()
    breaker = Breaker()
    breaker_open.set(0)


def keys_for(rule: Rule, start: datetime) -> tuple[str, str]:
    slot = f"{PREFIX}:{rule.scope}:{rule.scope_id}:{int(start.timestamp())}"
    return f"{slot}:spent", f"{slot}:held"


def units(amount: Decimal) -> int:
    return int((amount / UNIT).to_integral_value())


def redis_url() -> str:
    """REDIS_URL without its password, for the log."""
    parts = urlsplit(settings.REDIS_URL)
    if parts.password is None:
        return settings.REDIS_URL
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def reserve(
    request_id: str, capped: list[tuple[Rule, datetime]], worst: Decimal, seed
) -> tuple[Rule, Decimal] | None:
    """Hold `worst` against every slot atomically; (rule, committed) for the one it would
    pass, else None. `seed(rule, start)` gives a slot's spend from the database."""
    keys = [key for rule, start in capped for key in keys_for(rule, start)]
    caps = ["" if rule.hard is None else str(units(rule.hard)) for rule, _ in capped]
    expires = int(time.time() + settings.METIS_QUOTA_HOLD_SECONDS)
    for _ in range(len(capped) + 1):
        args = (request_id, int(time.time()), expires, units(worst), *caps)
        result = await ask("eval", RESERVE, len(keys), *keys, *args)
        code = int(result[0])
        if code == 0:
            return None
        if code > 0:
            return capped[code - 1][0], Decimal(result[1].decode()) * UNIT
        rule, start = capped[-code - 1]
        spent = await seed(rule, start)
        await ask("set", keys_for(rule, start)[0], units(spent), nx=True, ex=period_ttl(start))
    raise unavailable()


async def settle(request_id: str, capped: list[tuple[Rule, datetime]], actual: Decimal) -> list:
    keys = [key for rule, start in capped for key in keys_for(rule, start)]
    after = await ask("eval", SETTLE, len(keys), *keys, request_id, units(actual))
    return [None if not value else Decimal(value.decode()) * UNIT for value in after]


async def claim_alert(rule: Rule, start: datetime, percent: int) -> bool:
    """True for the one process that gets to send this alert."""
    key = f"{keys_for(rule, start)[0]}:alerted:{percent}"
    return bool(await ask("set", key, 1, nx=True, ex=period_ttl(start)))


async def check_rate(rule: Rule, kind: str, limit: int, member: str, record: bool) -> float | None:
    """Seconds to wait when the scope's sliding minute is full, else None (and, with
    `record`, the member — `id|count` — is counted)."""
    key = f"{PREFIX}:{rule.scope}:{rule.scope_id}:{kind}"
    now = time.time()
    oldest = await ask("eval", RATE, 1, key, now, limit, member, "1" if record else "0")
    return float(oldest) + 60 - now if oldest else None


async def reconcile(rule: Rule, start: datetime, recorded: Decimal) -> None:
    await ask("eval", RAISE_TO, 1, keys_for(rule, start)[0], units(recorded))


def period_ttl(start: datetime) -> int:
    # Longer than any calendar period; a "total" counter that expires is seeded again
    # from the database, which holds every call.
    return 40 * 24 * 3600


async def record_tokens(rule: Rule, member: str) -> None:
    key = f"{PREFIX}:{rule.scope}:{rule.scope_id}:tpm"
    await ask("zadd", key, {member: time.time()})
    await ask("expire", key, 120)
