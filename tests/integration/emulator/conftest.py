"""Fixtures for the emulator, RFB and boot-check tests: boot disks the tests
build, the real entrypoint running real QEMU (TCG, 16 MiB, loopback only), and
a minimal RFB server on loopback serving pictures."""

from pathlib import Path

import numpy as np
import pytest
from guestproc import Emulator
from loopthread import LoopThread
from rfbserver import ScreenServer

from loco_lan.demodisk import SCREENS, make_disk, paint_sector, pattern_sector
from loco_lan.netutil import free_port


@pytest.fixture(scope="session")
def boot_disks(tmp_path_factory) -> dict[str, Path]:
    """qcow2 images whose boot sector paints: desktop, dialog, no-shell, black; pattern (mode 13h);
    key-then-desktop (text mode until a key is pressed, then the desktop)."""
    root = tmp_path_factory.mktemp("bootdisks")
    disks = {name: make_disk(root / f"{name}.qcow2", paint_sector(*spec)) for name, spec in SCREENS.items()}
    disks["pattern"] = make_disk(root / "pattern.qcow2", pattern_sector())
    disks["key-then-desktop"] = make_disk(
        root / "key.qcow2", paint_sector(*SCREENS["desktop"], wait_key=True)
    )
    return disks


@pytest.fixture(name="free_port")
def free_port_fixture():
    return free_port


@pytest.fixture
def emulator(tmp_path):
    """Factory: ``emulator(disk, **env)`` starts one; every one is stopped at teardown."""
    started: list[Emulator] = []

    def start(disk: Path | None, **env: str) -> Emulator:
        instance = Emulator(tmp_path, disk, env).start()
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()


class ServerThread(LoopThread):
    """A ScreenServer on its own event loop thread, so a client in the test's
    loop, or a ``loco`` subprocess, can talk to it."""

    def __init__(self, image: np.ndarray, **options):
        super().__init__()
        self.server = ScreenServer(image, **options)
        self.port = self.call(self.server.start())

    def stop(self):
        super().stop(self.server.stop())


@pytest.fixture
def screen_server():
    """Factory: ``screen_server(image, password=..., version=3|8, use_zrle=...)``."""
    servers: list[ServerThread] = []

    def start(image: np.ndarray, **options) -> ServerThread:
        servers.append(ServerThread(image, **options))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
