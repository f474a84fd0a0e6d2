"""Fixtures for the VR scene's tests: one set of demo guests, the focus service and the gateway
serving the built web client (web/dist) per module, one headless Chromium with SwiftShader WebGL
per module, and pages that run the scene under an emulated Meta Quest 3 (Meta's Immersive Web
Emulation Runtime, npm ``iwer``, loaded into the real page before its own scripts)."""

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from streamstack import TOKEN, StreamStack, launch_chromium, wait_until

from loco_lan import demoguest

WEB = Path(__file__).resolve().parents[3] / "web"
IWER = WEB / "node_modules" / "iwer" / "build" / "iwer.min.js"
# Chromium has a native navigator.xr (with no device behind it here): forceInstall replaces it.
HEADSET = """
window.xrDevice = new IWER.XRDevice(IWER.metaQuest3);
window.xrDevice.installRuntime({ forceInstall: true });
"""


@pytest.fixture(scope="session")
def web_dist() -> Path:
    dist = WEB / "dist"
    assert (dist / "vr.html").is_file() and IWER.is_file(), "build the web client first: scripts/setup.sh"
    return dist


@pytest.fixture(scope="session")
def demo_disk(tmp_path_factory) -> Path:
    return demoguest.make_disk(tmp_path_factory.mktemp("demo") / "demo.qcow2")


def start_stack(tmp_path_factory, demo_disk, web_dist, count: int, mode: str) -> StreamStack:
    return StreamStack(tmp_path_factory.mktemp("vr"), demo_disk, count=count, web_root=web_dist, mode=mode).start()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, "--use-gl=swiftshader", "--enable-unsafe-swiftshader",
                                  "--ignore-gpu-blocklist", "--autoplay-policy=no-user-gesture-required")
        yield browser
        browser.close()


class Headset:
    """The scene's page with an emulated headset: enter VR, move the head and the controllers,
    press their buttons; read what the scene shows (``window.locoVR``)."""

    def __init__(self, page):
        self.page = page

    def enter(self) -> dict:
        self.page.click("#enter-vr")
        return wait_until(lambda: (s := self.state())["presenting"] and all(c["handedness"] for c in s["controllers"])
                          and s, 20, "immersive session with both controllers")

    def state(self) -> dict:
        return self.page.evaluate("locoVR.state()")

    def screen(self, instance: str) -> dict:
        return next(s for s in self.state()["screens"] if s["id"] == instance)

    def press(self, hand: str, button: str, value: float) -> None:
        self.page.evaluate("([h, b, v]) => xrDevice.controllers[h].updateButtonValue(b, v)", [hand, button, value])

    def click(self, hand: str, button: str) -> None:
        """Press and release, each held for a few rendered frames (the scene reads buttons per frame)."""
        for value in (1, 0):
            self.press(hand, button, value)
            self.frames(3)

    def stick(self, hand: str, x: float, y: float = 0) -> None:
        self.page.evaluate("([h, x, y]) => xrDevice.controllers[h].updateAxes('thumbstick', x, y)", [hand, x, y])

    def frames(self, count: int) -> None:
        for _ in range(count):
            self.page.evaluate("locoVR.capture().then(() => true)")

    def aim(self, hand: str, target: list[float], origin: tuple[float, float, float] = (0.2, 1.4, -0.3)) -> None:
        """Point the controller's target ray from ``origin`` at ``target`` (world metres)."""
        self.page.evaluate("""([h, o, t]) => {
            const c = xrDevice.controllers[h];
            c.position.set(...o);
            const q = IWER.lookRotation(IWER.directionTo({x: o[0], y: o[1], z: o[2]}, {x: t[0], y: t[1], z: t[2]}));
            c.quaternion.set(q.x, q.y, q.z, q.w);
        }""", [hand, list(origin), target])

    def turn_head(self, yaw_degrees: float) -> None:
        self.page.evaluate("(y) => { const q = IWER.eulerToQuat({ yaw: y }); "
                           "xrDevice.quaternion.set(q.x, q.y, q.z, q.w); }", yaw_degrees)


def open_scene(browser, stack: StreamStack, token: str | None = TOKEN):
    context = browser.new_context(viewport={"width": 960, "height": 540})
    context.add_init_script(path=str(IWER))
    context.add_init_script(HEADSET)
    page = context.new_page()
    page.goto(stack.gateway.url + "/vr" + (f"#token={token}" if token else ""))
    page.wait_for_function("window.locoVR !== undefined", timeout=20000)
    return context, Headset(page)
