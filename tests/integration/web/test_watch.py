"""Watching: the web client in Chromium against the real gateway, focus service and three QEMU
demo guests — every tile live with its own guest's picture, loading and reconnect states as a
person sees them, each tile's sound and output device."""

import time

import numpy as np
import pytest
from conftest import make_stack
from streamstack import wait_until
from webclient import count_frames, frames, open_client, panel, phases, picture, record_phases, tiles, wait_all

from loco_lan import demoguest
from loco_lan.rfb import to_png

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_disk, web_dist):
    stack = make_stack(tmp_path_factory, demo_disk, web_dist, "single")
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture
def context(browser):
    context = browser.new_context()
    yield context
    context.close()


def test_every_tile_shows_its_own_guest_live(context, stack, artifacts):
    # Tell the guests apart: guest i has had i + 1 keys pressed (straight over VNC).
    for index in range(3):
        for _ in range(index + 1):
            stack.press(index, 0x61)
    page = open_client(context, stack, token=False)
    shown = wait_all(page, lambda t: t["phase"] == "live" and t["width"] == 1024, "every tile live at 1024x768")
    assert list(shown) == ["instance-0", "instance-1", "instance-2"]
    page.screenshot(path=artifacts / "tiles-live.png")
    for index, instance in enumerate(shown):
        screen = stack.screen(index)
        seen = wait_until(lambda instance=instance: panel(page, instance), 20, f"{instance}'s demo window")
        assert seen.makes == demoguest.read_panel(screen).makes == index + 1
        video = picture(page, instance)
        (artifacts / f"{instance}-decoded.png").write_bytes(to_png(video))
        still = np.ones(screen.shape[:2], bool)
        x, y = demoguest.window_origin(1024, 768)
        still[y + 25 : y + 225, x + 10 : x + 590] = False
        difference = np.abs(video.astype(int) - screen.astype(int))[still].mean()
        assert difference < 6, f"{instance}: the tile differs from its guest's screen by {difference:.1f}"
        assert shown[instance]["message"] == "" and shown[instance]["status"].startswith("live · 1024×768")


def live_again_after(page, since: float) -> dict[str, float]:
    """Per tile: seconds from ``since`` until its phase became live again (after a reconnecting)."""
    back = {}
    for instance, log in phases(page).items():
        seen = [p for _, p, _ in log]
        assert "reconnecting" in seen, f"{instance} never showed reconnecting: {log}"
        after = [t for t, p, _ in log[seen.index("reconnecting"):] if p == "live"]
        if after:
            back[instance] = after[0] - since
    return back


def test_a_killed_gateway_reconnects_every_tile_without_a_reload(context, stack, artifacts):
    page = open_client(context, stack)
    wait_all(page, lambda t: t["phase"] == "live" and t["width"] == 1024, "every tile live at 1024x768")
    page.evaluate("() => { window.__sameDocument = true; }")
    record_phases(page)
    with stack.gateway.killed():  # started again after the block, returning once /healthz answers
        shown = wait_all(page, lambda t: t["phase"] == "reconnecting", "every tile reconnecting", 30)
        page.screenshot(path=artifacts / "gateway-down.png")
        print("while the gateway is down:", {i: t["message"] for i, t in shown.items()})
        assert all("Reconnecting — attempt" in t["message"] for t in shown.values())
        for instance in shown:  # the last picture stays while the stream is redialled
            assert panel(page, instance) is not None, f"{instance}'s tile lost its picture while reconnecting"
    answering = time.time()
    wait_all(page, lambda t: t["phase"] == "live", "every tile live again", 60)
    back = live_again_after(page, answering)
    print("seconds from the gateway answering to each tile live again:",
          {i: round(s, 2) for i, s in back.items()})
    assert page.evaluate("() => window.__sameDocument") is True  # no reload
    count_frames(page)
    wait_until(lambda: all(c["count"] > 5 for c in frames(page).values()), 30, "new frames in every tile")


