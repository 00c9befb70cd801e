"""Start the test OpenID provider (`serve.py`) as a real process on a free loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str
    client_secret: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_provider(tmp: Path, *, redirect_uri: str, users: list[dict]) -> Iterator[Provider]:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}/o"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    provider = Provider(issuer, "metis-test", secrets.token_urlsafe(24))
    spec = tmp / "provider.json"
    spec.write_text(
        json.dumps({
            "client_id": provider.client_id,
            "client_secret": provider.client_secret,
            "redirect_uri": redirect_uri,
            "users": users,
        })
    )  # fmt: skip
    env = {
        **os.environ,
        "OP_DATABASE": str(tmp / "provider.db"),
        "OP_RSA_PRIVATE_KEY": pem,
        "OP_ISSUER": issuer,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = open(tmp / "provider.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.oidc_provider.serve", str(spec), str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{issuer}/.well-known/openid-configuration").raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "the test OpenID provider did not start:\n"
                        + (tmp / "provider.log").read_text()
                    ) from None
                time.sleep(0.2)
        yield provider
    finally:
        process.terminate()
        process.wait(10)
        log.close()
