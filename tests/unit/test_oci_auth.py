import pytest

from loco_lan.errors import LocoError
from loco_lan.oci import Credentials
from loco_lan.oci.auth import ENV_PASSWORD, ENV_TOKEN, ENV_USERNAME, parse_challenge


def test_bearer_challenge_like_ghcr():
    scheme, params = parse_challenge(
        'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:mroie/qemu-snapshots:pull"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://ghcr.io/token",
        "service": "ghcr.io",
        "scope": "repository:mroie/qemu-snapshots:pull",
    }


def test_basic_challenge_and_unquoted_and_escaped_values():
    assert parse_challenge('Basic realm="loco"') == ("basic", {"realm": "loco"})
    assert parse_challenge('Bearer realm=https://a/t, error="insufficient \\"scope\\""') == (
        "bearer",
        {"realm": "https://a/t", "error": 'insufficient "scope"'},
    )


@pytest.fixture
def clean_env(monkeypatch):
    for name in (ENV_USERNAME, ENV_PASSWORD, ENV_TOKEN):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_resolve_prefers_explicit_then_environment(clean_env, tmp_path):
    clean_env.setenv(ENV_USERNAME, "env-user")
    clean_env.setenv(ENV_PASSWORD, "env-pass")
    assert Credentials.resolve() == Credentials("env-user", "env-pass")
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    assert Credentials.resolve("me", password_file=secret) == Credentials("me", "from-file")
    assert not Credentials()
    assert Credentials(token="t")


def test_password_needs_a_user(clean_env):
    with pytest.raises(LocoError, match="needs a username"):
        Credentials.resolve(password="p")


def test_unreadable_password_file(clean_env, tmp_path):
    with pytest.raises(LocoError, match="cannot read password file"):
        Credentials.resolve("me", password_file=tmp_path / "missing")


def test_secrets_not_in_repr():
    credentials = Credentials("user", "hunter2", "tok3n")
    assert "hunter2" not in repr(credentials) and "tok3n" not in repr(credentials)
    assert credentials.basic() == "Basic dXNlcjpodW50ZXIy"
