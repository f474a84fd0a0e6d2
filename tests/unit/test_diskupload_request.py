"""The upload's pure parts: digests as given, PVC sizes."""

from pathlib import Path

import pytest

from loco_lan.diskupload import HASH_FILE, MIB, UploadRequest, append_script, parse_quantity, required_bytes
from loco_lan.errors import LocoError

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
    # 1 GiB image: +10 % headroom, +64 MiB for the filesystem, rounded up to whole MiB.
    assert required_bytes(1 << 30) == (1127 + 64) * MIB


def test_the_stream_is_hashed_as_it_lands_only_with_a_slow_hasher_from_byte_zero():
    assert append_script("/disk/.p", 0, "sha256sum") == ("tee -a '/disk/.p' | sha256sum", True)
    assert append_script("/disk/.p", 0, "openssl") == ("cat >> '/disk/.p'", False)
    assert append_script("/disk/.p", 4096, "sha256sum") == ("cat >> '/disk/.p'", False)
    assert set(HASH_FILE) == {"openssl", "sha256sum"}
