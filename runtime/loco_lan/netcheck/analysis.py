"""Pure analysis: what the hosts reported (``ip -j`` output, ping and port
probe results) in, pair results and findings out.  No I/O, so every rule here
is unit-tested with made-up data."""

import ipaddress
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

DIRECTPLAY_PORTS = (("tcp", 2300), ("udp", 2300), ("tcp", 47624), ("udp", 47624))
# Neighbour states in which the kernel holds no usable MAC.
UNRESOLVED = {"FAILED", "INCOMPLETE", "NONE"}
# Address flags that make an address unusable (DAD not finished, or it found a duplicate).
UNUSABLE = ("tentative", "dadfailed")


@dataclass(frozen=True)
class Address:
    addr: str
    family: int
    scope: str = "global"
    flags: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return not any(flag in self.flags for flag in UNUSABLE)

    @property
    def kind(self) -> str:
        """``link-local``, ``ula`` or ``global`` (IPv6), ``ipv4``."""
        if self.family == 4:
            return "ipv4"
        ip = ipaddress.IPv6Address(self.addr)
        if ip.is_link_local:
            return "link-local"
        return "ula" if ip in ipaddress.IPv6Network("fc00::/7") else "global"


@dataclass(frozen=True)
class HostFacts:
    """One host's LAN interface as ``ip -j addr show dev IF`` describes it (or why it could not)."""

    name: str
    interface: str
    mac: str = ""
    flags: tuple[str, ...] = ()
    addresses: tuple[Address, ...] = ()
    error: str = ""

    @property
    def ipv4(self) -> list[str]:
        return [a.addr for a in self.addresses if a.family == 4]

    @property
    def ipv6(self) -> list[Address]:
        """Usable IPv6 addresses a peer can be asked to reach (link-local first)."""
        found = [a for a in self.addresses if a.family == 6 and a.usable and a.scope in ("link", "global")]
        return sorted(found, key=lambda a: a.kind != "link-local")

    def as_dict(self) -> dict:
        return {
            "name": self.name, "interface": self.interface, "mac": self.mac, "flags": list(self.flags),
            "ipv4": self.ipv4,
            "ipv6": [{"addr": a.addr, "kind": a.kind, "flags": list(a.flags)}
                     for a in self.addresses if a.family == 6],
            "error": self.error,
        }


@dataclass(frozen=True)
class Neighbour:
    addr: str
    mac: str = ""
    state: tuple[str, ...] = ()

    @property
    def resolved(self) -> bool:
        return bool(self.mac) and not UNRESOLVED.intersection(self.state)


@dataclass(frozen=True)
class PairResult:
    """One thing tested from ``source`` to ``target``; ``problem`` is empty when it worked."""

    check: str
    source: str
    target: str
    item: str
    problem: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem

    def as_dict(self) -> dict:
        return {"check": self.check, "source": self.source, "target": self.target, "item": self.item,
                "ok": self.ok, "problem": self.problem, "message": self.message}


@dataclass(frozen=True)
class Finding:
    check: str
    kind: str
    hosts: tuple[str, ...]
    message: str

    def as_dict(self) -> dict:
        return {"check": self.check, "kind": self.kind, "hosts": list(self.hosts), "message": self.message}


