"""Boot check: watch an emulator's screen over VNC until Windows 98 shows its desktop.

It connects (retrying while the port is closed), keeps the framebuffer current
with incremental updates, and judges each new frame with the screen detector.
It passes once the accepted state (``desktop`` by default) has held for
``settle`` seconds, so a dialog popping up right after the taskbar is not missed.
On failure it names the state it saw and saves the last screen as PNG (to the
path given).

Live states: ``desktop``, ``dialog`` (shell up, modal dialog in front),
``booting``, ``black``, ``game``, ``other``, ``no-vnc`` (nothing answered, the password
was refused, or the session broke).

``check_targets`` checks several screens at once; ``check_pods`` reaches emulator
pods' VNC ports through the Kubernetes API (port-forwards) and checks those.
"""

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from kubernetes import client

from loco_lan import kube
from loco_lan.errors import LocoError
from loco_lan.fsutil import atomic_write
from loco_lan.kube.portforward import PortForwards
from loco_lan.rfb import RFBAuthError, RFBClient, RFBError, to_png
from loco_lan.screen import Analysis, analyse

log = logging.getLogger(__name__)

LIVE_STATES = ("desktop", "dialog", "booting", "black", "game", "other", "no-vnc")
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


@dataclass(frozen=True)
class Target:
    name: str  # what reports call it: an instance id, a pod, or HOST:PORT
    host: str
    port: int


@dataclass
class BootCheckResult:
    target: str
    ok: bool
    state: str
    elapsed: float
    detail: str
    screenshot: Path | None = None
    name: str | None = None

    def as_dict(self) -> dict:
        return {
            "name": self.name or self.target,
            "target": self.target,
            "ok": self.ok,
            "state": self.state,
            "elapsed": round(self.elapsed, 1),
            "detail": self.detail,
            "screenshot": str(self.screenshot) if self.screenshot else None,
        }


def live_state(analysis: Analysis) -> str:
    if analysis.black:
        return "black"
    return "dialog" if analysis.state == "desktop-dialog" else analysis.state


async def boot_check(
    host: str,
    port: int,
    *,
    password: str | None = None,
    timeout: float = 600.0,
    interval: float = 2.0,
    settle: float = 3.0,
    accept: tuple[str, ...] = ("desktop",),
    screenshot: Path | None = None,
) -> BootCheckResult:
    """Poll ``host:port`` until an accepted state holds ``settle`` seconds or ``timeout`` passes.

    A wrong or missing password fails at once (waiting will not fix it); on any
    other failure the last frame goes to ``screenshot`` (if one was ever seen).
    """
    target = f"{host}:{port}"
    started = time.monotonic()
    deadline = started + timeout
    client: RFBClient | None = None
    frame: np.ndarray | None = None
    state, detail = "no-vnc", "no VNC connection yet"
    held_since: float | None = None
    try:
        while time.monotonic() < deadline:
            tick = time.monotonic()
            try:
                if client is None:
                    client = await RFBClient.connect(host, port, password, timeout=min(10.0, deadline - tick))
                    frame = await client.refresh(timeout=max(0.1, deadline - time.monotonic()))
                    changed = True
                else:
                    changed = await client.poll(min(interval, max(0.1, deadline - tick))) is not None
                    frame = client.framebuffer
            except RFBAuthError as exc:
                state, detail = "no-vnc", str(exc)
                break
            except RFBError as exc:
                if client is not None:
                    await client.close()
                    client = None
                state, detail, held_since = "no-vnc", str(exc), None
                changed = False
            if changed:
                analysis = analyse(frame)
                if live_state(analysis) != state:
                    log.info("%s: %s (%s)", target, live_state(analysis), analysis.reason)
                state, detail = live_state(analysis), analysis.reason
            if state in accept:
                held_since = held_since if held_since is not None else time.monotonic()
                if time.monotonic() - held_since >= settle:
                    return BootCheckResult(target, True, state, time.monotonic() - started, detail)
            else:
                held_since = None
            # At most one look per interval, however busy the screen.
            await asyncio.sleep(max(0.0, min(tick + interval, deadline) - time.monotonic()))
    finally:
        if client is not None:
            await client.close()

    saved = None
    if frame is not None and frame.size and screenshot is not None:
        atomic_write(screenshot, to_png(np.ascontiguousarray(frame)))
        saved = screenshot
    return BootCheckResult(target, False, state, time.monotonic() - started, detail, saved)


