"""OpenTelemetry: with OTEL_EXPORTER_OTLP_ENDPOINT set, a real `metis gateway` exports one
span per call over OTLP/HTTP, decoded here by a receiver on loopback."""

from __future__ import annotations

import gzip
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anthropic
import openai
import orjson
import pytest
from django.conf import settings
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from mock_provider import MockProviderThread
from tests.integration.gateway_process import GatewayProcess, gateway_env, issue_key

SQLITE = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
pytestmark = pytest.mark.skipif(not SQLITE, reason="the subprocess writes its own SQLite")


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: keeps every span it is sent, with its attributes."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        self.paths: list[str] = []
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        self.server.paths.append(self.path)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: value_of(a.value) for a in span.attributes}
                    times = {"start": span.start_time_unix_nano, "end": span.end_time_unix_nano}
                    self.server.spans.append({"name": span.name, **times, **attributes})
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args) -> None:
        pass


def value_of(value):
    return getattr(value, value.WhichOneof("value"))


def test_each_call_is_a_genai_span_exported_over_otlp(tmp_path):
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        with MockProviderThread(token_delay=0) as mock:
            env = gateway_env(tmp_path, mock.url)
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.url
            token = issue_key(env)
            gateway = GatewayProcess(env)
            try:
                client = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)
                client.messages.create(
                    model="haiku", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
                )
                other = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0)
                list(other.chat.completions.create(
                    model="gpt-5-mini", stream=True, messages=[{"role": "user", "content": "hi"}]
                ))  # fmt: skip
            finally:
                assert gateway.stop() == 0, gateway.output()  # shutdown exports what is queued
    finally:
        receiver.shutdown()
        receiver.server_close()
    with sqlite3.connect(tmp_path / "metis.db") as conn:
        rows = conn.execute(
            "SELECT payload_json FROM events WHERE type = 'llm.call_completed' ORDER BY id"
        ).fetchall()
    events = [orjson.loads(payload) for (payload,) in rows]
    assert set(receiver.paths) == {"/v1/traces"}
    spans = {span["metis.request_id"]: span for span in receiver.spans}
    assert len(events) == len(spans) == 2, receiver.spans
    for event in events:
        span = spans[event["request_id"]]
        assert span["name"] == f"chat {event['model']}"
        assert span["gen_ai.operation.name"] == "chat"
        assert span["gen_ai.provider.name"] == event["provider"]
        assert span["gen_ai.request.model"] == event["requested_model"]
        assert span["gen_ai.response.model"] == event["model"]
        assert span["gen_ai.usage.input_tokens"] == event["input_tokens"] > 0
        assert span["gen_ai.usage.output_tokens"] == event["output_tokens"] > 0
        assert span["http.response.status_code"] == 200
        assert span["metis.gateway_key_id"] == event["gateway_key_id"]
        assert span["metis.cost_usd"] == pytest.approx(event["cost_usd"])
        assert 0 < span["end"] - span["start"] <= event["latency_ms"] * 1_000_000 + 1
        assert "error.type" not in span
    assert token not in str(receiver.spans)
