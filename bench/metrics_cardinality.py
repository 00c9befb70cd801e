"""Does /metrics stay bounded when clients send model names of their own choosing?

    uv run python bench/metrics_cardinality.py [--names 5000] [--root PATH]

Starts the mock provider and `metis gateway` as real processes, warms the gateway up
with 50 calls to a known model, then sends one call for each of N distinct model names
(`claude-probe-0` … : the gateway routes them to Anthropic by their prefix, and the mock
answers them). Prints the /metrics size, its series count and the gateway's RSS before
and after. `--root` runs another checkout (say, main before the fix) with this venv.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
HELLO = [{"role": "user", "content": "hi"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def scrape(url: str) -> tuple[int, int]:
    body = urllib.request.urlopen(f"{url}/metrics", timeout=30).read()
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return len(body), series


async def send_all(url: str, token: str, models: list[str], concurrency: int = 16) -> int:
    ok = 0
    queue = list(models)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        while queue:
            model = queue.pop()
            body = {"model": model, "max_tokens": 8, "messages": HELLO}
            async with session.post(f"{url}/v1/messages", json=body) as response:
                await response.read()
                ok += response.status == 200

    headers = {"x-api-key": token, "anthropic-version": "2023-06-01"}
    async with aiohttp.ClientSession(headers=headers) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--names", type=int, default=5000)
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="metis-metrics-")
    mock_port, gateway_port = free_port(), free_port()
    mock_url, url = f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{gateway_port}"
    env = {**os.environ, "METIS_HOME": home, "METIS_ANTHROPIC_BASE_URL": mock_url,
           "METIS_ANTHROPIC_API_KEY": "sk-bench", "METIS_LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(args.root)}  # fmt: skip
    env.pop("DATABASE_URL", None)
    cli = [sys.executable, "-m", "metis_site.cli"]
    quiet = {"env": env, "cwd": args.root, "stdout": subprocess.DEVNULL}
    issued = subprocess.run([*cli, "gateway", "issue-key", "--name", "bench", "--workspace",
                             "/srv/bench"], env=env, cwd=args.root, capture_output=True,
                            text=True, check=True)  # fmt: skip
    token = next(line.split()[1] for line in issued.stdout.splitlines() if line.startswith("token"))
    mock = subprocess.Popen([*cli, "mock-provider", "--port", str(mock_port),
                             "--token-delay", "0"], **quiet)  # fmt: skip
    gateway = subprocess.Popen([*cli, "gateway", "--port", str(gateway_port)], **quiet)
    try:
        wait_for(f"{mock_url}/_mock/requests")
        wait_for(f"{url}/healthz")
        asyncio.run(send_all(url, token, ["claude-haiku-4-5"] * 50))
        before_size, before_series = scrape(url)
        before_rss = rss_kb(gateway.pid)
        started = time.monotonic()
        names = [f"claude-probe-{i}" for i in range(args.names)]
        ok = asyncio.run(send_all(url, token, names))
        elapsed = time.monotonic() - started
        after_size, after_series = scrape(url)
        after_rss = rss_kb(gateway.pid)
    finally:
        for process in (gateway, mock):
            process.terminate()
            process.wait(30)
    print(json.dumps({
        "root": str(args.root), "distinct_model_names": args.names, "answered_200": ok,
        "seconds": round(elapsed, 1),
        "metrics_bytes": {"before": before_size, "after": after_size},
        "metrics_series": {"before": before_series, "after": after_series},
        "rss_mb": {"before": round(before_rss / 1024, 1), "after": round(after_rss / 1024, 1),
                   "added": round((after_rss - before_rss) / 1024, 1)},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
