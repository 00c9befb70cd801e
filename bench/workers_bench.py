"""Requests/s of `metis gateway --workers 1` and `--workers 2`, side by side in one run.

    REDIS_URL=redis://127.0.0.1:6379/11 uv run python bench/workers_bench.py [--quick]

Starts the mock provider (fixed replies) and, in turn, a gateway with 1 and with 2
workers on the same database and Redis (N > 1 needs REDIS_URL; both get it, so the
two runs differ only in their worker count). Each gets a warm-up, then the same load:
non-streamed Anthropic-shape calls, 64 at a time, then a streamed round. Prints
requests/s and p50/p99 per worker count, and checks after each gateway's SIGTERM that
every request sent has its llm.call_completed event. Nothing is pinned to a core: the
gateway's workers, the mock and this load generator share the machine, as they would.
Results also go to bench/results/workers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import free_port, load, pct, request_for, wait_for

ROOT = Path(__file__).resolve().parent.parent


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "metis_site.cli", *args],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def recorded(home: str) -> int:
    with sqlite3.connect(Path(home) / "metis.db") as db:
        query = "SELECT count(*) FROM events WHERE type='llm.call_completed'"
        return db.execute(query).fetchone()[0]


def run_workers(workers: int, env: dict, token: str, total: int) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    home = env["METIS_HOME"]
    before = recorded(home)
    gateway = start(
        ["gateway", "--port", str(port), "--workers", str(workers)],
        env,
        Path(home) / f"gateway-{workers}.log",
    )
    sent = 0
    try:
        wait_for(f"{url}/healthz", timeout=90)
        rounds = {}
        for stream in (False, True):
            request = request_for("anthropic", stream, url, token)
            asyncio.run(load(*request, total=1000, concurrency=64))  # every worker warm
            result = asyncio.run(load(*request, total=total, concurrency=64))
            sent += 1000 + total
            rounds["stream" if stream else "json"] = {
                "rps": result["rps"],
                "p50_ms": pct(result["latencies"], 0.5),
                "p99_ms": pct(result["latencies"], 0.99),
                "errors": result["errors"],
            }
    finally:
        gateway.send_signal(signal.SIGTERM)  # drain, write every event, exit
        gateway.wait(120)
    return {**rounds, "requests_sent": sent, "events_lost": sent - (recorded(home) - before)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer requests, for a smoke run")
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        raise SystemExit("set REDIS_URL (e.g. redis://127.0.0.1:6379/11): --workers 2 needs it")
    total = 2000 if args.quick else 10000
    load_avg = os.getloadavg()
    home = tempfile.mkdtemp(prefix="metis-workers-bench-")
    mock_port = free_port()
    mock_url = f"http://127.0.0.1:{mock_port}"
    env = {
        **os.environ,
        "METIS_HOME": home,
        "METIS_LOG_LEVEL": "WARNING",
        "METIS_ANTHROPIC_BASE_URL": mock_url,
        "METIS_OPENAI_BASE_URL": mock_url,
        "METIS_ANTHROPIC_API_KEY": "sk-bench",
        "METIS_OPENAI_API_KEY": "sk-bench",
    }
    env.pop("DATABASE_URL", None)
    issued = subprocess.run(
        [sys.executable, "-m", "metis_site.cli", "gateway", "issue-key", "--name", "bench",
         "--workspace", home],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    token = issued.split("token: ")[1].split()[0]
    mock_args = ["mock-provider", "--port", str(mock_port), "--fixed"]
    mock = start(mock_args, env, Path(home) / "mock.log")
    try:
        wait_for(f"{mock_url}/_mock/requests")
        results = {n: run_workers(n, env, token, total) for n in (1, 2)}
    finally:
        mock.terminate()
        mock.wait(30)
    # A busy machine halves these figures: the load before the run says if it was quiet.
    print(f"{os.cpu_count()} cores, load average {load_avg[0]:.1f} before the run;"
          f" {total} requests per round at concurrency 64\n")  # fmt: skip
    print(f"{'workers':>7} {'round':>6} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for workers, result in results.items():
        for name in ("json", "stream"):
            r = result[name]
            print(f"{workers:>7} {name:>6} {r['rps']:>7.0f} {r['p50_ms']:>7.1f} "
                  f"{r['p99_ms']:>7.1f} {r['errors']:>6}")  # fmt: skip
    for name in ("json", "stream"):
        ratio = results[2][name]["rps"] / results[1][name]["rps"]
        print(f"2 workers / 1 worker, {name}: {ratio:.2f}x")
    for workers, result in results.items():
        print(f"{workers} worker(s): {result['requests_sent']} sent, {result['events_lost']} lost")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "workers.json").write_text(
        json.dumps(
            {"cpus": os.cpu_count(), "load": load_avg, "requests_per_round": total, **results},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
