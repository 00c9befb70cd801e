"""What each part of a gateway call costs, by switching it off: CPU per call of `metis
gateway` as a user runs it, of the same gateway with one part off at a time, with all of
them off, and of the reference proxy, all loaded at the same moments.

    uv run python bench/call_costs.py [--rounds 4] [--calls 1500]

The parts: the access log, the metrics, the call's three events (built and journaled),
the budget check and settlement, the whole call journal (and so the events, which go
through it), and pricing. A gateway without
them is not a product (it loses money and calls); this only says where the CPU goes, for
deciding what to make cheaper. Every target is pinned to core 0, the mock and the load to
core 1, and each round loads all of them at once (16 clients each), so a noisy moment
falls on every target alike; per target it prints the median over the rounds of its CPU
time per call, and that as a ratio to the full gateway's and to the reference proxy's.

Run with `--off PART,...` it is instead that gateway (`metis gateway` with those parts
off), as this script starts it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway_bench as gb

PARTS = ("access_log", "metrics", "events", "budgets", "journal", "pricing")
CASES = [("anthropic", False), ("openai", True)]


def switch_off(parts: set[str]) -> None:
    """Replace the parts' functions with ones that do nothing (after Django's setup)."""
    from django.conf import settings

    from gateway import calls, proxy
    from gateway.journal import journal

    async def no_budget(*args: object, **kwargs: object) -> None:
        return None

    if "access_log" in parts:
        settings.METIS_ACCESS_LOG = "off"
    if "metrics" in parts:
        calls.observe = lambda call: None
    if "events" in parts:  # the `f` line is still written, with no events in it
        calls.events_of = lambda call: []
    if "budgets" in parts:
        proxy.budgets.check = no_budget
    if "journal" in parts:  # and so the events, which go through it
        journal._append = lambda line: None
        calls.events_of = lambda call: []
    if "pricing" in parts:
        calls.price = lambda call: None


def run_gateway(parts: set[str], argv: list[str]) -> int:
    sys.path.insert(0, str(gb.ROOT))
    from metis_site import cli

    setup_django = cli.setup_django

    def setup(*, migrate: bool = True) -> None:
        setup_django(migrate=migrate)
        switch_off(parts)

    cli.setup_django = setup
    return cli.main(argv)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=1500, help="per target per round")
    parser.add_argument("--off", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.off is not None:
        sys.exit(run_gateway(set(filter(None, args.off.split(","))), rest))
    if os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {1})
    home = tempfile.mkdtemp(prefix="metis-call-costs-")
    env = {**os.environ, "METIS_HOME": home, "METIS_LOG_LEVEL": "WARNING",
           "METIS_ANTHROPIC_API_KEY": "sk-bench", "METIS_OPENAI_API_KEY": "sk-bench"}  # fmt: skip
    env.pop("DATABASE_URL", None)
    token = gb.setup_key(env, home)
    mock_port = gb.free_port()
    mock = f"http://127.0.0.1:{mock_port}"
    processes = [gb.start(gb.metis("mock-provider", "--port", str(mock_port), "--fixed"), env,
                          1, "mock")]  # fmt: skip
    variants = [("metis", ""), *((f"without {part}", part) for part in PARTS)]
    variants.append(("without all of them", ",".join(PARTS)))
    targets: list[tuple[str, str, str, int]] = []
    for name, off in variants:
        own = Path(tempfile.mkdtemp(prefix="metis-call-costs-", dir=home))
        shutil.copy(Path(home) / "metis.db", own / "metis.db")
        shutil.copytree(Path(home) / "secrets", own / "secrets")
        port = gb.free_port()
        command = [sys.executable, __file__, "--off", off, "gateway", "--port", str(port)]
        gateway_env = {**env, "METIS_HOME": str(own), "METIS_ANTHROPIC_BASE_URL": mock,
                       "METIS_OPENAI_BASE_URL": mock}  # fmt: skip
        process = gb.start(command, gateway_env, 0, "gateway")
        processes.append(process)
        targets.append((name, f"http://127.0.0.1:{port}", token, process.pid))
    port = gb.free_port()
    reference = [sys.executable, "bench/reference_proxy.py", "--port", str(port), "--upstream",
                 mock]  # fmt: skip
    processes.append(gb.start(reference, env, 0, "reference"))
    targets.append(("reference proxy", f"http://127.0.0.1:{port}", "sk-bench", processes[-1].pid))
    try:
        for _, url, _, _ in targets:
            gb.wait_for(f"{url}/v1/models")
        for shape, stream in CASES:
            measure(targets, shape, stream, rounds=args.rounds, calls=args.calls)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(120)


def measure(targets: list, shape: str, stream: bool, *, rounds: int, calls: int) -> None:
    requests = [gb.request_for(shape, stream, url, key) for _, url, key, _ in targets]

    async def one_round() -> list[dict]:
        return await asyncio.gather(*(gb.load(*request, total=calls, concurrency=16)
                                      for request in requests))  # fmt: skip

    per_call: list[list[float]] = [[] for _ in targets]
    for round_ in range(rounds + 1):  # the first warms pools and caches, unmeasured
        before = [gb.cpu_seconds(pid) for *_, pid in targets]
        results = asyncio.run(one_round())
        after = [gb.cpu_seconds(pid) for *_, pid in targets]
        assert not any(result["errors"] for result in results), results
        if round_:
            for i in range(len(targets)):
                per_call[i].append((after[i] - before[i]) / calls * 1e6)
    medians = [statistics.median(values) for values in per_call]
    full, reference = medians[0], medians[-1]
    print(f"\n{shape} {'stream' if stream else 'json'}: CPU per call, median of {rounds} rounds")
    for (name, *_), median in zip(targets, medians, strict=True):
        print(f"  {name:24s} {median:7.0f} µs  {median / full:5.2f}× metis  "
              f"{median / reference:5.2f}× reference")  # fmt: skip


if __name__ == "__main__":
    main()
