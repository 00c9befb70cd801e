"""What the gateway costs over a bare proxy and over calling the provider directly.

    uv run python bench/gateway_bench.py [--quick]

Starts, as real processes, the mock provider (fixed replies, and a second one that streams
tokens 20 ms apart like a real model), then in front of each: the reference proxy
(bench/reference_proxy.py: uvicorn + aiohttp, nothing else), `metis gateway` as a user
runs it (auth, a budget and a rate limit on the key, routing, pricing, events, call journal
and access log all on; its events written by its writer process, whose CPU is shown
apart), and the same gateway with its journal and access log off ("metis, no
journal/log", to show what those two cost; its events written by a thread in it).
Gateways and proxies are pinned to core 0 (a writer process too: it inherits the pin);
the mocks and this load generator to core 1.

For each shape, streamed and not, every target is measured in the same run:
  - added latency p50 at concurrency 1 (target minus direct, request by request),
  - requests/s at concurrency 64, and the target process's CPU time per request,
  - streams (against the 20 ms mock, 20 text deltas each), time-to-first-byte overhead
    over direct: "staggered", 64 clients started spread over one stream's length as
    real traffic arrives; "burst", 64 streams started together (an agent fanning out),
then the ratios metis/reference. Cross-shape rows (`oai→ant`: the openai SDK calling a
Claude model) follow for metis alone. Finally a 20,000-request run, SIGTERM to every
gateway, and a count of the llm.call_completed events written (must equal requests sent).
Results also go to bench/results/gateway.json.

The load generator is Python (aiohttp): at c=64 it may saturate its core before the
reference proxy does, so req/s understates the reference; CPU per request does not.
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
import urllib.error
import urllib.request
from dataclasses import dataclass, field
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
SHORT_PROMPT = "Say hello."
# The mock answers with four words plus the prompt's: 20 text deltas, 20 ms apart.
STREAM_PROMPT = "Please say hello to everyone in the room and then tell me how you are today."
BURST = 64


@dataclass
class Target:
    """Something the load goes through: direct (the mock itself), a proxy or a gateway."""

    name: str
    url: str  # in front of the fixed mock
    slow_url: str  # in front of the 20 ms mock
    key: str
    processes: tuple[subprocess.Popen, ...] = ()
    gateway: bool = False
    sent: int = 0  # requests sent through it (the gateways' events are counted at the end)
    results: dict[str, dict] = field(default_factory=dict)
    shapes: tuple[str, ...] = ("anthropic", "openai", "responses")  # what it serves

    def serves(self, shape: str) -> bool:
        return shape in self.shapes

    @property
    def pid(self) -> int | None:
        return self.processes[0].pid if self.processes else None

    def writer_cpu_seconds(self) -> float:
        """CPU time of the writer processes its gateways started (gateway/writer_process.py;
        one writes, the other waits for the METIS_HOME lock)."""
        return sum(cpu_seconds(pid) for pid in children(self.processes, b"write-events"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(
    command: list[str], env: dict[str, str], core: int, log_name: str, source: Path = ROOT
) -> subprocess.Popen:
    """`source`: the checkout whose code `python -m metis_site.cli` runs (its working dir)."""
    if os.cpu_count() and os.cpu_count() > core:
        command = ["taskset", "-c", str(core), *command]
    # stderr (the access log's line per call, on by default) to a file, off the terminal.
    log = open(Path(env["METIS_HOME"]) / f"{log_name}-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(command, env=env, cwd=source, stdout=subprocess.DEVNULL, stderr=log)


def metis(*args: str) -> list[str]:
    return [sys.executable, "-m", "metis_site.cli", *args]


def wait_for(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not come up") from None
            time.sleep(0.1)


def request_for(
    shape: str, stream: bool, base: str, key: str, model_shape: str | None = None,
    prompt: str = SHORT_PROMPT,
) -> tuple[str, dict, bytes]:  # fmt: skip
    model = MODELS[model_shape or shape]
    messages = [{"role": "user", "content": prompt}]
    if shape == "anthropic":
        body = {"model": model, "max_tokens": 64, "stream": stream, "messages": messages}
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        return f"{base}/v1/messages", headers, json.dumps(body).encode()
    headers = {"authorization": f"Bearer {key}"}
    if shape == "responses":
        body = {"model": model, "stream": stream, "input": prompt}
        return f"{base}/v1/responses", headers, json.dumps(body).encode()
    body = {"model": model, "stream": stream, "messages": messages}
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
    return {"latencies": latencies, "ttfb": ttfb, "rps": total / elapsed, "errors": errors}


async def bursts(url: str, headers: dict, body: bytes, *, rounds: int) -> list[float]:
    """Time to first byte of `BURST` streams started together, `rounds` times over kept-alive
    connections (a first, unmeasured round opens them)."""
    headers = {**headers, "content-type": "application/json"}
    ttfb: list[float] = []
    connector = aiohttp.TCPConnector(limit=BURST)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> float:
            started = time.perf_counter()
            async with session.post(url, headers=headers, data=body) as response:
                first = None
                async for _ in response.content.iter_any():
                    first = first or time.perf_counter()
                assert response.status == 200, response.status
            return (first or time.perf_counter()) - started

        for round_ in range(rounds + 1):
            times = await asyncio.gather(*(one() for _ in range(BURST)))
            if round_:
                ttfb.extend(times)
            await asyncio.sleep(0.2)  # let the gateway record the calls: bursts, not a flood
    return ttfb


async def paired(requests: list[tuple], *, total: int) -> list[list[float]]:
    """Latency at concurrency 1, the targets in turn for each request, so all of them see
    the same moment of a shared, noisy machine. One list of latencies per target."""
    latencies: list[list[float]] = [[] for _ in requests]
    async with aiohttp.ClientSession() as session:
        for _ in range(total):
            for i, (url, headers, body) in enumerate(requests):
                started = time.perf_counter()
                headers = {**headers, "content-type": "application/json"}
                async with session.post(url, headers=headers, data=body) as response:
                    await response.read()
                    assert response.status == 200, (url, response.status)
                latencies[i].append(time.perf_counter() - started)
    return latencies


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(processes: tuple[subprocess.Popen, ...], command: bytes) -> list[int]:
    parents = {process.pid for process in processes}
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid in parents and command in (stat.parent / "cmdline").read_bytes():
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- the measurements -----------------------------------------------------------------


def requests_404(url: str) -> bool:
    """Whether `url` answers POST /v1/responses with a 404 (a gateway that predates it)."""
    request = urllib.request.Request(f"{url}/v1/responses", data=b"{}", method="POST")
    try:
        urllib.request.urlopen(request, timeout=10).close()
    except urllib.error.HTTPError as exc:
        return exc.code == 404
    except OSError:
        return False
    return False


def measure_case(
    name: str, shape: str, model_shape: str, stream: bool, direct: Target,
    targets: list[Target], sizes: dict[str, int],
) -> None:  # fmt: skip
    """Every measurement of one case for every target; results land in target.results."""
    to = {t.name: request_for(shape, stream, t.url, t.key, model_shape) for t in targets}
    to_direct = request_for(model_shape, stream, direct.url, direct.key)
    for t in targets:
        asyncio.run(load(*to[t.name], total=200, concurrency=8))  # warm pools and caches
        t.sent += 200
    added = asyncio.run(paired([to_direct, *to.values()], total=sizes["c1"]))
    direct_c1 = added[0]
    d64 = asyncio.run(load(*to_direct, total=sizes["c64"], concurrency=64))
    direct.results[name] = {"p50_ms_c1": pct(direct_c1, 0.5), "rps_c64": d64["rps"]}
    for t, latencies in zip(targets, added[1:], strict=True):
        row = t.results.setdefault(name, {})
        row["added_p50_ms_c1"] = pct(latencies, 0.5) - pct(direct_c1, 0.5)
        paired_added = sorted(a - d for a, d in zip(latencies, direct_c1, strict=True))
        row["added_p99_ms_c1"] = pct(paired_added, 0.99)
        cpu_before, writer_before = cpu_seconds(t.pid), t.writer_cpu_seconds()
        g64 = asyncio.run(load(*to[t.name], total=sizes["c64"], concurrency=64))
        row["cpu_us_per_request"] = (cpu_seconds(t.pid) - cpu_before) / sizes["c64"] * 1e6
        if writer_before:
            time.sleep(1.0)  # it reads the journal every 0.2 s: let it write the run's events
            row["writer_cpu_us_per_request"] = (
                (t.writer_cpu_seconds() - writer_before) / sizes["c64"] * 1e6
            )
        row["rps_c64"] = g64["rps"]
        row["p99_ms_c64"] = pct(g64["latencies"], 0.99)
        row["errors"] = g64["errors"]
        t.sent += sizes["c1"] + sizes["c64"]
    if stream:
        measure_streams(name, shape, model_shape, direct, targets, sizes)


def measure_streams(
    name: str, shape: str, model_shape: str, direct: Target, targets: list[Target],
    sizes: dict[str, int],
) -> None:  # fmt: skip
    """TTFB overhead with streams that last (20 deltas, 20 ms apart): staggered and burst."""
    to_direct = request_for(model_shape, True, direct.slow_url, direct.key, prompt=STREAM_PROMPT)
    spread = max(asyncio.run(load(*to_direct, total=5, concurrency=1))["latencies"])
    staggered = asyncio.run(load(*to_direct, total=sizes["streams"], concurrency=64,
                                 spread=spread))["ttfb"]  # fmt: skip
    burst = asyncio.run(bursts(*to_direct, rounds=sizes["bursts"]))
    direct.results[name].update(
        stream_ms=spread * 1000, staggered_ttfb_p50_ms=pct(staggered, 0.5),
        burst_ttfb_p50_ms=pct(burst, 0.5),
    )  # fmt: skip
    for t in targets:
        via = request_for(shape, True, t.slow_url, t.key, model_shape, prompt=STREAM_PROMPT)
        asyncio.run(load(*via, total=64, concurrency=64, spread=spread))  # warm up
        mine = asyncio.run(load(*via, total=sizes["streams"], concurrency=64, spread=spread))
        cpu_before = cpu_seconds(t.processes[1].pid)
        burst_t = asyncio.run(bursts(*via, rounds=sizes["bursts"]))
        streams = BURST * (sizes["bursts"] + 1)
        t.results[name].update(
            staggered_ttfb_overhead_p50_ms=pct(mine["ttfb"], 0.5) - pct(staggered, 0.5),
            staggered_ttfb_overhead_p99_ms=pct(mine["ttfb"], 0.99) - pct(staggered, 0.99),
            burst_ttfb_overhead_p50_ms=pct(burst_t, 0.5) - pct(burst, 0.5),
            burst_ttfb_overhead_p99_ms=pct(burst_t, 0.99) - pct(burst, 0.99),
            cpu_us_per_slow_stream=(cpu_seconds(t.processes[1].pid) - cpu_before) / streams * 1e6,
        )  # fmt: skip
        t.sent += 64 + sizes["streams"] + streams


# -- the report -------------------------------------------------------------------------


def print_case(name: str, direct: Target, targets: list[Target]) -> None:
    d = direct.results[name]
    stream = "burst_ttfb_p50_ms" in d
    print(f"\n{name}  (direct: p50 {d['p50_ms_c1']:.2f} ms at c=1, {d['rps_c64']:.0f} req/s at "
          f"c=64" + (f", one stream {d['stream_ms']:.0f} ms" if stream else "") + ")")  # fmt: skip
    header = f"  {'target':<24}{'+p50 c1':>9}{'+p99 c1':>9}{'req/s c64':>10}{'CPU/req':>9}"
    if stream:
        header += f"{'+TTFB staggered p50/p99':>25}{'+TTFB burst p50/p99':>21}"
    print(header)
    for t in targets:
        r = t.results[name]
        line = (f"  {t.name:<24}{r['added_p50_ms_c1']:>7.2f}ms{r['added_p99_ms_c1']:>7.2f}ms"
                f"{r['rps_c64']:>10.0f}{r['cpu_us_per_request']:>7.0f}µs")  # fmt: skip
        if stream:
            for kind, width in (("staggered", 14), ("burst", 11)):
                p50, p99 = (r[f"{kind}_ttfb_overhead_{q}_ms"] for q in ("p50", "p99"))
                line += f"{p50:>{width}.1f} /{p99:>6.1f}ms"
        if r["errors"]:
            line += f"  ERRORS {r['errors']}"
        if "writer_cpu_us_per_request" in r:
            line += f"  (+ writer process {r['writer_cpu_us_per_request']:.0f}µs/req)"
        print(line)


def ratios(name: str, reference: Target, target: Target) -> dict[str, float]:
    """The issue's yardsticks: CPU ≤ 2×, req/s ≥ 50 %, added p50 ≤ +0.5 ms over the
    reference's own, burst TTFT overhead ≤ 10 ms."""
    ref, mine = reference.results[name], target.results[name]
    out = {
        "cpu_x": mine["cpu_us_per_request"] / ref["cpu_us_per_request"],
        "rps_share": mine["rps_c64"] / ref["rps_c64"],
        "added_p50_over_reference_ms": mine["added_p50_ms_c1"] - ref["added_p50_ms_c1"],
    }
    if "burst_ttfb_overhead_p50_ms" in mine:
        out["burst_ttfb_overhead_p50_ms"] = mine["burst_ttfb_overhead_p50_ms"]
        out["burst_over_reference_ms"] = (
            mine["burst_ttfb_overhead_p50_ms"] - ref["burst_ttfb_overhead_p50_ms"]
        )
    return out


