"""The streaming gateway with real demo guests (QEMU), the real focus service and headless
Chromium: what a viewer sees and hears, what its input does, and what the gateway's own counters
say about encoding once."""

import json
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from streamstack import TOKEN, png_array, wait_until

from loco_lan import demoguest
from loco_lan.rfb import to_png

pytestmark = [pytest.mark.qemu, pytest.mark.slow]
F9 = demoguest.KEYSYMS["F9"]


def connect(page, key: str, instance: str, **options) -> bool:
    return page.evaluate("([k, i, o]) => harness.connect(k, i, o)", [key, instance, options])


def info(page, key: str) -> dict:
    return page.evaluate("(k) => harness.info(k)", key)


def wait_frames(page, key: str, more: int = 5, timeout: float = 30) -> dict:
    start = info(page, key)["frames"]
    return wait_until(lambda: (i := info(page, key))["frames"] >= start + more and i, timeout,
                      f"{more} more decoded frames on {key}")


def picture(page, key: str) -> np.ndarray:
    return png_array(page.evaluate("(k) => harness.frame(k)", key))


def panel_shown(page, key: str):
    frame = picture(page, key)
    return demoguest.read_panel(frame) if frame.shape[:2] == (768, 1024) else None


def test_page_decodes_frames_that_match_the_guest(page, stack, tmp_path):
    assert connect(page, "a", "instance-0", token=TOKEN) is True
    shown = wait_frames(page, "a", 10)
    assert (shown["width"], shown["height"]) == demoguest.MAIN_MODE[:2]
    video, screen = picture(page, "a"), stack.screen(0)
    (tmp_path / "decoded.png").write_bytes(to_png(video))
    (tmp_path / "screen.png").write_bytes(to_png(screen))
    # The desktop's still parts (background, taskbar, window frame) match the guest's own screen;
    # the moving square and the counter may be a frame apart.
    still = np.ones(screen.shape[:2], bool)
    x, y = demoguest.window_origin(1024, 768)
    still[y + 25 : y + 225, x + 10 : x + 590] = False
    difference = np.abs(video.astype(int) - screen.astype(int))[still].mean()
    assert difference < 6, f"decoded picture differs from the guest's screen by {difference:.1f} on average"
    panel = demoguest.read_panel(video)
    assert panel.bpp == 16 and panel.width == 1024


def test_a_second_viewer_costs_no_second_encode(browser, page, stack):
    connect(page, "first", "instance-1")
    wait_frames(page, "first")
    second = browser.new_page()
    second.goto(stack.gateway.url + "/")
    connect(second, "second", "instance-1")
    wait_frames(second, "second")
    assert stack.metrics()["loco_stream_viewers", "instance-1"] == 2
    before = stack.metrics()
    wait_frames(page, "first", 20)
    after = stack.metrics()
    encoded = after["loco_stream_frames_encoded_total", "instance-1"] - before["loco_stream_frames_encoded_total",
                                                                               "instance-1"]
    sent = after["loco_stream_frames_sent_total", "instance-1"] - before["loco_stream_frames_sent_total", "instance-1"]
    print(f"2 viewers: {encoded:g} frames encoded, {sent:g} handed to viewers")
    assert encoded >= 15
    assert sent >= 1.8 * encoded  # every encoded frame went to both viewers: one encode, two sends
    second.close()


def test_keys_and_clicks_from_the_page_change_the_guest(page, stack):
    connect(page, "play", "instance-0", token=TOKEN)
    wait_until(lambda: page.evaluate("harness.channelOpen('play')"), 20, "input channel open")
    before = demoguest.read_panel(stack.screen(0))
    page.evaluate("harness.key('play', 0x61, true); harness.key('play', 0x61, false)")  # 'a'
    after = wait_until(lambda: (p := demoguest.read_panel(stack.screen(0))).breaks > before.breaks and p, 10,
                       "the key's press and release reaching the guest")
    assert (after.makes, after.breaks) == (before.makes + 1, before.breaks + 1)
    assert after.log[-2:] == (0x1E, 0x9E)  # set-1 make and break of 'a'
    # A click a quarter across and half down lands there on the guest, and the page shows it.
    page.evaluate("harness.pointer('play', 0, 0.25, 0.5); harness.pointer('play', 1, 0.25, 0.5);"
                  "harness.pointer('play', 0, 0.25, 0.5)")
    clicked = wait_until(lambda: (p := demoguest.read_panel(stack.screen(0))).clicks > before.clicks and p, 10,
                         "the click reaching the guest")
    assert clicked.mouse == (256, 384)
    corner = stack.screen(0)[380:384, 252:255]  # the marker's corner the cursor cross leaves visible
    assert (corner == demoguest.PALETTE[demoguest.RED]).all()
    wait_until(lambda: (p := panel_shown(page, "play")) and p.clicks == clicked.clicks, 10,
               "the click seen in the page's decoded picture")


