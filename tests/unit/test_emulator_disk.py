"""Disk checks before QEMU starts: each bad path is one line naming the variable and the path."""

import pytest

from loco_lan.emulator.config import from_env
from loco_lan.emulator.disk import check_qcow2, prepare_disk
from loco_lan.errors import LocoError


def test_missing_file(tmp_path):
    with pytest.raises(LocoError, match=f"^LOCO_DISK={tmp_path}/nope.qcow2: no such file$"):
        check_qcow2(tmp_path / "nope.qcow2", "LOCO_DISK")


def test_directory(tmp_path):
    with pytest.raises(LocoError, match=f"^DISK={tmp_path}: is a directory"):
        check_qcow2(tmp_path, "DISK")


def test_not_qcow2(tmp_path):
    raw = tmp_path / "disk.img"
    raw.write_bytes(b"\0" * 512)
    with pytest.raises(LocoError, match=f"^LOCO_DISK={raw}: not a qcow2 image$"):
        check_qcow2(raw, "LOCO_DISK")


def test_default_path_says_the_variables_are_unset(tmp_path):
    with pytest.raises(LocoError, match="default disk .* \\(LOCO_DISK and DISK unset\\): no such file"):
        check_qcow2(tmp_path / "win98.qcow2", "default")


def test_writable_qcow2_is_booted_in_place(tmp_path):
    disk = tmp_path / "win98.qcow2"
    disk.write_bytes(b"QFI\xfb" + bytes(508))
    assert prepare_disk(from_env({"LOCO_DISK": str(disk)})) == (disk, False)


def test_unreadable(tmp_path, monkeypatch):
    """Tests run as root, who reads everything: the permission error is simulated."""
    disk = tmp_path / "win98.qcow2"
    disk.write_bytes(b"QFI\xfb")

    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(LocoError, match=f"^DISK={disk}: cannot read it \\(Permission denied\\)$"):
        check_qcow2(disk, "DISK")
