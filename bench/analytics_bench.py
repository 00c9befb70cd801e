"""How fast the analytics API answers over 1,000,000 calls in SQLite, or 10,000,000 in
PostgreSQL.

    uv run python bench/analytics_bench.py [--calls 1000000] [--runs 7] [--home DIR]
    uv run python bench/analytics_bench.py --database-url postgres://postgres@127.0.0.1:5432/metis_bench10m

SQLite: fills a fresh METIS_HOME (a temporary directory unless --home names an existing
one) with `llm.call_completed` events spread over the last 30 days, written through the
event writer's own path (`insert_events` + `record_calls` in one transaction, in
batches).

PostgreSQL (--database-url; the database is created if missing, and filled only if it
holds no calls, so a second run only times): 10,000,000 calls by default over the last
365 days from 2,000 keys, 500 users and 50 teams with their quotas, made by PostgreSQL
itself (bench/pg_fill.py: the calls, the hourly and daily rollups summed from them, and
the raw events of the last --event-days days only, as METIS_EVENT_RETENTION_DAYS would
keep them), then checked (rollups against calls) and measured (bytes per call).

Either way it then times every analytics endpoint in-process (Django's test client,
local mode), each warmed once, and prints the p50 of several runs. Target: every
endpoint within 200 ms. Results also go to bench/results/analytics.json (or
analytics-postgres.json).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = [
    ("anthropic", "claude-haiku-4-5", "0.0000010000", "0.0000050000"),
    ("anthropic", "claude-sonnet-4-6", "0.0000030000", "0.0000150000"),
    ("anthropic", "claude-opus-4-1", "0.0000150000", "0.0000750000"),
    ("openai", "gpt-5-mini", "0.0000002500", "0.0000020000"),
    ("openai", "gpt-5", "0.0000012500", "0.0000100000"),
    ("ollama", "llama3", None, None),
]
TARGET_MS = 200


def setup(home: Path, database_url: str | None = None) -> None:
    os.environ["METIS_HOME"] = str(home)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
        create_database(database_url)
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ["METIS_LOCAL_MODE"] = "1"
    os.environ.setdefault("METIS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def create_database(url: str) -> None:
    """CREATE DATABASE for the URL's name, unless it exists (through the server's
    `postgres` database, with the URL's credentials)."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def fill(calls: int, *, batch: int = 5000, seed: int = 1) -> float:
    """Write `calls` completed-call events through the writer's insert path."""
    from decimal import Decimal

    import orjson
    from django.db import transaction
    from ulid import ULID

    from analytics.writer import PendingEvent, insert_events, record_calls

    rng = random.Random(seed)
    teams = [f"team-{t:02d}" for t in range(8)]
    # Like real keys: each used by one client shape, with two or three models, mostly
    # under its owner's name and sometimes under one agent label.
    keys = []
    for k in range(40):
        shape = "anthropic" if k % 10 < 7 else "openai"
        models = rng.sample(MODELS, 3) if k % 4 == 0 else rng.sample(MODELS, 2)
        keys.append((f"gk_bench{k:04d}", f"key-{k}", f"dev-{k:03d}", teams[k % len(teams)], shape,
                     models))  # fmt: skip
    now_us = int(time.time() * 1_000_000)
    span_us = 30 * 86400 * 1_000_000
    # Oldest first, as a live gateway writes them.
    stamps = sorted(now_us - rng.randrange(span_us) for _ in range(calls))
    started = time.perf_counter()
    for offset in range(0, calls, batch):
        events = []
        for ts in stamps[offset : offset + batch]:
            key_id, key_name, owner, team, shape, models = rng.choice(keys)
            provider, model, price_in, price_out = rng.choice(models)
            tokens_in, tokens_out = rng.randrange(50, 20000), rng.randrange(10, 2000)
            cost = None
            if price_in is not None:
                cost = Decimal(price_in) * tokens_in + Decimal(price_out) * tokens_out
            roll = rng.random()
            error = "CANCELLED" if roll < 0.01 else ("UPSTREAM_ERROR" if roll < 0.03 else None)
            payload = {
                "request_id": f"req_{ts}",
                "gateway_key_id": key_id,
                "user": owner if rng.random() < 0.9 else f"agent-{key_id[-2:]}",
                "team": team,
                "workspace": f"/srv/{team}",
                "inbound_shape": shape,
                "provider": provider,
                "model": model,
                "requested_model": model,
                "key_name": key_name,
                "key_owner": owner,
                "stream": rng.random() < 0.6,
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": rng.randrange(0, tokens_in),
                "reasoning_tokens": 0,
                "cost_usd": orjson.Fragment(format(cost, "f")) if cost is not None else None,
                "latency_ms": round(rng.lognormvariate(7, 0.8), 3),
                "ttft_ms": round(rng.lognormvariate(5.5, 0.5), 3),
                "status": 502 if error == "UPSTREAM_ERROR" else 200,
                "error_class": error,
                "retries": 0,
            }
            event_id = str(ULID.from_timestamp(ts / 1_000_000))
            events.append(
                PendingEvent(
                    event_id, "llm.call_completed", ts, orjson.dumps(payload).decode(), key_id
                )
            )
        with transaction.atomic():
            insert_events(events)
            record_calls(events)
        done = offset + len(events)
        if done % 100_000 == 0 or done == calls:
            print(f"  {done:>9,} calls written ({time.perf_counter() - started:.0f} s)", flush=True)
    return time.perf_counter() - started


