import socket
import threading
import time

import pytest

from loco_lan.liveaccess import LiveConfig
from loco_lan.netutil import accepting, bindable, ephemeral_range, free_port, wait_accepting, wait_listening


def test_a_listener_makes_a_port_unbindable_and_accepting():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert not bindable(port)
        assert accepting(port)
    assert bindable(port)
    assert not accepting(port)


def test_time_wait_does_not_count_as_taken():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.close()  # the server side closes first, so its port sits in TIME_WAIT
        client.close()
    assert bindable(port)


def test_wait_accepting_returns_the_ports_still_closed():
    late, never = free_port(), free_port()
    servers = []

    def listen_later():
        time.sleep(0.5)
        servers.append(socket.create_server(("127.0.0.1", late)))

    threading.Thread(target=listen_later, daemon=True).start()
    assert wait_accepting([late, never], "127.0.0.1", timeout=3) == [never]
    servers[0].close()


def test_wait_accepting_stops_when_its_process_dies():
    checks = []

    def alive():
        checks.append(1)
        return len(checks) < 3

    port = free_port()
    assert wait_accepting([port], "127.0.0.1", timeout=3600, alive=alive) == [port]
    assert len(checks) == 3


def test_wait_listening_never_connects():
    never = free_port()
    with socket.create_server(("127.0.0.1", 0)) as server:
        assert wait_listening([server.getsockname()[1], never], "127.0.0.1", timeout=0.5) == [never]
        server.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing knocked: a port-forward would have dialled its pod
            server.accept()


def test_ephemeral_range_is_ordered():
    low, high = ephemeral_range()
    assert 1024 <= low < high <= 65535


def test_live_forwards_put_every_vnc_port_first():
    config = LiveConfig(namespace="loco", vnc_base_port=15901, health_base_port=18080)
    assert config.forwards(2) == [("loco-emulator-0", 15901, 5901), ("loco-emulator-1", 15902, 5901),
                                  ("loco-emulator-0", 18080, 8080), ("loco-emulator-1", 18081, 8080)]
