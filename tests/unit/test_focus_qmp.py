"""The QMP client against a scripted monitor on a unix socket (protocol corner cases)."""

import asyncio
import json

import pytest

from loco_lan import qmp


def run_with_monitor(tmp_path, replies, command):
    """Serve a greeting, then answer each request with the scripted messages (ids filled in)."""
    path = str(tmp_path / "qmp.sock")
    seen = []

    async def monitor(reader, writer):
        writer.write(json.dumps(replies[0]).encode() + b"\n")
        for script in replies[1:]:
            line = await reader.readline()
            if not line:
                break
            request = json.loads(line)
            seen.append(request["execute"])
            for message in script:
                if "return" in message or "error" in message:
                    message = {**message, "id": request["id"]}
                writer.write(json.dumps(message).encode() + b"\n")
        await writer.drain()
        writer.close()

    async def scenario():
        server = await asyncio.start_unix_server(monitor, path)
        async with server:
            return await qmp.run(path, command, timeout=2)

    return asyncio.run(scenario()), seen


GREETING = {"QMP": {"version": {}, "capabilities": []}}


def test_events_between_request_and_reply_are_skipped(tmp_path):
    result, seen = run_with_monitor(
        tmp_path,
        [
            GREETING,
            [{"return": {}}],
            [{"event": "STOP"}, {"return": {"status": "paused", "running": False}}],
        ],
        "query-status",
    )
    assert result == {"status": "paused", "running": False}
    assert seen == ["qmp_capabilities", "query-status"]


def test_error_reply_becomes_a_loco_error(tmp_path):
    with pytest.raises(qmp.QmpError, match="CommandNotFound: no such thing"):
        run_with_monitor(
            tmp_path,
            [GREETING, [{"return": {}}], [{"error": {"class": "CommandNotFound", "desc": "no such thing"}}]],
            "bogus",
        )


def test_not_a_monitor_and_no_socket(tmp_path):
    with pytest.raises(qmp.QmpError, match="not a QMP monitor"):
        run_with_monitor(tmp_path, [{"hello": 1}], "stop")
    with pytest.raises(qmp.QmpError, match="cannot reach"):
        asyncio.run(qmp.run(str(tmp_path / "absent.sock"), "stop"))
