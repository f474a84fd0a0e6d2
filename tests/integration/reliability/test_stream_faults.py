"""Faults around the streaming gateway, seen from a real page in headless Chromium: a guest's QEMU
killed while the page streams it, and malformed offers. One guest, one browser for the module."""

import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from streamstack import StreamStack, launch_chromium, wait_until

pytestmark = [pytest.mark.qemu, pytest.mark.slow]
HARNESS = Path(__file__).parents[1] / "stream" / "harness"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_disk):
    stack = StreamStack(tmp_path_factory.mktemp("reliability-stream"), demo_disk, count=1, web_root=HARNESS)
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def page(stack):
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_context().new_page()
        page.goto(stack.gateway.url + "/")
        yield page
        browser.close()


def info(page) -> dict:
    return page.evaluate("() => harness.info('k')")


def frames_grow(page, more: int, timeout: float) -> dict:
    start = info(page)["frames"]
    return wait_until(lambda: (i := info(page))["frames"] >= start + more and i, timeout, f"{more} more frames")


def test_guest_killed_mid_stream(stack, page, row):
    """guest (QEMU and its entrypoint) killed with SIGKILL mid-stream"""
    instances = (stack.config / "instances.json").read_bytes()
    assert page.evaluate("() => harness.connect('k', 'instance-0', {})") is False  # watching, no token
    frames_grow(page, 10, 60)
    guest = stack.guests[0]
    os.killpg(guest.process.pid, signal.SIGKILL)
    guest.process.wait(10)
    told = wait_until(lambda: (s := info(page)["state"]) and s.get("connected") is False and s, 30,
                      "the page told the guest is gone")
    gateway_view = wait_until(
        lambda: (i := stack.gateway.get("/api/instances")["instances"][0]["stream"])["state"] != "live" and i,
        30, "the gateway reporting the guest down")
    assert info(page)["connection"] == "connected"  # the peer connection stays up meanwhile
    guest.start()
    guest.wait_healthy()
    resumed = frames_grow(page, 10, 90)
    assert resumed["connection"] == "connected" and resumed["state"]["connected"] is True
    assert (stack.config / "instances.json").read_bytes() == instances
    row.saw = (f"page: state connected={told['connected']}, frames stop; /api/instances: "
               f"{gateway_view['state']} ({(gateway_view['error'] or '')[:40]}); frames resume once it is back")
    row.kept = "the page's peer connection (no reload), instances.json"


def post(url: str, data: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_malformed_offers_to_the_gateway(stack, page, row):
    """malformed offers to the gateway (bad SDP, not JSON, wrong type, 300 kB, unknown guest)"""
    page.evaluate("() => harness.connect('k', 'instance-0', {})")
    frames_grow(page, 5, 60)
    offer = stack.gateway.url + "/stream/instance-0/offer"
    answers = [
        post(offer, b'{"sdp": "this is no SDP", "type": "offer"}'),
        post(offer, b"{not json"),
        post(offer, b"sdp=1", "application/x-www-form-urlencoded"),
        post(offer, b'{"sdp": "' + b"x" * 300_000 + b'"}'),
        post(stack.gateway.url + "/stream/instance-9/offer", b'{"sdp": "v=0", "type": "offer"}'),
    ]
    assert [status for status, _ in answers] == [400, 400, 415, 413, 404]
    assert all(body.get("error") for _, body in answers)
    frames_grow(page, 10, 30)
    assert info(page)["connection"] == "connected"
    first = answers[0][1]["error"][:30]
    row.saw = "HTTP " + ", ".join(str(s) for s, _ in answers) + f", each with an error line ({first}...)"
    row.kept = "the viewer already streaming keeps its frames"
