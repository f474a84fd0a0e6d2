import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "loco-lan"


@pytest.fixture(scope="session")
def chart() -> Path:
    return CHART


@pytest.fixture(scope="session")
def small_qcow2(tmp_path_factory) -> Path:
    """A real qcow2 of a few MB: 64 MiB virtual with 4 MiB of patterned data written by qemu-io."""
    path = tmp_path_factory.mktemp("disk") / "win98.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 2M", "-c", "write -P 0xa5 8M 2M",
                    str(path)], check=True, capture_output=True)
    return path
