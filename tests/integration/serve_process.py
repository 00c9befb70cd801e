"""Real `metis serve` processes for tests that need sockets, several processes or a proxy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.integration.processes import REPO, free_port


@dataclass
class Serve:
    process: subprocess.Popen
    port: int
    log: Path
    home: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text()

    def printed_password(self) -> str | None:
        match = re.search(r"created the admin user 'admin' with password (\S+)", self.output())
        return match.group(1) if match else None

    def wait_until_up(self, deadline: float) -> None:
        while True:
            try:
                httpx.get(f"{self.url}/health", timeout=2)
                return
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"metis serve did not start:\n{self.output()}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(15)


def start_serve(home: Path, name: str, **env: str) -> Serve:
    """`metis serve` on a free loopback port with METIS_HOME=home (SQLite there)."""
    port = free_port()
    log = home.parent / f"{home.name}-{name}.log"
    environment = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "METIS_LOCAL_MODE")
    }
    # The admin alone: these tests are about `metis serve` (test_serve_gateway.py: both).
    environment.update(METIS_HOME=str(home), PYTHONUNBUFFERED="1", METIS_SERVE_GATEWAY="0", **env)
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "metis_site.cli", "serve", "--port", str(port)],
            cwd=REPO, env=environment, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return Serve(process, port, log, home)


def csrf_token(client: httpx.Client, url: str) -> str:
    page = client.get(url).text
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
