"""The engine's orchestration over fake hosts, and the report it gives (table, JSON, atomic file)."""

import json
import subprocess

import pytest
from netcheck_fakes import IPS, MACS, ip_addr

from loco_lan.errors import LocoError
from loco_lan.netcheck import Host, run_checks


class FakeHost:
    """Answers the commands the engine sends as a healthy host would, unless told otherwise."""

    def __init__(self, name, addr_text=None, fail_agent=""):
        self.name, self.addr_text, self.fail_agent = name, addr_text or ip_addr(name), fail_agent
        self.calls = []

    def run(self, argv, stdin=None, timeout=30.0):
        self.calls.append(argv)
        if argv[:3] == ["ip", "-j", "addr"]:
            return self.done(self.addr_text)
        if argv[:3] == ["ip", "-j", "neigh"]:
            peers = [n for n in IPS if n != self.name]
            return self.done(json.dumps([{"dst": IPS[n], "lladdr": MACS[n], "state": ["REACHABLE"]}
                                         for n in peers]))
        assert argv[1] == "-" and stdin.startswith(b'"""The part of ``loco netcheck``')
        if self.fail_agent:
            return subprocess.CompletedProcess(argv, 127, b"", self.fail_agent.encode())
        mode, params = argv[2], json.loads(argv[3])
        if mode == "sweep":
            return self.done({"pings": [{"addr": a, "ok": True, "detail": ""} for a in params["targets"]]})
        if mode == "listen":
            return self.done({"errors": [], "seen": []})
        return self.done({"results": [
            {"target": t["name"], "addr": t["addr"], "proto": proto, "port": port, "ok": True,
             "answered_by": t["name"], "error": ""}
            for t in params["targets"] for proto, port in params["ports"]]})

    @staticmethod
    def done(answer):
        text = answer if isinstance(answer, str) else json.dumps(answer)
        return subprocess.CompletedProcess([], 0, text.encode(), b"")


def hosts(*fakes):
    return [Host(f.name, f.run) for f in fakes]


def test_healthy_lan_passes_with_a_matrix_per_check(tmp_path):
    report = run_checks(hosts(*(FakeHost(n) for n in "abc")), "lan0")
    assert report.ok
    table = report.table()
    assert table[-1] == "RESULT: PASS (arp, ipv6, directplay; 42 pair tests, 0 findings)"
    assert "ARP (row reaches column)" in table and "DirectPlay (row reaches column)" in table
    assert "  a  -   ok  ok" in table
    report.write(tmp_path / "report.json")
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["ok"] and data["checks"]["directplay"] == {"ok": True, "pairs_tested": 24, "pairs_failed": 0}
    assert [h["name"] for h in data["hosts"]] == ["a", "b", "c"] and len(data["pairs"]) == 42


def test_a_host_that_cannot_run_commands_fails_the_run_by_name():
    pending = Host("c", lambda argv, stdin=None, timeout=30.0: subprocess.CompletedProcess(
        argv, 255, b"", b"pod is Pending"))
    report = run_checks(hosts(FakeHost("a"), FakeHost("b")) + [pending], "lan0", checks=["arp"])
    assert not report.ok
    assert [(f.kind, f.message) for f in report.findings] == [
        ("unavailable", "c: ip -j addr exited 255: pod is Pending")]
    assert "  a  -    ok   n/a" in report.table()


def test_missing_agent_interpreter_is_reported_per_pair():
    report = run_checks(hosts(FakeHost("a"), FakeHost("b", fail_agent="sh: python3: not found")), "lan0",
                        checks=["directplay"])
    messages = [f.message for f in report.findings]
    assert "b: cannot listen: check agent (python3) exited 127: sh: python3: not found" in messages
    assert any(m.startswith("b -> a tcp/2300 (192.168.10.1): probe did not run") for m in messages)
    assert report.as_dict()["checks"]["directplay"]["ok"] is False


def test_only_selected_checks_run():
    fake = FakeHost("a")
    report = run_checks(hosts(fake, FakeHost("b")), "lan0", checks=["ipv6"])
    assert report.checks == ["ipv6"] and {p.check for p in report.pairs} == {"ipv6"}
    assert not any(argv[:3] == ["ip", "-j", "neigh"] for argv in fake.calls)


def test_bad_host_sets_are_refused():
    with pytest.raises(LocoError, match="at least two hosts"):
        run_checks(hosts(FakeHost("a")), "lan0")
    with pytest.raises(LocoError, match="unique"):
        run_checks(hosts(FakeHost("a"), FakeHost("a")), "lan0")


def test_report_file_is_replaced_atomically(tmp_path, monkeypatch):
    path = tmp_path / "report.json"
    path.write_text("previous good report\n")
    report = run_checks(hosts(FakeHost("a"), FakeHost("b")), "lan0", checks=["arp"])
    monkeypatch.setattr(json, "dumps", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        report.write(path)
    assert path.read_text() == "previous good report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_cli_refuses_bad_arguments_in_one_line(capsys):
    from loco_lan.cli import main

    assert main(["netcheck", "--netns", "a,b", "--checks", "arp,dns"]) == 1
    assert capsys.readouterr().err == (
        "loco: error: --checks 'arp,dns': expected a comma-separated subset of arp,ipv6,directplay\n")
    assert main(["netcheck", "--netns", "lnc-does-not-exist,b", "--interface", "lan0"]) == 1
    assert "no network namespace lnc-does-not-exist, b" in capsys.readouterr().err