def test_a_restarted_guest_comes_back_in_its_tile(context, stack, artifacts):
    page = open_client(context, stack)
    wait_all(page, lambda t: t["phase"] == "live", "every tile live")
    record_phases(page)
    stack.restart_guest(1)
    wait_until(lambda: tiles(page)["instance-1"]["phase"] == "live" and "reconnecting" in
               [p for _, p, _ in phases(page)["instance-1"]], 90, "instance-1 reconnecting, then live again")
    log = phases(page)["instance-1"]
    print("instance-1 while its guest restarted:", [(p, m) for _, p, m in log])
    wait_until(lambda: (p := panel(page, "instance-1")) and p.makes == 0, 60, "the new boot's screen in the tile")
    others = phases(page)
    assert all(p == "live" for k in ("instance-0", "instance-2") for _, p, _ in others[k]), others


F9 = demoguest.KEYSYMS["F9"]


def test_sound_starts_with_the_first_gesture_and_the_meter_reads_the_stream(context, stack, artifacts):
    page = open_client(context, stack)
    wait_all(page, lambda t: t["phase"] == "live", "every tile live")
    assert page.is_visible(".sound-hint")  # says why nothing plays yet
    assert all(t["muted"] for t in tiles(page).values())
    page.click("#bar h1")  # the first gesture
    wait_all(page, lambda t: not t["muted"], "every tile's sound on after the click", 10)
    assert not page.is_visible(".sound-hint")
    stack.press(2, F9)
    try:
        wait_until(lambda: demoguest.read_panel(stack.screen(2)).tone, 10, "the tone switched on")
        loud = wait_until(lambda: (t := tiles(page))["instance-2"]["level"] > 0.05 and t, 20,
                          "the tone in instance-2's level meter")
        page.screenshot(path=artifacts / "tone-meter.png")
        levels = {i: round(t["level"], 3) for i, t in loud.items()}
        print("level meters with instance-2's tone:", levels)
        assert levels["instance-0"] < 0.02 and levels["instance-1"] < 0.02
    finally:
        stack.press(2, F9)


def test_the_output_chosen_per_instance_holds_across_reloads(context, stack, artifacts):
    page = open_client(context, stack)
    wait_all(page, lambda t: t["phase"] == "live", "every tile live")
    select = '.tile[data-id="instance-1"] select.output'
    labels = page.eval_on_selector(select, "s => [...s.options].map(o => o.text)")
    assert labels[:3] == ["Default output", "Fake Audio Output 1", "Fake Audio Output 2"], labels
    page.select_option(select, label="Fake Audio Output 1")
    chosen = page.eval_on_selector(select, "s => s.value")
    wait_until(lambda: tiles(page)["instance-1"]["sinkId"] == chosen, 10, "instance-1 playing on Fake Audio Output 1")
    assert tiles(page)["instance-0"]["sinkId"] == ""
    page.reload()
    shown = wait_until(lambda: (t := tiles(page)) and t["instance-1"]["sinkId"] == chosen and t, 20,
                       "the choice back after a reload")
    assert shown["instance-1"]["output"] == chosen and shown["instance-1"]["note"] == ""
    assert shown["instance-2"]["sinkId"] == ""
    # The device goes away (a headset unplugged since): the tile plays on the default output and says so.
    page.evaluate("""() => localStorage.setItem('loco.audio.instance-1', JSON.stringify(
        { volume: 1, muted: false, sinkId: 'a-headset-that-is-gone', sinkLabel: 'USB headset' }))""")
    page.reload()
    gone = wait_until(lambda: (t := tiles(page).get("instance-1", {})).get("note") and t, 20, "the fallback's note")
    page.screenshot(path=artifacts / "output-fallback.png")
    assert gone["note"] == "USB headset is not connected: playing on the default output"
    assert gone["sinkId"] == "" and gone["output"] == ""
