"""How fast the analytics API answers over 1,000,000 calls in SQLite.

    uv run python bench/analytics_bench.py [--calls 1000000] [--runs 7] [--home DIR]

Fills a fresh METIS_HOME (a temporary directory unless --home names an existing one)
with `llm.call_completed` events spread over the last 30 days, written through the
event writer's own path (`insert_events` + `record_calls` in one transaction, in
batches), then times every analytics endpoint in-process (Django's test client, local
mode) and prints the p50 of several runs. Target: every endpoint within 200 ms.
Results also go to bench/results/analytics.json.
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


def setup(home: Path) -> None:
    os.environ["METIS_HOME"] = str(home)
    os.environ.pop("DATABASE_URL", None)
    os.environ["METIS_LOCAL_MODE"] = "1"
    os.environ.setdefault("METIS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def fill(calls: int, *, batch: int = 5000, seed: int = 1) -> float:
    """Write `calls` completed-call events through the writer's insert path."""
    from decimal import Decimal

    import orjson
    from django.db import transaction
    from ulid import ULID

    from analytics.writer import PendingEvent, insert_events, record_calls

    rng = random.Random(seed)
    teams = [f"team-{t}" for t in range(8)]
    # Like real keys: each used by one client shape, with two or three models, mostly
    # under its owner's name and sometimes under one agent label.
    keys = []
    for k in range(40):
        shape = "anthropic" if k % 10 < 7 else "openai"
        models = rng.sample(MODELS, 3) if k % 4 == 0 else rng.sample(MODELS, 2)
        keys.append((f"gk_bench{k:04d}", f"key-{k}", f"dev-{k}", teams[k % len(teams)], shape,
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
    out = [f"/analytics/cost?window={w}" for w in ("1h", "24h", "7d", "30d")]
    out += [f"/analytics/cost?window=30d&group_by={g}" for g in
            ("model", "key", "user", "team", "workspace", "provider", "day")]  # fmt: skip
    out += [
        "/analytics/cost?window=7d&group_by=hour",
        "/analytics/cost?window=24h&group_by=hour",
        "/analytics/cost?window=24h&group_by=model",
        "/analytics/cost?window=7d&team=team-3",
    ]
    for path in ("by_key", "by_user", "by_team"):
        out += [f"/analytics/{path}?window=24h", f"/analytics/{path}?window=30d"]
    out += ["/analytics/activity?window=30d", "/analytics/activity?window=30d&page=20",
            "/analytics/activity?window=24h&user=dev-3"]  # fmt: skip
    return out


def time_endpoints(runs: int) -> dict[str, float]:
    from django.test import Client

    client = Client(SERVER_NAME="127.0.0.1")
    results = {}
    for url in requests():
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--home", type=Path, help="reuse this METIS_HOME if already filled")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="metis-analytics-bench-"))
    filled = (home / "metis.db").exists()
    setup(home)
    print(f"METIS_HOME={home}")
    seconds = None
    if not filled:
        print(f"writing {args.calls:,} calls over 30 days through the event writer's path")
        seconds = fill(args.calls)
        print(f"  {args.calls / seconds:,.0f} calls/s")
    print(f"p50 of {args.runs} runs per endpoint (target ≤ {TARGET_MS} ms):")
    results = time_endpoints(args.runs)
    slow = [url for url, ms in results.items() if ms > TARGET_MS]
    out = ROOT / "bench" / "results" / "analytics.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "calls": args.calls, "fill_seconds": seconds, "p50_ms": results,
        "measured_at": datetime.now(UTC).isoformat(), "target_ms": TARGET_MS,
    }, indent=2) + "\n")  # fmt: skip
    print("all endpoints within target" if not slow else f"{len(slow)} endpoint(s) over target")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
