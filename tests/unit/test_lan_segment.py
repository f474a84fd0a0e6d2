"""The hub's probe port (frames built and read back) and the judging of what it saw; the guest's
busybox output parsed into the same facts as iproute2's JSON."""

import asyncio
import ipaddress

from loco_lan.emulator import lanprobe
from loco_lan.netcheck import analysis
from loco_lan.netcheck.analysis import Guest

GUESTS = [Guest(f"instance-{n}", f"52:54:00:4c:4f:{n:02x}", f"192.168.10.{10 + n}") for n in range(3)]
PORTS = [{"port": f"127.0.0.1:{4000 + n}", "macs": [f"52:54:00:4c:4f:{n:02x}"], "frames_in": 5, "frames_out": 7,
          "dropped": 0} for n in range(3)]


def healthy() -> dict:
    return {"arp": {g.ip: [g.mac] for g in GUESTS}, "ping": [{"ip": g.ip, "mac": g.mac} for g in GUESTS],
            "ipv6": [{"ip": str(lanprobe.link_local(g.mac)), "mac": g.mac} for g in GUESTS], "ports": PORTS}


def problems(outcome) -> list[tuple[str, str, str]]:
    return [(p.target, p.item, p.problem) for p in outcome.pairs if not p.ok] + \
        [(",".join(f.hosts), f.kind, f.message) for f in outcome.findings]


def test_frames_read_back_as_sent():
    probe = lanprobe.mac_bytes(lanprobe.PROBE_MAC)
    request = lanprobe.parse(lanprobe.arp(1, probe, lanprobe.PROBE_IP, bytes(6), "192.168.10.11"))
    assert request == {"kind": "arp", "op": 1, "mac": lanprobe.PROBE_MAC, "ip": lanprobe.PROBE_IP,
                       "target": "192.168.10.11", "from": lanprobe.PROBE_MAC}
    assert lanprobe.link_local("52:54:00:4c:4f:01") == ipaddress.IPv6Address("fe80::5054:ff:fe4c:4f01")
    echo = lanprobe.icmp_echo(probe, bytes.fromhex("5254004c4f01"), lanprobe.PROBE_IP, "192.168.10.11", 1)
    assert len(echo) >= 60 and lanprobe._checksum(echo[14:34]) == 0  # a valid IPv4 header checksum


def test_the_arp_sweep_goes_out_in_small_batches(monkeypatch):
    sent, pauses = [], []

    async def no_wait(seconds):
        pauses.append((seconds, len(sent)))

    monkeypatch.setattr(lanprobe.asyncio, "sleep", no_wait)
    port = lanprobe.ProbePort(lambda _port, frames: sent.extend(frames))
    asyncio.run(port.probe("192.168.10.0/26"))  # 61 addresses besides the probe's own
    sweep = [count for seconds, count in pauses if seconds == lanprobe.SWEEP_GAP]
    assert sweep == list(range(lanprobe.SWEEP_BATCH, 61, lanprobe.SWEEP_BATCH))  # never more at once
    assert sum((lanprobe.parse(frame) or {}).get("kind") == "arp" for frame in sent) == 61


def test_a_late_reply_to_an_earlier_probe_is_not_an_answer(monkeypatch):
    """A guest that answered the first probe's ping late, and no longer answers pings, fails the
    second probe: its late reply carries the first probe's echo identifier."""
    guest_mac, guest_ip = "52:54:00:4c:4f:01", "192.168.10.11"
    probe_mac = lanprobe.mac_bytes(lanprobe.PROBE_MAC)
    state = {"answer_pings": True, "late": [], "answered": b""}

    async def no_wait(_seconds):
        pass

    def guest(port, frames):
        for frame in frames:
            seen = lanprobe.parse(frame)
            if seen and seen["kind"] == "arp" and seen["op"] == 1 and seen["target"] == guest_ip:
                port.send(lanprobe.arp(2, lanprobe.mac_bytes(guest_mac), guest_ip, probe_mac, lanprobe.PROBE_IP))
                while state["late"]:  # the first probe's reply, arriving during the second
                    port.send(state["late"].pop())
            elif frame[12:14] == b"\x08\x00" and frame[34] == 8:  # an echo request to the guest
                reply = bytearray(lanprobe.icmp_echo(lanprobe.mac_bytes(guest_mac), probe_mac, guest_ip,
                                                     lanprobe.PROBE_IP, 1, int.from_bytes(frame[38:40], "big")))
                reply[34] = 0  # echo reply
                if state["answer_pings"]:
                    port.send(bytes(reply))
                    state["answered"] = bytes(reply)

    monkeypatch.setattr(lanprobe.asyncio, "sleep", no_wait)
    port = lanprobe.ProbePort(guest)
    first = asyncio.run(port.probe("192.168.10.8/29"))
    assert first["ping"] == [{"ip": guest_ip, "mac": guest_mac}]
    state["answer_pings"] = False
    state["late"].append(state["answered"])
    second = asyncio.run(port.probe("192.168.10.8/29"))
    assert second["arp"] == {guest_ip: [guest_mac]} and second["ping"] == []


def test_a_healthy_segment_passes_every_guest():
    outcome = analysis.segment_outcome(GUESTS, healthy())
    assert not problems(outcome)
    assert len(outcome.pairs) == 3 * 4


def test_a_shared_ip_and_a_silent_guest_are_named():
    seen = healthy()
    seen["arp"]["192.168.10.11"] = ["52:54:00:4c:4f:01", "52:54:00:4c:4f:02"]
    del seen["arp"]["192.168.10.12"]
    found = problems(analysis.segment_outcome(GUESTS, seen, ipv6=False))
    assert ("instance-1,instance-2", "duplicate-ip",
            "IPv4 192.168.10.11 is answered by instance-1, instance-2 (52:54:00:4c:4f:01, 52:54:00:4c:4f:02)") in found
    assert ("instance-2", "arp", "no-answer") in found


def test_a_guest_off_the_segment_and_a_mac_on_two_ports():
    seen = healthy()
    seen["ports"] = [PORTS[0], {**PORTS[1], "macs": ["52:54:00:4c:4f:00"]}]
    seen["arp"].pop("192.168.10.12")
    found = problems(analysis.segment_outcome(GUESTS, seen, ipv6=False))
    assert ("instance-1", "frames", "off-segment") in found and ("instance-2", "frames", "off-segment") in found
    assert any(kind == "duplicate-mac" and "instance-0" in hosts for hosts, kind, _ in found)


def test_busybox_ip_output_gives_the_same_facts():
    text = """2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel qlen 1000
    link/ether 52:54:00:4c:4f:01 brd ff:ff:ff:ff:ff:ff
    inet 192.168.10.11/24 scope global eth0
       valid_lft forever preferred_lft forever
    inet6 fe80::5054:ff:fe4c:4f01/64 scope link tentative
       valid_lft forever preferred_lft forever
"""
    facts = analysis.parse_addr_text("instance-1", "eth0", text)
    assert facts.mac == "52:54:00:4c:4f:01" and "LOWER_UP" in facts.flags
    assert facts.ipv4 == ["192.168.10.11"]
    assert facts.ipv6 == []  # tentative: not usable yet
    assert analysis.parse_addr_text("x", "eth1", text).error == "no interface eth1"
    neighbours = analysis.parse_neigh_text("192.168.10.12 lladdr 52:54:00:4c:4f:02 REACHABLE\n"
                                           "192.168.10.13  FAILED\n")
    assert [(n.addr, n.mac, n.resolved) for n in neighbours] == [
        ("192.168.10.12", "52:54:00:4c:4f:02", True), ("192.168.10.13", "", False)]
