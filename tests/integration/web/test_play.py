"""Focus and play: the web client in Chromium against the real gateway, focus service and three
QEMU demo guests — clicks and hotkeys change focus in the service, every page (and `loco focus
set`) is followed, keys and clicks reach the focused guest and follow focus without a click, a
page without the token only watches, and 50 focus switches leave every tile decoding."""

import re
import statistics
import subprocess
import sys
import time

import pytest
from conftest import make_stack
from streamstack import run_async, wait_until
from webclient import count_frames, frames, open_client, reset_gaps, tiles, wait_all

from loco_lan import demoguest, rfb
from loco_lan.focus.client import FocusClient
from loco_lan.focus.client import read_token as read_token_file

pytestmark = [pytest.mark.qemu, pytest.mark.slow]
IDS = ["instance-0", "instance-1", "instance-2"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_disk, web_dist):
    stack = make_stack(tmp_path_factory, demo_disk, web_dist, "single")
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def focus(stack) -> FocusClient:
    return FocusClient(stack.focus.url, read_token_file(stack.root / "token"))


def open_player(browser, stack):
    context = browser.new_context()
    page = open_client(context, stack)
    wait_all(page, lambda t: t["phase"] == "live", "every tile live")
    return page


@pytest.fixture(scope="module")
def player(browser, stack):
    page = open_player(browser, stack)
    yield page
    page.context.close()


@pytest.fixture(scope="module")
def second(browser, stack):
    """Another browser (its own context: storage, connections) with the player's link."""
    page = open_player(browser, stack)
    yield page
    page.context.close()


def focused(page) -> list[str]:
    return [i for i, t in tiles(page).items() if t["focused"]]


def shows(page, ids: list[str], timeout: float = 10) -> None:
    wait_until(lambda: sorted(focused(page)) == sorted(ids), timeout, f"the page showing focus {ids}")


def service(stack) -> list[str]:
    return stack.focus.get("/api/active")["active"]


def place_pointer(stack, index: int, x: int, y: int) -> None:
    """Put a guest's pointer somewhere straight over VNC (not through a browser)."""
    async def move():
        async with await rfb.RFBClient.connect("127.0.0.1", stack.guests[index].vnc_port, timeout=10) as vnc:
            await vnc.pointer(x, y)
    run_async(move())


def screen_of(page, instance: str) -> str:
    return f'.tile[data-id="{instance}"] .screen'


def test_a_page_without_the_token_watches_but_cannot_play_or_change_focus(browser, stack, focus, artifacts):
    """First in the module: no player page is open yet whose input the gateway would count too."""
    focus.set(["instance-0"])
    context = browser.new_context()
    try:
        page = open_client(context, stack, token=False)
        shown = wait_all(page, lambda t: t["phase"] == "live", "every tile live")
        assert page.text_content(".role") == "view only: watching, no input or focus changes"
        assert all(t["status"].endswith("view only") for t in shown.values())
        shows(page, ["instance-0"])
        events = sum(v for (name, _), v in stack.metrics().items() if name == "loco_stream_input_events_total")
        makes = demoguest.read_panel(stack.screen(0)).makes
        page.click(screen_of(page, "instance-1"))
        page.wait_for_selector(".toast:not([hidden])")
        assert "View only" in page.text_content(".toast")
        page.screenshot(path=artifacts / "view-only.png")
        page.keyboard.press("a")
        page.keyboard.press("Control+2")
        page.mouse.click(10, 10)
        focus.set(["instance-2"])  # focus from elsewhere is still shown
        shows(page, ["instance-2"])
        assert service(stack) == ["instance-2"]
        assert demoguest.read_panel(stack.screen(0)).makes == makes
        assert sum(v for (name, _), v in stack.metrics().items() if name == "loco_stream_input_events_total") == events
    finally:
        context.close()


def test_clicks_and_hotkeys_focus_in_the_service_and_every_page_follows(player, second, stack, focus):
    focus.clear()
    shows(player, []), shows(second, [])
    player.evaluate("""() => { window.__keys = [];
        addEventListener('keydown', (e) => __keys.push([e.key, e.defaultPrevented]), true); }""")
    player.click(screen_of(player, "instance-1"))
    wait_until(lambda: service(stack) == ["instance-1"], 10, "the click's focus in the service")
    shows(second, ["instance-1"])
    player.keyboard.press("Control+3")
    wait_until(lambda: service(stack) == ["instance-2"], 10, "Ctrl+3's focus in the service")
    shows(second, ["instance-2"])
    # Tab goes on from the focused guest (not from the first one), wrapping around.
    for expected in ("instance-0", "instance-1"):
        player.keyboard.press("Tab")
        wait_until(lambda expected=expected: service(stack) == [expected], 10, f"Tab focusing {expected}")
        shows(second, [expected])
    player.keyboard.press("Control+Equal")
    wait_until(lambda: player.eval_on_selector("#tiles", "g => g.dataset.zoom") == "1.1", 5, "zoomed in")
    player.keyboard.press("Control+Minus")
    wait_until(lambda: player.eval_on_selector("#tiles", "g => g.dataset.zoom") == "1", 5, "zoomed out")
    keys = [k for k in player.evaluate("() => __keys") if k[0] != "Control"]  # Ctrl itself goes to the guest
    assert keys == [["3", True], ["Tab", True], ["Tab", True], ["=", True], ["-", True]], keys  # no browser action
    # The command line, like the EV3 brick or a playbook: both pages follow.
    subprocess.run([sys.executable, "-m", "loco_lan.cli", "focus", "set", "instance-2", "--url", stack.focus.url,
                    "--token-file", str(stack.root / "token")], check=True, capture_output=True, timeout=30)
    shows(player, ["instance-2"]), shows(second, ["instance-2"])


