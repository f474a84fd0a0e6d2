"""The network checks on a real LAN of namespaces: a healthy one passes; each break is reported by name."""

import json
import subprocess
import sys

import pytest
from netnslan import INTERFACE

from loco_lan.netcheck import netns_hosts, run_checks

pytestmark = pytest.mark.netns
PORT_TIMEOUT = 1.5  # enough on one machine; keeps a failing run to a few seconds


def check(lan, **kwargs):
    return run_checks(netns_hosts(lan.namespaces), INTERFACE, port_timeout=PORT_TIMEOUT, **kwargs)


def failures(report):
    """(check, kind, hosts) of every finding, hosts as the test's short names."""
    short = {ns: ns.rsplit("-", 1)[1] for ns in (h.name for h in report.hosts)}
    return {(f.check, f.kind, tuple(short[h] for h in f.hosts)) for f in report.findings}


def loco(*args):
    return subprocess.run([sys.executable, "-m", "loco_lan.cli", "netcheck", *args],
                          capture_output=True, text=True, timeout=120)


def test_healthy_lan_passes_through_the_cli(netns_lan, tmp_path):
    lan = netns_lan("a", "b", "c")
    run = loco("--netns", ",".join(lan.namespaces), "--interface", INTERFACE, "--port-timeout", "3",
               "--report", str(tmp_path / "report.json"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1] == "RESULT: PASS (arp, ipv6, directplay; 42 pair tests, 0 findings)"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] and report["findings"] == []
    tested = {check: result["pairs_tested"] for check, result in report["checks"].items()}
    assert tested == {"arp": 6, "ipv6": 12, "directplay": 24}
    assert {h["name"]: h["ipv4"] for h in report["hosts"]} == {
        lan.ns("a"): ["192.168.10.1"], lan.ns("b"): ["192.168.10.2"], lan.ns("c"): ["192.168.10.3"]}
    assert all(h["mac"] == lan.mac(n) for h, n in zip(report["hosts"], "abc", strict=True))
    assert lan.pids() == {}  # listeners and probers are gone


def test_dropped_link_is_named(netns_lan):
    lan = netns_lan("a", "b", "c")
    lan.exec("c", "ip", "link", "set", INTERFACE, "down")
    report = check(lan)
    found = failures(report)
    assert ("hosts", "interface-down", ("c",)) in found
    assert {("arp", "missing", pair) for pair in [("a", "c"), ("b", "c"), ("c", "a"), ("c", "b")]} <= found
    assert {("ipv6", "no-address", ("a", "c")), ("ipv6", "unreachable", ("c", "a"))} <= found
    assert {("directplay", "unreachable", ("a", "c")), ("directplay", "unreachable", ("c", "b"))} <= found
    # Every finding involves c: a and b still reach each other.
    assert all("c" in hosts for _, _, hosts in found)
    assert not report.ok and report.table()[-1].startswith("RESULT: FAIL")
    assert lan.pids() == {}


def test_two_hosts_with_one_ip_are_named(netns_lan):
    lan = netns_lan("a", "b", "c")
    lan.exec("c", "ip", "addr", "del", "192.168.10.3/24", "dev", INTERFACE)
    lan.exec("c", "ip", "addr", "add", "192.168.10.2/24", "dev", INTERFACE)
    report = check(lan, checks=["arp", "directplay"])
    found = failures(report)
    assert ("arp", "duplicate-ip", ("b", "c")) in found
    duplicate = next(f for f in report.findings if f.kind == "duplicate-ip")
    assert duplicate.message == f"IPv4 192.168.10.2 is configured on {lan.ns('b')}, {lan.ns('c')}"
    # The port probes show the confusion: b's probes to "c" are answered by b itself.
    assert ("directplay", "wrong-host", ("b", "c")) in found
    assert any(f.message.endswith(f"answered by {lan.ns('b')}") for f in report.findings)


def test_duplicate_mac_is_named(netns_lan):
    lan = netns_lan("a", "b", "c")
    lan.exec("c", "ip", "link", "set", INTERFACE, "address", lan.mac("b"))
    report = check(lan, checks=["arp"])
    assert ("arp", "duplicate-mac", ("b", "c")) in failures(report)


def test_blocked_udp_2300_is_the_only_finding(netns_lan, tmp_path):
    lan = netns_lan("a", "b", "c")
    rules = b"""table inet lncblock {
        chain input { type filter hook input priority 0; policy accept; udp dport 2300 drop; }
    }"""
    lan.exec("c", "nft", "-f", "-", input=rules)
    run = loco("--netns", ",".join(lan.namespaces), "--interface", INTERFACE,
               "--port-timeout", str(PORT_TIMEOUT), "--report", str(tmp_path / "report.json"))
    assert run.returncode == 1, run.stdout + run.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert [f["message"] for f in report["findings"]] == [
        f"{lan.ns('a')} -> {lan.ns('c')} udp/2300 (192.168.10.3): no answer",
        f"{lan.ns('b')} -> {lan.ns('c')} udp/2300 (192.168.10.3): no answer",
    ]
    passed = {check: result["ok"] for check, result in report["checks"].items()}
    assert passed == {"arp": True, "ipv6": True, "directplay": False}
    assert f"  [directplay] {lan.ns('a')} -> {lan.ns('c')} udp/2300 (192.168.10.3): no answer" in run.stdout
    assert lan.pids() == {}
