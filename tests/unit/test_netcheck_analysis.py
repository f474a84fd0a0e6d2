"""The rules that judge what hosts reported: neighbour tables, addresses, pings, port probes."""

import json

from netcheck_fakes import IPS, LL, MACS, ULA, ip_addr

from loco_lan.netcheck.analysis import (
    Neighbour,
    arp_outcome,
    directplay_outcome,
    host_findings,
    ipv6_outcome,
    parse_addr,
    parse_neigh,
    sweep_targets,
)


def facts_of(**overrides):
    return [parse_addr(name, "lan0", overrides.get(name) or ip_addr(name)) for name in "abc"]


def full_tables(facts):
    return {h.name: [Neighbour(p.ipv4[0], p.mac, ("REACHABLE",)) for p in facts if p.name != h.name]
            for h in facts}


def problems(outcome):
    return sorted((p.problem, p.source, p.target) for p in outcome.pairs if not p.ok)


def test_parse_addr_reads_mac_addresses_and_flags():
    text = ip_addr("a", extra={"fd00:10::1": {"dadfailed": True, "tentative": True}})
    host = parse_addr("a", "lan0", text)
    assert (host.mac, host.ipv4, host.error) == (MACS["a"], ["192.168.10.1"], "")
    assert [a.addr for a in host.ipv6] == ["fe80::a"]  # the dadfailed ULA is not usable
    assert [a.kind for a in host.addresses] == ["ipv4", "link-local", "ula"]
    assert parse_addr("a", "lan1", text).error == "no interface lan1"
    assert "unreadable" in parse_addr("a", "lan0", "Device not found").error


def test_parse_neigh_keeps_state_and_ignores_missing_lladdr():
    text = json.dumps([{"dst": "192.168.10.2", "lladdr": "02:00:00:00:00:0B", "state": ["STALE"]},
                       {"dst": "192.168.10.3", "state": ["FAILED"]}])
    entries = parse_neigh(text)
    assert [(e.addr, e.mac, e.resolved) for e in entries] == [
        ("192.168.10.2", "02:00:00:00:00:0b", True), ("192.168.10.3", "", False)]


def test_full_tables_and_answered_probes_pass():
    facts = facts_of()
    outcome = arp_outcome(facts, full_tables(facts), {})
    assert outcome.findings == [] and problems(outcome) == []
    assert len(outcome.pairs) == 6


def test_missing_entry_names_holder_and_peer_with_the_probe_result():
    facts = facts_of()
    tables = full_tables(facts)
    tables["a"] = [e for e in tables["a"] if e.addr != IPS["c"]] + [Neighbour(IPS["c"], "", ("INCOMPLETE",))]
    outcome = arp_outcome(facts, tables, {("a", IPS["c"]): "no reply"})
    assert problems(outcome) == [("missing", "a", "c")]
    message = next(p.message for p in outcome.pairs if not p.ok)
    assert message == "a holds no MAC for c (192.168.10.3): state INCOMPLETE; ping: no reply"


def test_wrong_mac_names_the_host_that_owns_it():
    facts = facts_of()
    tables = full_tables(facts)
    tables["b"] = [Neighbour(IPS["a"], MACS["c"], ("REACHABLE",)), Neighbour(IPS["c"], MACS["c"], ("STALE",))]
    outcome = arp_outcome(facts, tables, {})
    assert problems(outcome) == [("wrong-mac", "b", "a")]
    assert "b maps a's 192.168.10.1 to 02:00:00:00:00:0c (c), expected 02:00:00:00:00:0a" in (
        next(p.message for p in outcome.pairs if not p.ok))


def test_stale_entry_without_an_answer_is_not_held():
    facts = facts_of()
    tables = full_tables(facts)
    tables["a"] = [Neighbour(IPS["b"], MACS["b"]), Neighbour(IPS["c"], MACS["c"], ("DELAY",))]
    outcome = arp_outcome(facts, tables, {("a", IPS["c"]): "no reply"})
    assert problems(outcome) == [("no-reply", "a", "c")]


def test_duplicate_mac_and_duplicate_ip_name_the_hosts():
    facts = facts_of(c=ip_addr("c", mac=MACS["b"], ipv4=[IPS["b"]]))
    outcome = arp_outcome(facts, full_tables(facts), {})
    assert [(f.kind, f.hosts) for f in outcome.findings] == [
        ("duplicate-mac", ("b", "c")), ("duplicate-ip", ("b", "c"))]
    assert outcome.findings[1].message == "IPv4 192.168.10.2 is configured on b, c"
    # The duplicated address is not judged per pair: there is no right MAC for it.
    assert {p.item for p in outcome.pairs} == {IPS["a"]}


def test_unreadable_table_is_a_finding():
    facts = facts_of()
    tables = full_tables(facts)
    tables["b"] = "ip -j neigh exited 1: Cannot open netlink socket"
    outcome = arp_outcome(facts, tables, {})
    assert [(f.kind, f.hosts) for f in outcome.findings] == [("no-table", ("b",))]


