"""Push snapshots in both forms to a real registry and pull them back byte-identical."""

import json

import pytest
from regkit import files_in, sha256_file

from loco_lan import snapshot
from loco_lan.oci import Reference, push_artifact, push_image, resolve
from loco_lan.oci import manifest as mt
from loco_lan.oci.manifest import encode
from loco_lan.snapshot import RECORD_SUFFIX

pytestmark = pytest.mark.registry

FORM_A = [
    pytest.param({"compression": "gzip"}, id="oci-gzip"),
    pytest.param({"compression": "zstd"}, id="oci-zstd"),
    pytest.param({"compression": "none"}, id="oci-plain-tar"),
    pytest.param({"docker": True}, id="docker-schema2"),
    pytest.param({"member": "images/win98.qcow2"}, id="custom-path"),
]


@pytest.mark.parametrize("chunk_size", [0, 1 << 20], ids=["monolithic", "chunked"])
def test_artifact_roundtrip(client, ref, qcow2, tmp_path, chunk_size):
    disk = qcow2()
    target = ref()
    source = "https://example.test/src"
    result = snapshot.push(disk, target, client=client, source=source, chunk_size=chunk_size)
    assert result.action == "pushed"
    manifest = resolve(client, target).manifest
    assert manifest.data["artifactType"] == mt.QCOW2
    assert manifest.layers[0]["mediaType"] == mt.QCOW2
    assert manifest.annotations[mt.DISK_SHA256] == sha256_file(disk)
    assert manifest.annotations[mt.SOURCE] == source
    assert mt.CREATED in manifest.annotations

    dest = tmp_path / "out" / "win98.qcow2"
    pulled = snapshot.pull(target, dest, client=client)
    assert pulled.action == "pulled"
    assert dest.read_bytes() == disk.read_bytes()
    assert pulled.digest == result.digest
    assert pulled.sha256 == sha256_file(disk)
    assert pulled.virtual_size == 16 << 20
    assert files_in(dest.parent) == ["win98.qcow2", "win98.qcow2" + RECORD_SUFFIX]


@pytest.mark.parametrize("options", FORM_A)
def test_image_roundtrip(client, ref, qcow2, tmp_path, options):
    disk = qcow2(pattern=0x33)
    target = ref()
    push_image(client, disk, target, **options)
    dest = tmp_path / "win98.qcow2"
    pulled = snapshot.pull(target, dest, client=client, member=options.get("member"))
    assert dest.read_bytes() == disk.read_bytes()
    assert pulled.sha256 == sha256_file(disk)


def test_pull_is_idempotent_and_pins_by_digest(client, ref, qcow2, tmp_path):
    disk = qcow2()
    target = ref()
    digest = push_artifact(client, disk, target, sha256_file(disk))
    dest = tmp_path / "win98.qcow2"
    assert snapshot.pull(target, dest, client=client).action == "pulled"
    first_mtime = dest.stat().st_mtime_ns
    assert snapshot.pull(target, dest, client=client).action == "current"
    pinned = snapshot.pull(target.with_digest(digest), dest, client=client)
    assert (pinned.action, pinned.digest) == ("current", digest)
    assert dest.stat().st_mtime_ns == first_mtime
    assert snapshot.pull(target, dest, client=client, force=True).action == "pulled"

    # the tag moves: the next pull fetches the new image
    newer = qcow2("newer.qcow2", pattern=0x77)
    push_artifact(client, newer, target, sha256_file(newer))
    assert snapshot.pull(target, dest, client=client, check_mode=True).action == "pulled"
    assert dest.read_bytes() == disk.read_bytes()  # check mode touched nothing
    assert snapshot.pull(target, dest, client=client).action == "pulled"
    assert dest.read_bytes() == newer.read_bytes()


def test_changed_file_is_pulled_again(client, ref, qcow2, tmp_path):
    disk = qcow2()
    target = ref()
    push_artifact(client, disk, target, sha256_file(disk))
    dest = tmp_path / "win98.qcow2"
    snapshot.pull(target, dest, client=client)
    with dest.open("ab") as handle:
        handle.write(b"local change")
    assert snapshot.pull(target, dest, client=client).action == "pulled"
    assert dest.read_bytes() == disk.read_bytes()


def test_push_is_idempotent(client, ref, qcow2):
    disk = qcow2()
    target = ref()
    assert snapshot.push(disk, target, client=client, check_mode=True).action == "pushed"
    assert snapshot.push(disk, target, client=client).action == "pushed"
    again = snapshot.push(disk, target, client=client)
    assert again.action == "current"
    assert again.digest == resolve(client, target).digest


def test_index_selects_linux_amd64(client, ref, qcow2, tmp_path):
    amd64, arm64 = qcow2("amd64.qcow2", pattern=0x11), qcow2("arm64.qcow2", pattern=0x22)
    target = ref("multi")
    entries = []
    for disk, arch in ((arm64, "arm64"), (amd64, "amd64")):
        digest = push_image(client, disk, Reference(target.registry, target.repository, arch))
        raw = client.get_manifest(target, digest).raw
        entries.append({"mediaType": mt.OCI_MANIFEST, "digest": digest, "size": len(raw),
                        "platform": {"os": "linux", "architecture": arch}})
    entries.append({"mediaType": mt.OCI_MANIFEST, "digest": entries[0]["digest"], "size": entries[0]["size"],
                    "platform": {"os": "unknown", "architecture": "unknown"}})  # an attestation
    index = encode({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries})
    index_digest = client.put_manifest(target, index, mt.OCI_INDEX)
    dest = tmp_path / "win98.qcow2"
    pulled = snapshot.pull(target, dest, client=client)
    assert dest.read_bytes() == amd64.read_bytes()
    assert pulled.digest == index_digest  # the record names what the tag points at
    assert json.loads((tmp_path / ("win98.qcow2" + RECORD_SUFFIX)).read_text())["digest"] == index_digest
