"""Keys and provider credentials at rest: only a hash of a token and only ciphertext of a
provider key reach the database; revoke, rotate and expiry behave as the README says."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils import timezone

from identity import encryption
from identity.keys import hash_token
from identity.models import GatewayKey, ProviderCredential
from tests.factories import make_key, make_team, make_user, make_workspace

pytestmark = pytest.mark.django_db

RAW_PROVIDER_KEY = "sk-ant-api03-raw-provider-key-for-the-test-0123456789"


def secret_part(token: str) -> str:
    return token[3 + 26 :]


def authenticate(token: str) -> GatewayKey | None:
    return GatewayKey.objects.active().filter(token_hash=hash_token(token)).first()


def test_issued_token_is_nowhere_in_the_database(database_text) -> None:
    key, token = make_key(name="alice-laptop", team=make_team(), user=make_user())

    dump = database_text()

    assert key.token_hash in dump  # the dump does see the key's row
    assert token not in dump
    assert secret_part(token) not in dump


def test_issued_token_authenticates_by_its_hash() -> None:
    key, token = make_key()

    assert authenticate(token) == key
    assert GatewayKey.objects.get(pk=key.pk).token_hash == hash_token(token)


def test_a_wrong_token_does_not_authenticate() -> None:
    _, token = make_key()

    assert authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None


def test_issue_stores_name_workspace_owner_team_and_models() -> None:
    user, team, workspace = make_user(), make_team(), make_workspace(path="/srv/buyer-project")

    key, _ = make_key(
        name="ci", user=user, team=team, workspace=workspace, allowed_models=["haiku"]
    )

    key.refresh_from_db()
    assert (key.name, key.user, key.team, key.workspace) == ("ci", user, team, workspace)
    assert key.allowed_models == ["haiku"]
    assert key.status == GatewayKey.Status.ACTIVE
    assert key.created_at is not None and key.last_used_at is None


def test_a_key_without_a_model_list_stores_an_empty_list() -> None:
    key, _ = make_key()

    assert GatewayKey.objects.get(pk=key.pk).allowed_models == []


def test_revoked_key_stops_authenticating() -> None:
    key, token = make_key()

    key.revoke()

    assert key.status == GatewayKey.Status.REVOKED
    assert authenticate(token) is None
    assert list(GatewayKey.objects.revoked()) == [key]


def test_revoking_twice_keeps_the_first_revocation_time() -> None:
    key, _ = make_key(revoked=True)
    first = key.revoked_at

    key.revoke()

    assert GatewayKey.objects.get(pk=key.pk).revoked_at == first


def test_expired_key_stops_authenticating() -> None:
    key, token = make_key(expires_at=timezone.now() - timedelta(seconds=1))

    assert key.status == GatewayKey.Status.EXPIRED
    assert authenticate(token) is None
    assert list(GatewayKey.objects.expired()) == [key]


def test_key_with_a_future_expiry_works_until_then() -> None:
    expires_at = timezone.now() + timedelta(days=30)
    key, token = make_key(expires_at=expires_at)

    assert authenticate(token) == key
    assert key.status_at(expires_at + timedelta(seconds=1)) == GatewayKey.Status.EXPIRED
    assert not GatewayKey.objects.active(now=expires_at + timedelta(seconds=1)).exists()


def test_active_excludes_revoked_and_expired_keys() -> None:
    live, _ = make_key()
    make_key(revoked=True)
    make_key(expires_at=timezone.now() - timedelta(days=1))

    assert list(GatewayKey.objects.active()) == [live]


def test_rotate_keeps_the_key_id_and_kills_the_old_token_at_once(database_text) -> None:
    key, old_token = make_key(allowed_models=["haiku"])
    key_id = key.pk

    new_token = key.rotate()

    assert authenticate(old_token) is None
    assert authenticate(new_token).pk == key_id
    assert GatewayKey.objects.count() == 1
    key.refresh_from_db()
    assert key.allowed_models == ["haiku"] and key.rotated_at is not None
    dump = database_text()
    assert new_token not in dump and secret_part(new_token) not in dump


def test_a_live_key_name_is_unique_but_a_revoked_name_may_be_reused() -> None:
    key, _ = make_key(name="shared-name")

    with pytest.raises(ValidationError, match="live gateway key with this name"):
        make_key(name="shared-name")
    key.revoke()
    reused, _ = make_key(name="shared-name")

    assert reused.pk != key.pk


def test_allowed_models_must_be_a_list_of_names() -> None:
    with pytest.raises(ValidationError, match="list of model names"):
        make_key(allowed_models=["haiku", " "])


def test_provider_key_is_encrypted_at_rest_and_decrypts(database_text) -> None:
    credential = ProviderCredential(name="anthropic", provider="anthropic")
    credential.set_api_key(RAW_PROVIDER_KEY)
    credential.save()

    dump = database_text()

    assert credential.encrypted_api_key in dump
    assert RAW_PROVIDER_KEY not in dump
    assert RAW_PROVIDER_KEY[-20:] not in dump
    assert ProviderCredential.objects.get().api_key == RAW_PROVIDER_KEY
    assert credential.key_hint == "…6789"


def test_old_encryption_key_listed_second_still_decrypts(settings) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.METIS_ENCRYPTION_KEYS = old
    credential = ProviderCredential(name="openai", provider="openai")
    credential.set_api_key(RAW_PROVIDER_KEY)
    credential.save()

    settings.METIS_ENCRYPTION_KEYS = f"{new}, {old}"

    assert ProviderCredential.objects.get().api_key == RAW_PROVIDER_KEY
    reencrypted = encryption.encrypt(RAW_PROVIDER_KEY)
    settings.METIS_ENCRYPTION_KEYS = new
    assert encryption.decrypt(reencrypted) == RAW_PROVIDER_KEY  # new values use the first key


def test_dropping_the_old_encryption_key_says_how_to_fix_it(settings) -> None:
    settings.METIS_ENCRYPTION_KEYS = Fernet.generate_key().decode()
    credential = ProviderCredential(name="openai", provider="openai")
    credential.set_api_key(RAW_PROVIDER_KEY)
    credential.save()

    settings.METIS_ENCRYPTION_KEYS = Fernet.generate_key().decode()

    with pytest.raises(ImproperlyConfigured, match="Put the old key after the new one"):
        ProviderCredential.objects.get().api_key  # noqa: B018


@pytest.mark.parametrize("bad", ["not-a-fernet-key", "c2hvcnQ=", "   "])
def test_bad_encryption_key_is_an_improperly_configured_with_a_clear_message(
    settings, bad: str
) -> None:
    settings.METIS_ENCRYPTION_KEYS = bad

    with pytest.raises(ImproperlyConfigured, match="comma-separated Fernet keys"):
        encryption.encrypt(RAW_PROVIDER_KEY)


def test_an_openai_compatible_provider_needs_a_base_url() -> None:
    credential = ProviderCredential(name="ollama", provider="openai-compatible")

    with pytest.raises(ValidationError, match="needs a base URL"):
        credential.full_clean()
