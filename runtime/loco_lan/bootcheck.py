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
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loco_lan.fsutil import atomic_write
from loco_lan.rfb import RFBAuthError, RFBClient, RFBError, to_png
from loco_lan.screen import Analysis, analyse

log = logging.getLogger(__name__)

LIVE_STATES = ("desktop", "dialog", "booting", "black", "game", "other", "no-vnc")


@dataclass
class BootCheckResult:
    target: str
    ok: bool
    state: str
    elapsed: float
    detail: str
    screenshot: Path | None = None

    def as_dict(self) -> dict:
        return {
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
