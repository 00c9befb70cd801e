"""A year of calls made inside PostgreSQL, for `bench/analytics_bench.py --database-url`.

Ten million calls through the event writer would take hours; here PostgreSQL makes
them itself (INSERT … SELECT over generate_series), with the secondary indexes dropped
while it loads and built again after. What lands is what the writer would have left:

- identity rows: `teams` teams, `users` users (one team each, its first member the
  team's budget owner), `keys` gateway keys (each owned by a user, in the owner's team
  and one of the team's workspaces, used by one client shape with two or three models),
  and monthly quotas for every team, a tenth of the users and a twentieth of the keys;
- `Call` rows spread over `days` days up to now, busiest keys first (a power law), with
  errors, cancellations, hard-cap refusals, streams, cache and reasoning tokens and an
  unpriced local model;
- `CallHour` and `CallDay` summed from those rows, as the writer's upserts would leave
  them (`check()` compares them with the calls and with `aggregate.latency_bucket`), and
  the narrower rollups summed from those (`rollup.refill_narrow_grains`);
- the raw events (`route.decided`, `llm.call_completed`, `turn.completed`, payloads as
  `gateway.calls.events_from` writes them) for the last `event_days` days only: older
  ones are what `METIS_EVENT_RETENTION_DAYS` prunes, while calls and rollups keep the year.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

# (provider, model, USD per input token, per output token, has reasoning tokens)
MODELS = [
    ("anthropic", "claude-haiku-4-5", "0.0000010000", "0.0000050000", False),
    ("anthropic", "claude-sonnet-4-6", "0.0000030000", "0.0000150000", False),
    ("anthropic", "claude-opus-4-1", "0.0000150000", "0.0000750000", False),
    ("openai", "gpt-5-mini", "0.0000002500", "0.0000020000", True),
    ("openai", "gpt-5", "0.0000012500", "0.0000100000", True),
    ("ollama", "llama3", None, None, False),
]
TABLES = ("analytics_call", "analytics_callhour", "analytics_callday", "events")
NARROW = ("analytics_keyday", "analytics_keyweek", "analytics_modelday", "analytics_modelhour")
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _base32(expr: str, width: int) -> str:
    """SQL for `expr` (a bigint) as `width` Crockford base-32 digits, most significant first."""
    digits = [
        f"substr('{CROCKFORD}', (({expr} >> {5 * (width - 1 - i)}) & 31)::int + 1, 1)"
        for i in range(width)
    ]
    return " || ".join(digits)


def _ulid(ms: str, tag: str, n: str) -> str:
    """A ULID-shaped id: the millisecond (10 digits), a tag digit, the call number: ids
    sort by time like the writer's ULIDs, and the three events of a call by their tag."""
    return f"({_base32(ms, 10)} || '0000000000{tag}' || {_base32(n, 5)})"


def _bucket(column: str) -> str:
    """aggregate.latency_bucket in SQL: floor(2·log2(ms)) + 1, capped; exact at the
    powers of two, where a float logarithm may land a hair under the integer."""
    # float8 throughout: a numeric ln or power costs a hundred times more.
    raw = f"floor(2 * ln({column}) / ln(2::float8))::int"
    fixed = (
        f"({raw} + CASE WHEN power(2::float8, ({raw} + 1) / 2::float8) <= {column}"
        " THEN 1 ELSE 0 END)"
    )
    return f"(CASE WHEN {column} < 1 THEN 0 ELSE least({fixed} + 1, 39) END)"


def _execute(cursor, sql: str, params=None, *, note: str = "") -> None:
    started = time.perf_counter()
    cursor.execute(sql, params)
    if note:
        print(f"  {note}: {time.perf_counter() - started:.0f} s", flush=True)