@dataclass
class Outcome:
    """The pairs a check tested and its findings beyond failed pairs (duplicates, bad hosts)."""

    pairs: list[PairResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def parse_addr(name: str, interface: str, text: str) -> HostFacts:
    """HostFacts from ``ip -j addr show dev IF`` output."""
    try:
        links = json.loads(text or "[]")
    except ValueError:
        return HostFacts(name, interface, error=f"unreadable output of ip -j addr: {text[:80]!r}")
    link = next((entry for entry in links if entry.get("ifname") == interface), None)
    if link is None:
        return HostFacts(name, interface, error=f"no interface {interface}")
    addresses = tuple(
        Address(
            info["local"],
            4 if info.get("family") == "inet" else 6,
            info.get("scope", "global"),
            tuple(flag for flag in ("tentative", "dadfailed", "deprecated") if info.get(flag)),
        )
        for info in link.get("addr_info", [])
        if info.get("family") in ("inet", "inet6") and info.get("local")
    )
    mac = link.get("address", "").lower()
    return HostFacts(name, interface, mac, tuple(link.get("flags", [])), addresses)


def parse_neigh(text: str) -> list[Neighbour]:
    """Neighbour entries from ``ip -j neigh show dev IF`` output."""
    return [
        Neighbour(entry["dst"], entry.get("lladdr", "").lower(), tuple(entry.get("state", [])))
        for entry in json.loads(text or "[]")
        if entry.get("dst")
    ]


def _duplicates(owners: Mapping[str, list[str]]) -> Iterable[tuple[str, list[str]]]:
    for value, hosts in sorted(owners.items()):
        if len(hosts) > 1:
            yield value, sorted(hosts)


def host_findings(facts: Iterable[HostFacts]) -> list[Finding]:
    """What is wrong with a host's LAN interface itself: missing, down, no carrier, no IPv4."""
    findings = []
    for host in facts:
        if host.error:
            findings.append(Finding("hosts", "unavailable", (host.name,), f"{host.name}: {host.error}"))
            continue
        if "UP" not in host.flags:
            findings.append(Finding("hosts", "interface-down", (host.name,),
                                    f"{host.name}: {host.interface} is down"))
        elif "LOWER_UP" not in host.flags:
            findings.append(Finding("hosts", "no-carrier", (host.name,),
                                    f"{host.name}: {host.interface} has no carrier"))
        if not host.ipv4:
            findings.append(Finding("hosts", "no-ipv4", (host.name,),
                                    f"{host.name}: no IPv4 address on {host.interface}"))
    return findings


def sweep_targets(facts: Iterable[HostFacts], source: str, ipv4: bool = True, ipv6: bool = True) -> list[str]:
    """The peers' addresses ``source`` pings: IPv4 (the ARP probe) and usable IPv6."""
    targets = []
    for peer in facts:
        if peer.name == source or peer.error:
            continue
        targets += peer.ipv4 if ipv4 else []
        targets += [a.addr for a in peer.ipv6] if ipv6 else []
    return list(dict.fromkeys(targets))


def _owner_of(facts: list[HostFacts]) -> dict[str, list[str]]:
    owners = defaultdict(list)
    for host in facts:
        for addr in host.ipv4:
            owners[addr].append(host.name)
    return owners


def arp_outcome(facts: list[HostFacts], neighbours: Mapping[str, list[Neighbour] | str],
                pings: Mapping[tuple[str, str], str]) -> Outcome:
    """Every host must hold every peer's MAC for every peer IPv4; duplicates are named.

    ``neighbours`` maps a host to its entries, or to the error that kept us from
    reading them; ``pings`` maps (source, address) to the probe's failure ("" = answered).
    """
    outcome = Outcome()
    live = [host for host in facts if not host.error]
    macs = defaultdict(list)
    for host in live:
        if host.mac:
            macs[host.mac].append(host.name)
    for mac, hosts in _duplicates(macs):
        outcome.findings.append(Finding("arp", "duplicate-mac", tuple(hosts),
                                        f"MAC {mac} is used by {', '.join(hosts)}"))
    owners = _owner_of(live)
    for addr, hosts in _duplicates(owners):
        outcome.findings.append(Finding("arp", "duplicate-ip", tuple(hosts),
                                        f"IPv4 {addr} is configured on {', '.join(hosts)}"))
    for host in live:
        table = neighbours.get(host.name, "not read")
        if isinstance(table, str):
            outcome.findings.append(Finding("arp", "no-table", (host.name,),
                                            f"{host.name}: cannot read its neighbour table ({table})"))
            continue
        entries = {entry.addr: entry for entry in table}
        for peer in live:
            for addr in peer.ipv4 if peer.name != host.name else []:
                if len(owners[addr]) > 1:
                    continue  # reported as a duplicate: which MAC is "right" has no answer
                outcome.pairs.append(_arp_pair(host, peer, addr, entries.get(addr), macs, pings))
    return outcome


def _arp_pair(host: HostFacts, peer: HostFacts, addr: str, entry: Neighbour | None,
              macs: Mapping[str, list[str]], pings: Mapping[tuple[str, str], str]) -> PairResult:
    ping = pings.get((host.name, addr), pings.get((host.name, ""), ""))
    if entry is None or not entry.resolved:
        state = f"state {'/'.join(entry.state)}" if entry else "no entry"
        return PairResult("arp", host.name, peer.name, addr, "missing",
                          f"{host.name} holds no MAC for {peer.name} ({addr}): {state}"
                          + (f"; ping: {ping}" if ping else ""))
    if entry.mac != peer.mac:
        holder = ", ".join(macs.get(entry.mac, [])) or "no checked host"
        return PairResult("arp", host.name, peer.name, addr, "wrong-mac",
                          f"{host.name} maps {peer.name}'s {addr} to {entry.mac} ({holder}), "
                          f"expected {peer.mac}")
    if ping:
        # A MAC learnt before the peer went away stays in the table for a while: unconfirmed is not held.
        return PairResult("arp", host.name, peer.name, addr, "no-reply",
                          f"{host.name} still lists {peer.name}'s MAC for {addr} "
                          f"(state {'/'.join(entry.state) or '-'}) but the probe failed: {ping}")
    return PairResult("arp", host.name, peer.name, addr)


def ipv6_outcome(facts: list[HostFacts], pings: Mapping[tuple[str, str], str | None]) -> Outcome:
    """All pairs reach each other's link-local and ULA/global addresses.

    ``pings`` maps (source, address) to "" (answered), the failure, or is missing
    the key when the source could not run its sweep (then its error is under
    (source, "")).
    """
    outcome = Outcome()
    live = [host for host in facts if not host.error]
    owners = defaultdict(list)
    for host in live:
        for address in host.addresses:
            if address.family == 6:
                owners[address.addr].append(host.name)
            if "dadfailed" in address.flags:
                outcome.findings.append(Finding("ipv6", "dad-failed", (host.name,),
                                                f"{host.name}: {address.addr} failed duplicate address "
                                                "detection (another host on the LAN has it)"))
    for addr, hosts in _duplicates(owners):
        outcome.findings.append(Finding("ipv6", "duplicate-ip", tuple(hosts),
                                        f"IPv6 {addr} is configured on {', '.join(hosts)}"))
    for source in live:
        for target in live:
            if target.name == source.name:
                continue
            if not any(a.kind == "link-local" for a in target.ipv6):
                outcome.pairs.append(PairResult(
                    "ipv6", source.name, target.name, "link-local", "no-address",
                    f"{source.name} -> {target.name}: {target.name} has no usable IPv6 link-local "
                    f"address on {target.interface}"))
            for address in target.ipv6:
                outcome.pairs.append(_ping_pair("ipv6", source.name, target.name, address, pings))
    return outcome


def _ping_pair(check: str, source: str, target: str, address: Address,
               pings: Mapping[tuple[str, str], str | None]) -> PairResult:
    failure = pings.get((source, address.addr), pings.get((source, ""), "not probed"))
    if failure == "":
        return PairResult(check, source, target, address.kind)
    return PairResult(check, source, target, address.kind, "unreachable",
                      f"{source} -> {target} {address.kind} {address.addr}: {failure}")


def directplay_outcome(facts: list[HostFacts], probes: Mapping[str, list[dict] | str],
                       listeners: Mapping[str, dict | str],
                       ports: Iterable[tuple[str, int]] = DIRECTPLAY_PORTS) -> Outcome:
    """TCP and UDP DirectPlay ports reachable, and answered by the right host, between every pair.

    ``probes`` maps a source to the agent's probe results (or the error that
    stopped it); ``listeners`` maps a target to the agent's listen result (or error).
    """
    outcome = Outcome()
    ports = list(ports)
    live = [host for host in facts if not host.error and host.ipv4]
    for target in live:
        listened = listeners.get(target.name, "not started")
        errors = [listened] if isinstance(listened, str) else listened.get("errors", [])
        for error in errors:
            outcome.findings.append(Finding("directplay", "listener-failed", (target.name,),
                                            f"{target.name}: cannot listen: {error}"))
    for source in live:
        ran = probes.get(source.name, "not run")
        found = {} if isinstance(ran, str) else {(r["target"], r["proto"], r["port"]): r for r in ran}
        for target in live:
            if target.name == source.name:
                continue
            for proto, port in ports:
                item = f"{proto}/{port}"
                result = found.get((target.name, proto, port))
                if result and result["ok"]:
                    outcome.pairs.append(PairResult("directplay", source.name, target.name, item))
                    continue
                why = result["error"] if result else f"probe did not run: {ran}"
                problem = "wrong-host" if result and result.get("answered_by") else "unreachable"
                outcome.pairs.append(PairResult(
                    "directplay", source.name, target.name, item, problem,
                    f"{source.name} -> {target.name} {item} ({target.ipv4[0]}): {why}"))
    return outcome


# -- the guests' own LAN --------------------------------------------------------------------------

def parse_addr_text(name: str, interface: str, text: str) -> HostFacts:
    """HostFacts from the text of ``ip addr show dev IF`` (busybox has no ``-j``)."""
    flags, mac, addresses = (), "", []
    found = False
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0].rstrip(":").isdigit() and len(words) > 2 and words[1].rstrip(":").split("@")[0] == interface:
            found = True
            flags = tuple(words[2].strip("<>").split(",")) if words[2].startswith("<") else ()
        elif words[0] == "link/ether" and len(words) > 1:
            mac = words[1].lower()
        elif words[0] in ("inet", "inet6") and len(words) > 1:
            scope = words[words.index("scope") + 1] if "scope" in words else "global"
            addresses.append(Address(words[1].split("/")[0], 4 if words[0] == "inet" else 6, scope,
                                     tuple(flag for flag in ("tentative", "dadfailed", "deprecated") if flag in words)))
    if not found:
        return HostFacts(name, interface, error=f"no interface {interface}")
    return HostFacts(name, interface, mac, flags, tuple(addresses))