def test_the_guests_tone_reaches_the_page(page, stack):
    connect(page, "sound", "instance-1", token=TOKEN)
    wait_frames(page, "sound")
    quiet = page.evaluate("harness.level('sound', 300)")
    page.evaluate(f"harness.key('sound', {F9}, true); harness.key('sound', {F9}, false)")
    try:
        wait_until(lambda: demoguest.read_panel(stack.screen(1)).tone, 10, "the tone switched on")
        first = page.evaluate("harness.inbound('sound')")["audio"]["totalSamplesReceived"]
        loud = wait_until(lambda: (v := page.evaluate("harness.level('sound', 300)")) > 0.05 and v, 15,
                          "sound energy at the page's AnalyserNode")
        later = page.evaluate("harness.inbound('sound')")["audio"]
        print(f"AnalyserNode RMS {quiet:.3f} silent, {loud:.3f} with the tone; inbound-rtp {later}")
        assert later["totalSamplesReceived"] > first
    finally:
        page.evaluate(f"harness.key('sound', {F9}, true); harness.key('sound', {F9}, false)")


def test_a_restarted_guest_resumes_on_the_same_peer_connection(page, stack):
    connect(page, "r", "instance-1")
    wait_frames(page, "r")
    reconnects = stack.metrics()["loco_stream_reconnects_total", "instance-1"]
    stack.restart_guest(1)
    wait_until(lambda: stack.metrics()["loco_stream_reconnects_total", "instance-1"] > reconnects, 60,
               "the gateway dialling the guest again")
    resumed = wait_frames(page, "r", 10, timeout=60)
    assert resumed["connection"] == "connected"
    wait_until(lambda: (p := panel_shown(page, "r")) and p.makes == 0 and p.frame > 0, 30,
               "the new boot's screen in the page")


def test_a_viewer_without_the_token_watches_but_cannot_type(page, stack):
    assert connect(page, "watch", "instance-0") is False
    wait_frames(page, "watch")
    wait_until(lambda: (info(page, "watch")["state"] or {}).get("player") is False, 10, "state says view-only")
    events = stack.metrics()["loco_stream_input_events_total", "instance-0"]
    makes = demoguest.read_panel(stack.screen(0)).makes
    page.evaluate("harness.key('watch', 0x62, true); harness.key('watch', 0x62, false)")
    connect(page, "probe", "instance-0", token=TOKEN)  # a player's key after it proves the first arrived
    wait_until(lambda: page.evaluate("harness.channelOpen('probe')"), 20, "input channel open")
    page.evaluate("harness.key('probe', 0x63, true); harness.key('probe', 0x63, false)")
    wait_until(lambda: demoguest.read_panel(stack.screen(0)).makes > makes, 10, "the player's key")
    assert demoguest.read_panel(stack.screen(0)).makes == makes + 1
    assert stack.metrics()["loco_stream_input_events_total", "instance-0"] == events + 2


def test_todays_signal_protocol(page, stack):
    registered = page.evaluate("harness.connectSignal('sig', 'instance-0', {})")
    assert registered
    shown = wait_frames(page, "sig")
    assert shown["pong"] == 42 and not shown["errors"]


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_bad_requests_get_clear_errors_and_disturb_no_viewer(page, stack):
    connect(page, "calm", "instance-0")
    wait_frames(page, "calm")
    offer = stack.gateway.url + "/stream/instance-0/offer"
    assert post(stack.gateway.url + "/stream/instance-9/offer", b'{"sdp": "v=0", "type": "offer"}') == (
        404, {"error": "unknown instance 'instance-9' (known: instance-0, instance-1)"})
    status, body = post(offer, b'{"sdp": "this is no SDP", "type": "offer"}')
    assert status == 400 and "SDP" in body["error"]
    assert post(offer, b"{not json")[0] == 400
    assert post(offer, b"sdp=1", "application/x-www-form-urlencoded")[0] == 415
    assert post(offer, b'{"sdp": "' + b"x" * 300_000 + b'"}')[0] == 413
    assert post(offer, b'{"type": "offer"}')[0] == 400
    started = time.monotonic()
    wait_frames(page, "calm", 10)
    assert info(page, "calm")["connection"] == "connected", f"after {time.monotonic() - started:.1f}s"


def test_colour_depths_and_resolutions_keep_streaming(page, stack):
    """What Windows 98 does while it boots and when a game starts: 8, 16 and 32-bit colour,
    640x480 and 1024x768; the page keeps decoding through every change, on one connection."""
    connect(page, "modes", "instance-0", token=TOKEN)
    wait_frames(page, "modes")
    f11, f12 = demoguest.KEYSYMS["F11"], demoguest.KEYSYMS["F12"]
    for expected in (32, 8, 16):
        page.evaluate(f"harness.key('modes', {f12}, true); harness.key('modes', {f12}, false)")
        wait_until(lambda expected=expected: (p := panel_shown(page, "modes")) and p.bpp == expected, 20,
                   f"{expected}-bit colour in the page")
    page.evaluate(f"harness.key('modes', {f11}, true); harness.key('modes', {f11}, false)")
    wait_until(lambda: (info(page, "modes")["width"], info(page, "modes")["height"]) == (640, 480), 20,
               "the page showing 640x480")
    assert demoguest.read_panel(picture(page, "modes")).width == 640
    page.evaluate(f"harness.key('modes', {f11}, true); harness.key('modes', {f11}, false)")
    wait_until(lambda: info(page, "modes")["width"] == 1024, 20, "back at 1024x768")
    assert info(page, "modes")["connection"] == "connected"
