import pytest

from loco_lan.errors import LocoError
from loco_lan.oci import DEFAULT_REFERENCE, Reference, is_loopback_host

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        (DEFAULT_REFERENCE, "ghcr.io", "mroie/qemu-snapshots", "win98-base", None),
        ("127.0.0.1:5000/snap", "127.0.0.1:5000", "snap", "latest", None),
        ("localhost/a/b/c:v1.2", "localhost", "a/b/c", "v1.2", None),
        (f"ghcr.io/mroie/qemu-snapshots@{DIGEST}", "ghcr.io", "mroie/qemu-snapshots", None, DIGEST),
        (f"ghcr.io/mroie/snap:win98-base@{DIGEST}", "ghcr.io", "mroie/snap", "win98-base", DIGEST),
        ("debian:12", "docker.io", "library/debian", "12", None),
        ("mroie/snap", "docker.io", "mroie/snap", "latest", None),
        ("[::1]:5000/snap:x", "[::1]:5000", "snap", "x", None),
    ],
)
def test_parse(text, registry, repository, tag, digest):
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)


def test_round_trip_and_pinning():
    ref = Reference.parse(DEFAULT_REFERENCE)
    assert str(ref) == DEFAULT_REFERENCE
    assert ref.manifest_ref == "win98-base"
    pinned = ref.with_digest(DIGEST)
    assert pinned.manifest_ref == DIGEST
    assert Reference.parse(str(pinned)) == pinned


def test_docker_hub_api_host():
    assert Reference.parse("debian").api_host == "registry-1.docker.io"
    assert Reference.parse("ghcr.io/a/b").api_host == "ghcr.io"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("ghcr.io/Mroie/snap:x", "invalid repository name"),
        ("ghcr.io/mroie/snap:-bad", "invalid tag"),
        ("ghcr.io/mroie/snap@md5:abc", "only sha256"),
        ("ghcr.io/mroie/snap@sha256:abc", "only sha256"),
        ("ghcr.io/", "invalid repository name"),
    ],
)
def test_bad_references(text, complaint):
    with pytest.raises(LocoError, match=complaint):
        Reference.parse(text)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1:5000", True),
        ("127.8.9.1", True),
        ("localhost:1", True),
        ("[::1]:5000", True),
        ("::1", True),
        ("ghcr.io", False),
        ("10.0.0.1:5000", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback(host, loopback):
    assert is_loopback_host(host) is loopback