def test_keys_and_clicks_play_the_focused_guest_and_follow_focus_without_a_click(player, stack, focus):
    focus.set(["instance-0"])
    wait_until(lambda: (t := tiles(player)["instance-0"])["focused"] and t["keyboard"], 10,
               "instance-0 focused, its tile holding the keyboard")
    before = demoguest.read_panel(stack.screen(0))
    player.keyboard.press("a")
    player.keyboard.press("Shift+A")
    player.keyboard.press("ArrowLeft")
    after = wait_until(lambda: (p := demoguest.read_panel(stack.screen(0))).breaks >= before.breaks + 4 and p, 10,
                       "the keys reaching instance-0")
    assert (after.makes, after.breaks) == (before.makes + 4, before.breaks + 4), (  # a, Shift, A, Left
        before.makes, after.makes, [hex(b) for b in after.log])
    # The last 8 set-1 scancode bytes: Shift+A (Shift made and broken around A), then the extended Left.
    assert after.log == (0x2A, 0x1E, 0x9E, 0xAA, 0xE0, 0x4B, 0xE0, 0xCB), [hex(b) for b in after.log]
    # A click a quarter across and half down of the picture lands there on the guest.
    box = player.locator(f"{screen_of(player, 'instance-0')} video").bounding_box()
    player.mouse.click(box["x"] + box["width"] / 4, box["y"] + box["height"] / 2)
    clicked = wait_until(lambda: (p := demoguest.read_panel(stack.screen(0))).clicks > after.clicks and p, 10,
                         "the click reaching instance-0")
    assert abs(clicked.mouse[0] - 256) <= 2 and abs(clicked.mouse[1] - 384) <= 2, clicked.mouse
    # Focus moves with a hotkey, no click: keyboard and pointer go to the newly focused guest.
    place_pointer(stack, 1, 8, 8)
    idle = wait_until(lambda: (p := demoguest.read_panel(stack.screen(1))).mouse == (8, 8) and p, 10,
                      "instance-1's pointer in its corner")
    player.keyboard.press("Control+2")
    wait_until(lambda: (t := tiles(player)["instance-1"])["focused"] and t["keyboard"] and t["target"], 10,
               "instance-1 focused and holding the keyboard")
    mouse = player.evaluate("""(sel) => { const v = document.querySelector(sel + ' video').getBoundingClientRect();
        return [v.left, v.top, v.width, v.height]; }""", screen_of(player, "instance-1"))
    pointer = (box["x"] + box["width"] / 4, box["y"] + box["height"] / 2)
    inside = mouse[0] <= pointer[0] <= mouse[0] + mouse[2] and mouse[1] <= pointer[1] <= mouse[1] + mouse[3]
    expected = ((pointer[0] - mouse[0]) / mouse[2] * 1024, (pointer[1] - mouse[1]) / mouse[3] * 768) if inside \
        else (512, 384)
    snapped = wait_until(lambda: (p := demoguest.read_panel(stack.screen(1))).mouse != idle.mouse and p, 10,
                         "instance-1's pointer snapped under the player's")
    print(f"pointer snapped to {snapped.mouse} (expected {tuple(round(v) for v in expected)}, "
          f"{'over the tile' if inside else 'off the tile: centre'})")
    assert abs(snapped.mouse[0] - expected[0]) <= 3 and abs(snapped.mouse[1] - expected[1]) <= 3
    zero = demoguest.read_panel(stack.screen(0)).makes
    player.keyboard.press("b")
    typed = wait_until(lambda: (p := demoguest.read_panel(stack.screen(1))).makes > idle.makes and p, 10,
                       "the next key reaching instance-1")
    assert typed.log[-2:] == (0x30, 0xB0)  # b
    assert demoguest.read_panel(stack.screen(0)).makes == zero
    # A key held while the window loses focus is released on the guest.
    player.keyboard.down("c")
    wait_until(lambda: demoguest.read_panel(stack.screen(1)).makes == typed.makes + 1, 10, "c held")
    player.evaluate("() => dispatchEvent(new FocusEvent('blur'))")
    released = wait_until(lambda: (p := demoguest.read_panel(stack.screen(1))).breaks == typed.breaks + 1 and p, 10,
                          "c released on blur")
    player.keyboard.up("c")
    assert released.log[-1] == 0xAE
    assert demoguest.read_panel(stack.screen(1)).breaks == typed.breaks + 1  # released once


