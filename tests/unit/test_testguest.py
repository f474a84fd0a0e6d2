"""The test guest's pure parts: its initramfs archive and where it sits on the LAN."""

import gzip

import pytest

from loco_lan import testguest
from loco_lan.emulator import config as emulator_config
from loco_lan.emulator.qemu import build_command
from loco_lan.errors import LocoError


def read_newc(archive: bytes) -> dict[str, tuple[int, bytes]]:
    """name -> (mode, data), checking the 4-byte alignment the kernel insists on."""
    entries, offset = {}, 0
    while True:
        assert offset % 4 == 0 and archive[offset:offset + 6] == b"070701"
        fields = [int(archive[offset + 6 + 8 * i: offset + 14 + 8 * i], 16) for i in range(13)]
        mode, size, name_size = fields[1], fields[6], fields[11]
        name = archive[offset + 110: offset + 110 + name_size - 1].decode()
        data_at = offset + 110 + name_size
        data_at += -data_at % 4
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, archive[data_at:data_at + size])
        offset = data_at + size + (-(data_at + size) % 4)


def test_initramfs_holds_every_file_under_its_directories(tmp_path):
    files = {}
    for name, data in {"init": b"#!/bin/busybox sh\n", "bin/busybox": b"x" * 5, "lib/modules/0-a.ko": b"abc"}.items():
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(data)
        files[name] = path
    (tmp_path / "init").chmod(0o755)
    files["init"] = tmp_path / "init"
    entries = read_newc(gzip.decompress(testguest.initramfs(files)))
    assert entries["init"] == (0o100755, b"#!/bin/busybox sh\n")
    assert entries["lib/modules/0-a.ko"][1] == b"abc"
    for directory in ("bin", "lib", "lib/modules", "dev", "proc", "sys", "tmp"):
        assert entries[directory][0] == 0o40755  # the kernel makes no missing parent itself
    assert entries["dev/console"][0] == 0o20600
    assert testguest.initramfs(files) == testguest.initramfs(files)  # same files, same bytes


def test_instance_addresses_follow_the_ordinal():
    assert testguest.address(0) == "192.168.10.10"
    assert testguest.address(3) == "192.168.10.13"


def test_guest_channel_is_com1_on_loopback():
    config = emulator_config.from_env({"NETWORK_MODE": "none", "LOCO_GUEST_CHANNEL": "127.0.0.1:4600"})
    command = build_command(config, config.disk, "tcg")
    assert command[command.index("-serial") + 1] == "tcp:127.0.0.1:4600,server=on,wait=off,nodelay=on"
    off = emulator_config.from_env({"NETWORK_MODE": "none", "LOCO_GUEST_CHANNEL": "none"})
    assert build_command(off, off.disk, "tcg")[command.index("-serial") + 1] == "null"


@pytest.mark.parametrize("value", ["4555", "host:", "host:99999", ":80"])
def test_a_bad_guest_channel_is_named(value):
    with pytest.raises(LocoError, match="LOCO_GUEST_CHANNEL"):
        emulator_config.from_env({"NETWORK_MODE": "none", "LOCO_GUEST_CHANNEL": value})
