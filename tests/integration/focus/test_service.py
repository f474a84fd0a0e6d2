"""The focus service as a real process on loopback, driven by real HTTP and WebSocket clients."""

import asyncio
import json
import socket
import urllib.request

import aiohttp
import pytest


def test_fifty_websocket_clients_see_every_change_in_order(focus_service):
    service = focus_service("--mode", "multi", "--max-active", "3")
    auth = service.auth
    steps = [
        ("", {"ids": ["instance-1"]}),
        ("/add", {"id": "instance-3"}),
        ("/add", {"ids": ["instance-0"]}),
        ("/remove", {"id": "instance-1"}),
        ("", {"ids": []}),
        ("/add", {"id": "instance-2"}),
    ] * 5

    async def scenario():
        async with aiohttp.ClientSession() as session:
            sockets = [await session.ws_connect(service.url + "/active") for _ in range(50)]
            first = [json.loads((await ws.receive()).data) for ws in sockets]
            accepted = []
            for path, body in steps:
                async with session.post(
                    service.url + "/api/active" + path, json=body, headers=auth
                ) as response:
                    assert response.status == 200, await response.text()
                    answer = await response.json()
                    assert answer.pop("changed")
                    accepted.append(answer)
            seen = []
            for ws in sockets:
                messages = [json.loads((await asyncio.wait_for(ws.receive(), 10)).data) for _ in accepted]
                seen.append(messages)
                await ws.close()
            return first, accepted, seen

    first, accepted, seen = asyncio.run(scenario())
    assert all(doc == {"active": [], "focus": [], "seq": 0, "mode": "multi", "maxActive": 3} for doc in first)
    assert [doc["seq"] for doc in accepted] == list(range(1, len(steps) + 1))
    assert accepted[2]["focus"] == [
        {"id": "instance-1", "index": 1, "hotkey": "Ctrl+2"},
        {"id": "instance-3", "index": 3, "hotkey": "Ctrl+4"},
        {"id": "instance-0", "index": 0, "hotkey": "Ctrl+1"},
    ]
    for messages in seen:
        assert messages == accepted  # every change, in order, exactly as the writer was told


def test_restart_keeps_the_focus(focus_service, focus_dir):
    service = focus_service("--mode", "multi")
    service.post("/api/active", {"ids": ["instance-2", "instance-0"]})
    assert service.stop() == 0
    assert json.loads((focus_dir / "state" / "active.json").read_text()) == {
        "active": ["instance-2", "instance-0"],
        "seq": 1,
    }
    service.start()
    document = service.get()
    assert (document["active"], document["seq"]) == (["instance-2", "instance-0"], 1)
    assert service.post("/api/active/add", {"id": "instance-1"})["seq"] == 2


