"""Made-up hosts for the netcheck unit tests: what ``ip -j`` prints for them."""

import json

MACS = {"a": "02:00:00:00:00:0a", "b": "02:00:00:00:00:0b", "c": "02:00:00:00:00:0c"}
IPS = {"a": "192.168.10.1", "b": "192.168.10.2", "c": "192.168.10.3"}
LL = {"a": "fe80::a", "b": "fe80::b", "c": "fe80::c"}
ULA = {"a": "fd00:10::1", "b": "fd00:10::2", "c": "fd00:10::3"}


def ip_addr(name, mac=None, ipv4=None, ipv6=None, flags=("BROADCAST", "MULTICAST", "UP", "LOWER_UP"),
            interface="lan0", extra=None):
    """``ip -j addr show dev IF`` output as iproute2 prints it."""
    info = [{"family": "inet", "local": addr, "prefixlen": 24, "scope": "global"}
            for addr in ([IPS[name]] if ipv4 is None else ipv4)]
    for addr in [LL[name], ULA[name]] if ipv6 is None else ipv6:
        info.append({"family": "inet6", "local": addr, "prefixlen": 64,
                     "scope": "link" if addr.startswith("fe80") else "global", **(extra or {}).get(addr, {})})
    return json.dumps([{"ifindex": 2, "ifname": interface, "flags": list(flags), "mtu": 1500,
                        "operstate": "UP", "link_type": "ether", "address": (mac or MACS[name]).upper(),
                        "broadcast": "ff:ff:ff:ff:ff:ff", "addr_info": info}])