def requests() -> list[str]:
    out = [f"/analytics/cost?window={w}" for w in
           ("1h", "24h", "7d", "30d", "this_month", "last_month")]  # fmt: skip
    out += [f"/analytics/cost?window=30d&group_by={g}" for g in
            ("model", "key", "user", "label", "team", "workspace", "provider", "day")]  # fmt: skip
    out += [
        "/analytics/cost?window=7d&group_by=hour",
        "/analytics/cost?window=24h&group_by=hour",
        "/analytics/cost?window=24h&group_by=model",
        "/analytics/cost?window=7d&team=team-03",
        "/analytics/cost?window=30d&user=dev-003&group_by=model",
    ]
    for path in ("by_key", "by_user", "by_team"):
        out += [f"/analytics/{path}?window={w}" for w in ("24h", "30d", "this_month")]
    out += ["/analytics/activity?window=30d", "/analytics/activity?window=30d&page=20",
            "/analytics/activity?window=24h&user=dev-003",
            "/analytics/activity?window=30d&team=team-03&page_size=500"]  # fmt: skip
    return out


def time_endpoints(urls: list[str], runs: int) -> dict[str, float]:
    """p50 of `runs` timed requests per URL, after one untimed (warm) request, in a process
    settled as `metis serve` settles at startup (its frozen heap and collector thresholds):
    without it, a full collection of the whole heap took 100 ms every two or three
    requests here, a pause the server does not have."""
    from django.test import Client

    from metis_site.asgi import settle

    settle()
    client = Client(SERVER_NAME="127.0.0.1")
    results = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.content[:200])
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.content[:200])
        results[url] = statistics.median(timings)
        verdict = "ok" if results[url] <= TARGET_MS else "SLOW"
        print(f"  {results[url]:8.1f} ms  {verdict:4}  {url}", flush=True)
    return results


def postgres_sizes(calls: int) -> dict[str, float]:
    """Bytes per call of each table, its indexes and TOAST included."""
    from django.db import connection

    from bench.pg_fill import NARROW, TABLES

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname = ANY(%s)",
            [[*TABLES, *NARROW]],
        )
        sizes = dict(cursor.fetchall())
    per_call = {table: sizes.get(table, 0) / calls for table in (*TABLES, *NARROW)}
    per_call["total"] = sum(per_call.values())
    per_call["without events"] = per_call["total"] - per_call["events"]
    for what, value in per_call.items():
        print(f"  {what:>20}: {value:7.0f} bytes/call  {value * 1e6 / 2**30:6.2f} GiB per million")
    return per_call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, help="default 1,000,000 (SQLite), 10,000,000 (PG)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--home", type=Path, help="reuse this METIS_HOME if already filled")
    parser.add_argument("--database-url", help="postgres://…: fill and time this database")
    parser.add_argument("--days", type=int, default=365, help="PostgreSQL: the calls' span")
    parser.add_argument("--event-days", type=int, default=90,
                        help="PostgreSQL: the raw events kept (the retention window)")  # fmt: skip
    parser.add_argument("--only", help="time only the URLs containing this text")
    args = parser.parse_args()
    postgres = bool(args.database_url)
    calls = args.calls or (10_000_000 if postgres else 1_000_000)
    home = args.home or Path(tempfile.mkdtemp(prefix="metis-analytics-bench-"))
    filled = (home / "metis.db").exists()
    setup(home, args.database_url)
    print(f"METIS_HOME={home}" + (f" DATABASE_URL={args.database_url}" if postgres else ""))
    seconds, sizes = None, None
    if postgres:
        from analytics.models import Call
        from bench import pg_fill

        filled = Call.objects.exists()
        if not filled:
            print(f"making {calls:,} calls over {args.days} days in PostgreSQL"
                  f" (events: the last {args.event_days} days)")  # fmt: skip
            seconds = pg_fill.fill(calls, days=args.days, event_days=args.event_days)["seconds"]
            print(f"  loaded in {seconds:,.0f} s")
            problems = pg_fill.check()
            print("  rollups agree with the calls" if not problems else "\n".join(problems))
        calls = Call.objects.count() if filled else calls
        sizes = postgres_sizes(calls)
    elif not filled:
        print(f"writing {calls:,} calls over 30 days through the event writer's path")
        seconds = fill(calls)
        print(f"  {calls / seconds:,.0f} calls/s")
    urls = [u for u in requests() if not args.only or args.only in u]
    print(f"p50 of {args.runs} runs per endpoint, warm (target ≤ {TARGET_MS} ms):")
    results = time_endpoints(urls, args.runs)
    slow = [url for url, ms in results.items() if ms > TARGET_MS]
    out = ROOT / "bench" / "results" / ("analytics-postgres.json" if postgres else "analytics.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "calls": calls, "fill_seconds": seconds, "p50_ms": results, "bytes_per_call": sizes,
        "database": "postgresql" if postgres else "sqlite", "load": os.getloadavg(),
        "measured_at": datetime.now(UTC).isoformat(), "target_ms": TARGET_MS,
    }, indent=2) + "\n")  # fmt: skip
    print("all endpoints within target" if not slow else f"{len(slow)} endpoint(s) over target")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
