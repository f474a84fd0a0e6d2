"""Local TCP ports: picking a free one, asking whether one could be listened on,
and waiting for a listener.  One home for the local cluster, the registry, the
local emulators, port-forwards and live access."""

import socket
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port the kernel has free right now (from its ephemeral range)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def bindable(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could listen on ``port`` now.  Like QEMU and Go servers, reuse
    an address left in TIME_WAIT, so only a real listener or connection counts."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def accepting(port: int, host: str = LOOPBACK, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_accepting(ports: list[int], host: str, timeout: float, alive=lambda: True) -> list[int]:
    """Wait until every port accepts connections; the ones that still do not at
    ``timeout`` (or when ``alive()`` turns false) are returned."""
    return _wait_until(lambda port: accepting(port, host), ports, timeout, alive)


def wait_listening(ports: list[int], host: str, timeout: float, alive=lambda: True) -> list[int]:
    """As ``wait_accepting``, but without connecting: a port counts once it cannot be bound any
    more.  For listeners where a connection is not free, such as a port-forward, which
    dials its pod for each one."""
    return _wait_until(lambda port: not bindable(port, host), ports, timeout, alive)


def _wait_until(ready, ports: list[int], timeout: float, alive) -> list[int]:
    deadline = time.monotonic() + timeout
    waiting = list(ports)
    while waiting and alive() and time.monotonic() < deadline:
        waiting = [port for port in waiting if not ready(port)]
        if waiting:
            time.sleep(0.2)
    return [port for port in waiting if not ready(port)]


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel picks from for outgoing connections and port 0."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
