"""The gateway's pure parts: damage boxes, TURN credentials, vncUrl parsing, held keys."""

import asyncio
import base64
import hashlib
import hmac
from types import SimpleNamespace

import pytest

from loco_lan.errors import LocoError
from loco_lan.stream import protocol
from loco_lan.stream.gateway import turn_credentials, vnc_address, with_turn_credentials
from loco_lan.stream.guest import Guest, GuestSettings
from loco_lan.stream.media import YuvCanvas, damaged_box


def rect(x, y, w, h):
    return SimpleNamespace(x=x, y=y, width=w, height=h)


def test_the_damaged_box_covers_every_change_on_even_pixels_inside_the_screen():
    assert damaged_box([], 1024, 768) is None
    assert damaged_box([rect(11, 21, 5, 5), rect(100, 3, 1, 1)], 1024, 768) == (10, 2, 102, 26)
    assert damaged_box([rect(1020, 760, 50, 50)], 1024, 768) == (1020, 760, 1024, 768)
    assert damaged_box([rect(0, 0, 719, 399)], 720, 400) == (0, 0, 720, 400)


def test_a_converted_piece_matches_the_same_piece_of_a_whole_frame():
    """No seams where a damaged box meets the rest: the same values, give or take swscale's rounding."""
    import numpy as np

    rng = np.random.default_rng(7)
    screen = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    whole, pieces = YuvCanvas(128, 96), YuvCanvas(128, 96)
    whole.paint(screen, 0, 0)
    for y0, x0 in ((0, 0), (0, 64), (48, 0), (48, 64)):
        pieces.paint(screen[y0 : y0 + 48, x0 : x0 + 64], x0, y0)
    assert np.abs(whole.planes.astype(int) - pieces.planes.astype(int)).max() <= 1


def test_odd_sizes_get_even_planes():
    canvas = YuvCanvas(721, 402)
    assert (canvas.width, canvas.height) == (722, 404) and canvas.frame().format.name == "yuv420p"


def test_turn_credentials_are_coturns_rest_api_ones():
    username, password = turn_credentials("s3cret", 600, now=1000)
    assert username == "1600:loco"
    assert password == base64.b64encode(hmac.new(b"s3cret", b"1600:loco", hashlib.sha1).digest()).decode()


def test_only_turn_servers_without_credentials_get_some():
    config = {"iceServers": [{"urls": "stun:stun.example:3478"}, {"urls": ["turn:t.example:3478"]},
                             {"urls": "turns:t.example:5349", "username": "u", "credential": "c"}]}
    handed = with_turn_credentials(config, "s", 60)["iceServers"]
    assert "username" not in handed[0] and handed[1]["username"].endswith(":loco")
    assert handed[2] == config["iceServers"][2]
    assert with_turn_credentials(config, None, 60) == config


POD_DNS = "loco-emulator-0.loco-emulator.loco.svc.cluster.local"


@pytest.mark.parametrize(("url", "address"), [
    (f"{POD_DNS}:5901", (POD_DNS, 5901)),
    ("127.0.0.1:15901", ("127.0.0.1", 15901)), ("[::1]:5901", ("::1", 5901)), ("vnc://host:5900/", ("host", 5900)),
])
def test_vnc_urls(url, address):
    assert vnc_address({"id": "i", "vncUrl": url}) == address


def test_a_vnc_url_without_a_port_is_named():
    with pytest.raises(LocoError, match="instance 'instance-3': vncUrl 'host' is not host:port"):
        vnc_address({"id": "instance-3", "vncUrl": "host"})


class RecordingSession:
    """Stands in for the guest's RFB session: records the key events the guest would get."""

    def __init__(self):
        self.keys = []

    async def key(self, keysym, down):
        self.keys.append((keysym, down))


def test_a_key_pressed_again_by_a_redial_outlives_the_old_stream():
    guest = Guest("instance-0", "127.0.0.1", 5900, GuestSettings(), executor=None)
    guest._session, guest.width = RecordingSession(), 1024
    old, new = set(), set()
    shift, a = 0xFFE1, 0x41

    async def play():
        await guest.send(protocol.Key(True, shift), old)  # Shift down on the stream being replaced
        await guest.send(protocol.Key(True, shift), new)  # the redial presses it again
        await guest.release(old)  # the old stream closes: Shift stays down under the new one
        for event in (protocol.Key(True, a), protocol.Key(False, a), protocol.Key(False, shift)):
            await guest.send(event, new)
        await guest.release(new)  # nothing left to let go

    asyncio.run(play())
    assert guest._session.keys == [(shift, True), (shift, True), (a, True), (a, False), (shift, False)]
