"""`metis gateway`, `metis serve` and the mock provider as real processes, for tests whose
subject is the HTTP server itself (timeouts, body limits): each gets its own METIS_HOME
and temporary directory, so what it spools can be seen."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    port: int
    home: Path
    tmp: Path  # the process's TMPDIR
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def metis(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "metis_site.cli", *argv], env=env, cwd=REPO,
                          capture_output=True, text=True, check=True, timeout=60)  # fmt: skip


@contextmanager
def running(command: str, health: str, *args: str, **settings: str) -> Iterator[Server]:
    """`metis COMMAND --port P ARGS` with `settings` in its environment."""
    home = Path(tempfile.mkdtemp(prefix="metis-proc-"))
    tmp = home / "tmp"
    tmp.mkdir()
    port = free_port()
    env = {**os.environ, "METIS_HOME": str(home), "TMPDIR": str(tmp), **settings}
    env.setdefault("METIS_SERVE_GATEWAY", "0")  # `metis serve` alone
    env.pop("DATABASE_URL", None)
    # To a file, not a pipe nobody reads: the gateway's access log would fill it.
    log = home / "stderr.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "metis_site.cli", command, "--port", str(port), *args],
            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    server = Server(port, home, tmp, process)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text(errors="replace")
            try:
                if httpx.get(f"{server.url}{health}", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"metis {command} did not start"
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        process.wait(30)


def issue_token(server: Server) -> str:
    env = {**os.environ, "METIS_HOME": str(server.home)}
    env.pop("DATABASE_URL", None)
    out = metis("gateway", "issue-key", "--name", "tester", "--workspace", "/srv/t", env=env)
    return next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("token"))


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes `sock` within `within` seconds (what it sent is skipped)."""
    sock.settimeout(within)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


def response_of(sock: socket.socket, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response: (status, headers, body)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    chunked = headers.get("transfer-encoding") == "chunked"
    length = int(headers.get("content-length", "0"))
    while (b"\r\n0\r\n\r\n" not in b"\r\n" + body) if chunked else len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    if chunked:
        decoded = b""
        while (size := int(body.split(b"\r\n", 1)[0], 16)) > 0:
            start = body.index(b"\r\n") + 2
            decoded, body = decoded + body[start : start + size], body[start + size + 2 :]
        body = decoded
    return int(lines[0].split()[1]), headers, body
