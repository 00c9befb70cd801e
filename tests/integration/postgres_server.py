"""A PostgreSQL server of the test's own (initdb + pg_ctl in a temporary directory, a free
port, trust auth), for tests that stop and restart it: never the shared one on 5432.

initdb refuses to run as root, so as root (CI) the server runs as the `postgres` user
the Debian packages create (else `nobody`), via runuser.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.integration.gateway_process import free_port


def find(program: str) -> Path | None:
    found = shutil.which(program, path="/usr/local/bin")
    if found:
        return Path(found)
    for bin_dir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (bin_dir / program).exists():
            return bin_dir / program
    return None


def unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("no unprivileged user to run PostgreSQL as")


class PostgresServer:
    def __init__(self) -> None:
        self.initdb, self.pg_ctl = find("initdb"), find("pg_ctl")
        if self.initdb is None or self.pg_ctl is None:
            reason = "PostgreSQL's initdb and pg_ctl are not installed (apt-get install postgresql)"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
        self.home = Path(tempfile.mkdtemp(prefix="metis-pg-"))
        self.data, self.log = self.home / "data", self.home / "server.log"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            user = unprivileged_user()
            shutil.chown(self.home, user)
            self.as_user = ["runuser", "-u", user, "--"]
        self.run(self.initdb, "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                 "--no-sync")  # fmt: skip
        self.start()
        with psycopg.connect(self.url_for("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE metis")

    def url_for(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    @property
    def url(self) -> str:
        return self.url_for("metis")

    def run(self, *args: object) -> None:
        subprocess.run(
            [*self.as_user, *map(str, args)], cwd=self.home, check=True, capture_output=True,
            timeout=120,
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run(self.pg_ctl, "-D", self.data, "-l", self.log, "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self.run(self.pg_ctl, "-D", self.data, "-m", mode, "-w", "stop")

    def restart(self) -> None:
        # -l again: without it the server would write to (and hold open) our pipe.
        self.run(self.pg_ctl, "-D", self.data, "-l", self.log, "-m", "fast", "-w", "restart")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self.stop("immediate")
        shutil.rmtree(self.home, ignore_errors=True)
