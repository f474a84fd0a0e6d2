"""Fan-out rules with fake sockets: closed and stuck clients are dropped, never awaited."""

import asyncio
import json

import pytest

from loco_lan.focus.service import SLOW_CLIENT_BYTES, FocusService, text_frame
from loco_lan.focus.state import Catalog, FocusState


class FakeTransport:
    def __init__(self, backlog=0, closing=False):
        self.backlog = backlog
        self.closing = closing
        self.aborted = False
        self.frames = []

    def write(self, frame):
        header = {126: 4, 127: 10}.get(frame[1], 2)  # extended payload lengths follow byte 1
        self.frames.append(json.loads(frame[header:]))

    def get_write_buffer_size(self):
        return self.backlog

    def is_closing(self):
        return self.closing

    def abort(self):
        self.aborted = True


class FakeSocket:
    closed = False


def test_broadcast_skips_closed_and_drops_stuck_clients(tmp_path):
    (tmp_path / "instances.json").write_text('[{"id": "instance-0"}]')
    state = FocusState(tmp_path / "active.json", Catalog(tmp_path / "instances.json"))
    service = FocusService(state)
    healthy, closed, stuck = FakeSocket(), FakeSocket(), FakeSocket()
    transports = FakeTransport(), FakeTransport(closing=True), FakeTransport(backlog=SLOW_CLIENT_BYTES + 1)
    stuck_transport = transports[2]
    service.clients = dict(zip((healthy, closed, stuck), transports, strict=True))
    state.change(("instance-0",))
    service._broadcast()
    assert transports[0].frames[0]["active"] == ["instance-0"]
    assert transports[1].frames == [] and stuck_transport.frames == []
    assert stuck_transport.aborted and service.dropped_clients == 1
    assert list(service.clients) == [healthy]


def test_failed_save_restores_the_previous_focus_and_answers_503(tmp_path):
    from aiohttp.test_utils import TestClient, TestServer

    from loco_lan.errors import LocoError

    (tmp_path / "instances.json").write_text('[{"id": "instance-0"}, {"id": "instance-1"}]')
    state = FocusState(tmp_path / "active.json", Catalog(tmp_path / "instances.json"))
    service = FocusService(state, token="t")
    auth = {"Authorization": "Bearer t"}

    async def scenario():
        async with TestClient(TestServer(service.app())) as http:
            ws = await http.ws_connect("/active")
            await ws.receive_json()
            assert (await http.post("/api/active", json={"ids": ["instance-0"]}, headers=auth)).status == 200

            def disk_full():
                raise LocoError("cannot save focus state to active.json: No space left on device")

            state.save = disk_full
            failed = await http.post("/api/active", json={"ids": ["instance-1"]}, headers=auth)
            events = [await ws.receive_json() for _ in range(3)]
            current = await (await http.get("/api/active")).json()
            await ws.close()
            return failed.status, await failed.json(), events, current

    status, answer, events, current = asyncio.run(scenario())
    assert (status, answer["error"]) == (
        503,
        "cannot save focus state to active.json: No space left on device",
    )
    assert [(e["seq"], e["active"]) for e in events] == [
        (1, ["instance-0"]),
        (2, ["instance-1"]),
        (3, ["instance-0"]),
    ]
    assert (current["seq"], current["active"]) == (3, ["instance-0"])
    assert service.changes == 1



@pytest.mark.parametrize(("size", "header"), [(0, "8100"), (125, "817d"), (126, "817e007e"),
                                              (65535, "817effff"), (65536, "817f0000000000010000")])
def test_broadcast_frames_are_final_unmasked_text_frames(size, header):
    payload = b"x" * size
    assert text_frame(payload) == bytes.fromhex(header) + payload
