"""Property-based fuzzing of POST /v1/responses: a valid call to an OpenAI model (passed
through) or a Claude model (translated) with one or two parts mutated gets a clear
OpenAI-shaped error, never a 500. Settings and the property are test_gateway_fuzz.py's."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.integration.fuzz_strategies import counts, json_values, models, schemas
from tests.integration.test_gateway_fuzz import FUZZ, check, mutated

MODELS = ("gpt-5-mini", "haiku", "anthropic:claude-haiku-4-5")
INPUTS = (
    "Say hello",
    [{"role": "user", "content": "Weather? [[tool]]"}],
)
ITEM_TYPES = ["message", "function_call", "function_call_output", "reasoning", "item_reference",
              "input_text", "web_search_call"]  # fmt: skip
PART_TYPES = ["input_text", "output_text", "input_image", "input_file", "refusal", "text"]
parts = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"type": st.one_of(st.sampled_from(PART_TYPES), json_values)},
        optional={
            "text": json_values,
            "refusal": json_values,
            "image_url": st.one_of(json_values, st.sampled_from(["data:,", "data:x;base64,"])),
            "file_id": json_values,
        },
    ),
)
items = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(st.sampled_from(ITEM_TYPES), json_values),
            "role": st.one_of(st.sampled_from(["user", "assistant", "developer", "system"]),
                              json_values),
            "content": st.one_of(json_values, st.lists(parts, max_size=3)),
            "call_id": json_values | st.just("call_1"),
            "name": json_values | st.just("f"),
            "arguments": json_values,
            "output": st.one_of(json_values, st.lists(parts, max_size=2)),
            "summary": st.one_of(json_values, st.lists(
                st.fixed_dictionaries({"type": st.just("summary_text"), "text": json_values}),
                max_size=2)),
            "encrypted_content": json_values | st.sampled_from(["metis1.", "metis1.e30=", "gAAA"]),
            "id": json_values,
        },
    ),
)  # fmt: skip
MUTATIONS: dict[str, st.SearchStrategy[Any]] = {
    "model": models,
    "input": st.one_of(json_values, st.lists(items, max_size=3)),
    "instructions": json_values,
    "max_output_tokens": counts,
    "stream": json_values,
    "tools": st.one_of(json_values, st.lists(st.one_of(json_values, st.fixed_dictionaries(
        {}, optional={"type": json_values | st.sampled_from(["function", "web_search"]),
                      "name": json_values | st.just("f"), "parameters": schemas,
                      "strict": json_values},
    )), max_size=2)),
    "tool_choice": st.one_of(json_values, st.sampled_from(["auto", "required", "none"]),
                             st.fixed_dictionaries({"type": json_values | st.just("function")},
                                                   optional={"name": json_values})),
    "reasoning": st.one_of(json_values, st.fixed_dictionaries(
        {}, optional={"effort": json_values | st.sampled_from(["none", "low", "xhigh"]),
                      "summary": json_values})),
    "text": st.one_of(json_values, st.fixed_dictionaries({}, optional={
        "format": st.one_of(json_values, st.fixed_dictionaries(
            {"type": json_values | st.sampled_from(["json_schema", "json_object", "text"])},
            optional={"schema": schemas, "name": json_values, "strict": json_values})),
        "verbosity": json_values})),
    "parallel_tool_calls": json_values,
    "temperature": json_values,
    "top_p": json_values,
    "user": json_values,
    "metadata": json_values,
    "store": json_values,
    "include": json_values,
    "previous_response_id": json_values,
    "background": json_values,
    "top_logprobs": json_values,
}  # fmt: skip
changes = st.lists(
    st.sampled_from(sorted(MUTATIONS)).flatmap(
        lambda field: st.one_of(st.just((field, None)), MUTATIONS[field].map(lambda v: (field, v)))
    ),
    min_size=1,
    max_size=2,
)


@pytest.fixture
def session(gateway, token):
    headers = {"authorization": f"Bearer {token}"}  # as the openai SDK sends it
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as session:
        yield session


@FUZZ
@given(model=st.sampled_from(MODELS), first=st.sampled_from(INPUTS), changes=changes)
def test_a_mutated_responses_call_never_gets_a_500(session, model, first, changes):
    body = {"model": model, "input": first, "tools": [{"type": "function", "name": "f"}]}
    check(session.post("/v1/responses", content=mutated(body, changes)), anthropic_shape=False)