def test_host_findings_interface_missing_down_no_carrier_no_ipv4():
    facts = [
        parse_addr("a", "lan0", ip_addr("a", flags=("BROADCAST", "MULTICAST"))),
        parse_addr("b", "lan0", ip_addr("b", flags=("UP",), ipv4=[])),
        parse_addr("c", "lan0", ip_addr("c", interface="eth0")),
    ]
    assert [(f.kind, f.hosts) for f in host_findings(facts)] == [
        ("interface-down", ("a",)), ("no-carrier", ("b",)), ("no-ipv4", ("b",)), ("unavailable", ("c",))]


def test_sweep_targets_are_the_peers_addresses():
    facts = facts_of()
    assert sweep_targets(facts, "a") == [IPS["b"], LL["b"], ULA["b"], IPS["c"], LL["c"], ULA["c"]]
    assert sweep_targets(facts, "a", ipv6=False) == [IPS["b"], IPS["c"]]
    assert sweep_targets(facts, "a", ipv4=False) == [LL["b"], ULA["b"], LL["c"], ULA["c"]]


def test_ipv6_all_pairs_link_local_and_ula():
    facts = facts_of()
    pings = {(s, addr): "" for s in "abc" for addr in sweep_targets(facts, s, ipv4=False)}
    assert problems(ipv6_outcome(facts, pings)) == []
    pings[("b", ULA["c"])] = "no reply"
    outcome = ipv6_outcome(facts, pings)
    assert problems(outcome) == [("unreachable", "b", "c")]
    assert next(p.message for p in outcome.pairs if not p.ok) == "b -> c ula fd00:10::3: no reply"


def test_ipv6_missing_link_local_and_failed_sweep_list_the_pairs():
    facts = facts_of(c=ip_addr("c", ipv6=[ULA["c"]]))
    pings = {("a", addr): "" for addr in sweep_targets(facts, "a", ipv4=False)}
    pings[("b", "")] = "check agent (python3) exited 127: python3: not found"
    pings.update({("c", addr): "" for addr in sweep_targets(facts, "c", ipv4=False)})
    outcome = ipv6_outcome(facts, pings)
    assert problems(outcome) == [
        ("no-address", "a", "c"), ("no-address", "b", "c"),
        ("unreachable", "b", "a"), ("unreachable", "b", "a"), ("unreachable", "b", "c")]
    assert any("python3: not found" in p.message for p in outcome.pairs if p.source == "b")


def test_ipv6_duplicate_and_dad_failed():
    facts = facts_of(c=ip_addr("c", ipv6=[LL["c"], ULA["b"]], extra={ULA["b"]: {"dadfailed": True}}))
    findings = ipv6_outcome(facts, {}).findings
    assert [(f.kind, f.hosts) for f in findings] == [("dad-failed", ("c",)), ("duplicate-ip", ("b", "c"))]


def probe_results(source, facts, fail=()):
    return [{"target": t.name, "addr": t.ipv4[0], "proto": proto, "port": port,
             "ok": (t.name, proto, port) not in fail, "answered_by": t.name,
             "error": "no answer" if (t.name, proto, port) in fail else ""}
            for t in facts if t.name != source for proto, port in (("tcp", 2300), ("udp", 2300),
                                                                   ("tcp", 47624), ("udp", 47624))]


def test_directplay_all_pairs_and_failures_named():
    facts = facts_of()
    listeners = {name: {"errors": [], "seen": []} for name in "abc"}
    probes = {name: probe_results(name, facts) for name in "abc"}
    assert problems(directplay_outcome(facts, probes, listeners)) == []
    assert len(directplay_outcome(facts, probes, listeners).pairs) == 24

    probes["a"] = probe_results("a", facts, fail={("c", "udp", 2300)})
    probes["b"] = "check agent (python3) exited 1: Traceback"
    listeners["c"] = {"errors": ["udp/2300 on 192.168.10.3: Address already in use"], "seen": []}
    outcome = directplay_outcome(facts, probes, listeners)
    assert [(f.kind, f.hosts) for f in outcome.findings] == [("listener-failed", ("c",))]
    failed = [(p.source, p.target, p.item) for p in outcome.pairs if not p.ok]
    assert failed[0] == ("a", "c", "udp/2300")
    assert len(failed) == 1 + 8  # b's prober did not run: all its pairs fail
    assert next(p.message for p in outcome.pairs if not p.ok) == "a -> c udp/2300 (192.168.10.3): no answer"


def test_directplay_answer_from_the_wrong_host():
    facts = facts_of()
    probes = {name: probe_results(name, facts) for name in "abc"}
    probes["a"][0].update(ok=False, answered_by="c", error="answered by c")
    outcome = directplay_outcome(facts, probes, {n: {"errors": []} for n in "abc"})
    assert [(p.problem, p.source, p.target, p.item) for p in outcome.pairs if not p.ok] == [
        ("wrong-host", "a", "b", "tcp/2300")]
