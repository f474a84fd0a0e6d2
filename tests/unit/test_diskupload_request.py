"""The upload's pure parts: digests as given, PVC sizes."""

from pathlib import Path

import pytest

from loco_lan.diskupload import HASH_FILE, MIB, UploadRequest, required_bytes
from loco_lan.errors import LocoError
from loco_lan.kube import parse_quantity

HEX = "ab" * 32


@pytest.mark.parametrize("given", [HEX, f"sha256:{HEX}", HEX.upper(), f" sha256:{HEX}\n"])
def test_expected_digest_accepts_the_snapshot_form_and_plain_hex(given):
    request = UploadRequest(image=Path("disk.qcow2"), pvc="disk", namespace="loco", expected_sha256=given)
    assert request.expected_sha256 == HEX


@pytest.mark.parametrize("given", ["sha512:" + HEX, HEX[:-1], "z" * 64, "md5:abc"])
def test_expected_digest_that_is_not_sha256_is_refused(given):
    with pytest.raises(LocoError, match="is not a sha256 digest"):
        UploadRequest(image=Path("disk.qcow2"), pvc="disk", namespace="loco", expected_sha256=given)


def test_no_expected_digest_stays_none():
    for given in (None, ""):
        request = UploadRequest(image=Path("disk.qcow2"), pvc="disk", namespace="loco", expected_sha256=given)
        assert not request.expected_sha256


def test_quantities_and_sizes():
    assert parse_quantity("4Gi") == 4 << 30
    assert parse_quantity("500M") == 500 * 10**6
    assert parse_quantity("1536") == 1536
    # 1 GiB image: room for it and its replacement, +10 % headroom, +64 MiB for the filesystem, whole MiB.
    assert required_bytes(1 << 30) == 2215 * MIB  # 2 x 1024 + 102.4 + 64, rounded up


def test_the_volume_file_is_hashed_by_path_argument_never_spliced_into_the_script():
    assert HASH_FILE == {"openssl": 'openssl dgst -sha256 -r "$1"', "sha256sum": 'sha256sum "$1"'}


@pytest.mark.parametrize("name", ["x'; rm -rf /disk; '", "../etc/passwd", "a/b.qcow2", ".hidden", "", "a b",
                                  "$(reboot)", "x" * 129])
def test_a_file_name_that_is_not_a_plain_name_is_refused(name):
    with pytest.raises(LocoError, match="is not a plain file name"):
        UploadRequest(image=Path("disk.qcow2"), pvc="disk", namespace="loco", file_name=name)


@pytest.mark.parametrize("modes", [("ReadOnlyMany",), ()])
def test_access_modes_that_leave_the_claim_read_only_are_refused(modes):
    with pytest.raises(LocoError, match="leave the claim read-only"):
        UploadRequest(image=Path("disk.qcow2"), pvc="disk", namespace="loco", access_modes=modes)
    UploadRequest(image=Path("disk.qcow2"), pvc="disk", namespace="loco", access_modes=("ReadWriteMany",))
