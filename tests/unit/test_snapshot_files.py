"""Pure parts of snapshot and image_build: staging, records, summaries, the installer's QEMU."""

import json

import pytest

from loco_lan import image_build, snapshot
from loco_lan.snapshot import Result, staged


def test_staged_renames_on_success(tmp_path):
    dest = tmp_path / "sub" / "disk.qcow2"
    with staged(dest) as tmp:
        assert tmp.parent == dest.parent and tmp != dest
        tmp.write_bytes(b"new")
    assert dest.read_bytes() == b"new"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["disk.qcow2"]


def test_staged_keeps_the_old_file_on_failure(tmp_path):
    dest = tmp_path / "disk.qcow2"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError), staged(dest) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["disk.qcow2"]


def test_current_needs_matching_digest_member_size_and_mtime(tmp_path):
    image = tmp_path / "disk.qcow2"
    image.write_bytes(b"disk")
    stat = image.stat()
    record = {"digest": "sha256:a", "member": None, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    snapshot.record_path(image).write_text(json.dumps(record))
    assert snapshot.read_record(image) == record
    assert snapshot._is_current(image, record, "sha256:a", None)
    assert not snapshot._is_current(image, record, "sha256:b", None)
    assert not snapshot._is_current(image, record, "sha256:a", "other.qcow2")
    image.write_bytes(b"changed")
    assert not snapshot._is_current(image, record, "sha256:a", None)


def test_unreadable_record_means_no_record(tmp_path):
    image = tmp_path / "disk.qcow2"
    snapshot.record_path(image).write_text("{not json")
    assert snapshot.read_record(image) == {}


def test_summaries():
    pulled = Result("pulled", "/img/w.qcow2", "ghcr.io/a/b:c", "sha256:d", "sha256:e", 2048, 2 << 30)
    assert (
        pulled.summary() == "pulled: ghcr.io/a/b:c -> /img/w.qcow2 (sha256:d, size 2.0 KiB, virtual 2.0 GiB)"
    )
    assert Result("current", "/w", "r").summary() == "current: /w matches r (digest not known yet)"
    assert Result("pushed", "/w", "r", "sha256:d").changed


def test_installer_hardware_matches_the_snapshot(monkeypatch):
    monkeypatch.setattr(image_build, "qemu_tool", lambda name: f"/usr/bin/{name}")
    command = image_build.qemu_install_command(
        image_build.Path("/isos/win,98.iso"),
        image_build.Path("/work/disk.qcow2"),
        memory=512,
        vga="vmware",
        vnc="127.0.0.1:3",
        accel="tcg",
    )
    text = " ".join(command)
    assert command[0] == "/usr/bin/qemu-system-i386"
    for expected in (
        "-machine pc",
        "-cpu pentium2",
        "-m 512",
        "-vga vmware",
        "ne2k_pci,netdev=lan",
        "sb16,audiodev=snd",
        "if=ide,index=0,media=disk",
        "file=/isos/win,,98.iso",
        "-boot order=c,once=d",
        "-vnc 127.0.0.1:3",
    ):
        assert expected in text


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.VHD", "vpc"), ("a.vhdx", "vhdx"), ("a.vmdk", "vmdk"), ("a.img", "raw"), ("a.qcow2", "qcow2")],
)
def test_source_format_by_suffix(name, fmt):
    assert image_build.source_format(image_build.Path(name)) == fmt