def identities(*, teams: int, users: int, keys: int) -> list[tuple]:
    """Teams, users, workspaces, keys and quotas through the ORM (thousands of rows, not
    millions); returns (key id, name, owner, team, workspace path, shape, model numbers)."""
    import random
    from decimal import Decimal

    from identity import keys as key_tokens
    from identity.models import GatewayKey, Quota, Team, TeamMembership, User, Workspace

    rng = random.Random(7)
    team_rows = Team.objects.bulk_create([Team(name=f"team-{t:02d}") for t in range(teams)])
    user_rows = User.objects.bulk_create(
        [User(username=f"dev-{u:03d}", password="!") for u in range(users)]
    )
    TeamMembership.objects.bulk_create(
        [
            TeamMembership(
                user=user, team=team_rows[u % teams],
                role="budget_owner" if u < teams else "member",
            )
            for u, user in enumerate(user_rows)
        ]
    )  # fmt: skip
    spaces = Workspace.objects.bulk_create(
        [
            Workspace(name=f"proj-{w}", path=f"/srv/team-{w % teams:02d}/proj-{w}")
            for w in range(teams * 4)
        ]
    )
    key_rows, out = [], []
    for k in range(keys):
        u = k % users
        team = u % teams
        space = spaces[team + teams * rng.randrange(4)]
        shape = "anthropic" if rng.random() < 0.7 else "openai"
        models = rng.sample(range(len(MODELS)), 3)
        token = key_tokens.new_token()
        key = GatewayKey(
            id=key_tokens.new_key_id(), name=f"key-{k:04d}", token_prefix=token[:12],
            token_hash=key_tokens.hash_token(token), workspace=space, user=user_rows[u],
            team=team_rows[team],
        )  # fmt: skip
        key_rows.append(key)
        out.append((k, key.id, key.name, user_rows[u].username, team_rows[team].name,
                    space.path, shape, *models, 2 + (k % 4 == 0)))  # fmt: skip
    GatewayKey.objects.bulk_create(key_rows)
    quotas = [Quota(team=t, period="month", soft_cap_usd=Decimal(4000), hard_cap_usd=Decimal(6000))
              for t in team_rows]  # fmt: skip
    quotas += [Quota(user=u, period="month", soft_cap_usd=Decimal(300)) for u in user_rows[::10]]
    quotas += [Quota(key=k, period="day", hard_cap_usd=Decimal(20)) for k in key_rows[::20]]
    Quota.objects.bulk_create(quotas)
    return out


def fill(calls: int, *, days: int = 365, event_days: int = 90, teams: int = 50,
         users: int = 500, keys: int = 2000, seed: float = 0.42) -> dict:  # fmt: skip
    """Load everything; returns the seconds each step took."""
    from django.db import connection, transaction

    from analytics.rollup import refill_narrow_grains

    started = time.perf_counter()
    with transaction.atomic():
        key_rows = identities(teams=teams, users=users, keys=keys)
    now_us = int(time.time() * 1_000_000)
    span_us = days * 86_400 * 1_000_000
    events_from_us = now_us - event_days * 86_400 * 1_000_000
    with connection.cursor() as cursor:
        for setting in ("work_mem = '512MB'", "maintenance_work_mem = '1GB'", "jit = off",
                        "synchronous_commit = off", "TIME ZONE 'UTC'"):  # fmt: skip
            cursor.execute(f"SET {setting}")
        saved = _drop_indexes(cursor)
        cursor.execute(
            "CREATE TEMP TABLE bench_keys (k int PRIMARY KEY, id text, name text, owner text,"
            " team text, workspace text, shape text, m1 int, m2 int, m3 int, nmodels int)"
        )
        cursor.executemany(
            "INSERT INTO bench_keys VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", key_rows
        )
        cursor.execute(
            "CREATE TEMP TABLE bench_models (m int PRIMARY KEY, provider text, model text,"
            " price_in bigint, price_out bigint, reasoning bool)"
        )
        cursor.executemany(
            "INSERT INTO bench_models VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (m, p, name, _units(pin), _units(pout), reasoning)
                for m, (p, name, pin, pout, reasoning) in enumerate(MODELS)
            ],
        )
        cursor.execute("SELECT setseed(%s)", [seed])
        _execute(cursor, STAGE, [keys, now_us, span_us, calls], note="calls drawn")
        _execute(cursor, CALLS, note="Call rows")
        # The calls' indexes now: the events and the rollups read the calls by time.
        for name, definition in [d for d in saved if " ON public.analytics_call " in d[1]]:
            _execute(cursor, definition, note=f"index {name}")
            saved.remove((name, definition))
        _execute(cursor, EVENTS, [events_from_us] * 3, note="events")
        rollups(cursor, now_us - span_us, now_us)
        started_narrow = time.perf_counter()
        refill_narrow_grains()
        print(f"  narrower rollups: {time.perf_counter() - started_narrow:.0f} s")
        cursor.execute("DROP TABLE bench_stage")
        for name, definition in saved:
            _execute(cursor, definition, note=f"index {name}")
        for table in (*TABLES, *NARROW):
            _execute(cursor, f"VACUUM ANALYZE {table}", note=f"vacuum {table}")
    return {"seconds": time.perf_counter() - started}


