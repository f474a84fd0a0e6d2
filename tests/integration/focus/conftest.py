"""Real focus services on loopback: ``loco focus serve`` started as a process per test."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples" / "focus"
TOKEN = "integration-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FocusProcess:
    """One ``loco focus serve`` process; ``stop`` sends SIGTERM, ``start`` brings it back on the same port."""

    def __init__(self, workdir: Path, args: list[str]):
        self.workdir = workdir
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = workdir / "focus.log"
        self.token = TOKEN
        self.auth = {"Authorization": f"Bearer {TOKEN}"}

    def start(self, timeout: float = 20) -> "FocusProcess":
        command = [
            sys.executable,
            "-m",
            "loco_lan.cli",
            "focus",
            "serve",
            "--port",
            str(self.port),
            *self.args,
        ]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"focus service exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"focus service did not come up:\n{self.log.read_text()}")

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def get(self) -> dict:
        with urllib.request.urlopen(self.url + "/api/active", timeout=5) as response:
            return json.load(response)

    def post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)


@pytest.fixture
def focus_dir(tmp_path) -> Path:
    """instances.json + hotkeys.json from examples/focus, a token file, and an empty state dir."""
    for name in ("instances.json", "hotkeys.json"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    (tmp_path / "token").write_text(TOKEN + "\n")
    os.chmod(tmp_path / "token", 0o600)
    (tmp_path / "state").mkdir()
    return tmp_path


@pytest.fixture
def focus_service(focus_dir):
    """Factory: ``focus_service("--mode", "multi", ...)`` starts a service on the files in ``focus_dir``."""
    started: list[FocusProcess] = []

    def start(*extra: str) -> FocusProcess:
        args = [
            "--instances",
            str(focus_dir / "instances.json"),
            "--state-dir",
            str(focus_dir / "state"),
            "--token-file",
            str(focus_dir / "token"),
            *extra,
        ]
        service = FocusProcess(focus_dir, args)
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop()
