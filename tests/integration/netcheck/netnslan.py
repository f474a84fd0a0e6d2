"""A LAN of network namespaces standing in for emulator pods: real ARP, IPv6 and sockets.

Each host namespace has ``lan0`` (IPv4 192.168.10.N/24, IPv6 link-local and
fd00:10::N/64), a veth whose other end is a port of a Linux bridge living in a
namespace of its own.  Every name carries a random tag, nothing touches the
machine's own interfaces, and the namespaces (hence veths and bridge) are
deleted after each test whatever happened.
"""

import json
import secrets
import subprocess
import time

INTERFACE = "lan0"


def ip(*args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, check=check, input=input, timeout=30)


class NetnsLan:
    def __init__(self, names: tuple[str, ...]):
        self.tag = "lnc" + secrets.token_hex(3)
        self.bridge = f"{self.tag}-br"
        self.names = names
        self.created: list[str] = []

    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    @property
    def namespaces(self) -> list[str]:
        return [self.ns(host) for host in self.names]

    def add_namespace(self, name: str) -> None:
        ip("netns", "add", name)
        self.created.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def up(self) -> "NetnsLan":
        self.add_namespace(self.bridge)
        ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        ip("-n", self.bridge, "link", "set", "br0", "up")
        for index, host in enumerate(self.names, start=1):
            ns = self.ns(host)
            self.add_namespace(ns)
            ip("-n", self.bridge, "link", "add", f"p-{host}", "type", "veth", "peer", "name", INTERFACE,
               "netns", ns)
            ip("-n", self.bridge, "link", "set", f"p-{host}", "master", "br0", "up")
            # No duplicate address detection wait: link-locals are usable at once.
            self.exec(host, "sysctl", "-qw", f"net.ipv6.conf.{INTERFACE}.accept_dad=0")
            ip("-n", ns, "addr", "add", f"192.168.10.{index}/24", "dev", INTERFACE)
            ip("-n", ns, "addr", "add", f"fd00:10::{index}/64", "dev", INTERFACE)
            ip("-n", ns, "link", "set", INTERFACE, "up")
        self.wait_link_locals()
        return self

    def wait_link_locals(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        for host in self.names:
            while b"fe80::" not in ip("-n", self.ns(host), "-6", "addr", "show", "dev", INTERFACE).stdout:
                assert time.monotonic() < deadline, f"{host}: no IPv6 link-local after {timeout}s"
                time.sleep(0.05)

    def exec(self, host: str, *argv: str, input: bytes | None = None) -> subprocess.CompletedProcess:
        return ip("netns", "exec", self.ns(host), *argv, input=input)

    def mac(self, host: str) -> str:
        return json.loads(ip("-n", self.ns(host), "-j", "link", "show", INTERFACE).stdout)[0]["address"]

    def pids(self) -> dict[str, str]:
        """Processes still running in any of the LAN's namespaces (listeners must not outlive a run)."""
        running = {ns: ip("netns", "pids", ns, check=False).stdout.decode().split() for ns in self.created}
        return {ns: pids for ns, pids in running.items() if pids}

    def down(self) -> None:
        for name in reversed(self.created):
            ip("netns", "del", name, check=False)
        self.created.clear()
