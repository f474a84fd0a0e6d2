"""The players' half as tests run it, all real and on loopback: demo guests under the emulator
entrypoint, the focus service, the streaming gateway, and headless Chromium (Debian's, driven by
Playwright) to look at them. Shared by the gateway, web client and VR tests: one browser and one
set of guests per test module."""

import asyncio
import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from guestproc import Emulator
from PIL import Image

from loco_lan import demoguest, rfb
from loco_lan.netutil import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # WebRTC on this machine's loopback only: loopback candidates on, real addresses, not mDNS names.
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
TOKEN = "player-token-for-tests"


def run_async(coroutine):
    """Run a coroutine to its end from sync test code, even where Playwright's sync API holds this
    thread's event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy (returned), AssertionError naming
    ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s (last: {result!r})")
        time.sleep(interval)


class Service:
    """A ``loco`` subprocess on its own port, restartable on the same port."""

    def __init__(self, name: str, args: list[str], port: int, log: Path):
        self.name, self.args, self.port, self.log = name, args, port, log
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Service":
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "loco_lan.cli", *self.args], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        wait_until(lambda: self.get("/healthz") is not None, 30, f"{self.name} answering /healthz")
        return self

    def get(self, path: str):
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.process.returncode}: {self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as reply:
                body = reply.read()
                return json.loads(body) if reply.headers.get_content_type() == "application/json" else body.decode()
        except (urllib.error.URLError, OSError):
            return None

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    @contextmanager
    def killed(self):
        """Killed for the block, started again (same port) after it, even when the block fails:
        the module's later tests share this service."""
        self.kill()
        try:
            yield
        finally:
            self.start()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class StreamStack:
    """``count`` demo guests, the focus service and the gateway, with config files in ``root``."""

    def __init__(self, root: Path, disk: Path, count: int, web_root: Path, mode: str = "single",
                 gateway_args: tuple[str, ...] = (), ice_servers: tuple[dict, ...] = ()):
        self.root = root
        self.guests = []
        for index in range(count):
            overlays = root / f"overlays-{index}"
            overlays.mkdir(parents=True, exist_ok=True)
            self.guests.append(Emulator(root, disk, {
                "INSTANCE_ID": f"instance-{index}", "NETWORK_MODE": "none", "LOCO_DISK_READONLY": "true",
                "LOCO_OVERLAY_DIR": str(overlays),
            }))
        self.config = root / "config"
        self.config.mkdir(exist_ok=True)
        instances = [{
            "id": f"instance-{i}", "name": f"Loco {i + 1}", "description": f"demo guest {i}",
            "streamUrl": f"/stream/instance-{i}", "vncUrl": f"127.0.0.1:{g.vnc_port}",
            "healthUrl": f"http://127.0.0.1:{g.health_port}", "provisioned": True, "ready": True, "status": "ready",
        } for i, g in enumerate(self.guests)]
        (self.config / "instances.json").write_text(json.dumps(instances))
        (self.config / "webrtc.json").write_text(json.dumps({"iceServers": list(ice_servers)}))
        hotkeys = {"focus": {f"Ctrl+{i + 1}": f"instance-{i}" for i in range(min(count, 9))},
                   "zoom": {"Ctrl=": "zoom-in", "Ctrl-": "zoom-out"}, "switch": {"Tab": "next-instance"}}
        (self.config / "hotkeys.json").write_text(json.dumps(hotkeys))
        token = root / "token"
        token.write_text(TOKEN + "\n")
        self.focus = Service("focus service", [
            "focus", "serve", "--instances", str(self.config / "instances.json"), "--state-dir", str(root / "state"),
            "--port", str(free_port()), "--token-file", str(token), "--mode", mode,
        ], 0, root / "focus.log")
        self.focus.port = int(self.focus.args[self.focus.args.index("--port") + 1])
        port = free_port()
        self.gateway = Service("gateway", [
            "stream", "serve", "--instances", str(self.config / "instances.json"), "--port", str(port),
            "--token-file", str(token), "--focus-url", self.focus.url, "--web-root", str(web_root),
            "--ice-address", "127.0.0.1", *gateway_args,
        ], port, root / "gateway.log")

    def start(self) -> "StreamStack":
        """Start everything and wait until every guest streams; on any failure stop what was started
        (a module whose fixture failed would otherwise leave its guests and services running)."""
        started = []
        try:
            for part in (*self.guests, self.focus, self.gateway):
                part.start()
                started.append(part)
            self.wait_live()
        except BaseException:
            for part in reversed(started):
                part.stop()
            raise
        return self

    def stop(self) -> None:
        self.gateway.stop()
        self.focus.stop()
        for guest in self.guests:
            guest.stop()

    def wait_live(self, timeout: float = 90) -> None:
        """Every guest streamed at its final resolution (the demo boots at 640x480 first)."""
        def live():
            body = self.gateway.get("/api/instances")
            return body and all(
                i["stream"]["state"] == "live" and i["stream"]["width"] == demoguest.MAIN_MODE[0]
                for i in body["instances"]
            )
        wait_until(live, timeout, "every guest live at 1024x768")

    def restart_guest(self, index: int) -> None:
        guest = self.guests[index]
        guest.stop()
        guest.start()
        guest.wait_healthy()

    def metrics(self) -> dict[tuple[str, str], float]:
        """Per guest: (metric, instance) -> value, from the gateway's /metrics."""
        values = {}
        for line in self.gateway.get("/metrics").splitlines():
            match = re.fullmatch(r'(\w+)\{instance="([^"]+)"\} (\S+)', line)
            if match:
                values[match.group(1), match.group(2)] = float(match.group(3))
        return values

    def screen(self, index: int) -> np.ndarray:
        """The guest's screen straight from its VNC server (lossless)."""
        async def grab():
            async with await rfb.RFBClient.connect("127.0.0.1", self.guests[index].vnc_port, timeout=10) as vnc:
                return await vnc.refresh()
        return run_async(grab())

    def press(self, index: int, keysym: int) -> None:
        """A key press and release sent to the guest directly (not through a browser)."""
        async def press():
            async with await rfb.RFBClient.connect("127.0.0.1", self.guests[index].vnc_port, timeout=10) as vnc:
                await vnc.press(keysym)
        run_async(press())


def png_array(data_url: str) -> np.ndarray:
    """An RGB array from a ``data:image/png;base64,...`` URL (a canvas's toDataURL); a canvas with
    nothing in it (a video with no picture yet) gives ``data:,``, an empty array."""
    raw = base64.b64decode(data_url.split(",", 1)[1])
    if not raw:
        return np.zeros((0, 0, 3), np.uint8)
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def launch_chromium(playwright, *extra: str):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra])
