"""Metric labels come from bounded sets, whatever clients send."""

from __future__ import annotations

import pytest

from gateway.metrics import OTHER, error_label, is_loopback, model_label, status_label


@pytest.mark.parametrize(
    ("model", "label"),
    [
        ("claude-haiku-4-5", "claude-haiku-4-5"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("gpt-5-mini", "gpt-5-mini"),
        ("claude-probe-4711", OTHER),
        ("gpt-5-mini-" + "x" * 200, OTHER),
    ],
)
def test_a_model_counts_under_a_known_id_or_as_other(model, label):
    assert model_label(model) == label


def test_a_model_the_operator_configured_keeps_its_name():
    assert model_label("llama3", frozenset({"llama3"})) == "llama3"
    assert model_label("llama4", frozenset({"llama3"})) == OTHER


def test_statuses_and_error_classes_are_grouped():
    assert [status_label(s) for s in (200, 429, 418, 599, 302)] == [
        "200",
        "429",
        "4xx",
        "5xx",
        "3xx",
    ]
    assert error_label("UPSTREAM_503") == "UPSTREAM_503"
    assert error_label("UPSTREAM_418") == "UPSTREAM_4xx"
    assert error_label("CANCELLED") == "CANCELLED"
    assert error_label("made up by a client 1") == OTHER


@pytest.mark.parametrize(
    ("peer", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True), ("10.1.2.3", False),
     ("203.0.113.9", False), ("", False)],
)  # fmt: skip
def test_loopback_peers(peer, loopback):
    assert is_loopback(peer) is loopback
