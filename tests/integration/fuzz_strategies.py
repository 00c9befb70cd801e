"""Hypothesis strategies for tests/integration/test_gateway_fuzz.py: request bodies that are
valid calls but for one or two mutated parts, junk bytes and headers, analytics parameters."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import strategies as st

HELLO = [{"role": "user", "content": "Say hello"}]
# The mock calls a tool when asked like this, so junk tool schemas are read, not ignored.
USE_A_TOOL = [{"role": "user", "content": "Check the weather [[tool]]"}]
prompts = st.sampled_from([HELLO, USE_A_TOOL])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
# JSON nested past what orjson writes back (254 levels) and up to what it reads (1,024): a
# marker `with_deep_json` turns into the brackets, as json.dumps cannot nest that deep.
DEEP = re.compile(r'"__deep_(\d+)__"')
deep_json = st.integers(min_value=240, max_value=1020).map(lambda n: f"__deep_{n}__")


def with_deep_json(raw: str) -> str:
    return DEEP.sub(lambda m: "[" * int(m[1]) + "]" * int(m[1]), raw)


models = st.one_of(
    st.sampled_from(["", " ", "unknown-model", "anthropic:", ":model", "nope:gpt-5-mini",
                     "openai:", "anthropic:haiku", "sonnet", "opus", "haiku", "o1", "ft:"]),
    json_values,
)  # fmt: skip
counts = st.one_of(
    st.sampled_from([0, -1, 2**31, 2**63, 2**64, 1.5, 32.0, "32", True, False]), json_values
)
roles = st.one_of(
    st.sampled_from(["user", "assistant", "system", "developer", "tool", "function", ""]),
    json_values,
)
BLOCK_TYPES = ["text", "image", "image_url", "tool_use", "tool_result", "thinking", "document"]
BLOCK_KEYS = ["text", "source", "image_url", "id", "name", "input", "tool_use_id", "content"]
blocks = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"type": st.one_of(st.sampled_from(BLOCK_TYPES), json_values)},
        optional={key: json_values for key in [*BLOCK_KEYS, "is_error", "media_type", "url"]},
    ),
    st.fixed_dictionaries(
        {"type": st.just("image"), "source": st.one_of(json_values, st.fixed_dictionaries(
            {"type": st.sampled_from(["base64", "url", "file"])},
            optional={"media_type": json_values, "data": json_values, "url": json_values},
        ))},
    ),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.one_of(json_values, st.fixed_dictionaries(
            {"url": st.one_of(json_values, st.sampled_from(["data:,", "data:x;base64,", "ftp://x"]))},
        ))},
    ),
)  # fmt: skip
tool_calls = st.lists(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {},
            optional={
                "id": json_values,
                "type": st.one_of(st.just("function"), json_values),
                "function": st.one_of(
                    json_values,
                    st.fixed_dictionaries(
                        {}, optional={"name": json_values, "arguments": json_values}
                    ),
                ),
            },
        ),
    ),
    max_size=2,
)
contents = st.one_of(json_values, st.lists(blocks, max_size=3))
messages = st.one_of(
    json_values,
    st.lists(
        st.one_of(
            json_values,
            st.fixed_dictionaries(
                {"role": roles},
                optional={
                    "content": contents,
                    "name": json_values,
                    "tool_calls": tool_calls,
                    "tool_call_id": json_values,
                },
            ),
        ),
        max_size=3,
    ),
)
schemas = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["object", "string", ["null", "integer"]]) | json_values,
            "properties": json_values,
            "required": json_values,
            "enum": json_values,
        },
    ),
)
tools = st.one_of(
    json_values,
    st.lists(
        st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "type": json_values | st.just("function"),
                    "name": st.just("f") | json_values,
                    "input_schema": schemas,
                    "function": json_values
                    | st.fixed_dictionaries(
                        {"name": st.just("f") | json_values, "parameters": schemas}
                    ),
                },
            ),
        ),
        max_size=2,
    ),
)
MUTATIONS: dict[str, st.SearchStrategy[Any]] = {
    "model": models,
    "max_tokens": counts,
    "max_completion_tokens": counts,
    "stream": json_values,
    "messages": messages,
    "system": st.one_of(json_values, st.lists(blocks, max_size=2)),
    "tools": tools
    | st.lists(st.fixed_dictionaries({"name": st.just("f"), "input_schema": deep_json})),
    "tool_choice": st.one_of(
        json_values,
        st.sampled_from(["auto", "required", "none", "any"]),
        st.fixed_dictionaries(
            {
                "type": st.one_of(
                    st.sampled_from(["auto", "any", "tool", "none", "function"]), json_values
                )
            },
            optional={
                "name": json_values,
                "function": json_values,
                "disable_parallel_tool_use": json_values,
            },
        ),
    ),
    "parallel_tool_calls": json_values,
    "stop_sequences": json_values,
    "stop": json_values,
    "temperature": json_values,
    "top_p": json_values,
    "top_k": json_values,
    "thinking": st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"type": st.one_of(st.sampled_from(["enabled", "disabled", "adaptive"]), json_values)},
            optional={"budget_tokens": counts},
        ),
    ),
    "metadata": st.one_of(
        json_values, deep_json, st.fixed_dictionaries({"user_id": json_values | deep_json})
    ),
    "user": json_values,
    "stream_options": st.one_of(json_values, st.fixed_dictionaries({"include_usage": json_values})),
    "response_format": st.one_of(json_values, st.fixed_dictionaries({"type": json_values})),
    "n": json_values,
    "reasoning_effort": json_values,
}
mutation = st.sampled_from(sorted(MUTATIONS)).flatmap(
    lambda field: st.one_of(st.just((field, None)), MUTATIONS[field].map(lambda v: (field, v)))
)
# One or two parts mutated: two reach paths one cannot (a stream with junk tools, say).
changes = st.lists(mutation, min_size=1, max_size=2)

# ---- junk bytes and headers

HUGE_PROMPT = [{"role": "user", "content": "x" * 2_000_000}]
raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(min_value=1, max_value=5000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.sampled_from([b"", b"\xff\xfe{}", b'{"model": "\xff"}', b'{"model": "\\ud800"}', b"null"]),
    st.just(orjson.dumps({"model": "haiku", "max_tokens": 1, "messages": HUGE_PROMPT})),
)
# Header values as bytes: visible ASCII and obs-text, which HTTP allows (Django reads latin-1).
header_values = st.one_of(
    st.binary(max_size=40).map(lambda b: bytes(c for c in b if c > 0x20 and c != 0x7F)),
    st.sampled_from([b"gzip", b"br", b"zstd", b"deflate", b"text/plain", b"gw_" + b"\xff" * 40,
                     b"multipart/form-data; boundary=x", b"application/x-www-form-urlencoded"]),
)  # fmt: skip
HEADERS = ["anthropic-version", "anthropic-beta", "x-metis-user", "content-type",
           "content-encoding", "openai-organization", "x-stainless-lang", "x-api-key",
           "x-metis-token", "metis-api-version"]  # fmt: skip

# ---- the analytics API

# Moments at and near datetime's ends, with offsets up to ±23:59: UTC conversion overflows.
LONGEST = timedelta(hours=23, minutes=59)
offsets = st.one_of(
    st.sampled_from([timedelta(hours=14), -timedelta(hours=14), LONGEST, -LONGEST]),
    st.timedeltas(min_value=-LONGEST, max_value=LONGEST),
).map(timezone)
edge_moments = st.builds(
    lambda moment, offset: moment.replace(tzinfo=offset).isoformat(),
    st.one_of(
        st.sampled_from([datetime.min, datetime.max, datetime(9999, 12, 31)]),
        st.datetimes(max_value=datetime(1, 1, 3)),
        st.datetimes(min_value=datetime(9999, 12, 29)),
    ),
    offsets,
) | st.sampled_from(["0001-01-01", "9999-12-31", "9999-12-31T23:59:59.999999"])

ENDPOINTS = ("cost", "by_key", "by_user", "by_team", "activity")
PARAMS = ("window", "from", "to", "group_by", "gateway_key", "user", "team", "workspace",
          "page", "page_size")  # fmt: skip
param_values = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=30),
    st.sampled_from(["1h", "24h", "7d", "30d", "0h", "-1h", "99999999d", "1y", "hour", "day"]),
    st.sampled_from(["model", "key", "user", "team", "workspace", "provider", "day", "hour"]),
    st.sampled_from(["2026-01-01", "2026-13-01", "2026-01-01T25:00", "0001-01-01", "9999-12-31",
                     "2026-01-01T00:00:00+14:00", "2026-01-01T00:00:00-23:59", "1e9", "now"]),
    st.datetimes().map(lambda d: d.isoformat()),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    edge_moments,
)  # fmt: skip
analytics_headers = st.dictionaries(
    st.sampled_from(["HTTP_AUTHORIZATION", "HTTP_METIS_API_VERSION"]),
    st.one_of(
        st.text(st.characters(codec="latin-1", exclude_categories=["Cc"]), max_size=30),
        st.sampled_from(["Bearer gw_" + "x" * 40, "Bearer gw_" + "\xff" * 40, "1.0", "2.0"]),
    ),
    max_size=2,
)