def rollups(cursor, from_us: int, to_us: int, *, chunk_days: int = 14) -> None:
    """CallHour and CallDay from the calls, a few weeks at a time: one GROUP BY over ten
    million calls (nearly as many hour groups) spills to disk for the better part of an
    hour, where each chunk's groups fit in memory. Chunks are whole UTC days."""
    started = time.perf_counter()
    step = chunk_days * 86_400 * 1_000_000
    start = from_us - from_us % 86_400_000_000
    while start < to_us:
        window = [start / 1e6, (start + step) / 1e6]
        cursor.execute(HOURS, window)
        cursor.execute(DAYS, window)
        start += step
    print(f"  CallHour and CallDay: {time.perf_counter() - started:.0f} s", flush=True)


def _units(price: str | None) -> int | None:
    from analytics.models import to_units

    return to_units(price) if price is not None else None


def _drop_indexes(cursor) -> list[tuple[str, str]]:
    """Drop the loaded tables' secondary indexes (not those behind a primary key or a
    unique constraint); returns their definitions, to build them again after the load."""
    cursor.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = ANY(%s)"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
        [list(TABLES)],
    )
    saved = cursor.fetchall()
    for name, _ in saved:
        cursor.execute(f'DROP INDEX "{name}"')
    return saved


STAGE = """
CREATE TEMP TABLE bench_stage AS
SELECT n, ts_us, k, r_model, r_label, r_err, r_stream, r_cache, r_cache2, tin, tout,
       round(exp(7 + 0.8 * sqrt(-2 * ln(1 - u1)) * cos(2 * pi() * u2))::numeric, 3)::float8
         AS lat,
       round(exp(5.5 + 0.5 * sqrt(-2 * ln(1 - u3)) * cos(2 * pi() * u4))::numeric, 3)::float8
         AS ttft
FROM (
  SELECT n, least(floor(power(random(), 2.5) * %s)::int, 1999) AS k,
         %s - (random() * %s)::bigint AS ts_us,
         random() AS r_model, random() AS r_label, random() AS r_err, random() AS r_stream,
         random() AS r_cache, random() AS r_cache2,
         50 + floor(random() * 19950)::int AS tin, 10 + floor(random() * 1990)::int AS tout,
         random() AS u1, random() AS u2, random() AS u3, random() AS u4
  FROM generate_series(1, %s) n
) drawn
"""

CALLS = f"""
INSERT INTO analytics_call (id, "timestamp", gateway_key_id, key_name, "user", team, workspace,
  inbound_shape, provider, model, requested_model, stream, input_tokens, output_tokens,
  cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, latency_ms, ttft_ms,
  status, error_class, retries, request_id)
SELECT {_ulid("(s.ts_us / 1000)", "1", "s.n")}, to_timestamp(s.ts_us / 1e6), k.id, k.name,
  CASE WHEN s.r_label < 0.9 THEN k.owner ELSE 'agent-' || (s.k % 20) END,
  k.team, k.workspace, k.shape, m.provider, m.model, m.model, s.r_stream < 0.6,
  t.tin, t.tout, t.cache_read, t.cache_write,
  CASE WHEN m.reasoning THEN t.tout * 3 / 10 ELSE 0 END,
  m.price_in * t.tin + m.price_out * t.tout,
  CASE WHEN e.refused THEN 3.0 ELSE s.lat END,
  CASE WHEN s.r_stream < 0.6 AND NOT e.refused THEN least(s.ttft, s.lat) END,
  e.status, e.error_class, CASE WHEN s.r_err BETWEEN 0.5 AND 0.52 THEN 1 ELSE 0 END,
  'req_' || s.n
FROM bench_stage s
JOIN bench_keys k ON k.k = s.k
JOIN bench_models m ON m.m = CASE WHEN s.r_model < 0.6 THEN k.m1
  WHEN s.r_model < 0.9 OR k.nmodels = 2 THEN k.m2 ELSE k.m3 END
CROSS JOIN LATERAL (SELECT s.r_err >= 0.03 AND s.r_err < 0.031 AS refused,
  CASE WHEN s.r_err < 0.01 THEN 200 WHEN s.r_err < 0.03 THEN 502
       WHEN s.r_err < 0.031 THEN 429 ELSE 200 END AS status,
  CASE WHEN s.r_err < 0.01 THEN 'CANCELLED' WHEN s.r_err < 0.03 THEN 'UPSTREAM_ERROR'
       WHEN s.r_err < 0.031 THEN 'QUOTA_EXCEEDED' ELSE '' END AS error_class) e
CROSS JOIN LATERAL (SELECT
  CASE WHEN e.refused THEN 0 ELSE s.tin END AS tin,
  CASE WHEN e.refused THEN 0 ELSE s.tout END AS tout,
  CASE WHEN NOT e.refused AND s.r_cache < 0.4 THEN floor(s.r_cache2 * s.tin)::int ELSE 0 END
    AS cache_read,
  CASE WHEN NOT e.refused AND s.r_cache BETWEEN 0.4 AND 0.45 THEN floor(s.r_cache2 * s.tin / 2)::int
    ELSE 0 END AS cache_write) t
ORDER BY s.ts_us, s.n
"""

