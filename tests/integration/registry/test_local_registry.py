"""LocalRegistry.ensure: one registry per state directory, back on its old port after a crash."""

import os
import signal
import socket
import time

from loco_lan.localregistry import LocalRegistry


def crash(registry: LocalRegistry) -> None:
    os.kill(registry.pid, signal.SIGKILL)  # state.json stays behind, as after a reboot
    deadline = time.monotonic() + 10
    while registry.running and time.monotonic() < deadline:
        time.sleep(0.05)


def test_ensure_starts_once_and_comes_back_on_the_same_port(tmp_path):
    first, started = LocalRegistry.ensure(tmp_path)
    try:
        assert started
        again, started_again = LocalRegistry.ensure(tmp_path)
        assert (started_again, again.port, again.pid) == (False, first.port, first.pid)
        crash(first)
        back, restarted = LocalRegistry.ensure(tmp_path)
        assert restarted and back.port == first.port and back.pid != first.pid
    finally:
        LocalRegistry.load(tmp_path).stop()


def test_a_taken_old_port_gives_way_to_a_free_one(tmp_path):
    first, _ = LocalRegistry.ensure(tmp_path)
    crash(first)
    with socket.create_server(("127.0.0.1", first.port)):
        moved, started = LocalRegistry.ensure(tmp_path)
        try:
            assert started and moved.port != first.port and moved.running
        finally:
            moved.stop()
