"""Faults around the focus service (a real ``loco focus serve`` process): killed in the middle of a
burst of changes, and fed malformed requests and files. ``active.json`` must always hold the last
acknowledged focus, whole, and the instance list must never be touched."""

import json
import threading
import urllib.error
import urllib.request

import pytest
from streamstack import Service, wait_until

from loco_lan.netutil import free_port

pytestmark = pytest.mark.slow
TOKEN = "reliability-token"
IDS = [f"instance-{i}" for i in range(4)]


@pytest.fixture
def focus(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "instances.json").write_text(json.dumps([{"id": i} for i in IDS]))
    (tmp_path / "token").write_text(TOKEN + "\n")
    service = Service("focus service", [
        "focus", "serve", "--instances", str(config / "instances.json"), "--state-dir", str(tmp_path / "state"),
        "--port", str(free_port()), "--token-file", str(tmp_path / "token"), "--mode", "multi", "--max-active", "2",
    ], 0, tmp_path / "focus.log")
    service.port = int(service.args[service.args.index("--port") + 1])
    service.state = tmp_path / "state" / "active.json"
    service.instances = config / "instances.json"
    yield service.start()
    service.stop()


def post(url: str, body, token: str | None = TOKEN) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_focus_service_killed_during_a_burst_of_changes(focus, row):
    """focus service killed during a burst of changes"""
    instances_before = focus.instances.read_bytes()
    acknowledged: list[dict] = []
    failures: list[str] = []
    stop = threading.Event()

    def burst():
        n = 0
        while not stop.is_set() and n < 5000:
            ids = [IDS[n % 4], IDS[(n + 1) % 4]]
            n += 1
            try:
                status, body = post(focus.url + "/api/active", {"ids": ids})
            except OSError as exc:  # the process is gone: what a client of a dead service gets
                failures.append(type(getattr(exc, "reason", exc)).__name__)
                return
            if status == 200:
                acknowledged.append(body)

    writer = threading.Thread(target=burst)
    writer.start()
    wait_until(lambda: len(acknowledged) >= 50, 30, "50 acknowledged focus changes")
    focus.kill()
    stop.set()
    writer.join(30)
    last = acknowledged[-1]

    saved = json.loads(focus.state.read_text())  # whole JSON: a torn write would not parse
    # Every acknowledged change was saved before its answer, so the file holds the last one or a
    # later one that was saved but whose answer the kill cut off.
    assert saved["seq"] >= last["seq"] and len(saved["active"]) == 2
    assert saved["seq"] > last["seq"] or saved["active"] == last["active"]
    assert focus.instances.read_bytes() == instances_before
    focus.start()
    after = focus.get("/api/active")
    assert (after["active"], after["seq"]) == (saved["active"], saved["seq"])
    row.saw = (f"{len(acknowledged)} changes acknowledged, then the writer got {failures[0] if failures else 'no'}"
               f" error; after a restart GET /api/active answers seq {after['seq']}")
    row.kept = f"active.json whole with the last acknowledged focus (seq {saved['seq']}); instances.json untouched"


@pytest.mark.parametrize(("body", "token", "status"), [
    (b"{not json", TOKEN, 400),
    (b"[1, 2]", TOKEN, 400),
    ({"ids": "instance-0"}, TOKEN, 400),
    ({"ids": ["no-such-guest"]}, TOKEN, 400),
    ({"ids": IDS[:3]}, TOKEN, 400),
    ({"ids": IDS[:1]}, "wrong", 401),
    (b"[" * 100000, TOKEN, 413),
], ids=["not-json", "not-an-object", "ids-not-a-list", "unknown-id", "over-the-limit", "wrong-token", "huge"])
def test_malformed_focus_requests(focus, row, body, token, status):
    """malformed request to the focus service:"""
    ok, before = post(focus.url + "/api/active", {"ids": IDS[:1]})
    saved = focus.state.read_bytes()
    got, answer = post(focus.url + "/api/active", body, token)
    assert got == status and answer["error"]
    assert focus.state.read_bytes() == saved and focus.get("/api/active")["seq"] == before["seq"]
    row.fault += " " + row_id(body)
    row.saw = f"HTTP {got}: {answer['error'][:70]}"
    row.kept = "active.json and the focus unchanged"


def row_id(body) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw[:30].decode(errors="replace") + ("..." if len(raw) > 30 else "")


def test_malformed_instances_file_while_running(focus, row):
    """instances.json replaced by a malformed one while the focus service runs"""
    post(focus.url + "/api/active", {"ids": IDS[:2]})
    saved = focus.state.read_bytes()
    focus.instances.write_text('[{"id": "instance-0"}, {"nope": 1}')
    status, answer = post(focus.url + "/api/active", {"ids": IDS[2:4]})
    assert status == 200, answer  # the last good instance list still answers
    assert json.loads(focus.state.read_text())["active"] == IDS[2:4] and saved != focus.state.read_bytes()
    row.saw = "the service logs 'keeping the previous instance list' and goes on serving"
    row.kept = "the previous instance list (in memory), active.json valid"
    assert "keeping the previous instance list" in focus.log.read_text()


def test_malformed_active_file_at_start(focus, row):
    """active.json corrupted while the focus service was down"""
    focus.stop()
    focus.state.parent.mkdir(exist_ok=True)
    focus.state.write_text('{"active": ["instance-0", ')
    focus.start()
    assert focus.get("/api/active")["active"] == []
    assert "ignoring unreadable focus state" in focus.log.read_text()
    row.saw = "the service starts with nothing focused and logs why ('ignoring unreadable focus state')"
    row.kept = "instances.json; the next change writes a whole active.json again"
    post(focus.url + "/api/active", {"ids": IDS[:1]})
    assert json.loads(focus.state.read_text())["active"] == IDS[:1]
