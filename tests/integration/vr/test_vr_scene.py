"""The VR scene in headless Chromium under an emulated Meta Quest 3 (IWER), against the real
gateway, focus service and three QEMU demo guests: what the headset shows, what its controllers
do to the guests and to focus, and the in-scene menu."""

import json
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import open_scene, start_stack
from streamstack import TOKEN, png_array, wait_until

from loco_lan import demoguest
from loco_lan.rfb import to_png

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_disk, web_dist):
    stack = start_stack(tmp_path_factory, demo_disk, web_dist, count=3, mode="single")
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


ARTIFACTS = Path(__file__).resolve().parents[3] / "artifacts" / "vr"


def save(image: np.ndarray, name: str) -> None:
    """Keep a screenshot of the scene where a person can look at it (artifacts/vr/)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / name).write_bytes(to_png(image))


def panel_in_video(page, index: int):
    """The demo window as the scene's video element for guest ``index`` has it now."""
    url = page.evaluate("""(i) => {
        const video = document.querySelectorAll('#streams video')[i];
        const canvas = document.createElement('canvas');
        [canvas.width, canvas.height] = [video.videoWidth, video.videoHeight];
        canvas.getContext('2d').drawImage(video, 0, 0);
        return canvas.toDataURL('image/png');
    }""", index)
    return demoguest.read_panel(png_array(url))


def region(image: np.ndarray, corners: list[list[float]]) -> np.ndarray:
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    x0, x1 = int(max(0, min(xs))), int(min(image.shape[1], max(xs)))
    y0, y1 = int(max(0, min(ys))), int(min(image.shape[0], max(ys)))
    return image[y0:y1, x0:x1]


def test_the_scene_shows_every_guest_live_in_vr(headset):
    state = headset.state()
    assert state["presenting"] and {c["handedness"] for c in state["controllers"]} == {"left", "right"}
    before = {s["id"]: s["frames"] for s in state["screens"]}
    wait_until(lambda: all(s["frames"] >= before[s["id"]] + 10 for s in headset.state()["screens"]), 30,
               "10 more frames uploaded on every screen")
    shot = png_array(headset.page.evaluate("locoVR.capture()"))
    save(shot, "scene-live.png")
    teal = np.array(demoguest.PALETTE[demoguest.TEAL])
    for screen in headset.state()["screens"]:
        picture = region(shot, screen["canvasCorners"])
        desktop = (np.abs(picture.astype(int) - teal).max(axis=-1) < 40).mean()
        print(f"{screen['id']}: {picture.shape[1]}x{picture.shape[0]} px on the canvas, {desktop:.0%} desktop teal")
        assert desktop > 0.4, f"{screen['id']} does not show its guest's desktop"
    # The pictures are the guests' live streams: the demo's frame counter moves in each video.
    for index in range(3):
        first = panel_in_video(headset.page, index).frame
        wait_until(lambda i=index, f=first: panel_in_video(headset.page, i).frame > f, 10,
                   f"instance-{index}'s counter moving in the scene's stream")


