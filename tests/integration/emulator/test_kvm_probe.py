"""The KVM probe's sector passes where the guest really runs (TCG here), so a failure under KVM
says KVM, not the probe."""

import subprocess
import tempfile

import pytest

from loco_lan.emulator import runner

pytestmark = pytest.mark.qemu


def test_the_probe_sector_exits_99_under_tcg():
    with tempfile.NamedTemporaryFile(suffix=".raw") as sector:
        sector.write(runner.KVM_PROBE_SECTOR)
        sector.flush()
        result = subprocess.run(runner.probe_command("qemu-system-i386", "tcg", sector.name),
                                capture_output=True, timeout=60)
    assert result.returncode == 99, result.stderr.decode()
