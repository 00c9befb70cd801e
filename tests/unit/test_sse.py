from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gateway.sse import SSEEvent, SSEParser

FIXTURES = Path(__file__).parent.parent / "fixtures"


def parse_all(*chunks: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return events + parser.flush()


def test_an_event_carries_its_name_data_and_exact_bytes() -> None:
    raw = b'event: message_start\ndata: {"a":1}\n\n'
    assert parse_all(raw) == [SSEEvent(event="message_start", data='{"a":1}', raw=raw)]


def test_multi_line_data_is_joined_with_newlines() -> None:
    [event] = parse_all(b"data: one\ndata:two\ndata\n\n")
    assert event.data == "one\ntwo\n"
    assert event.event is None


def test_only_one_leading_space_is_stripped_from_a_value() -> None:
    [event] = parse_all(b"data:  indented\n\n")
    assert event.data == " indented"


def test_crlf_and_cr_terminated_events_are_split_correctly() -> None:
    stream = b"event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\rdata: 3\n\n"
    events = parse_all(stream)
    assert [(e.event, e.data) for e in events] == [("a", "1"), ("b", "2"), (None, "3")]
    assert [e.raw for e in events] == [
        b"event: a\r\ndata: 1\r\n\r\n",
        b"event: b\rdata: 2\r\r",
        b"data: 3\n\n",
    ]


def test_a_crlf_split_between_chunks_is_not_two_line_ends() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: 1\r") == []
    assert parser.feed(b"\ndata: 2\r\n\r") == []  # the last CR may still become CRLF
    [event] = parser.feed(b"\n")
    assert event.data == "1\n2"
    assert event.raw == b"data: 1\r\ndata: 2\r\n\r\n"


def test_an_event_split_at_every_byte_parses_the_same() -> None:
    stream = b"event: ping\ndata: {}\n\n: keep-alive\n\ndata: \xc3\xa9t\xc3\xa9\n\n"
    whole = parse_all(stream)
    assert parse_all(*(stream[i : i + 1] for i in range(len(stream)))) == whole
    assert whole[2].data == "été"


def test_comments_are_events_with_empty_data_so_their_bytes_are_relayed() -> None:
    [comment, event] = parse_all(b": ping\n\ndata: x\n\n")
    assert comment == SSEEvent(event=None, data="", raw=b": ping\n\n")
    assert event.data == "x"


def test_flush_returns_a_trailing_unterminated_event() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: done\n\ndata: [DONE]") == [
        SSEEvent(event=None, data="done", raw=b"data: done\n\n")
    ]
    assert parser.flush() == [SSEEvent(event=None, data="[DONE]", raw=b"data: [DONE]")]
    assert parser.flush() == []


def test_flush_accepts_a_trailing_cr_as_the_end_of_an_event() -> None:
    assert parse_all(b"data: x\r\r") == [SSEEvent(event=None, data="x", raw=b"data: x\r\r")]


def test_empty_chunks_are_ignored() -> None:
    parser = SSEParser()
    assert parser.feed(b"") == []
    assert parser.flush() == []


def test_invalid_utf8_is_replaced_not_raised() -> None:
    [event] = parse_all(b"data: \xff\n\n")
    assert event.data == "\ufffd"


def test_recorded_streams_round_trip_byte_for_byte() -> None:
    for path in sorted(FIXTURES.glob("*/*.sse")):
        stream = path.read_bytes()
        events = parse_all(stream)
        assert b"".join(e.raw for e in events) == stream, path
        assert all(e.data for e in events), path


_LINES = st.sampled_from(
    [b"event: message_delta", b'data: {"t":1}', b"data:", b": ping", b"id: 7", b"retry: 10", b"x"]
)
_ENDS = st.sampled_from([b"\n", b"\r\n", b"\r"])


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Well-formed-ish SSE with every terminator mixed in, plus a random tail."""
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 6))):
        for line in draw(st.lists(_LINES, min_size=1, max_size=4)):
            parts.append(line + draw(_ENDS))
        parts.append(draw(_ENDS))
    parts.append(draw(st.binary(max_size=20)))
    return b"".join(parts)


@given(stream=st.one_of(streams(), st.binary(max_size=200)), cuts=st.lists(st.integers(0, 300)))
def test_any_split_of_a_stream_yields_the_same_events(stream: bytes, cuts: list[int]) -> None:
    bounds = sorted({0, len(stream), *(c for c in cuts if c <= len(stream))})
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    whole = parse_all(stream)
    assert parse_all(*chunks) == whole
    assert b"".join(e.raw for e in whole) == stream