def set_focus(stack, ids: list[str]) -> None:
    """A focus change from outside the scene (as `loco focus set` or another client makes it)."""
    request = urllib.request.Request(stack.focus.url + "/api/active", json.dumps({"ids": ids}).encode(),
                                     {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    urllib.request.urlopen(request, timeout=10).close()


def focused(stack) -> list[str]:
    return stack.focus.get("/api/active")["active"]


def focus_everywhere(headset, stack, ids: list[str]) -> None:
    set_focus(stack, ids)
    wait_until(lambda: headset.state()["focus"]["active"] == ids, 10, f"the scene following focus {ids}")


def point_on(screen: dict, u: float, v: float) -> list[float]:
    """The world point at fraction ``u`` across and ``v`` down a screen's picture."""
    top_left, top_right, _, bottom_left = (np.array(c) for c in screen["corners"])
    return list(top_left + u * (top_right - top_left) + v * (bottom_left - top_left))


def test_a_button_press_reaches_the_focused_guest_exactly_once(headset, stack):
    focus_everywhere(headset, stack, ["instance-0"])
    before, other = demoguest.read_panel(stack.screen(0)), demoguest.read_panel(stack.screen(1))
    headset.click("right", "a-button")  # bound to F1
    after = wait_until(lambda: (p := demoguest.read_panel(stack.screen(0))).breaks > before.breaks and p, 10,
                       "F1's press and release reaching instance-0")
    headset.frames(5)
    after = demoguest.read_panel(stack.screen(0))
    assert (after.makes, after.breaks) == (before.makes + 1, before.breaks + 1)
    assert after.log[-2:] == (0x3B, 0xBB)  # set-1 make and break of F1
    assert demoguest.read_panel(stack.screen(1)).makes == other.makes  # nothing to the unfocused guest


def test_the_thumbstick_moves_focus_in_the_service(headset, stack):
    focus_everywhere(headset, stack, ["instance-0"])
    for x, expected in ((0.9, ["instance-1"]), (0.9, ["instance-2"]), (-0.9, ["instance-1"])):
        headset.stick("right", x)
        wait_until(lambda e=expected: focused(stack) == e, 10, f"thumbstick {x:+} focusing {expected}")
        headset.stick("right", 0)
        headset.frames(3)
    assert focused(stack) == ["instance-1"]  # one step per push, however long it was held


def test_the_trigger_on_a_screen_focuses_it_then_points_and_clicks_there(headset, stack):
    focus_everywhere(headset, stack, ["instance-0"])
    headset.aim("right", point_on(headset.screen("instance-2"), 0.5, 0.5))
    headset.frames(3)
    clicks = demoguest.read_panel(stack.screen(2)).clicks
    headset.click("right", "trigger")
    wait_until(lambda: focused(stack) == ["instance-2"], 10, "the trigger focusing the screen it points at")
    wait_until(lambda: headset.screen("instance-2")["scale"] > 1, 10, "the focused screen growing")
    assert demoguest.read_panel(stack.screen(2)).clicks == clicks  # focusing is not a click
    # The laser a quarter across and half down the (now larger) screen puts the guest's pointer there.
    headset.aim("right", point_on(headset.screen("instance-2"), 0.25, 0.5))
    moved = wait_until(lambda: (p := demoguest.read_panel(stack.screen(2))).mouse != (0, 0) and
                       abs(p.mouse[0] - 256) <= 6 and abs(p.mouse[1] - 384) <= 6 and p, 10,
                       "the guest's pointer where the laser is")
    headset.click("right", "trigger")
    clicked = wait_until(lambda: (p := demoguest.read_panel(stack.screen(2))).clicks > clicks and p, 10,
                         "the trigger clicking in the guest")
    assert clicked.clicks == clicks + 1 and clicked.mouse == moved.mouse
    save(png_array(headset.page.evaluate("locoVR.capture()")), "scene-focused.png")


def test_the_menu_opens_with_y_and_picks_an_instance_by_laser(headset, stack):
    focus_everywhere(headset, stack, ["instance-0"])
    headset.click("left", "y-button")
    menu = wait_until(lambda: (m := headset.state()["menu"])["open"] and m, 10, "the menu open")
    assert [e["id"] for e in menu["entries"]] == ["instance-0", "instance-1", "instance-2"]
    assert [e["focused"] for e in menu["entries"]] == [True, False, False]
    assert all(e["status"] == "live" for e in menu["entries"])
    headset.aim("right", menu["rows"][1])
    wait_until(lambda: headset.state()["menu"]["hovered"] == 1, 10, "the laser on instance-1's row")
    save(png_array(headset.page.evaluate("locoVR.capture()")), "scene-menu.png")
    headset.click("right", "trigger")
    wait_until(lambda: focused(stack) == ["instance-1"], 10, "the menu focusing instance-1")
    wait_until(lambda: [e["focused"] for e in headset.state()["menu"]["entries"]] == [False, True, False], 10,
               "the menu showing the new focus")
    headset.aim("right", menu["rows"][-1])
    headset.frames(3)
    headset.click("right", "trigger")
    wait_until(lambda: not headset.state()["menu"]["open"], 10, "Close closing the menu")
    assert focused(stack) == ["instance-1"]


def test_focus_from_elsewhere_moves_the_highlight(headset, stack):
    set_focus(stack, ["instance-2"])
    state = wait_until(lambda: (s := headset.state())["focus"]["active"] == ["instance-2"] and s, 10,
                       "the scene following a focus change made elsewhere")
    assert [(s["id"], s["focused"], s["scale"]) for s in state["screens"]] == [
        ("instance-0", False, 1), ("instance-1", False, 1), ("instance-2", True, pytest.approx(1.4))]


def gains(headset) -> dict[str, float]:
    return {s["id"]: round(s["voice"]["gain"], 2) for s in headset.state()["screens"]}


def frame_rate(headset) -> float:
    start, at = headset.state()["rendered"], time.monotonic()
    wait_until(lambda: headset.state()["rendered"] >= start + 10, 30, "10 frames drawn")
    return (headset.state()["rendered"] - start) / (time.monotonic() - at)


def test_each_screens_sound_comes_from_that_screen_and_follows_focus_from_another_client(browser, headset, stack):
    screens = wait_until(lambda: all((s := headset.state())["screens"][i]["voice"]["hasSound"] for i in range(3))
                         and s["screens"], 20, "every stream's sound in the scene's audio graph")
    for screen in screens:
        assert screen["voice"]["position"] == pytest.approx(screen["position"], abs=1e-3)
    # One sound path per stream: the media elements play muted, only the panners are heard.
    assert headset.page.evaluate("[...document.querySelectorAll('audio, video')].every((m) => m.muted)")
    focus_everywhere(headset, stack, ["instance-0"])
    wait_until(lambda: gains(headset) == {"instance-0": 1, "instance-1": 0.2, "instance-2": 0.2}, 5,
               "focused at full gain, the others at the ambient level")
    # A second client, a plain page of the same gateway, changes focus: this scene's sound follows.
    other = browser.new_context().new_page()
    other.goto(stack.gateway.url + "/healthz")
    other.evaluate("""() => new Promise((open) => {  // and hears /active itself, for comparison
        const ws = new WebSocket(location.origin.replace('http', 'ws') + '/active');
        ws.onmessage = (e) => { if (JSON.parse(e.data).active[0] === 'instance-1') window.heardAt = Date.now(); };
        ws.onopen = open; })""")
    sent = other.evaluate("""async (token) => { const at = Date.now(); await fetch('/api/active', {method: 'POST',
        body: JSON.stringify({ids: ['instance-1']}),
        headers: {'Content-Type': 'application/json', Authorization: `Bearer ${token}`}}); return at; }""", TOKEN)
    wait_until(lambda: gains(headset) == {"instance-0": 0.2, "instance-1": 1, "instance-2": 0.2}, 5,
               "the scene's gains following the other client's focus change")
    state = headset.state()
    print(f"focus change from another page: applied to this scene's sound {state['focusAppliedAt'] - sent} "
          f"ms after it was sent (gain at 95 % 45 ms later); a bare /active socket heard it after "
          f"{other.evaluate('window.heardAt') - sent} ms; the scene draws {frame_rate(headset):.0f} frames/s here")
    other.context.close()


def test_the_focused_guests_tone_is_louder_and_turning_the_head_moves_it(headset, stack):
    F9 = demoguest.KEYSYMS["F9"]
    stack.press(0, F9)  # instance-0, on the player's left, beeps
    try:
        wait_until(lambda: demoguest.read_panel(stack.screen(0)).tone, 10, "instance-0's tone on")
        focus_everywhere(headset, stack, ["instance-0"])
        loud = wait_until(lambda: (v := headset.page.evaluate("locoVR.levels(400)")) and v["left"] > 0.01 and v, 15,
                          "the tone at the listener")
        focus_everywhere(headset, stack, ["instance-1"])
        wait_until(lambda: gains(headset)["instance-0"] == 0.2, 5, "instance-0 at the ambient level")
        ambient = headset.page.evaluate("locoVR.levels(400)")
        ratio = (loud["left"] + loud["right"]) / (ambient["left"] + ambient["right"])
        print(f"tone at the listener: focused L {loud['left']:.4f} R {loud['right']:.4f}; "
              f"unfocused L {ambient['left']:.4f} R {ambient['right']:.4f}; focused/unfocused {ratio:.1f}")
        assert ratio > 3  # 1 against 0.2: five times, give or take the stream's own level changes
        # Looking ahead, the screen is ahead-left: the left ear hears more. Turned 90 degrees to the
        # left, the same screen is on the right.
        focus_everywhere(headset, stack, ["instance-0"])
        ahead = headset.page.evaluate("locoVR.levels(400)")
        headset.turn_head(90)
        headset.frames(3)
        turned = headset.page.evaluate("locoVR.levels(400)")
        print(f"looking ahead L/R {ahead['left'] / ahead['right']:.2f}, turned left L/R "
              f"{turned['left'] / turned['right']:.2f}")
        assert ahead["left"] > 1.3 * ahead["right"] and turned["right"] > 1.3 * turned["left"]
    finally:
        headset.turn_head(0)
        stack.press(0, F9)


def test_the_menus_ambient_row_sets_how_loud_the_other_guests_are(headset, stack):
    F9 = demoguest.KEYSYMS["F9"]
    stack.press(0, F9)  # instance-0 beeps while instance-1 is focused: heard at the ambient level
    try:
        wait_until(lambda: demoguest.read_panel(stack.screen(0)).tone, 10, "instance-0's tone on")
        focus_everywhere(headset, stack, ["instance-1"])
        wait_until(lambda: gains(headset)["instance-0"] == 0.2, 5, "instance-0 at the ambient level")
        before = wait_until(lambda: (v := headset.page.evaluate("locoVR.levels(400)")) and v["left"] > 0.001 and v,
                            15, "the unfocused tone heard")
        headset.click("left", "y-button")
        controls = wait_until(lambda: (m := headset.state()["menu"])["open"] and m["ambient"], 10, "the menu open")
        for level in (0.1, 0.0):  # "−" twice: 20 % → 0 %
            headset.aim("right", controls["quieter"])
            headset.frames(3)
            headset.click("right", "trigger")
            wait_until(lambda level=level: gains(headset)["instance-0"] == level, 5, f"instance-0 at {level:.0%}")
        save(png_array(headset.page.evaluate("locoVR.capture()")), "scene-menu-ambient.png")
        after = headset.page.evaluate("locoVR.levels(400)")
        print(f"unfocused tone at the listener: ambient 20 % L {before['left']:.4f} R {before['right']:.4f}, "
              f"ambient 0 % L {after['left']:.4f} R {after['right']:.4f}")
        assert after["left"] + after["right"] < 0.1 * (before["left"] + before["right"])
        assert gains(headset)["instance-1"] == 1  # the focused guest stays at full volume
        assert headset.page.evaluate("localStorage.getItem('loco.ambient')") == "0"  # the web client's setting too
    finally:
        for _ in range(2):
            headset.aim("right", headset.state()["menu"]["ambient"]["louder"])
            headset.frames(3)
            headset.click("right", "trigger")
        wait_until(lambda: gains(headset)["instance-0"] == 0.2, 5, "the ambient level back at 20 %")
        headset.click("left", "y-button")
        stack.press(0, F9)
