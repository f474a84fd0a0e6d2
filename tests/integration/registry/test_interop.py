"""Interoperability with clients nobody here wrote: skopeo (Debian) and oras (PyPI).

Ours -> theirs: what our client pushes, they pull intact.  Theirs -> ours: what they
push (oras) or rewrite into another manifest format (skopeo), our client pulls intact.
"""

import io
import json
import subprocess
import tarfile

import oras.client
import pytest
from regkit import sha256_file

from loco_lan import snapshot
from loco_lan.oci import manifest as mt
from loco_lan.oci import push_artifact, push_image, resolve

pytestmark = pytest.mark.registry


def skopeo(*args: str) -> None:
    subprocess.run(
        ["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", *args],
        check=True, capture_output=True, timeout=120,
    )


def layer_file(directory, digest: str):
    """A blob in skopeo's ``dir:`` layout (named by its hex digest)."""
    return directory / digest.split(":", 1)[1]


def test_skopeo_pulls_our_artifact(client, ref, qcow2, tmp_path):
    disk = qcow2()
    target = ref()
    push_artifact(client, disk, target, sha256_file(disk))
    skopeo(f"docker://{target}", f"dir:{tmp_path / 'copy'}")
    copied = json.loads((tmp_path / "copy" / "manifest.json").read_text())
    assert copied["layers"][0]["mediaType"] == mt.QCOW2
    assert layer_file(tmp_path / "copy", copied["layers"][0]["digest"]).read_bytes() == disk.read_bytes()


def test_skopeo_pulls_our_image(client, ref, qcow2, tmp_path):
    disk = qcow2()
    target = ref()
    push_image(client, disk, target, docker=True)
    skopeo(f"docker://{target}", f"dir:{tmp_path / 'copy'}")
    copied = json.loads((tmp_path / "copy" / "manifest.json").read_text())
    blob = layer_file(tmp_path / "copy", copied["layers"][0]["digest"])
    assert sha256_file(blob) == copied["layers"][0]["digest"]
    with tarfile.open(fileobj=io.BytesIO(blob.read_bytes())) as tar:
        assert tar.extractfile("disk/disk.qcow2").read() == disk.read_bytes()


def test_oras_pulls_our_artifact(client, registry, ref, qcow2, tmp_path):
    disk = qcow2()
    target = ref()
    push_artifact(client, disk, target, sha256_file(disk))
    files = oras.client.OrasClient(hostname=registry.host, insecure=True).pull(
        target=str(target), outdir=str(tmp_path / "oras")
    )
    assert [p.rsplit("/", 1)[1] for p in files] == ["disk.qcow2"]  # named by our title annotation
    assert (tmp_path / "oras" / "disk.qcow2").read_bytes() == disk.read_bytes()


@pytest.mark.parametrize("media_type", [mt.QCOW2, None], ids=["qcow2-type", "oras-default-type"])
def test_we_pull_what_oras_pushed(registry, ref, qcow2, tmp_path, client, media_type, monkeypatch):
    disk = qcow2(pattern=0x21)
    monkeypatch.chdir(disk.parent)
    target = ref()
    oras.client.OrasClient(hostname=registry.host, insecure=True).push(
        target=str(target), files=[f"{disk.name}:{media_type}" if media_type else disk.name], quiet=True
    )
    dest = tmp_path / "win98.qcow2"
    snapshot.pull(target, dest, client=client)
    assert dest.read_bytes() == disk.read_bytes()


DOCKER_LAYERS = {"application/vnd.docker.image.rootfs.diff.tar", mt.DOCKER_LAYER_GZIP}


@pytest.mark.parametrize(
    ("ours", "rewrite", "layer_types"),
    [
        # skopeo may gzip the plain layer or reuse it, depending on its blob cache: either is fine
        pytest.param({"compression": "none"}, "v2s2", DOCKER_LAYERS, id="plain-to-v2s2"),
        pytest.param({"compression": "gzip"}, "v2s2", {mt.DOCKER_LAYER_GZIP}, id="gzip-to-v2s2"),
        pytest.param({"docker": True}, "oci", {mt.OCI_LAYER_GZIP}, id="v2s2-to-oci"),
    ],
)
def test_we_pull_what_skopeo_pushed(client, ref, qcow2, tmp_path, ours, rewrite, layer_types):
    disk = qcow2(pattern=0x42)
    source, copy = ref("ours"), ref("theirs")
    push_image(client, disk, source, **ours)
    skopeo("--format", rewrite, f"docker://{source}", f"docker://{copy}")
    rewritten = resolve(client, copy).manifest
    assert rewritten.digest != resolve(client, source).digest  # skopeo wrote a manifest of its own
    assert rewritten.layers[0]["mediaType"] in layer_types
    dest = tmp_path / "win98.qcow2"
    snapshot.pull(copy, dest, client=client)
    assert dest.read_bytes() == disk.read_bytes()
