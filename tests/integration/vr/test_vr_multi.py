"""The VR scene with the focus service in multi focus (two QEMU demo guests): the in-scene menu
adds and removes guests, grip zooms the focused screens, and the same page works in a desktop
browser without a headset (mouse look, click to focus and to click, the keyboard to the guest)."""

import numpy as np
import pytest
from conftest import open_scene, start_stack
from streamstack import TOKEN, png_array, wait_until
from test_vr_scene import focus_everywhere, focused, gains, save, set_focus

from loco_lan import demoguest

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_disk, web_dist):
    stack = start_stack(tmp_path_factory, demo_disk, web_dist, count=2, mode="multi")
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def headset(browser, stack):
    context, headset = open_scene(browser, stack)
    headset.enter()
    yield headset
    context.close()


def pick(headset, row: int) -> None:
    headset.aim("right", headset.state()["menu"]["rows"][row])
    wait_until(lambda: headset.state()["menu"]["hovered"] == row, 10, f"the laser on row {row}")
    headset.click("right", "trigger")


def test_the_menu_adds_and_removes_guests_in_multi_focus(headset, stack):
    focus_everywhere(headset, stack, [])
    headset.click("left", "y-button")
    wait_until(lambda: headset.state()["menu"]["open"], 10, "the menu open")
    assert headset.state()["menu"]["mode"] == "multi"
    pick(headset, 0)
    wait_until(lambda: focused(stack) == ["instance-0"], 10, "instance-0 added")
    pick(headset, 1)
    wait_until(lambda: focused(stack) == ["instance-0", "instance-1"], 10, "instance-1 added")
    state = wait_until(lambda: (s := headset.state())["focus"]["active"] == ["instance-0", "instance-1"] and s, 10,
                       "the scene with both focused")
    assert [s["scale"] for s in state["screens"]] == [pytest.approx(1.4)] * 2
    wait_until(lambda: gains(headset) == {"instance-0": 1, "instance-1": 1}, 5, "both at full gain")
    pick(headset, 0)
    wait_until(lambda: focused(stack) == ["instance-1"], 10, "instance-0 taken out again")
    wait_until(lambda: gains(headset) == {"instance-0": 0.2, "instance-1": 1}, 5, "instance-0 back to ambient")
    headset.click("left", "y-button")
    wait_until(lambda: not headset.state()["menu"]["open"], 10, "Y closing the menu")


def test_grip_brings_the_focused_screens_close_and_back(headset, stack):
    focus_everywhere(headset, stack, ["instance-1"])
    far = headset.screen("instance-1")
    headset.click("right", "squeeze")
    near = wait_until(lambda: (s := headset.screen("instance-1"))["scale"] == pytest.approx(2) and s, 10, "zoomed")
    head = np.array(headset.state()["head"])
    assert np.linalg.norm(np.array(near["position"]) - head) < np.linalg.norm(np.array(far["position"]) - head) - 0.5
    assert headset.screen("instance-0")["scale"] == 1
    headset.click("left", "squeeze")  # either hand's grip
    wait_until(lambda: headset.screen("instance-1")["scale"] == pytest.approx(1.4), 10, "back in its place")


def test_the_scene_works_in_a_desktop_browser_without_a_headset(browser, stack):
    context = browser.new_context(viewport={"width": 960, "height": 540})
    page = context.new_page()
    page.goto(stack.gateway.url + f"/vr#token={TOKEN}")
    page.wait_for_function("window.locoVR !== undefined", timeout=20000)
    assert page.is_hidden("#enter-vr")  # no headset: no Enter VR button
    state = wait_until(lambda: (s := page.evaluate("locoVR.state()")) and all(x["frames"] > 5 for x in s["screens"])
                       and s, 30, "both screens live on the desktop")
    assert not state["presenting"]
    # Mouse look: a drag turns the view (the screens move across the canvas).
    before = state["screens"][0]["canvasCorners"][0][0]
    page.mouse.move(480, 400)
    page.mouse.down()
    page.mouse.move(380, 400, steps=5)
    page.mouse.up()
    after = page.evaluate("locoVR.state()")["screens"][0]["canvasCorners"][0][0]
    assert abs(after - before) > 50, f"dragging did not turn the view ({before:.0f} -> {after:.0f})"
    # A click on an unfocused screen focuses it; a second click clicks in it, the keyboard types to it.
    set_focus(stack, ["instance-1"])
    wait_until(lambda: page.evaluate("locoVR.state()")["focus"]["active"] == ["instance-1"], 10, "focus followed")
    corners = np.array(page.evaluate("locoVR.state()")["screens"][0]["canvasCorners"])
    x, y = corners.mean(axis=0)
    clicks = demoguest.read_panel(stack.screen(0)).clicks
    page.mouse.click(x, y)
    wait_until(lambda: "instance-0" in focused(stack), 10, "the click focusing instance-0")
    corners = np.array(wait_until(lambda: (s := page.evaluate("locoVR.state()")["screens"][0])["scale"] > 1 and
                                  s["canvasCorners"], 10, "instance-0 grown"))
    x, y = corners.mean(axis=0)
    page.mouse.click(x, y)
    wait_until(lambda: demoguest.read_panel(stack.screen(0)).clicks == clicks + 1, 10, "the second click in the guest")
    makes = demoguest.read_panel(stack.screen(0)).makes
    page.keyboard.press("b")
    wait_until(lambda: demoguest.read_panel(stack.screen(0)).makes == makes + 1, 10, "the key on the focused guest")
    save(png_array(page.evaluate("locoVR.capture()")), "desktop.png")
    context.close()
