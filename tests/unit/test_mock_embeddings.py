"""The mock provider's embeddings endpoint, as the openai SDK sees it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from mock_provider import MockProviderThread

MODEL = "text-embedding-3-small"


@pytest.fixture(scope="module")
def mock() -> Iterator[MockProviderThread]:
    with MockProviderThread() as thread:
        yield thread


@pytest.fixture
def client(mock: MockProviderThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{mock.url}/v1", api_key="sk-test", max_retries=0)


def test_the_same_input_gets_the_same_unit_vector_in_either_encoding(client) -> None:
    as_base64 = client.embeddings.create(model=MODEL, input="hello world")  # the SDK's default
    as_floats = client.embeddings.create(model=MODEL, input="hello world", encoding_format="float")

    vector = as_floats.data[0].embedding
    assert len(vector) == 1536
    assert as_base64.data[0].embedding == pytest.approx(vector, abs=1e-6)
    assert sum(x * x for x in vector) == pytest.approx(1.0)
    assert as_floats.usage.prompt_tokens == as_floats.usage.total_tokens == len("hello world") // 4


def test_a_batch_of_texts_and_token_ids_counts_every_token(client) -> None:
    answer = client.embeddings.create(model="text-embedding-3-large", input=[[1, 2, 3], [4, 5]])

    assert [len(d.embedding) for d in answer.data] == [3072, 3072]
    assert answer.usage.prompt_tokens == 5


@pytest.mark.parametrize(
    "body",
    [
        {"model": MODEL},
        {"model": MODEL, "input": ""},
        {"model": MODEL, "input": ["ok", ""]},
        {"model": MODEL, "input": "x", "dimensions": 5000},
        {"input": "x"},
    ],
)
def test_bad_requests_get_openais_400(mock: MockProviderThread, body: dict) -> None:
    response = httpx.post(f"{mock.url}/v1/embeddings", json=body,
                          headers={"authorization": "Bearer sk-test"})  # fmt: skip

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_without_a_key_it_is_401(mock: MockProviderThread) -> None:
    response = httpx.post(f"{mock.url}/v1/embeddings", json={"model": MODEL, "input": "x"})

    assert response.status_code == 401


def test_faults_apply_to_embeddings_too(client) -> None:
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model=MODEL, input="x", extra_headers={"x-mock-fault": "500"})
