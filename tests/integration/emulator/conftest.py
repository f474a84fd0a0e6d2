"""Fixtures for the emulator, RFB and boot-check tests: boot disks the tests
build, the real entrypoint running real QEMU (TCG, 16 MiB, loopback only), and
a minimal RFB server on loopback serving pictures."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
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


class Emulator:
    """``python -m loco_lan.emulator`` in its own session, with its ports and paths."""

    def __init__(self, tmp: Path, disk: Path | None, env: dict[str, str]):
        self.vnc_port = free_port()
        while self.vnc_port <= 5900:
            self.vnc_port = free_port()
        self.health_port = free_port()
        self.qmp = tmp / f"qmp-{self.vnc_port}.sock"
        self.log = tmp / f"emulator-{self.vnc_port}.log"
        self.env = {
            "PATH": os.environ["PATH"],
            "LOCO_ACCEL": "tcg",
            "QEMU_MEMORY": "16",
            "NETWORK_MODE": "user",
            "LOCO_VNC_LISTEN": "127.0.0.1",
            "LOCO_VNC_DISPLAY": str(self.vnc_port - 5900),
            "LOCO_HEALTH_LISTEN": "127.0.0.1",
            "LOCO_HEALTH_PORT": str(self.health_port),
            "LOCO_QMP_SOCKET": str(self.qmp),
            "LOCO_STOP_TIMEOUT": "10",
            **({"LOCO_DISK": str(disk)} if disk else {}),
            **env,
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> "Emulator":
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "loco_lan.emulator"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def health(self, path: str = "/health") -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}{path}", timeout=3) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def wait_healthy(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"emulator exited {self.process.returncode}: {self.log.read_text()}")
            try:
                status, body = self.health()
                if status == 200:
                    return body
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"emulator not healthy within {timeout}s: {self.log.read_text()}")

    def hmp(self, command: str) -> str:
        """A human monitor command through QMP (QEMU's own tooling, e.g. qemu-io)."""
        from loco_lan import qmp

        return asyncio.run(qmp.run(str(self.qmp), "human-monitor-command", {"command-line": command}))

    def session_alive(self) -> bool:
        """Whether any process (QEMU) still runs in the session the entrypoint led."""
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[3]) == self.process.pid and fields[0] != "Z":
                    return True
        return False

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM the entrypoint (it stops QEMU); kill the whole session if that fails."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        if self.process.poll() is None or self.session_alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        return self.process.returncode


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
