"""Bad inputs against a real registry: each is one clear error, nothing is left at the
destination, and an image already there stays byte-for-byte what it was."""

import socket
import subprocess

import pytest
from cuttingproxy import CuttingProxy
from regkit import PASSWORD, USER, fast_client, files_in, push_tar_image, sha256_file

from loco_lan import snapshot
from loco_lan.errors import LocoError
from loco_lan.localregistry import blob_path
from loco_lan.oci import (
    AuthFailed,
    BadImage,
    Credentials,
    IntegrityError,
    NotFound,
    Reference,
    Unreachable,
    push_artifact,
    push_image,
    resolve,
)
from loco_lan.snapshot import RECORD_SUFFIX

pytestmark = pytest.mark.registry


@pytest.fixture
def good_image(client, ref, qcow2, tmp_path):
    """A destination already holding a good pulled image."""
    disk = qcow2("good.qcow2", pattern=0x10)
    source = ref("good")
    push_artifact(client, disk, source, sha256_file(disk))
    dest = tmp_path / "dest" / "win98.qcow2"
    snapshot.pull(source, dest, client=client)
    return dest, dest.read_bytes(), (dest.parent / ("win98.qcow2" + RECORD_SUFFIX)).read_bytes()


def assert_untouched(good_image) -> None:
    dest, image, record = good_image
    assert files_in(dest.parent) == ["win98.qcow2", "win98.qcow2" + RECORD_SUFFIX]  # no temp leftovers
    assert dest.read_bytes() == image
    assert (dest.parent / ("win98.qcow2" + RECORD_SUFFIX)).read_bytes() == record


def test_wrong_tag(client, ref, good_image):
    with pytest.raises(NotFound, match=r"tag no-such-tag not found in .*MANIFEST_UNKNOWN"):
        snapshot.pull(ref("no-such-tag"), good_image[0], client=client)
    assert_untouched(good_image)


def test_unreachable_registry(ref, good_image):
    with socket.socket() as probe:  # a free port, then nothing listening on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(Unreachable, match=rf"cannot reach registry 127.0.0.1:{port}: .*refused"):
        snapshot.pull(ref(host=f"127.0.0.1:{port}"), good_image[0], client=fast_client())
    assert_untouched(good_image)


@pytest.mark.parametrize("form", ["artifact", "image-gzip"])
def test_corrupted_blob(client, registry, ref, qcow2, good_image, form):
    disk = qcow2(pattern=0x44)
    target = ref()
    if form == "artifact":
        push_artifact(client, disk, target, sha256_file(disk))
    else:
        push_image(client, disk, target)
    layer = resolve(client, target).manifest.layers[0]["digest"]
    stored = blob_path(registry.storage, layer)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one bit pattern flipped mid-blob
    stored.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=rf"blob {layer} failed verification"):
        snapshot.pull(target, good_image[0], client=client)
    assert_untouched(good_image)