_COMMON = """'request_id', c.request_id, 'gateway_key_id', c.gateway_key_id, 'user', c."user",
  'team', c.team, 'workspace', c.workspace, 'inbound_shape', c.inbound_shape,
  'provider', c.provider, 'model', c.model, 'requested_model', c.requested_model"""
_COST = "round(c.cost_usd / 1e10, 10)"
_ERROR = "NULLIF(c.error_class, '')"
_N = "substr(c.request_id, 5)::bigint"
_MS = "(floor(extract(epoch FROM c.timestamp) * 1000)::bigint)"
_US = "(floor(extract(epoch FROM c.timestamp) * 1000000)::bigint)"

# The three events of each call in the retention window, as gateway.calls.events_from
# writes them (the completed event's id is the call's id).
EVENTS = f"""
INSERT INTO events (id, type, timestamp_us, payload_json)
SELECT id, type, ts, payload FROM (
  SELECT {_ulid(_MS, "0", _N)} AS id, 'route.decided' AS type, {_US} - 1 AS ts,
    jsonb_build_object({_COMMON}, 'decided_by', 'request')::text AS payload
  FROM analytics_call c WHERE c.timestamp >= to_timestamp(%s / 1e6)
  UNION ALL
  SELECT c.id, 'llm.call_completed', {_US}, jsonb_build_object({_COMMON},
    'key_name', c.key_name, 'key_owner', k.owner, 'stream', c.stream,
    'input_tokens', c.input_tokens, 'output_tokens', c.output_tokens,
    'cache_creation_input_tokens', c.cache_write_tokens, 'cache_creation_1h_input_tokens', 0,
    'cache_read_input_tokens', c.cache_read_tokens, 'reasoning_tokens', c.reasoning_tokens,
    'usage_estimated', false, 'cost_usd', {_COST},
    'price_source', CASE WHEN c.cost_usd IS NOT NULL THEN 'genai-prices' END,
    'latency_ms', c.latency_ms, 'ttft_ms', c.ttft_ms, 'overhead_ms', 0.4,
    'status', c.status, 'error_class', {_ERROR}, 'retries', c.retries,
    'upstream_request_id', 'msg_' || c.request_id)::text
  FROM analytics_call c JOIN bench_keys k ON k.id = c.gateway_key_id
  WHERE c.timestamp >= to_timestamp(%s / 1e6)
  UNION ALL
  SELECT {_ulid(_MS, "2", _N)}, 'turn.completed', {_US} + 1, jsonb_build_object({_COMMON},
    'status', c.status, 'error_class', {_ERROR}, 'cost_usd', {_COST},
    'latency_ms', c.latency_ms)::text
  FROM analytics_call c WHERE c.timestamp >= to_timestamp(%s / 1e6)
) e ORDER BY id
"""

_GROUP = 'gateway_key_id, "user", team, workspace, provider, model, inbound_shape'
_LATS = ", ".join(f"lat_{i:02d}" for i in range(40))
_SUMS = ("calls, errors, cancelled, input_tokens, output_tokens, cache_read_tokens, "
         "cache_write_tokens, reasoning_tokens, cost_usd, unpriced_calls")  # fmt: skip

