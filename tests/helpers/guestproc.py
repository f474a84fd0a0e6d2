"""The emulator entrypoint as tests run it: ``python -m loco_lan.emulator`` in its own session,
with its ports and paths on loopback (shared by the emulator, streaming and web tests)."""

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

from loco_lan.netutil import free_port


class Emulator:
    """``python -m loco_lan.emulator`` in its own session, with its ports and paths."""

    def __init__(self, tmp: Path, disk: Path | None, env: dict[str, str]):
        self.vnc_port = free_port()
        while self.vnc_port <= 5900:
            self.vnc_port = free_port()
        self.health_port = free_port()
        self.channel_port = free_port()  # COM1's guest channel: the default port is one per pod, not per machine
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
            "LOCO_GUEST_CHANNEL": f"127.0.0.1:{self.channel_port}",
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
