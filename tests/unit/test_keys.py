"""Gateway key ids and tokens: format, entropy, and the keyed hash that is all we store."""

from __future__ import annotations

import base64
import hashlib
import hmac

from ulid import ULID

from identity import keys

ULID_LENGTH = 26


def secret_part(token: str) -> str:
    return token[len(keys.TOKEN_PREFIX) + ULID_LENGTH :]


def test_key_id_is_gk_and_a_valid_ulid() -> None:
    key_id = keys.new_key_id()

    assert key_id.startswith("gk_")
    assert str(ULID.from_str(key_id.removeprefix("gk_"))) == key_id.removeprefix("gk_")


def test_token_is_gw_then_a_ulid_then_the_secret() -> None:
    token = keys.new_token()

    assert token.startswith("gw_")
    ULID.from_str(token[3 : 3 + ULID_LENGTH])
    assert secret_part(token)
    assert keys.looks_like_token(token)


def test_token_secret_carries_at_least_128_random_bits() -> None:
    secret = secret_part(keys.new_token())

    raw = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))

    assert len(raw) * 8 >= 128


def test_many_tokens_and_their_secrets_are_all_distinct() -> None:
    tokens = [keys.new_token() for _ in range(5000)]

    assert len(set(tokens)) == len(tokens)
    assert len({secret_part(t) for t in tokens}) == len(tokens)


def test_key_ids_are_distinct_and_sort_by_creation() -> None:
    ids = [keys.new_key_id() for _ in range(1000)]

    assert len(set(ids)) == len(ids)
    assert [i[3:13] for i in ids] == sorted(i[3:13] for i in ids)  # ULID time prefix


def test_provider_keys_do_not_look_like_gateway_tokens() -> None:
    assert not keys.looks_like_token("sk-ant-api03-" + "x" * 80)
    assert not keys.looks_like_token("sk-proj-" + "x" * 60)
    assert not keys.looks_like_token("gw_short")


def test_hash_is_hmac_sha256_under_the_key_hash_secret(settings) -> None:
    settings.METIS_KEY_HASH_SECRET = "hash-secret-for-this-test"
    token = keys.new_token()

    expected = hmac.new(b"hash-secret-for-this-test", token.encode(), hashlib.sha256).hexdigest()

    assert keys.hash_token(token) == expected
    assert keys.hash_token(token) != hashlib.sha256(token.encode()).hexdigest()


def test_changing_secret_key_keeps_every_token_hash(settings) -> None:
    token = keys.new_token()
    before = keys.hash_token(token)

    settings.SECRET_KEY = "a-completely-different-django-secret-key"

    assert keys.hash_token(token) == before


def test_changing_the_key_hash_secret_changes_the_hash(settings) -> None:
    token = keys.new_token()
    before = keys.hash_token(token)

    settings.METIS_KEY_HASH_SECRET = "a-new-key-hash-secret"

    assert keys.hash_token(token) != before


def test_display_prefix_is_too_short_to_use() -> None:
    token = keys.new_token()

    prefix = keys.display_prefix(token)

    assert token.startswith(prefix)
    assert secret_part(token) not in prefix
    assert len(prefix) <= 16
