"""How `metis serve` runs the gateway beside itself, and the gateway runs several workers.

The README's first command starts the whole product: `metis serve` starts `metis gateway`
as a child (unless --no-gateway or METIS_SERVE_GATEWAY=0) and stops it when it stops, with
one SIGTERM, after which the gateway drains its calls and writes its events as it always
does. The child runs in its own session, so a terminal's Ctrl-C reaches `metis serve`
alone and the gateway hears of it exactly once, from its parent; it also asks the kernel
for a SIGTERM if its parent dies without stopping it (kill -9, a closed terminal), so it
never outlives `metis serve`. If the gateway dies on its own, `metis serve` says so and
stops too (exit status 1): half a product that looks whole is worse than none, and a
supervisor restarts both.

`metis gateway --workers N` (N > 1) is uvicorn's own supervisor: it binds the port once and
spawns N workers that share the socket, each running the ASGI lifespan as a lone gateway
does (recovery of dead journals, its own journal, a drain and flush on
SIGTERM); it replaces a worker that dies, and the replacement's start recovers the dead
one's journal. Budgets and rate limits must then be shared, so N > 1 needs REDIS_URL;
and each worker, like the child of `metis serve`, stops when its supervisor dies.

Either way, the process that runs uvicorn also runs the writer process
(gateway/writer_process.py), which writes the events all the workers journal, and
restarts it if it dies. It is stopped last, after uvicorn has drained its calls and
each worker has waited for its events to be written, and in its own session, so a
terminal's Ctrl-C does not stop it while the gateway still drains.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

PARENT_ENV = "METIS_STOP_WITH_PARENT"
STOP_SECONDS = 90  # its drain (30 s) and its event flush (METIS_EVENT_SHUTDOWN_SECONDS, 30 s)
WRITER_ENV = "METIS_WRITER_PROCESS"  # set for the gateway processes a writer process serves
RESTART_SECONDS = 1.0


class GatewayChild:
    """`metis gateway` started by `metis serve`; a context manager that stops it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.process: subprocess.Popen | None = None
        self.stopping = False
        self.died: int | None = None  # its exit status, when it stopped on its own

    def __enter__(self) -> GatewayChild:
        self.process = start_child("gateway", "--host", self.host, "--port", str(self.port))
        threading.Thread(target=self.watch, name="gateway-child", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def watch(self) -> None:
        status = self.process.wait()
        if self.stopping:
            return
        self.died = status
        print(
            f"metis: the gateway (pid {self.process.pid}) stopped with exit status {status};"
            " stopping metis serve too",
            file=sys.stderr,
            flush=True,
        )
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's own graceful stop

    def stop(self) -> None:
        self.stopping = True
        stop_child(self.process, "the gateway")


class WriterProcess:
    """The writer process of `metis gateway`, restarted when it dies; a context manager
    that stops it (it writes what is left first)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.stopping = threading.Event()
        self.started = threading.Event()
        self.watcher: threading.Thread | None = None

    def __enter__(self) -> WriterProcess:
        os.environ[WRITER_ENV] = "1"  # the gateway processes, started after this, read it
        self.watcher = threading.Thread(target=self.supervise, name="writer-process", daemon=True)
        self.watcher.start()
        self.started.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def supervise(self) -> None:
        while not self.stopping.is_set():
            self.process = start_child("write-events")
            self.started.set()
            status = self.process.wait()
            if self.stopping.is_set():
                return
            print(
                f"metis: the event writer (pid {self.process.pid}) stopped with exit status"
                f" {status}; restarting it",
                file=sys.stderr,
                flush=True,
            )
            self.stopping.wait(RESTART_SECONDS)

    def stop(self) -> None:
        self.stopping.set()
        stop_child(self.process, "the event writer")


def start_child(*arguments: str) -> subprocess.Popen:
    """`metis ARGUMENTS` in a session of its own (a terminal's Ctrl-C reaches only this
    process, which stops it), asked to stop if this process dies."""
    env = {**os.environ, PARENT_ENV: str(os.getpid())}
    env.pop(WRITER_ENV, None)  # for the workers of this process's own uvicorn only
    command = [sys.executable, "-m", "metis_site.cli", *arguments]
    return subprocess.Popen(command, env=env, start_new_session=True)


def stop_child(process: subprocess.Popen | None, name: str) -> None:
    """SIGTERM, then wait for its drain and writes; killed if it overstays (its journal
    keeps what it had not written, and the next start records it)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        print(f"metis: {name} did not stop in time; killed it", file=sys.stderr)
        process.kill()
        process.wait()


def stop_with_parent() -> None:
    """In a gateway started by `metis serve`: a SIGTERM when that parent dies, Linux only."""
    parent = os.environ.pop(PARENT_ENV, None)
    if parent is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # it died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def workers_problem(workers: int) -> str | None:
    """What is wrong with `--workers N`, in one line, or None."""
    if workers < 1:
        return f"--workers must be at least 1, got {workers}"
    if workers > 1 and not os.environ.get("REDIS_URL"):
        return (
            f"--workers {workers} needs REDIS_URL (without it budgets and rate limits are held"
            " in each process): set REDIS_URL=redis://HOST:6379/0, or run one worker"
        )
    return None


def workers_stop_with_this_process() -> None:
    """The workers uvicorn is about to spawn inherit this, and call `stop_with_parent()`."""
    os.environ[PARENT_ENV] = str(os.getpid())