# rollup.rows_from_events in SQL: an error is a status >= 400 or an error class, unless
# cancelled; cost sums priced calls only.
HOURS = f"""
INSERT INTO analytics_callhour (hour, {_GROUP}, {_SUMS}, last_call_at, {_LATS})
SELECT date_trunc('hour', "timestamp"), {_GROUP}, count(*),
  count(*) FILTER (WHERE error_class <> 'CANCELLED' AND (status >= 400 OR error_class <> '')),
  count(*) FILTER (WHERE error_class = 'CANCELLED'),
  sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
  sum(reasoning_tokens), coalesce(sum(cost_usd), 0), count(*) FILTER (WHERE cost_usd IS NULL),
  max("timestamp"), {", ".join(f"count(*) FILTER (WHERE b = {i})" for i in range(40))}
FROM (SELECT "timestamp", {_GROUP}, status, error_class, input_tokens, output_tokens,
        cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd,
        {_bucket("latency_ms")} AS b FROM analytics_call
      WHERE "timestamp" >= to_timestamp(%s) AND "timestamp" < to_timestamp(%s)
      OFFSET 0) c  -- not flattened: the bucket is computed once per call, not per FILTER
GROUP BY 1, {_GROUP} ORDER BY 1
"""

DAYS = f"""
INSERT INTO analytics_callday (day, {_GROUP}, {_SUMS}, last_call_at, {_LATS})
SELECT date_trunc('day', hour), {_GROUP},
  {", ".join(f"sum({c.strip()})" for c in _SUMS.split(","))},
  max(last_call_at), {", ".join(f"sum(lat_{i:02d})" for i in range(40))}
FROM analytics_callhour WHERE hour >= to_timestamp(%s) AND hour < to_timestamp(%s)
GROUP BY 1, {_GROUP} ORDER BY 1
"""


def check() -> list[str]:
    """What disagrees between the calls and their rollups (an empty list: nothing)."""
    from django.db import connection

    from analytics.aggregate import latency_bucket

    problems = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM analytics_call), (SELECT sum(calls) FROM"
            " analytics_callhour), (SELECT sum(calls) FROM analytics_callday),"
            " (SELECT sum(cost_usd) FROM analytics_call), (SELECT sum(cost_usd) FROM"
            " analytics_callday)"
        )
        calls, hours, days, cost, day_cost = cursor.fetchone()
        if not calls == hours == days or cost != day_cost:
            problems.append(
                f"calls {calls}, in hours {hours}, in days {days}; cost {cost} vs {day_cost}"
            )
        powers = [2.0**i for i in range(20)] + [2 ** (i / 2) for i in range(40)]
        cursor.execute(
            f"SELECT ms, {_bucket('ms')} FROM (SELECT latency_ms AS ms FROM analytics_call"
            " TABLESAMPLE SYSTEM (0.05) UNION ALL SELECT unnest(%s::float8[])) s",
            [powers],
        )
        for ms, bucket in cursor.fetchall():
            if latency_bucket(ms) != bucket:
                problems.append(f"latency {ms} ms: bucket {bucket} in SQL, {latency_bucket(ms)}")
        since = datetime.now(UTC) - timedelta(days=3)
        cursor.execute(
            "SELECT count(*) FROM (SELECT date_trunc('hour', \"timestamp\") h, gateway_key_id,"
            ' count(*) n, sum(input_tokens) t FROM analytics_call WHERE "timestamp" >= %s'
            " GROUP BY 1, 2) c FULL JOIN (SELECT hour h, gateway_key_id, sum(calls) n,"
            " sum(input_tokens) t FROM analytics_callhour"
            " WHERE hour >= date_trunc('hour', %s::timestamptz)"
            " GROUP BY 1, 2) r USING (h, gateway_key_id)"
            " WHERE c.h >= date_trunc('hour', %s::timestamptz) + interval '1 hour'"
            " AND (c.n IS DISTINCT FROM r.n OR c.t IS DISTINCT FROM r.t)",
            [since, since, since],
        )
        if (bad := cursor.fetchone()[0]) != 0:
            problems.append(f"{bad} (hour, key) groups of the last 3 days disagree")
    return problems
