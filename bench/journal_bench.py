"""What the call journal (gateway/journal.py) adds to each call, in µs.

    uv run python bench/journal_bench.py [--calls N]

In a temporary METIS_HOME with a migrated SQLite database, hands N calls' events to the
event writer directly (what a call cost before the journal), then through the journal as
a non-streamed call does (an `s` record, then an `f` record with the events), then as an
Anthropic stream does (three `u` records between: its status, its first and last usage).
The differences are the journal's cost on the request path. The event writer's inserts
run on their own thread in every run, so this thread's CPU time (time.thread_time) is
measured, and the events are made before the clock starts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["METIS_HOME"] = tempfile.mkdtemp(prefix="metis-journal-bench-")
os.environ.pop("DATABASE_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis_site.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from analytics.writer import EventWriter, make_event, new_id  # noqa: E402
from gateway.journal import Journal  # noqa: E402

DESCRIBED = {
    "request_id": "", "gateway_key_id": "gk_01JBENCH0000000000000000000", "user": "alice",
    "team": "eng", "workspace": "/srv/buyer-project", "inbound_shape": "anthropic",
    "provider": "anthropic", "model": "claude-haiku-4-5", "requested_model": "haiku",
    "key_name": "alice-laptop", "key_owner": "alice", "stream": True, "decided_by": "request",
}  # fmt: skip
COMPLETED = {
    **DESCRIBED, "input_tokens": 1200, "output_tokens": 350, "cache_creation_input_tokens": 0,
    "cache_creation_1h_input_tokens": 0, "cache_read_input_tokens": 0, "reasoning_tokens": 0,
    "usage_estimated": False, "cost_usd": "0.00295", "price_source": "anthropic",
    "latency_ms": 812.5, "ttft_ms": 95.1, "overhead_ms": 0.41, "status": 200,
    "error_class": None, "retries": 0, "upstream_request_id": "req_011CBENCH",
}  # fmt: skip


def events(request_id: str) -> list:
    key = DESCRIBED["gateway_key_id"]
    return [
        make_event("route.decided", {**DESCRIBED, "request_id": request_id}, gateway_key_id=key),
        make_event("llm.call_completed", {**COMPLETED, "request_id": request_id},
                   gateway_key_id=key),
        make_event("turn.completed", {"request_id": request_id, "status": 200},
                   gateway_key_id=key),
    ]  # fmt: skip


def direct(writer: EventWriter, n: int) -> float:
    calls = [events(f"metis_{new_id()}") for _ in range(n)]
    started = time.thread_time()
    for made in calls:
        writer.submit(made)
    elapsed = time.thread_time() - started
    assert writer.flush(timeout=300)
    return elapsed


def journaled(journal: Journal, n: int, *, stream: bool = True) -> float:
    calls = [(f"metis_{new_id()}", events("")) for _ in range(n)]
    started = time.thread_time()
    for request_id, made in calls:
        journal.started(request_id, {
            "k": "s", "id": request_id, "at": time.time_ns() // 1000, "bytes": 5400,
            "price_provider": "anthropic", "call": {**DESCRIBED, "request_id": request_id},
            "hold": None,
        })  # fmt: skip
        for usage in ([0] * 6, [1200, 0, 0, 0, 0, 0], [1200, 350, 0, 0, 0, 0]) if stream else ():
            journal.progress(request_id, {
                "k": "u", "id": request_id, "at": time.time_ns() // 1000, "ms": 95.1,
                "ttft": 95.1, "status": 200, "chars": 1400, "usage": usage,
            })  # fmt: skip
        journal.finished(request_id, made)
    elapsed = time.thread_time() - started
    assert journal.writer.flush(timeout=300)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    n = parser.parse_args().calls
    call_command("migrate", verbosity=0)
    writer = EventWriter()
    journal = Journal(writer)
    direct(writer, 1000)  # warm up both paths
    journaled(journal, 1000)
    rounds = [
        (direct(writer, n), journaled(journal, n, stream=False), journaled(journal, n))
        for _ in range(3)
    ]
    before, plain, streamed = (min(r[i] for r in rounds) / n * 1e6 for i in range(3))
    journal.close()
    print(f"{n} calls, best of 3 rounds, µs of CPU per call on the request path:")
    print(f"  events to the writer directly           {before:7.1f}")
    print(f"  non-streamed, through the journal (s, f) {plain:6.1f}  (+{plain - before:.1f})")
    print(f"  streamed (s, 3 u, f)                    {streamed:7.1f}  (+{streamed - before:.1f})")
    left = list((Path(os.environ["METIS_HOME"]) / "journal").glob("*.log"))
    print(f"  journal files left after close    {len(left)}")


if __name__ == "__main__":
    main()
