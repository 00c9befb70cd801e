"""TLS in front of the gateway: the real nginx, running deploy/nginx/metis.conf (the file
docs/deployment.md shows) with a certificate from a CA made here, in front of a real
`metis gateway`; the anthropic and openai SDKs stream through it over https."""

from __future__ import annotations

import ipaddress
import re
import sqlite3
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anthropic
import httpx
import openai
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings

from mock_provider import MockProviderThread
from tests.integration.gateway_process import GatewayProcess, free_port, gateway_env, issue_key
from tests.integration.nginx import require_nginx, start_nginx

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "deploy" / "nginx" / "metis.conf"
SQLITE = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
HELLO = [{"role": "user", "content": "Say hello"}]

pytestmark = pytest.mark.skipif(not SQLITE, reason="the gateway subprocess writes its own SQLite")


def certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for localhost and 127.0.0.1:
    (ca.pem, server.pem, server-key.pem)."""
    now = datetime.now(UTC)

    def build(subject: str, key, issuer: x509.Name, signer, *, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
            )
        )
        if ca:
            usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
            builder = builder.add_extension(usage, critical=True)
        else:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Metis test CA")])
    ca_cert = build("Metis test CA", ca_key, ca_name, ca_key, ca=True)
    server_cert = build("localhost", server_key, ca_name, ca_key, ca=False)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def site_config(port: int, gateway_port: int, cert: Path, key: Path) -> str:
    """deploy/nginx/metis.conf as shipped, with this test's ports, names and certificate."""
    text = CONF.read_text()
    text = text.replace("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
    text = text.replace("server 127.0.0.1:8422;", f"server 127.0.0.1:{gateway_port};")
    text = text.replace("server 127.0.0.1:8421;", f"server 127.0.0.1:{free_port()};")
    text = text.replace("gateway.example.com", "localhost")
    text = text.replace("/etc/ssl/metis/fullchain.pem", str(cert))
    return text.replace("/etc/ssl/metis/privkey.pem", str(key))


@dataclass
class Deployment:
    url: str
    ca: Path
    token: str
    gateway: GatewayProcess
    home: Path

    def verify(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def calls(self) -> list[dict]:
        with sqlite3.connect(self.home / "metis.db") as conn:
            rows = conn.execute(
                "SELECT payload_json FROM events WHERE type = 'llm.call_completed' ORDER BY id"
            ).fetchall()
        return [orjson.loads(row[0]) for row in rows]


@pytest.fixture
def deployment(tmp_path) -> Iterator[Deployment]:
    require_nginx()
    ca, cert, key = certificates(tmp_path)
    home = tmp_path / "home"
    with MockProviderThread(token_delay=0.01) as mock:
        env = gateway_env(home, mock.url)
        token = issue_key(env, "tls")
        gateway = GatewayProcess(env)
        port = free_port()
        nginx = start_nginx(tmp_path, site_config(port, gateway.port, cert, key))
        url = f"https://localhost:{port}"
        context = ssl.create_default_context(cafile=str(ca))
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{url}/healthz", verify=context, timeout=2).raise_for_status()
                    break
                except httpx.TransportError:
                    if nginx.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"nginx did not start: {nginx.stderr.read()}") from None
                    time.sleep(0.1)
            yield Deployment(url, ca, token, gateway, home)
        finally:
            nginx.terminate()
            nginx.wait(10)
            gateway.stop()


def test_the_sdks_stream_through_nginx_over_https_and_the_calls_are_recorded(deployment):
    claude = anthropic.Anthropic(
        base_url=deployment.url, api_key=deployment.token, max_retries=0,
        http_client=anthropic.DefaultHttpxClient(verify=deployment.verify()),
    )  # fmt: skip
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=HELLO) as s:
        text = "".join(s.text_stream)
    assert text

    gpt = openai.OpenAI(
        base_url=f"{deployment.url}/v1", api_key=deployment.token, max_retries=0,
        http_client=openai.DefaultHttpxClient(verify=deployment.verify()),
    )  # fmt: skip
    chunks = gpt.chat.completions.create(model="gpt-5-mini", messages=HELLO, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    assert deployment.gateway.stop() == 0  # every queued event written
    calls = deployment.calls()
    assert [(c["inbound_shape"], c["model"], c["stream"], c["status"]) for c in calls] == [
        ("anthropic", "claude-haiku-4-5", True, 200),
        ("openai", "gpt-5-mini", True, 200),
    ]
    assert all(c["output_tokens"] > 0 for c in calls)


def test_nginx_does_not_buffer_the_stream(deployment):
    """The provider sends its first events, then stalls for as long as the client waits:
    a buffering proxy would hold them back, and the client would see nothing at all."""
    claude = anthropic.Anthropic(
        base_url=deployment.url, api_key=deployment.token, max_retries=0, timeout=60,
        http_client=anthropic.DefaultHttpxClient(verify=deployment.verify()),
    )  # fmt: skip
    stalled = [{"role": "user", "content": "Tell me a story [[fault:hang]]"}]
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=stalled) as s:
        first = next(iter(s))  # the stream has not ended, and will not: the provider stalls
    assert first.type == "message_start"

    assert deployment.gateway.stop() == 0
    (call,) = deployment.calls()
    assert call["error_class"] == "CANCELLED"


def test_metrics_are_not_served_through_the_proxy(deployment):
    response = httpx.get(f"{deployment.url}/metrics", verify=deployment.verify())
    assert response.status_code == 404


def test_the_deployment_guide_shows_this_very_configuration():
    guide = (REPO / "docs" / "deployment.md").read_text()
    shown = re.search(r"```nginx\n(.*?)```", guide, re.S)
    assert shown and shown.group(1) == CONF.read_text()