FOCUS_SEEN = """(ids) => {
  const key = JSON.stringify([...ids].sort());
  return window.__seen[key];
}"""
WATCH_FOCUS = """() => {
  window.__seen = {};
  const record = () => {
    const ids = [...document.querySelectorAll('.tile[data-focused="true"]')].map((t) => t.dataset.id).sort();
    const key = JSON.stringify(ids);
    window.__seen[key] = window.__seen[key] || [];
    window.__seen[key].push(Date.now());
  };
  new MutationObserver(record).observe(document.getElementById('tiles'),
    { attributes: true, subtree: true, attributeFilter: ['data-focused'] });
}"""


def test_full_screen_locks_the_keyboard_so_ctrl_digits_reach_the_page(player, stack, focus, artifacts):
    """Outside full screen Chromium keeps Ctrl+1..9 for its tabs whatever the page does; with the
    keyboard locked (Keyboard Lock API, full screen only) they are the page's."""
    player.click(".fullscreen")
    wait_until(lambda: player.text_content(".fullscreen") == "Leave full screen · keys locked", 10,
               "full screen with the keys locked")
    assert player.evaluate("() => document.fullscreenElement === document.documentElement")
    player.screenshot(path=artifacts / "fullscreen.png")
    player.keyboard.press("Control+1")
    wait_until(lambda: service(stack) == ["instance-0"], 10, "Ctrl+1's focus in the service, in full screen")
    player.click(".fullscreen")
    wait_until(lambda: player.text_content(".fullscreen") == "Full screen", 10, "full screen left")


def test_the_vr_link_opens_the_scene_with_the_players_token(player, stack):
    page = open_client(player.context, stack)
    try:
        page.click(".vr-link")
        state = wait_until(lambda: (s := page.evaluate("() => window.locoVR?.state()")) and
                           all(screen["frames"] > 0 for screen in s["screens"]) and s, 60, "every screen drawing")
        assert [screen["id"] for screen in state["screens"]] == IDS
        assert all("view only" not in screen["status"] for screen in state["screens"])  # the token came along
    finally:
        page.close()


def switch_50_times(pages, focus, plan) -> list[float]:
    """50 focus changes through the API, each waited for on every page; the delays from the request
    to each page showing it, in ms (the pages' clock and this one are the same machine's)."""
    delays = []
    for page in pages:
        page.evaluate(WATCH_FOCUS)
    for n in range(50):
        ids = plan(n)
        asked = time.time()
        focus.set(ids)
        for page in pages:
            seen = wait_until(lambda page=page, ids=ids, asked=asked: [
                t for t in page.evaluate(FOCUS_SEEN, ids) or [] if t / 1000 >= asked - 0.001], 10, f"focus {ids} shown")
            delays.append(seen[0] - asked * 1000)
    return delays


def freezes(page) -> dict[str, int]:
    """Each tile's freezeCount as its stats say (-1 while they show none)."""
    counts = {}
    for instance in IDS:
        match = re.search(r"(\d+) freezes", page.text_content(f'.tile[data-id="{instance}"] .stats') or "")
        counts[instance] = int(match.group(1)) if match else -1
    return counts


def test_fifty_focus_switches_in_single_and_multi_focus_keep_every_tile_decoding(player, second, stack, focus):
    focus.clear()  # the first switch must be a change, whatever an earlier test focused
    player.click(".stats-toggle")
    for page in (player, second):
        count_frames(page)
    wait_until(lambda: all(c["count"] > 10 for p in (player, second) for c in frames(p).values()), 30,
               "frames counted on every tile")
    rounds = {"single": lambda n: [IDS[n % 3]], "multi": lambda n: [IDS[n % 3], IDS[(n + 1) % 3]]}
    for mode, plan in rounds.items():
        if mode == "multi":
            stack.focus.stop()
            stack.focus.args[stack.focus.args.index("--mode") + 1] = "multi"
            stack.focus.start()
            for page in (player, second):
                wait_until(lambda page=page: page.text_content(".mode").startswith("multi focus"), 20,
                           "the page in multi focus")
        for page in (player, second):
            reset_gaps(page)
        started = time.monotonic()
        delays = switch_50_times([player, second], focus, plan)
        took = time.monotonic() - started
        gaps = {f"{name}:{i}": round(c["maxGap"]) for name, p in (("first", player), ("second", second))
                for i, c in frames(p).items()}
        wait_until(lambda: all(v >= 0 for v in freezes(player).values()), 10, "stats shown")
        print(f"{mode} focus: 50 switches in {took:.1f} s; shown on both pages after "
              f"p50 {statistics.median(delays):.0f} ms, max {max(delays):.0f} ms; longest wait between decoded "
              f"frames per tile (ms): {gaps}; freezeCount: {freezes(player)}")
        assert all(gap < 1000 for gap in gaps.values()), gaps
    assert all(t["phase"] == "live" for p in (player, second) for t in tiles(p).values())
    # Multi focus: the focused guests' sound at full volume, the other at the ambient level (0.2).
    last = rounds["multi"](49)
    shown = tiles(player)
    assert {i: t["volume"] for i, t in shown.items()} == {i: 1 if i in last else 0.2 for i in IDS}
