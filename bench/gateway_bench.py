"""What the gateway costs over calling the provider directly.

    uv run python bench/gateway_bench.py [--quick]

Starts the mock provider (fixed replies) and `metis gateway` as real processes,
the gateway pinned to core 0 and the mock plus this load generator to core 1,
then prints for the three shapes, streamed and not, and for each client shape calling a
model of another shape (translated, `oai→ant`, `ant→oai` and `rsp→ant`):
  - added latency p50 / p99 at concurrency 1 (gateway minus direct),
  - requests/s and p99 at concurrency 64,
  - streaming time-to-first-byte overhead p50 / p99 at concurrency 64, against a second
    mock that streams tokens 20 ms apart like a real model, so 64 streams are in flight
    while new ones start (against the fixed mock, c=64 measures queueing). The 64 clients
    start spread over one stream's length, as real traffic arrives: started together,
    streams of equal length keep them in lockstep, and each measurement becomes a burst
    of 64 simultaneous requests, which queues even when calling the mock directly,
  - gateway CPU per request and peak RSS,
and finally sends a 20,000-request run, stops the gateway with SIGTERM and
counts the llm.call_completed events written (must equal requests sent).
Results also go to bench/results/gateway.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
CASES = [
    ("anthropic", False),
    ("anthropic", True),
    ("openai", False),
    ("openai", True),
    ("responses", False),
    ("responses", True),
]
# Cross-shape: (client shape, model's shape, stream), compared against calling that model's
# shape directly, so their added latency sits beside the same-shape rows'.
CROSS_CASES = [
    ("openai", "anthropic", False),
    ("openai", "anthropic", True),
    ("anthropic", "openai", False),
    ("anthropic", "openai", True),
    ("responses", "anthropic", False),
    ("responses", "anthropic", True),
]
MODELS = {"anthropic": "claude-haiku-4-5", "openai": "gpt-5-mini", "responses": "gpt-5-mini"}
ABBREVIATED = {"anthropic": "ant", "openai": "oai", "responses": "rsp"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], env: dict[str, str], core: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "metis_site.cli", *args]
    if os.cpu_count() and os.cpu_count() > core:
        command = ["taskset", "-c", str(core), *command]
    # stderr (the access log's line per call, on by default) to a file, off the terminal.
    log = open(Path(env["METIS_HOME"]) / f"{args[0]}-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)


def wait_for(url: str, timeout: float = 30) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not come up") from None
            time.sleep(0.1)


def request_for(
    shape: str, stream: bool, base: str, key: str, model_shape: str | None = None
) -> tuple[str, dict, bytes]:
    model = MODELS[model_shape or shape]
    if shape == "anthropic":
        body = {
            "model": model,
            "max_tokens": 64,
            "stream": stream,
            "messages": [{"role": "user", "content": "Say hello."}],
        }
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        return f"{base}/v1/messages", headers, json.dumps(body).encode()
    headers = {"authorization": f"Bearer {key}"}
    if shape == "responses":
        body = {"model": model, "stream": stream, "input": "Say hello."}
        return f"{base}/v1/responses", headers, json.dumps(body).encode()
    body = {
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": "Say hello."}],
    }
    return f"{base}/v1/chat/completions", headers, json.dumps(body).encode()


async def load(
    url: str, headers: dict, body: bytes, *, total: int, concurrency: int, spread: float = 0
) -> dict:
    """Send `total` requests, `concurrency` at a time; latency and time to first byte.
    With `spread`, the clients start evenly over that many seconds instead of at once."""
    headers = {**headers, "content-type": "application/json"}
    latencies: list[float] = []
    ttfb: list[float] = []
    errors = 0
    remaining = total
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(index: int) -> None:
            nonlocal remaining, errors
            await asyncio.sleep(spread * index / concurrency)
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(url, headers=headers, data=body) as response:
                    first = None
                    async for _ in response.content.iter_any():
                        first = first or time.perf_counter()
                    if response.status != 200:
                        errors += 1
                end = time.perf_counter()
                latencies.append(end - started)
                ttfb.append((first or end) - started)

        began = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "latencies": latencies,
        "ttfb": ttfb,
        "rps": total / elapsed,
        "errors": errors,
    }


async def paired(direct: tuple, via: tuple, *, total: int) -> list[float]:
    """Added latency at concurrency 1, request by request: each gateway call is timed
    right after a direct one, so both see the same moment of a shared, noisy machine."""
    added = []
    async with aiohttp.ClientSession() as session:

        async def timed(url: str, headers: dict, body: bytes) -> float:
            started = time.perf_counter()
            headers = {**headers, "content-type": "application/json"}
            async with session.post(url, headers=headers, data=body) as response:
                await response.read()
                assert response.status == 200, response.status
            return time.perf_counter() - started

        for _ in range(total):
            added.append(await timed(*via) - await timed(*direct))
    return added


def realistic_ttfb(
    shape: str, mock_url: str, gateway_url: str, token: str, model_shape: str | None = None
) -> dict:
    """TTFB overhead at c=64 with streams that last (tokens 20 ms apart)."""
    to_mock = request_for(model_shape or shape, True, mock_url, "sk-bench")
    spread = max(asyncio.run(load(*to_mock, total=5, concurrency=1))["latencies"])
    direct = asyncio.run(load(*to_mock, total=640, concurrency=64, spread=spread))
    via = request_for(shape, True, gateway_url, token, model_shape)
    asyncio.run(load(*via, total=64, concurrency=64, spread=spread))  # warm up
    routed = asyncio.run(load(*via, total=640, concurrency=64, spread=spread))
    return {
        "realistic_ttfb_overhead_p50_ms_c64": pct(routed["ttfb"], 0.5) - pct(direct["ttfb"], 0.5),
        "realistic_ttfb_overhead_p99_ms_c64": pct(routed["ttfb"], 0.99) - pct(direct["ttfb"], 0.99),
        "realistic_requests": 704,  # through the gateway
    }


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer requests, for a smoke run")
    args = parser.parse_args()
    n1, n64, n_events = (300, 2000, 2000) if args.quick else (3000, 10000, 20000)
    if os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {1})

    home = tempfile.mkdtemp(prefix="metis-bench-")
    mock_port, slow_port, gw_port = free_port(), free_port(), free_port()
    mock_url, gw_url = f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{gw_port}"
    slow_url = f"http://127.0.0.1:{slow_port}"
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
    mock = start(["mock-provider", "--port", str(mock_port), "--fixed"], env, core=1)
    slow_mock = start(["mock-provider", "--port", str(slow_port), "--token-delay", "0.02"],
                      env, core=1)  # fmt: skip
    gateway = start(["gateway", "--port", str(gw_port)], env, core=0)
    slow_env = {**env, "METIS_ANTHROPIC_BASE_URL": slow_url, "METIS_OPENAI_BASE_URL": slow_url}
    slow_gw_port = free_port()
    slow_gw_url = f"http://127.0.0.1:{slow_gw_port}"
    slow_gateway = start(["gateway", "--port", str(slow_gw_port)], slow_env, core=0)
    sent = 0
    results: dict[str, dict] = {}
    try:
        wait_for(f"{gw_url}/healthz")
        wait_for(f"{slow_gw_url}/healthz")
        wait_for(f"{mock_url}/_mock/requests")
        for shape, model_shape, stream in [(s, s, st) for s, st in CASES] + CROSS_CASES:
            name = f"{shape} {'stream' if stream else 'json'}"
            if model_shape != shape:  # e.g. "oai→ant json": the openai SDK calling Claude
                name = f"{ABBREVIATED[shape]}→{ABBREVIATED[model_shape]} {name.split()[1]}"
            direct = request_for(model_shape, stream, mock_url, "sk-bench")
            via = request_for(shape, stream, gw_url, token, model_shape)
            asyncio.run(load(*via, total=200, concurrency=8))  # warm up pools and caches
            sent += 200
            added = asyncio.run(paired(direct, via, total=n1))
            d64 = asyncio.run(load(*direct, total=n64, concurrency=64))
            cpu_before = cpu_seconds(gateway.pid)
            g64 = asyncio.run(load(*via, total=n64, concurrency=64))
            cpu_per_request = (cpu_seconds(gateway.pid) - cpu_before) / n64
            sent += n1 + n64
            results[name] = {
                "added_p50_ms_c1": pct(added, 0.5),
                "added_p99_ms_c1": pct(added, 0.99),
                "rps_c64": g64["rps"],
                "direct_rps_c64": d64["rps"],
                "p99_ms_c64": pct(g64["latencies"], 0.99),
                "ttfb_overhead_p50_ms_c64": pct(g64["ttfb"], 0.5) - pct(d64["ttfb"], 0.5),
                "cpu_ms_per_request": cpu_per_request * 1000,
                "errors": g64["errors"],
            }
            if stream:
                results[name].update(
                    realistic_ttfb(shape, slow_url, slow_gw_url, token, model_shape)
                )
                sent += results[name]["realistic_requests"]
            print_row(name, results[name])
        via = request_for("anthropic", False, gw_url, token)
        big = asyncio.run(load(*via, total=n_events, concurrency=64))
        sent += n_events
        rss = peak_rss_mb(gateway.pid)
    finally:
        for process in (gateway, slow_gateway):  # SIGTERM: drain, write every event, exit
            process.send_signal(signal.SIGTERM)
            process.wait(120)
        for process in (mock, slow_mock):
            process.terminate()
    db = sqlite3.connect(Path(home) / "metis.db")
    recorded = db.execute("SELECT count(*) FROM events WHERE type='llm.call_completed'").fetchone()
    summary = {
        "cases": results,
        "peak_rss_mb": rss,
        "events_run": {"requests": n_events, "errors": big["errors"], "rps": big["rps"]},
        "requests_sent": sent,
        "llm_call_completed_events": recorded[0],
        "events_lost": sent - recorded[0],
    }
    print(f"\npeak RSS {rss:.1f} MB; {n_events} requests at c=64: {big['rps']:.0f} req/s")
    print(
        f"requests sent {sent}, llm.call_completed events {recorded[0]}, lost {sent - recorded[0]}"
    )
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "gateway.json").write_text(json.dumps(summary, indent=2))


def print_row(name: str, r: dict) -> None:
    if not hasattr(print_row, "header"):
        print_row.header = True  # type: ignore[attr-defined]
        print(
            f"{'case':<16} {'+p50 c1':>8} {'+p99 c1':>8} {'req/s c64':>10} {'direct':>8} "
            f"{'p99 c64':>8} {'+TTFB c64':>9} {'CPU/req':>8} {'errors':>6} "
            f"{'+TTFB real c64 p50/p99':>22}"
        )
    print(
        f"{name:<16} {r['added_p50_ms_c1']:>7.2f}ms {r['added_p99_ms_c1']:>6.2f}ms "
        f"{r['rps_c64']:>10.0f} {r['direct_rps_c64']:>8.0f} {r['p99_ms_c64']:>6.1f}ms "
        f"{r['ttfb_overhead_p50_ms_c64']:>7.2f}ms {r['cpu_ms_per_request']:>6.2f}ms "
        f"{r['errors']:>6} "
        + (
            f"{r['realistic_ttfb_overhead_p50_ms_c64']:>12.2f}ms/"
            f"{r['realistic_ttfb_overhead_p99_ms_c64']:.2f}ms"
            if "realistic_ttfb_overhead_p50_ms_c64" in r
            else ""
        )
    )


if __name__ == "__main__":
    main()