def print_ratios(names: list[str], reference: Target, targets: list[Target]) -> None:
    print("\nAgainst the reference proxy, same run (targets: CPU ≤ 2.0×, req/s ≥ 50 %, "
          "+p50 ≤ +0.5 ms, burst +TTFT p50 ≤ 10 ms)")  # fmt: skip
    print(f"  {'case':<18}{'target':<24}{'CPU/req':>8}{'req/s':>8}{'+p50 c1':>10}"
          f"{'+TTFT burst':>13}")  # fmt: skip
    for name in names:
        for t in targets:
            if name not in t.results:
                continue
            r = ratios(name, reference, t)
            t.results[name]["vs_reference"] = r
            burst = r.get("burst_ttfb_overhead_p50_ms")
            print(f"  {name:<18}{t.name:<24}{r['cpu_x']:>7.2f}×{r['rps_share']:>7.0%}"
                  f"{r['added_p50_over_reference_ms']:>+8.2f}ms"
                  + (f"{burst:>11.1f}ms" if burst is not None else ""))  # fmt: skip


# -- processes ----------------------------------------------------------------------------


def setup_key(env: dict[str, str], home: str) -> str:
    """A key as a user has one: with a monthly budget (soft and hard cap) and a rate
    limit, none of them near, so every call is checked and held but none refused."""
    issued = subprocess.run(
        metis("gateway", "issue-key", "--name", "bench", "--workspace", home),
        env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    token = issued.split("token: ")[1].split()[0]
    script = (
        "from identity.models import GatewayKey, Quota\n"
        "key = GatewayKey.objects.get(name='bench')\n"
        "Quota.objects.create(key=key, period='month', soft_cap_usd=10**6, hard_cap_usd=10**6,"
        " requests_per_minute=10**7)\n"
    )
    subprocess.run(metis("manage", "shell", "-c", script), env=env, cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    return token


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer requests, for a smoke run")
    parser.add_argument("--no-cross", action="store_true", help="skip the cross-shape rows")
    parser.add_argument(
        "--baseline", type=Path, metavar="DIR",
        help="also measure `metis gateway` run from this checkout (e.g. `git worktree add "
        "/tmp/before main`), as 'metis, baseline': before and after in one run",
    )  # fmt: skip
    args = parser.parse_args()
    sizes = (
        {"c1": 300, "c64": 2000, "streams": 320, "bursts": 5, "events": 2000}
        if args.quick
        else {"c1": 2000, "c64": 8000, "streams": 640, "bursts": 10, "events": 20000}
    )
    if os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {1})

    home = tempfile.mkdtemp(prefix="metis-bench-")
    mock_port, slow_port = free_port(), free_port()
    mock_url, slow_url = f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{slow_port}"
    env = {
        **os.environ,
        "METIS_HOME": home,
        "METIS_LOG_LEVEL": "WARNING",
        "METIS_ANTHROPIC_API_KEY": "sk-bench",
        "METIS_OPENAI_API_KEY": "sk-bench",
    }
    env.pop("DATABASE_URL", None)
    token = setup_key(env, home)
    mocks = [
        start(metis("mock-provider", "--port", str(mock_port), "--fixed"), env, 1, "mock"),
        start(metis("mock-provider", "--port", str(slow_port), "--token-delay", "0.02"), env,
              1, "slow-mock"),
    ]  # fmt: skip

    def pair(
        name: str, command, extra_env: dict[str, str], key: str, gateway: bool,
        source: Path = ROOT,
    ) -> Target:  # fmt: skip
        ports = free_port(), free_port()
        processes = []
        for port, upstream in zip(ports, (mock_url, slow_url), strict=True):
            target_env = {**env, **extra_env, "METIS_ANTHROPIC_BASE_URL": upstream,
                          "METIS_OPENAI_BASE_URL": upstream}  # fmt: skip
            log = name.split(",")[0].replace(" ", "-")
            processes.append(start(command(port, upstream), target_env, 0, log, source))
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        return Target(name, *urls, key=key, processes=tuple(processes), gateway=gateway)

    direct = Target("direct", mock_url, slow_url, key="sk-bench")
    reference = pair(
        "reference proxy",
        lambda port, up: [sys.executable, "bench/reference_proxy.py", "--port", str(port),
                          "--upstream", up],
        {}, "sk-bench", gateway=False,
    )  # fmt: skip
    full = pair("metis", lambda port, up: metis("gateway", "--port", str(port)), {}, token, True)
    lean = pair(
        "metis, no journal/log",
        lambda port, up: [sys.executable, "bench/without_journal.py", "gateway", "--port",
                          str(port)],
        {"METIS_ACCESS_LOG": "off", "METIS_EVENT_WRITER_PROCESS": "0"}, token, True,
    )  # fmt: skip
    targets = [reference, full, lean]
    if args.baseline:
        baseline = pair(
            "metis, baseline",
            lambda port, up: metis("gateway", "--port", str(port)),
            {}, token, True, source=args.baseline.resolve(),
        )  # fmt: skip
        targets.append(baseline)
    gateways = [t for t in targets if t.gateway]
    names: list[str] = []
    try:
        for t in [direct, *targets]:
            wait_for(f"{t.url}/v1/models")
            wait_for(f"{t.slow_url}/v1/models")
        for t in targets:  # a baseline from before /v1/responses existed serves two shapes
            if requests_404(t.url):
                t.shapes = ("anthropic", "openai")
        for shape, stream in CASES:
            name = f"{shape} {'stream' if stream else 'json'}"
            serving = [t for t in targets if t.serves(shape)]
            measure_case(name, shape, shape, stream, direct, serving, sizes)
            print_case(name, direct, serving)
            names.append(name)
        print_ratios(names, reference, gateways)
        if not args.no_cross:
            for shape, model_shape, stream in CROSS_CASES:
                name = f"{ABBREVIATED[shape]}→{ABBREVIATED[model_shape]} " + (
                    "stream" if stream else "json"
                )
                measure_case(name, shape, model_shape, stream, direct, [full], sizes)
                print_case(name, direct, [full])
        via = request_for("anthropic", False, full.url, token)
        big = asyncio.run(load(*via, total=sizes["events"], concurrency=64))
        full.sent += sizes["events"]
        rss = peak_rss_mb(full.pid)
    finally:
        for t in targets:  # SIGTERM: drain, write every event, exit
            for process in t.processes:
                process.send_signal(signal.SIGTERM)
        for t in targets:
            for process in t.processes:
                process.wait(120)
        for process in mocks:
            process.terminate()
    db = sqlite3.connect(Path(home) / "metis.db")
    recorded = db.execute("SELECT count(*) FROM events WHERE type='llm.call_completed'").fetchone()
    sent = sum(t.sent for t in gateways)
    summary = {
        "targets": {t.name: t.results for t in [direct, *targets]},
        "sizes": sizes,
        "peak_rss_mb": rss,
        "events_run": {"requests": sizes["events"], "errors": big["errors"], "rps": big["rps"]},
        "requests_sent": sent,
        "llm_call_completed_events": recorded[0],
        "events_lost": sent - recorded[0],
    }
    print(f"\npeak RSS {rss:.1f} MB; {sizes['events']} requests at c=64: {big['rps']:.0f} req/s")
    print(f"requests sent through the gateways {sent}, llm.call_completed events "
          f"{recorded[0]}, lost {sent - recorded[0]}")  # fmt: skip
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "gateway.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