def raw_post(port: int, head: str, body_size: int) -> tuple[int, bytes]:
    """POST ``body_size`` zero bytes; the answer's status even if the server stops reading early."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.format(size=body_size).encode())
        chunk = b"\0" * 65536
        try:
            for _ in range(body_size // len(chunk)):
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the service answered and hung up without swallowing 10 MB: fine
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                data = sock.recv(4096)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
    return int(answer.split(b" ")[1]), answer


def test_bad_requests_get_4xx_and_change_nothing(focus_service, focus_dir):
    service = focus_service("--mode", "single")
    auth, token = service.auth, service.token
    service.post("/api/active", {"ids": ["instance-1"]})
    saved = (focus_dir / "state" / "active.json").read_bytes()
    cases = [
        ("unknown id", "/api/active", auth, json.dumps({"ids": ["instance-42"]}), 400),
        (
            "two ids in single mode",
            "/api/active",
            auth,
            json.dumps({"ids": ["instance-0", "instance-2"]}),
            400,
        ),
        ("no token", "/api/active", {}, json.dumps({"ids": ["instance-0"]}), 401),
        (
            "wrong token",
            "/api/active",
            {"Authorization": "Bearer nope"},
            json.dumps({"ids": ["instance-0"]}),
            401,
        ),
        ("basic auth", "/api/active", {"Authorization": "Basic Zm9vOmJhcg=="}, "{}", 401),
        ("malformed JSON", "/api/active", auth, '{"ids": ["instance-0"', 400),
        ("not an object", "/api/active", auth, '["instance-0"]', 400),
        ("ids not a list", "/api/active", auth, '{"ids": "instance-0"}', 400),
        ("ids not strings", "/api/active", auth, '{"ids": [0]}', 400),
        ("no ids", "/api/active", auth, '{"id": "instance-0"}', 400),
        ("add unknown", "/api/active/add", auth, '{"id": "instance-9"}', 400),
        ("remove garbage", "/api/active/remove", auth, '{"id": {"x": 1}}', 400),
        ("binary", "/api/active", auth, b"\xff\xfe\x00", 400),
        ("deeply nested", "/api/active", auth, "[" * 60000, 400),
    ]

    async def scenario():
        async with aiohttp.ClientSession() as session, session.ws_connect(service.url + "/active") as ws:
            await ws.receive()
            answers = []
            for name, path, headers, body, _ in cases:
                async with session.post(service.url + path, data=body, headers=headers) as response:
                    answers.append((name, response.status, await response.json()))
            async with session.put(service.url + "/api/active", data="{}", headers=auth) as response:
                answers.append(("PUT", response.status, await response.json()))
            async with session.get(service.url + "/api/nothing") as response:
                answers.append(("404", response.status, await response.json()))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.receive(), 0.5)  # nothing was broadcast
            return answers

    answers = asyncio.run(scenario())
    for (name, status, answer), case in zip(answers, cases, strict=False):
        assert status == case[4], (name, answer)
        assert answer["error"], name
    assert answers[0][2]["valid"] == ["instance-0", "instance-1", "instance-2", "instance-3"]
    assert [a[1] for a in answers[-2:]] == [405, 404]

    head = (
        "POST /api/active HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: {size}\r\n" + "Authorization: Bearer " + token + "\r\n\r\n"
    )
    status, _ = raw_post(service.port, head, 10 * 1024 * 1024)
    assert status == 413
    status, _ = raw_post(service.port, head.replace(token, "wrong"), 10 * 1024 * 1024)
    assert status == 401  # refused before a byte of the body is read
    chunked = (
        "POST /api/active HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        "Authorization: Bearer " + token + "\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(chunked.encode())
        try:
            for _ in range(160):
                sock.sendall(b"10000\r\n" + b"\0" * 0x10000 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert b" 413 " in sock.recv(4096).split(b"\r\n")[0] + b" "

    document = service.get()
    assert (document["active"], document["seq"]) == (["instance-1"], 1)
    assert (focus_dir / "state" / "active.json").read_bytes() == saved
    with urllib.request.urlopen(service.url + "/metrics") as response:
        metrics = response.read().decode()
    assert 'loco_focus_http_responses_total{code="500"}' not in metrics
    assert "loco_focus_changes_total 1" in metrics


def test_cors_health_and_instances(focus_service):
    service = focus_service("--cors-origin", "http://tiles.example")

    async def scenario():
        async with aiohttp.ClientSession() as session:
            preflight = {"Origin": "http://tiles.example", "Access-Control-Request-Method": "POST"}
            async with session.options(service.url + "/api/active", headers=preflight) as allowed:
                allowed_headers = dict(allowed.headers)
                allowed_status = allowed.status
            async with session.options(
                service.url + "/api/active", headers={**preflight, "Origin": "http://evil.example"}
            ) as denied:
                denied_status, denied_headers = denied.status, dict(denied.headers)
            async with session.get(
                service.url + "/api/active", headers={"Origin": "http://tiles.example"}
            ) as got:
                got_origin = got.headers.get("Access-Control-Allow-Origin")
            async with session.get(service.url + "/healthz") as health:
                healthz = await health.json()
            async with session.get(service.url + "/api/instances") as listing:
                instances = await listing.json()
            return (
                allowed_status,
                allowed_headers,
                denied_status,
                denied_headers,
                got_origin,
                healthz,
                instances,
            )

    allowed_status, allowed, denied_status, denied, got_origin, healthz, instances = asyncio.run(scenario())
    assert allowed_status == 204
    assert allowed["Access-Control-Allow-Origin"] == "http://tiles.example"
    assert "Authorization" in allowed["Access-Control-Allow-Headers"]
    assert denied_status == 403 and "Access-Control-Allow-Origin" not in denied
    assert got_origin == "http://tiles.example"
    assert healthz == {"status": "ok", "seq": 0, "quota": "none"}
    assert instances["instances"][3] == {"id": "instance-3", "index": 3, "hotkey": "Ctrl+4"}
