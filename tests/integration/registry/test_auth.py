"""Authentication against the real registry: htpasswd (basic) and a bearer-token service
(the anonymous-pull flow ghcr.io uses), and secrets never showing up in logs or errors."""

import logging

import pytest
from regkit import PASSWORD, USER, TokenService, fast_client, make_tls, sha256_file

from loco_lan import snapshot
from loco_lan.errors import LocoError
from loco_lan.localregistry import LocalRegistry
from loco_lan.oci import AuthFailed, Client, Credentials, Reference, RegistryError, push_artifact
from loco_lan.oci.auth import ENV_PASSWORD, ENV_USERNAME

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    base = tmp_path_factory.mktemp("token-registry")
    tokens = TokenService(base)
    with LocalRegistry(base / "state", auth=tokens.registry_auth) as running:
        yield running, tokens
    tokens.close()


def test_htpasswd_push_and_pull(auth_registry, qcow2, tmp_path):
    disk = qcow2()
    target = Reference.parse(f"{auth_registry.host}/basic/win98:base")
    client = fast_client(Credentials(USER, PASSWORD))
    assert snapshot.push(disk, target, client=client).action == "pushed"
    dest = tmp_path / "win98.qcow2"
    snapshot.pull(target, dest, client=client)
    assert dest.read_bytes() == disk.read_bytes()


def test_credentials_from_environment(auth_registry, qcow2, tmp_path, monkeypatch):
    disk = qcow2()
    target = Reference.parse(f"{auth_registry.host}/env/win98:base")
    push_artifact(fast_client(Credentials(USER, PASSWORD)), disk, target, sha256_file(disk))
    monkeypatch.setenv(ENV_USERNAME, USER)
    monkeypatch.setenv(ENV_PASSWORD, PASSWORD)
    pulled = snapshot.pull(target, tmp_path / "win98.qcow2", client=fast_client(Credentials.resolve()))
    assert pulled.action == "pulled"


def test_anonymous_bearer_pull(token_registry, qcow2, tmp_path):
    registry, tokens = token_registry
    disk = qcow2()
    target = Reference.parse(f"{registry.host}/public/win98:base")
    push_artifact(fast_client(Credentials(USER, PASSWORD)), disk, target, sha256_file(disk))
    dest = tmp_path / "win98.qcow2"
    snapshot.pull(target, dest, client=fast_client())  # no credentials at all, like a public ghcr.io repo
    assert dest.read_bytes() == disk.read_bytes()
    assert ("", "repository:public/win98:pull") in tokens.granted
    assert (USER, "repository:public/win98:pull,push") in tokens.granted


def test_anonymous_bearer_push_is_refused(token_registry, qcow2):
    registry, _ = token_registry
    disk = qcow2()
    target = Reference.parse(f"{registry.host}/public/anon:base")
    with pytest.raises(AuthFailed, match=f"registry {registry.host} requires credentials for public/anon"):
        push_artifact(fast_client(), disk, target, sha256_file(disk))


def test_bearer_wrong_password(token_registry, qcow2, tmp_path):
    registry, _ = token_registry
    target = Reference.parse(f"{registry.host}/public/win98:base")
    with pytest.raises(AuthFailed, match=f"{registry.host} refused the credentials for public/win98"):
        snapshot.pull(target, tmp_path / "win98.qcow2", client=fast_client(Credentials(USER, "wrong")))
    assert list(tmp_path.iterdir()) == []


def test_secrets_stay_out_of_logs_and_errors(auth_registry, qcow2, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "s3cret-that-must-not-leak"
    credentials = Credentials(USER, secret)
    assert secret not in repr(credentials)
    target = Reference.parse(f"{auth_registry.host}/basic/win98:base")
    with pytest.raises(AuthFailed) as failure:
        snapshot.pull(target, tmp_path / "win98.qcow2", client=fast_client(credentials))
    assert secret not in str(failure.value)
    assert secret not in caplog.text


def test_https_with_a_ca_bundle(tmp_path, qcow2):
    ca, cert, key = make_tls(tmp_path)
    with LocalRegistry(tmp_path / "tls-registry", tls=(cert, key)) as registry:
        target = Reference.parse(f"{registry.host}/tls/win98:base")
        trusted = Client(ca_bundle=ca, timeout=10, retries=1, backoff=0.05)
        disk = qcow2()
        assert snapshot.push(disk, target, client=trusted).action == "pushed"
        assert snapshot.pull(target, tmp_path / "win98.qcow2", client=trusted).action == "pulled"
        untrusting = Client(timeout=10, retries=1)
        expected = rf"TLS failure talking to {registry.host}: .*certificate verify failed"
        with pytest.raises(RegistryError, match=expected):
            snapshot.pull(target, tmp_path / "other.qcow2", client=untrusting)
    with pytest.raises(LocoError, match="CA bundle .*missing.pem does not exist"):
        Client(ca_bundle=tmp_path / "missing.pem")
