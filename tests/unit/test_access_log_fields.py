from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from gateway.access_log import text


def test_plain_values_are_written_as_they_are() -> None:
    assert [text(v) for v in ("claude-haiku-4-5", 12, 0.5, None, True)] == [
        "claude-haiku-4-5", "12", "0.5", "-", "true",
    ]  # fmt: skip


def test_a_value_that_could_forge_a_field_or_a_line_is_quoted() -> None:
    assert text("alice status=200") == '"alice status=200"'
    assert text("a\nkey_id=gk_forged") == '"a\\nkey_id=gk_forged"'
    assert text("") == '""'


@given(st.text())
def test_any_text_stays_one_field_and_reads_back(value: str) -> None:
    written = text(value)
    assert "\n" not in written
    if written.startswith('"'):
        assert orjson.loads(written) == value
    else:
        assert written == value and " " not in written and "=" not in written
