import json

import pytest

from loco_lan.oci import BadImage
from loco_lan.oci import manifest as mt
from loco_lan.oci.manifest import Manifest, encode, sha256_digest


def index(*entries) -> Manifest:
    raw = encode({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": list(entries)})
    return Manifest.parse(raw, sha256_digest(raw))


def entry(os_: str, arch: str, digest: str = "sha256:" + "0" * 64) -> dict:
    platform = {"os": os_, "architecture": arch}
    return {"mediaType": mt.OCI_MANIFEST, "digest": digest, "size": 1, "platform": platform}


def test_select_linux_amd64_among_many():
    chosen = index(entry("linux", "arm64", "a"), entry("linux", "amd64", "b"), entry("windows", "amd64", "c"))
    assert chosen.select()["digest"] == "b"


def test_select_the_only_entry_ignoring_attestations():
    only = index(entry("linux", "arm64", "a"), entry("unknown", "unknown", "att"))
    assert only.select()["digest"] == "a"


def test_select_fails_clearly():
    with pytest.raises(BadImage, match=r"no linux/amd64 entry \(has: linux/arm64, linux/s390x\)"):
        index(entry("linux", "arm64"), entry("linux", "s390x")).select()


def test_media_type_from_header_or_body():
    body = json.dumps({"schemaVersion": 2, "layers": []}).encode()
    assert Manifest.parse(body, "d", mt.DOCKER_MANIFEST).media_type == mt.DOCKER_MANIFEST
    assert Manifest.parse(body, "d").media_type == mt.OCI_MANIFEST
    listing = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert Manifest.parse(listing, "d").is_index


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        (b"not json", "not valid JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"schemaVersion": 1, "fsLayers": []}', "Docker schema 1"),
        (b'{"schemaVersion": 2, "mediaType": "application/x-other"}', "unsupported media type"),
    ],
)
def test_bad_manifests(raw, complaint):
    with pytest.raises(BadImage, match=complaint):
        Manifest.parse(raw, "sha256:x")


def test_encode_is_stable():
    assert encode({"b": 1, "a": [2]}) == b'{"a":[2],"b":1}'
