"""Finding the qcow2 in a snapshot's layers (both forms), with layers served from memory."""

import gzip
import hashlib
import io

import pytest
import zstandard
from regkit import tar_bytes

from loco_lan.oci import BadImage, RemoteDisk, extract
from loco_lan.oci import manifest as mt
from loco_lan.oci.manifest import Manifest, encode, sha256_digest
from loco_lan.oci.reference import Reference

DISK = b"QFI\xfb" + bytes(range(256)) * 64
OTHER = b"QFI\xfb" + b"other disk" * 100


class Blob(io.BytesIO):
    def __init__(self, data: bytes, digest: str):
        super().__init__(data)
        self.digest = digest


class Registry:
    def __init__(self, blobs: dict[str, bytes]):
        self.blobs = blobs
        self.opened: list[str] = []

    def open_blob(self, ref, desc, progress=None):
        self.opened.append(desc["digest"])
        return Blob(self.blobs[desc["digest"]], desc["digest"])


def tar(members: dict[str, bytes], compress=None) -> bytes:
    archive = tar_bytes(members)
    return compress(archive) if compress else archive


def image(*layers: tuple[bytes, str]) -> tuple[Registry, RemoteDisk]:
    descs = [
        {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data)}
        for data, media_type in layers
    ]
    raw = encode({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "layers": descs})
    disk = RemoteDisk(
        Reference.parse("127.0.0.1:1/snap:x"), sha256_digest(raw), Manifest.parse(raw, sha256_digest(raw))
    )
    return Registry({sha256_digest(data): data for data, _ in layers}), disk


def pull(registry, disk, member=None):
    out = io.BytesIO()
    got = extract(registry, disk, out, member=member)
    return out.getvalue(), got


@pytest.mark.parametrize(
    ("compress", "media_type"),
    [
        (None, mt.OCI_LAYER_TAR),
        (gzip.compress, mt.DOCKER_LAYER_GZIP),
        (zstandard.ZstdCompressor().compress, mt.OCI_LAYER_ZSTD),
        (gzip.compress, mt.OCI_LAYER_TAR),
    ],  # a mislabelled layer: the content decides
    ids=["plain", "gzip", "zstd", "gzip-labelled-plain"],
)
def test_form_a(compress, media_type):
    registry, disk = image((tar({"etc/hosts": b"x", "disk/win98.qcow2": DISK}, compress), media_type))
    data, got = pull(registry, disk)
    assert data == DISK
    assert got.name == "disk/win98.qcow2"
    assert got.sha256 == "sha256:" + hashlib.sha256(DISK).hexdigest()


@pytest.mark.parametrize("media_type", [mt.QCOW2, mt.OCI_LAYER_TAR], ids=["typed", "oras-default-type"])
def test_form_b(media_type):
    registry, disk = image((DISK, media_type))
    data, got = pull(registry, disk)
    assert data == DISK
    assert got.sha256 == got.layer == sha256_digest(DISK)


def test_qcow2_in_a_later_layer():
    registry, disk = image(
        (tar({"bin/sh": b"#!"}), mt.OCI_LAYER_TAR), (tar({"win98.qcow2": DISK}), mt.OCI_LAYER_TAR)
    )
    assert pull(registry, disk)[0] == DISK


def test_none_and_several():
    registry, disk = image((tar({"readme": b"x"}), mt.OCI_LAYER_TAR))
    with pytest.raises(BadImage, match=r"holds no \.qcow2 file"):
        pull(registry, disk)
    registry, disk = image((tar({"a.qcow2": DISK, "b/B.QCOW2": OTHER}), mt.OCI_LAYER_TAR))
    with pytest.raises(BadImage, match=r"several \.qcow2 files \(a\.qcow2, b/B\.QCOW2\)"):
        pull(registry, disk)


def test_member_selects_and_stops_early():
    registry, disk = image(
        (tar({"a.qcow2": DISK, "b.qcow2": OTHER}), mt.OCI_LAYER_TAR),
        (tar({"c.qcow2": DISK}), mt.OCI_LAYER_TAR),
    )
    data, got = pull(registry, disk, member="/b.qcow2")
    assert (data, got.name) == (OTHER, "b.qcow2")
    assert len(registry.opened) == 1  # found in the first layer: the second is never downloaded
    with pytest.raises(BadImage, match="holds no d.qcow2"):
        pull(registry, disk, member="d.qcow2")


def test_garbage_layer():
    registry, disk = image((b"\x00garbage" * 200, mt.OCI_LAYER_GZIP))
    with pytest.raises(BadImage, match="neither a qcow2 nor a readable tar archive"):
        pull(registry, disk)
