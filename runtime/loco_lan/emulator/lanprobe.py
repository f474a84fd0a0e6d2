"""The hub's probe port: a port of its own on the socket LAN, with a MAC and an IPv4 address,
from which the hub sees the guests as any machine on the segment would, whatever their OS.

``ProbePort.probe`` sends an ARP request for every address of the LAN's subnet (paced), pings every
address that answered (at each MAC that claimed it) and sends an ICMPv6 echo to all nodes
(ff02::1), once more for what did not answer; it answers ARP and neighbour solicitations
for its own addresses, so the guests can reply. Each probe's echoes carry an identifier of their
own, so a late reply to an earlier probe is not taken for an answer to this one. What came back
is returned as it was seen; :mod:`loco_lan.netcheck` judges it. The frame builders and parsers
here are pure and unit-tested.
"""

import asyncio
import ipaddress
import struct
from collections.abc import Callable

PROBE_MAC = "52:54:00:4c:4f:fe"
PROBE_IP = "192.168.10.2"
SUBNET = "192.168.10.0/24"
ETH_ARP, ETH_IP4, ETH_IP6 = 0x0806, 0x0800, 0x86DD
BROADCAST = b"\xff" * 6
ALL_NODES_MAC = bytes.fromhex("333300000001")
ALL_NODES = ipaddress.IPv6Address("ff02::1")
ECHO_ID = 0x4C4F  # the first probe's echo identifier; each later probe takes the next
# The ARP sweep goes out this many frames at a time, this many seconds apart: a whole /24 at once
# overruns an emulated ne2k_pci's receive ring, and a TCG guest then loses its replies for a while.
SWEEP_BATCH, SWEEP_GAP = 8, 0.02


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def link_local(mac: str) -> ipaddress.IPv6Address:
    """The EUI-64 link-local address of ``mac`` (what Linux gives an interface)."""
    raw = bytearray(mac_bytes(mac))
    raw[0] ^= 2
    return ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + bytes(raw[:3]) + b"\xff\xfe" + bytes(raw[3:]))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(destination: bytes, source: bytes, ethertype: int, payload: bytes) -> bytes:
    frame = destination + source + struct.pack("!H", ethertype) + payload
    return frame.ljust(60, b"\0")  # the minimum Ethernet frame


def arp(op: int, sender_mac: bytes, sender_ip: str, target_mac: bytes, target_ip: str) -> bytes:
    body = struct.pack("!HHBBH", 1, ETH_IP4, 6, 4, op) + sender_mac + ipaddress.IPv4Address(sender_ip).packed
    body += target_mac + ipaddress.IPv4Address(target_ip).packed
    return ethernet(BROADCAST if op == 1 else target_mac, sender_mac, ETH_ARP, body)


def icmp_echo(source_mac: bytes, destination_mac: bytes, source: str, destination: str, sequence: int,
              ident: int = ECHO_ID) -> bytes:
    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, sequence) + b"loco-lan-probe"
    icmp = icmp[:2] + struct.pack("!H", _checksum(icmp)) + icmp[4:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), sequence, 0, 64, 1, 0,
                         ipaddress.IPv4Address(source).packed, ipaddress.IPv4Address(destination).packed)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return ethernet(destination_mac, source_mac, ETH_IP4, header + icmp)


def _ip6(source_mac: bytes, destination_mac: bytes, source: ipaddress.IPv6Address,
         destination: ipaddress.IPv6Address, icmp: bytes) -> bytes:
    pseudo = source.packed + destination.packed + struct.pack("!I3xB", len(icmp), 58)
    icmp = icmp[:2] + struct.pack("!H", _checksum(pseudo + icmp)) + icmp[4:]
    header = struct.pack("!IHBB", 6 << 28, len(icmp), 58, 255) + source.packed + destination.packed
    return ethernet(destination_mac, source_mac, ETH_IP6, header + icmp)


def icmp6_echo(source_mac: bytes, source: ipaddress.IPv6Address, sequence: int, ident: int = ECHO_ID) -> bytes:
    icmp = struct.pack("!BBHHH", 128, 0, 0, ident, sequence) + b"loco-lan-probe"
    return _ip6(source_mac, ALL_NODES_MAC, source, ALL_NODES, icmp)


def neighbour_advert(source_mac: bytes, source: ipaddress.IPv6Address, destination_mac: bytes,
                     destination: ipaddress.IPv6Address) -> bytes:
    icmp = struct.pack("!BBHI", 136, 0, 0, 0x60000000) + source.packed + b"\x02\x01" + source_mac
    return _ip6(source_mac, destination_mac, source, destination, icmp)


