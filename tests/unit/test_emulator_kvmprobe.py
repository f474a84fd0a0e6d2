"""The KVM probe's bytes are its assembly source's."""

import subprocess
from pathlib import Path

from loco_lan.emulator import runner

SOURCE = Path(runner.__file__).with_name("kvmprobe.S")


def test_the_probe_sector_is_kvmprobe_s_assembled(tmp_path):
    subprocess.run(["as", "--32", "-o", tmp_path / "p.o", SOURCE], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", tmp_path / "p.o", tmp_path / "p.bin"], check=True)
    assert (tmp_path / "p.bin").read_bytes() == runner.KVM_PROBE_SECTOR