@pytest.mark.parametrize("form", ["artifact", "image-zstd"])
def test_cut_connection_resumes(client, registry, ref, qcow2, tmp_path, form):
    disk = qcow2(mib=6, pattern=None)
    target = ref()
    if form == "artifact":
        push_artifact(client, disk, target, sha256_file(disk))
    else:
        push_image(client, disk, target, compression="zstd")
    size = resolve(client, target).download_size
    with CuttingProxy(registry.host, cut_after=size // 2) as proxy:
        via_proxy = Reference(proxy.host, target.repository, target.tag)
        dest = tmp_path / "win98.qcow2"
        pulled = snapshot.pull(via_proxy, dest, client=client)
        assert proxy.cuts == 1
        # resumed with Range: what came back in total is the blob plus small change (headers, manifests)
        assert proxy.downstream < size + 64 * 1024
    assert pulled.action == "pulled"
    assert dest.read_bytes() == disk.read_bytes()


def test_image_without_qcow2(client, ref, good_image):
    target = ref()
    push_tar_image(client, target, {"readme.txt": b"no disk here", "disk.img": b"\0" * 4096})
    with pytest.raises(BadImage, match=r"holds no \.qcow2 file"):
        snapshot.pull(target, good_image[0], client=client)
    assert_untouched(good_image)


def test_image_with_two_qcow2(client, ref, qcow2, tmp_path, good_image):
    one, two = qcow2("one.qcow2").read_bytes(), qcow2("two.qcow2", pattern=0x20).read_bytes()
    target = ref()
    push_tar_image(client, target, {"a/one.qcow2": one, "b/two.qcow2": two})
    with pytest.raises(BadImage, match=r"several \.qcow2 files \(a/one\.qcow2, b/two\.qcow2\)"):
        snapshot.pull(target, good_image[0], client=client)
    assert_untouched(good_image)
    # naming one picks it
    dest = tmp_path / "picked.qcow2"
    snapshot.pull(target, dest, client=client, member="./b/two.qcow2")
    assert dest.read_bytes() == two
    with pytest.raises(BadImage, match=r"holds no c/three\.qcow2"):
        snapshot.pull(target, tmp_path / "none.qcow2", client=client, member="c/three.qcow2")


def test_layer_that_is_not_a_disk(client, ref, good_image):
    target = ref()
    push_tar_image(client, target, {"disk.qcow2": b"QFI\xfb but not really a qcow2 image"})
    with pytest.raises(LocoError, match="is not a usable qcow2 image"):
        snapshot.pull(target, good_image[0], client=client)
    assert_untouched(good_image)


def test_bad_credentials(auth_registry, qcow2, good_image):
    owner = fast_client(Credentials(USER, PASSWORD))
    disk = qcow2()
    target = Reference.parse(f"{auth_registry.host}/private/win98:base")
    push_artifact(owner, disk, target, sha256_file(disk))
    wrong = fast_client(Credentials(USER, "not the password"))
    with pytest.raises(AuthFailed, match=f"registry {auth_registry.host} refused the credentials"):
        snapshot.pull(target, good_image[0], client=wrong)
    with pytest.raises(AuthFailed, match=f"registry {auth_registry.host} requires credentials"):
        snapshot.pull(target, good_image[0], client=fast_client())
    assert_untouched(good_image)


@pytest.fixture
def tiny_fs(tmp_path):
    """A 1 MiB tmpfs (needs root and mount rights)."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)], capture_output=True, text=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    yield mountpoint
    subprocess.run(["umount", str(mountpoint)], check=True)


@pytest.mark.parametrize("form", ["artifact", "image-gzip"])
def test_disk_full(client, ref, qcow2, tiny_fs, form):
    small = qcow2("small.qcow2", mib=0)  # ~200 KiB: fits
    target = ref("small")
    push_artifact(client, small, target, sha256_file(small))
    dest = tiny_fs / "win98.qcow2"
    snapshot.pull(target, dest, client=client)
    before = dest.read_bytes()

    big = qcow2("big.qcow2", mib=3)  # ~3 MiB: does not
    target = ref("big")
    if form == "artifact":
        push_artifact(client, big, target, sha256_file(big))
        expected = r"no space for .* needs 3\.\d MiB"  # known size: refused before downloading
    else:
        push_image(client, big, target)  # compressed: found out while writing
        expected = r"no space left on the device holding .* while pulling"
    with pytest.raises(LocoError, match=expected):
        snapshot.pull(target, dest, client=client)
    assert files_in(tiny_fs) == ["win98.qcow2", "win98.qcow2" + RECORD_SUFFIX]
    assert dest.read_bytes() == before


@pytest.mark.parametrize("chunk_size", [0, 1 << 20], ids=["monolithic", "chunked"])
def test_cut_upload_recovers(client, registry, ref, qcow2, tmp_path, chunk_size):
    # distribution 2.8 voids an upload session whose PATCH was cut (BLOB_UPLOAD_INVALID), so
    # here both modes recover by starting the upload again; registries that report the bytes
    # they kept (GET on the upload -> Range) let the chunked mode continue where it stopped.
    disk = qcow2(mib=4, pattern=None)
    with CuttingProxy(registry.host, cut_after=disk.stat().st_size // 2, upload=True) as proxy:
        target = ref(host=proxy.host)
        assert snapshot.push(disk, target, client=client, chunk_size=chunk_size).action == "pushed"
        assert proxy.cuts == 1
    dest = tmp_path / "win98.qcow2"
    snapshot.pull(Reference(registry.host, target.repository, target.tag), dest, client=client)
    assert dest.read_bytes() == disk.read_bytes()
