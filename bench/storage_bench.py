"""How many bytes a call costs in SQLite: its three events, its Call row and its rollups.

    uv run python bench/storage_bench.py [--calls 100000] [--days 30]

Fills a fresh METIS_HOME with calls spread over the last `--days` days, each as the
gateway records it (`route.decided`, `llm.call_completed`, `turn.completed`, made by
gateway.calls.events_from, written by the event writer's insert path), VACUUMs, then reads
each table's and index's size from SQLite's dbstat table. Prints bytes per call and per
million calls, and what is left per call once the events are pruned (analytics.retention).
Results also go to bench/results/storage.json.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.analytics_bench import MODELS, setup  # noqa: E402

EVENTS = ("events",)
CALLS = ("analytics_call",)
ROLLUPS = ("analytics_callhour", "analytics_callday")


def fill(calls: int, days: int, *, batch: int = 5000) -> None:
    import random

    from django.db import transaction
    from ulid import ULID

    from analytics.usage import Usage
    from analytics.writer import PendingEvent, insert_events, record_calls
    from gateway.calls import events_from

    rng = random.Random(1)
    keys = [(f"gk_01JBENCH{k:017d}", f"key-{k}", f"dev-{k}", f"team-{k % 8}") for k in range(40)]
    now_us = int(time.time() * 1_000_000)
    stamps = sorted(now_us - rng.randrange(days * 86400 * 1_000_000) for _ in range(calls))
    for offset in range(0, calls, batch):
        events: list[PendingEvent] = []
        for ts in stamps[offset : offset + batch]:
            key_id, name, owner, team = rng.choice(keys)
            provider, model, price_in, price_out = rng.choice(MODELS)
            shape = "anthropic" if provider == "anthropic" else "openai"
            usage = Usage(input_tokens=rng.randrange(50, 20000),
                          output_tokens=rng.randrange(10, 2000))  # fmt: skip
            cost = None
            if price_in is not None:
                cost = (
                    Decimal(price_in) * usage.input_tokens
                    + Decimal(price_out) * usage.output_tokens
                )
            call = {
                "request_id": f"req_{ULID()}", "gateway_key_id": key_id, "user": owner,
                "team": team, "workspace": f"/srv/{team}", "inbound_shape": shape,
                "provider": provider, "model": model, "requested_model": model,
                "key_name": name, "key_owner": owner, "stream": rng.random() < 0.6,
                "decided_by": "request",
            }  # fmt: skip
            tick = iter(range(3))

            def make(type_: str, payload: dict, *, gateway_key_id: str | None, ts=ts, tick=tick):
                import orjson

                at = ts + next(tick)
                ulid = str(ULID.from_timestamp(at / 1_000_000))
                return PendingEvent(ulid, type_, at, orjson.dumps(payload).decode(), gateway_key_id)

            events += events_from(
                call, usage=usage, cost_usd=cost, price_source="genai-prices" if cost else None,
                latency_ms=round(rng.lognormvariate(7, 0.8), 3),
                ttft_ms=round(rng.lognormvariate(5.5, 0.5), 3), overhead_ms=0.4,
                status=200, error_class=None, retries=0,
                upstream_request_id=f"msg_{ULID()}", make=make,
            )  # fmt: skip
        with transaction.atomic():
            insert_events(events)
            record_calls(events)


def sizes(db: Path) -> dict[str, int]:
    """Bytes per table, its indexes included (dbstat's pages of each b-tree)."""
    with sqlite3.connect(db) as conn:
        conn.execute("VACUUM")
        owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN "
                                  "('table', 'index')").fetchall())  # fmt: skip
        totals: dict[str, int] = defaultdict(int)
        for name, pgsize in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            totals[owner.get(name, name)] += pgsize
    return dict(totals)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="metis-storage-"))
    setup(home)
    started = time.perf_counter()
    fill(args.calls, args.days)
    print(f"{args.calls:,} calls written in {time.perf_counter() - started:.0f} s")
    table = sizes(home / "metis.db")
    part = {
        "events": sum(table.get(t, 0) for t in EVENTS),
        "call rows": sum(table.get(t, 0) for t in CALLS),
        "rollups": sum(table.get(t, 0) for t in ROLLUPS),
    }
    per_call = {k: v / args.calls for k, v in part.items()}
    per_call["total"] = sum(per_call.values())
    per_call["after pruning events"] = per_call["call rows"] + per_call["rollups"]
    for what, value in per_call.items():
        print(f"{what:>22}: {value:8.0f} bytes/call  {value * 1e6 / 2**30:7.2f} GiB per million")
    print(f"(rollups: 40 keys, 6 models over {args.days} days; they grow with keys x models x "
          "hours, not with calls)")  # fmt: skip
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "storage.json").write_text(
        json.dumps(
            {"calls": args.calls, "days": args.days, "bytes": part, "bytes_per_call": per_call},
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