def parse_target(text: str, option: str = "--vnc") -> tuple[str, int]:
    """``HOST:PORT`` (a port below 100 is a display number: ``:1`` is 5901); ``option`` names the
    setting in the error."""
    match = re.fullmatch(r"\[?([^\[\]]+?)\]?:(\d+)", text.strip())
    if not match:
        raise LocoError(f"{option} {text!r}: expected HOST:PORT, e.g. 10.0.0.5:5901")
    port = int(match.group(2))
    if port < 100:
        port += 5900
    if port > 65535:
        raise LocoError(f"{option} {text!r}: port out of range")
    return match.group(1), port


def read_password(path: Path | None, option: str = "--password-file") -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text().rstrip("\r\n")
    except OSError as exc:
        raise LocoError(f"{option} {path}: cannot read it ({exc.strerror})") from None


def targets_from_instances(path: Path) -> list[Target]:
    """The ``vncUrl`` of every entry of a clients' ``instances.json``, named by ``id``."""
    try:
        entries = json.loads(Path(path).read_text())
    except OSError as exc:
        raise LocoError(f"{path}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:
        raise LocoError(f"{path}: not JSON ({exc})") from None
    if not isinstance(entries, list) or not entries:
        raise LocoError(f"{path}: expected a non-empty list of instances")
    targets = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("vncUrl"):
            raise LocoError(f"{path}: entry {number} has no vncUrl")
        name = str(entry.get("id") or entry["vncUrl"])
        targets.append(Target(name, *parse_target(entry["vncUrl"], f"{path}: {name} vncUrl")))
    return targets


def check_targets(targets: list[Target], *, screenshot_dir: str | Path | None = None,
                  **options) -> list[BootCheckResult]:
    """Boot-check every target at once (``options`` as for ``boot_check``); a failing target's last
    screen goes to ``screenshot_dir/<name>.png``."""

    def screenshot(target: Target) -> Path | None:
        if screenshot_dir is None:
            return None
        return Path(screenshot_dir) / f"{re.sub(r'[^A-Za-z0-9._-]', '_', target.name)}.png"

    async def check_all():
        return await asyncio.gather(*(
            boot_check(target.host, target.port, screenshot=screenshot(target), **options)
            for target in targets))

    results = asyncio.run(check_all())
    for target, result in zip(targets, results, strict=True):
        result.name = target.name
    return results


def check_pods(namespace: str, selector: str, *, kubeconfig: str | None = None, context: str | None = None,
               kubectl: str = "kubectl", vnc_port: int = 5901, **options) -> list[BootCheckResult]:
    """Boot-check every pod matching ``selector`` through port-forwards to its ``vnc_port``;
    results are named by pod, in ordinal order."""
    api = kube.api_client(kubeconfig, context)
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items
    if not pods:
        raise LocoError(f"no pods match {selector!r} in namespace {namespace!r}")
    names = [pod.metadata.name for pod in sorted(pods, key=_ordinal)]
    forwards = PortForwards(namespace, [(name, vnc_port) for name in names], kubeconfig=kubeconfig,
                            context=context, kubectl=kubectl)
    with forwards:
        targets = [Target(name, forwards.address, forwards.port(name, vnc_port)) for name in names]
        return check_targets(targets, **options)


def _ordinal(pod) -> tuple[int, str]:
    index = (pod.metadata.labels or {}).get(POD_INDEX_LABEL, "")
    return (int(index) if index.isdigit() else 0), pod.metadata.name