def parse(frame: bytes) -> dict | None:
    """What a frame says to the probe: an ARP packet, an ICMP echo reply, an ICMPv6 echo reply or
    neighbour solicitation; None for anything else."""
    if len(frame) < 14:
        return None
    source_mac = mac_text(frame[6:12])
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    body = frame[14:]
    if ethertype == ETH_ARP and len(body) >= 28:
        op = struct.unpack_from("!H", body, 6)[0]
        return {"kind": "arp", "op": op, "mac": mac_text(body[8:14]), "ip": str(ipaddress.IPv4Address(body[14:18])),
                "target": str(ipaddress.IPv4Address(body[24:28])), "from": source_mac}
    if ethertype == ETH_IP4 and len(body) >= 28 and body[9] == 1:
        start = (body[0] & 0x0F) * 4
        if len(body) >= start + 8 and body[start] == 0:  # echo reply
            return {"kind": "echo", "ip": str(ipaddress.IPv4Address(body[12:16])), "mac": source_mac,
                    "id": struct.unpack_from("!H", body, start + 4)[0]}
    if ethertype == ETH_IP6 and len(body) >= 48 and body[6] == 58:
        source = ipaddress.IPv6Address(body[8:24])
        icmp = body[40:]
        if icmp[0] == 129 and len(icmp) >= 8:
            return {"kind": "echo6", "ip": str(source), "mac": source_mac, "id": struct.unpack_from("!H", icmp, 4)[0]}
        if icmp[0] == 135 and len(icmp) >= 24:
            return {"kind": "solicit", "ip": str(source), "mac": source_mac,
                    "target": str(ipaddress.IPv6Address(icmp[8:24]))}
    return None


class ProbePort:
    """Attached to a hub by ``send`` (frames the hub delivers to it) and ``inject`` (frames it puts
    on the LAN, the hub's own forwarding for a frame arriving on this port)."""

    name = "probe"

    def __init__(self, inject: Callable[["ProbePort", list[bytes]], None], mac: str = PROBE_MAC, ip: str = PROBE_IP):
        self.inject, self.mac, self.ip = inject, mac, ip
        self.raw_mac = mac_bytes(mac)
        self.ll = link_local(mac)
        self.frames_in = self.frames_out = self.dropped = 0
        self._seen: list[dict] | None = None  # while probing
        self._echo_id = ECHO_ID
        self._lock = asyncio.Lock()

    def send(self, frame: bytes) -> bool:
        """A frame the hub delivers here."""
        self.frames_out += 1
        seen = parse(frame)
        if seen is None:
            return True
        if seen["kind"] == "arp" and seen["op"] == 1 and seen["target"] == self.ip:
            self._put(arp(2, self.raw_mac, self.ip, mac_bytes(seen["mac"]), seen["ip"]))
        elif seen["kind"] == "solicit" and seen["target"] == str(self.ll):
            asker = ipaddress.IPv6Address(seen["ip"])
            self._put(neighbour_advert(self.raw_mac, self.ll, mac_bytes(seen["mac"]), asker))
        elif self._seen is not None:
            self._seen.append(seen)
        return True

    def _put(self, frame: bytes) -> None:
        self.frames_in += 1
        self.inject(self, [frame])

    async def probe(self, subnet: str = SUBNET, wait: float = 1.5) -> dict:
        """ARP every address of ``subnet``, ping the ones that answered, ICMPv6 echo to all nodes."""
        async with self._lock:
            network = ipaddress.IPv4Network(subnet)
            ident = self._echo_id
            self._echo_id = (ident + 1) & 0xFFFF
            self._seen = []
            try:
                targets = [str(host) for host in network.hosts() if str(host) != self.ip]
                for start in range(0, len(targets), SWEEP_BATCH):
                    if start:
                        await asyncio.sleep(SWEEP_GAP)
                    for target in targets[start:start + SWEEP_BATCH]:
                        self._put(arp(1, self.raw_mac, self.ip, bytes(6), target))
                await asyncio.sleep(wait)
                claims: dict[str, list[str]] = {}
                for seen in self._seen:
                    if seen["kind"] == "arp" and seen["op"] == 2 and seen["target"] == self.ip:
                        macs = claims.setdefault(seen["ip"], [])
                        if seen["mac"] not in macs:
                            macs.append(seen["mac"])
                echoes, echoes6 = set(), set()
                for _ in range(2):  # a second round for what did not answer the first (a busy guest)
                    sequence = 0
                    for address, macs in sorted(claims.items()):
                        for mac in macs:
                            sequence += 1
                            if (address, mac) not in echoes:
                                self._put(icmp_echo(self.raw_mac, mac_bytes(mac), self.ip, address, sequence,
                                                    ident))
                    self._put(icmp6_echo(self.raw_mac, self.ll, 1, ident))
                    await asyncio.sleep(wait)
                    echoes |= {(s["ip"], s["mac"]) for s in self._seen if s["kind"] == "echo" and s["id"] == ident}
                    echoes6 |= {(s["ip"], s["mac"]) for s in self._seen if s["kind"] == "echo6" and s["id"] == ident}
                    if all((a, m) in echoes for a, macs in claims.items() for m in macs):
                        break
            finally:
                self._seen = None
        return {
            "probe": {"mac": self.mac, "ip": self.ip, "ipv6": str(self.ll), "subnet": str(network)},
            "arp": {address: macs for address, macs in sorted(claims.items())},
            "ping": [{"ip": ip, "mac": mac} for ip, mac in sorted(echoes)],
            "ipv6": [{"ip": ip, "mac": mac} for ip, mac in sorted(echoes6)],
        }
