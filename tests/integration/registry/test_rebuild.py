"""The fallback rebuild with real qemu-img and QEMU: source disks of every supported format,
an installer ISO booted under qemu-system-i386, push of the result, and clear failures."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from regkit import fast_client, files_in, make_qcow2, poweroff_iso, sha256_file

from loco_lan import image_build, snapshot
from loco_lan.errors import LocoError

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]


def same_guest_content(a: Path, b: Path) -> bool:
    return subprocess.run(["qemu-img", "compare", "-q", str(a), str(b)], check=False).returncode == 0


@pytest.mark.parametrize(("suffix", "fmt"), [(".vhd", "vpc"), (".vhdx", "vhdx"), (".vmdk", "vmdk"),
                                             (".img", "raw"), (".qcow2", "qcow2")])
def test_rebuild_from_source_disk(tmp_path, suffix, fmt):
    original = make_qcow2(tmp_path / "original.qcow2", mib=3)
    source = tmp_path / f"win98{suffix}"
    subprocess.run(["qemu-img", "convert", "-O", fmt, str(original), str(source)], check=True)
    dest = tmp_path / "out" / "win98.qcow2"
    built = image_build.rebuild(dest, source=source)
    assert same_guest_content(original, dest)
    assert built.sha256 == sha256_file(dest)
    assert built.virtual_size >= 16 << 20  # VHD rounds up to its CHS geometry
    assert (dest.parent / "win98.qcow2.sha256").read_text() == f"{built.sha256[7:]}  win98.qcow2\n"
    assert files_in(dest.parent) == ["win98.qcow2", "win98.qcow2.sha256"]
    compressed = subprocess.run(["qemu-img", "check", str(dest)], capture_output=True, text=True)
    assert "compressed clusters" in compressed.stdout


def test_rebuild_from_iso_boots_the_installer(tmp_path):
    iso = poweroff_iso(tmp_path / "installer.iso")
    dest = tmp_path / "out" / "win98.qcow2"
    built = image_build.rebuild(dest, iso=iso, disk_size="64M", vnc="127.0.0.1:0", timeout=120)
    assert built.virtual_size == 64 << 20
    assert files_in(dest.parent) == ["win98.qcow2", "win98.qcow2.sha256"]


def test_installer_that_never_finishes(tmp_path):
    hanging = tmp_path / "blank.iso"
    hanging.write_bytes(b"\0" * 65536)  # not bootable: the PC sits at "no bootable device"
    dest = tmp_path / "out" / "win98.qcow2"
    with pytest.raises(LocoError, match="did not power off within 3 s; nothing written"):
        image_build.rebuild(dest, iso=hanging, disk_size="16M", vnc="127.0.0.1:0", timeout=3)
    assert files_in(dest.parent) == []


@pytest.mark.registry
def test_rebuild_and_push(tmp_path, ref):
    source = make_qcow2(tmp_path / "src.qcow2")
    target = ref()
    dest = tmp_path / "win98.qcow2"
    built = image_build.rebuild(dest, source=source, push_to=str(target), client=fast_client())
    assert built.pushed_digest
    pulled = snapshot.pull(target, tmp_path / "pulled.qcow2", client=fast_client())
    assert pulled.sha256 == built.sha256


def test_missing_tools_are_named(tmp_path):
    source = make_qcow2(tmp_path / "src.qcow2")
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # python and loco, no QEMU
    for args, tool in (
        (["--from-disk", str(source)], "qemu-img"),
        (["--from-iso", str(poweroff_iso(tmp_path / "i.iso"))], "qemu-system-i386"),
    ):
        if tool == "qemu-system-i386":  # qemu-img present, the emulator not
            (tmp_path / "bin").mkdir()
            (tmp_path / "bin" / "qemu-img").symlink_to("/usr/bin/qemu-img")
            env["PATH"] += os.pathsep + str(tmp_path / "bin")
        done = subprocess.run(
            [sys.executable, "-m", "loco_lan.image_build", str(tmp_path / "out" / "w.qcow2"), *args],
            env=env, capture_output=True, text=True,
        )
        assert done.returncode == 1
        assert done.stderr.strip().splitlines()[-1].startswith(f"loco: error: {tool} not found on PATH")
        assert not (tmp_path / "out").exists() or files_in(tmp_path / "out") == []


def test_shell_front_door(tmp_path):
    source = make_qcow2(tmp_path / "src.qcow2")
    raw = tmp_path / "win98.img"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(source), str(raw)], check=True)
    front_door = REPO / "scripts" / "create_win98_image.sh"
    done = subprocess.run(
        [str(front_door), str(tmp_path / "win98.qcow2"), "--from-disk", str(raw)],
        env={**os.environ, "LOCO_PYTHON": sys.executable}, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"built: {tmp_path / 'win98.qcow2'} (sha256:")
    assert same_guest_content(source, tmp_path / "win98.qcow2")