def parse_neigh_text(text: str) -> list[Neighbour]:
    """Neighbour entries from the text of ``ip neigh show dev IF``: ``ADDR [lladdr MAC] [router] STATE``."""
    entries = []
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        mac = words[words.index("lladdr") + 1].lower() if "lladdr" in words else ""
        entries.append(Neighbour(words[0], mac, (words[-1],) if words[-1].isupper() else ()))
    return entries


@dataclass(frozen=True)
class Guest:
    """A guest as the hub's probe should find it: its MAC and the IPv4 address it should answer at."""

    name: str
    mac: str
    ip: str


def segment_outcome(guests: list[Guest], seen: Mapping, ipv6: bool = True) -> Outcome:
    """Judge what the hub's probe port saw (``lanprobe`` answers and the hub's port table): every
    guest's frames reach the hub, it answers ARP at its address with its own MAC and answers a
    ping there (and, with ``ipv6``, an ICMPv6 echo to all nodes), and no two guests share an IP or MAC."""
    outcome = Outcome()
    owner = {guest.mac: guest.name for guest in guests}

    def who(mac: str) -> str:
        return owner.get(mac, f"an unknown host {mac}")

    ports_of = defaultdict(list)
    for port in seen.get("ports", []):
        for mac in port["macs"]:
            ports_of[mac].append(port["port"])
    for mac, ports in sorted(ports_of.items()):
        if len(ports) > 1:
            outcome.findings.append(Finding(
                "segment", "duplicate-mac", (who(mac),),
                f"MAC {mac} ({who(mac)}) is behind {len(ports)} hub ports: {', '.join(ports)}"))
    claims = seen.get("arp", {})
    for address, macs in sorted(claims.items()):
        if len(macs) > 1:
            names = sorted(who(mac) for mac in macs)
            outcome.findings.append(Finding("segment", "duplicate-ip", tuple(names),
                                            f"IPv4 {address} is answered by {', '.join(names)} ({', '.join(macs)})"))
    pinged = {(echo["ip"], echo["mac"]) for echo in seen.get("ping", [])}
    ipv6_from = {echo["mac"] for echo in seen.get("ipv6", [])}
    for guest in guests:
        def pair(item: str, problem: str = "", message: str = "", guest=guest) -> PairResult:
            return PairResult("segment", "hub", guest.name, item, problem, message)

        if guest.mac not in ports_of:
            outcome.pairs.append(pair("frames", "off-segment", f"{guest.name} ({guest.mac}): none of its frames "
                                      "reach the hub (its MAC is learned on no port)"))
        else:
            outcome.pairs.append(pair("frames"))
        macs = claims.get(guest.ip, [])
        if guest.mac in macs and len(macs) == 1:
            outcome.pairs.append(pair("arp"))
        elif guest.mac in macs:
            pass  # a duplicate, reported above
        elif macs:
            outcome.pairs.append(pair("arp", "wrong-mac", f"{guest.ip} ({guest.name}'s address) is answered by "
                                      f"{', '.join(who(mac) for mac in macs)}, not by {guest.name} ({guest.mac})"))
        else:
            elsewhere = sorted(a for a, m in claims.items() if guest.mac in m)
            moved = f"; it answers at {', '.join(elsewhere)}" if elsewhere else ""
            outcome.pairs.append(pair("arp", "no-answer", f"{guest.name} does not answer ARP for its address "
                                      f"{guest.ip} on the segment{moved}"))
        if guest.mac in macs:
            ok = (guest.ip, guest.mac) in pinged
            outcome.pairs.append(pair("ping") if ok else pair("ping", "no-reply", f"{guest.name} ({guest.ip}) "
                                                               "answers ARP but not the hub's ping"))
        if ipv6:
            outcome.pairs.append(pair("ipv6") if guest.mac in ipv6_from else pair(
                "ipv6", "no-reply", f"{guest.name} ({guest.mac}) does not answer an ICMPv6 echo to all nodes "
                "from its link-local address"))
    return outcome
