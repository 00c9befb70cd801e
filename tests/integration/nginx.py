"""The real nginx (Debian's package) in a temporary prefix: one main config for every
test that puts it in front of Metis, each bringing its own server block."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

NGINX = Path("/usr/sbin/nginx")

MAIN_CONF = """
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{site}
}}
"""


def require_nginx() -> None:
    """Skip without nginx on a developer's machine; in CI its absence is a failure."""
    if not NGINX.exists():
        message = f"{NGINX} is missing: apt-get install nginx"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def start_nginx(tmp: Path, site: str) -> subprocess.Popen:
    """nginx in the foreground with `site` as its only server. As root, the workers drop
    to an unprivileged user, as every packaged nginx does."""
    user = "user nobody nogroup;" if os.geteuid() == 0 else ""
    conf = tmp / "nginx.conf"
    conf.write_text(MAIN_CONF.format(user=user, tmp=tmp, site=site))
    return subprocess.Popen(
        [str(NGINX), "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log"),
         "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
