"""The game LAN for real: three test guests (Linux, ne2k_pci, TCG) in socket mode on instance 0's
hub, through the real emulator entrypoint, checked from inside each guest (its guest channel) and
from the segment itself (the hub's probe port); then one thing broken at a time, and the right
guests and ports named in the failure."""

import os
import signal
import time

import pytest
from guestproc import Emulator

from loco_lan import testguest
from loco_lan.netcheck import run_checks
from loco_lan.netcheck.analysis import Guest
from loco_lan.netcheck.hosts import guest_host
from loco_lan.netutil import free_port

COUNT = 3
BOOT = 240.0  # seconds for every guest to answer on its channel under a loaded TCG


@pytest.fixture(scope="module")
def lan(tmp_path_factory):
    root = tmp_path_factory.mktemp("guestlan")
    disk = root / "testguest.qcow2"
    testguest.ensure(disk)
    hub_port = free_port()
    guests = []
    for ordinal in range(COUNT):
        channel = free_port()
        env = {"INSTANCE_ID": f"instance-{ordinal}", "NETWORK_MODE": "socket", "SOCKET_PORT": str(hub_port),
               "SOCKET_MASTER_HOST": "127.0.0.1", "LOCO_LAN_LISTEN": "127.0.0.1", "QEMU_MEMORY": "96",
               "LOCO_DISK_READONLY": "true", "LOCO_OVERLAY_DIR": str(root / "overlays"), "LOCO_AUDIO": "false",
               "LOCO_GUEST_CHANNEL": f"127.0.0.1:{channel}"}
        emulator = Emulator(root, disk, env).start()
        guests.append((emulator, channel))
    yield root, guests
    for emulator, _ in guests:
        emulator.stop()


def hosts(guests):
    return [guest_host(f"instance-{n}", ("127.0.0.1", channel)) for n, (_, channel) in enumerate(guests)]


def expected():
    return [Guest(f"instance-{n}", f"52:54:00:4c:4f:{n:02x}", testguest.address(n)) for n in range(COUNT)]


def check(guests, **options):
    hub = f"http://127.0.0.1:{guests[0][0].health_port}"
    # Generous timeouts: three TCG guests on a shared machine answer late, not never.
    return run_checks(hosts(guests), "eth0", hub=hub, guests=expected(), ping_timeout=3, port_timeout=4, **options)


def wait_passing(guests, timeout: float = BOOT):
    deadline = time.monotonic() + timeout
    while True:
        report = check(guests)
        if report.ok or time.monotonic() > deadline:
            return report


def in_guest(guests, ordinal: int, script: str) -> bytes:
    ran = hosts(guests)[ordinal].run(["sh", "-c", script], timeout=30)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


def messages(report, check: str | None = None) -> list[str]:
    return [f.message for f in report.findings if check is None or f.check == check]


@pytest.mark.qemu
@pytest.mark.slow
def test_every_guest_reaches_every_other_from_inside_and_from_the_hub(lan):
    _, guests = lan
    report = wait_passing(guests)
    print("\n".join(report.table()))
    assert report.ok, "\n".join(report.table())
    summary = report.as_dict()["checks"]
    assert summary["arp"]["pairs_tested"] == COUNT * (COUNT - 1)
    assert summary["directplay"]["pairs_tested"] == COUNT * (COUNT - 1) * 4
    assert summary["segment"]["pairs_tested"] == COUNT * 4  # frames, ARP, ping, IPv6 per guest
    ports = {mac for port in report.segment["ports"] for mac in port["macs"]}
    assert {guest.mac for guest in expected()} <= ports  # the hub's table names every guest's MAC


@pytest.mark.qemu
@pytest.mark.slow
def test_two_guests_on_one_ip_are_both_named(lan):
    _, guests = lan
    in_guest(guests, 2, "ip addr del 192.168.10.12/24 dev eth0 && ip addr add 192.168.10.11/24 dev eth0")
    try:
        report = check(guests, checks=["arp"])
        found = messages(report)
        inside, hub = messages(report, "arp"), messages(report, "segment")
        assert "IPv4 192.168.10.11 is configured on instance-1, instance-2" in inside, found
        assert any(m.startswith("IPv4 192.168.10.11 is answered by instance-1, instance-2") for m in hub), found
        assert any("instance-2 does not answer ARP for its address 192.168.10.12" in m for m in found), found
    finally:
        in_guest(guests, 2, "ip addr del 192.168.10.11/24 dev eth0 && ip addr add 192.168.10.12/24 dev eth0")
        for ordinal in range(COUNT):  # forget the MACs learned for the shared address meanwhile
            in_guest(guests, ordinal, "ip neigh flush dev eth0")
    report = wait_passing(guests, 60)
    assert report.ok, "\n".join(report.table())


@pytest.mark.qemu
@pytest.mark.slow
def test_udp_2300_blocked_inside_one_guest_is_named(lan):
    _, guests = lan
    in_guest(guests, 1, "killall loco-lan; (loco-lan serve tcp/2300 tcp/47624 udp/47624 &) ; sleep 0.2")
    try:
        report = check(guests, checks=["directplay"])
        failed = {(p.source, p.target, p.item) for p in report.pairs if p.check == "directplay" and not p.ok}
        assert failed == {("instance-0", "instance-1", "udp/2300"), ("instance-2", "instance-1", "udp/2300")}, \
            "\n".join(report.table())
    finally:
        in_guest(guests, 1, "killall loco-lan; (loco-lan serve &) ; sleep 0.2")


@pytest.mark.qemu
@pytest.mark.slow
def test_a_guest_whose_uplink_stops_is_named(lan):
    _, guests = lan
    uplink = guests[2][0].process.pid  # the entrypoint carries its QEMU's frames to the hub
    os.kill(uplink, signal.SIGSTOP)
    try:
        report = check(guests, checks=["arp"])
        found = messages(report)
        assert any("instance-2 does not answer ARP for its address 192.168.10.12" in m for m in found), found
        failed = {(p.source, p.target) for p in report.pairs if p.check == "arp" and not p.ok}
        # Every pair with instance-2 fails. (Seen on this machine: while one uplink is stopped the
        # pings between the other two can time out too; not asserted either way.)
        assert failed >= {("instance-0", "instance-2"), ("instance-1", "instance-2"),
                          ("instance-2", "instance-0"), ("instance-2", "instance-1")}, found
    finally:
        os.kill(uplink, signal.SIGCONT)
    report = wait_passing(guests, 60)
    assert report.ok, "\n".join(report.table())


@pytest.mark.qemu
@pytest.mark.slow
def test_the_lan_heals_when_instance_0_restarts(lan):
    root, guests = lan
    first = guests[0][0]
    first.stop()
    restarted = Emulator(root, first.env["LOCO_DISK"], {})
    restarted.env, restarted.health_port = first.env, first.health_port  # same ports, as its pod would have
    guests[0] = (restarted.start(), guests[0][1])
    report = wait_passing(guests)
    assert report.ok, "\n".join(report.table())
