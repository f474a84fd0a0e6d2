"""Run the checks on a set of hosts: collect facts, sweep, read neighbour
tables, probe ports, then hand everything to the pure analysis."""

import json
import math
import secrets
import shlex
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loco_lan.emulator.lanprobe import SUBNET
from loco_lan.errors import LocoError
from loco_lan.netcheck import analysis
from loco_lan.netcheck.analysis import DIRECTPLAY_PORTS, Guest, HostFacts
from loco_lan.netcheck.hosts import Host, Ran
from loco_lan.netcheck.report import Report

CHECKS = ("arp", "ipv6", "directplay")
AGENT = Path(__file__).with_name("agent.py").read_bytes()
# Extra time a listener stays up beyond the probers' deadline: the execs that
# start listeners and probers do not begin at the same instant.
LISTEN_MARGIN = 1.0
# Time for an exec to start and the agent to report, on top of its own deadline.
EXEC_SLACK = 20.0


def _parallel(function: Callable, items: Iterable) -> list:
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(lambda item: function(*item), items))


def _failure(ran: Ran, what: str) -> str:
    lines = ran.stderr.decode("utf-8", "replace").strip().splitlines()
    return f"{what} exited {ran.returncode}" + (f": {lines[-1]}" if lines else "")


def call_agent(host: Host, mode: str, params: dict, timeout: float) -> dict | str:
    """The agent's JSON answer, or a one-line reason it gave none."""
    ran = host.run([host.python, "-", mode, json.dumps(params)], stdin=AGENT, timeout=timeout)
    if ran.returncode != 0:
        return _failure(ran, f"check agent ({host.python})")
    try:
        return json.loads(ran.stdout)
    except ValueError:
        return f"check agent ({host.python}) printed no JSON: {ran.stdout[:80]!r}"


def _facts(host: Host, interface: str, boot_timeout: float) -> HostFacts:
    if host.guest:
        # The guest answers DirectPlay probes with its hostname: make it the name the checks use.
        # The first call waits for a guest still booting; the checks after it find it up.
        ran = host.run(["sh", "-c", f"hostname {shlex.quote(host.name)} && ip addr show dev {shlex.quote(interface)}"],
                       timeout=max(boot_timeout, EXEC_SLACK))
        if ran.returncode != 0:
            return HostFacts(host.name, interface, error=_failure(ran, "ip addr (in the guest)"))
        return analysis.parse_addr_text(host.name, interface, ran.stdout.decode("utf-8", "replace"))
    ran = host.run(["ip", "-j", "addr", "show", "dev", interface], timeout=EXEC_SLACK)
    if ran.returncode != 0:
        return HostFacts(host.name, interface, error=_failure(ran, "ip -j addr"))
    return analysis.parse_addr(host.name, interface, ran.stdout.decode("utf-8", "replace"))


def _guest_sweep(host: Host, interface: str, targets: list[str], timeout: float) -> dict | str:
    """The agent's sweep, done by the guest's busybox: one ping per address, all at once."""
    wait = max(1, math.ceil(timeout))
    pings = " ".join(
        f"( ping -c 1 -W {wait} -I {shlex.quote(interface)} {shlex.quote(addr)} >/dev/null 2>&1"
        f" && echo {shlex.quote(addr)} ok || echo {shlex.quote(addr)} fail ) &" for addr in targets)
    ran = host.run(["sh", "-c", f"{pings} wait"], timeout=wait + EXEC_SLACK)
    if ran.returncode != 0:
        return _failure(ran, "ping (in the guest)")
    answered = dict(line.split() for line in ran.stdout.decode().splitlines() if len(line.split()) == 2)
    return {"pings": [{"addr": addr, "ok": answered.get(addr) == "ok",
                       "detail": "" if answered.get(addr) == "ok" else "no reply"} for addr in targets]}


def probe_segment(hub: str, subnet: str = SUBNET, wait: float = 1.5) -> dict | str:
    """What the hub's probe port sees (instance 0's ``POST /lan/probe`` at ``hub``, a base URL), or why not."""
    request = urllib.request.Request(f"{hub.rstrip('/')}/lan/probe", method="POST",
                                     data=json.dumps({"subnet": subnet, "wait": wait}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=3 * wait + EXEC_SLACK) as reply:
            return json.loads(reply.read())
    except (OSError, ValueError) as exc:  # refused, 4xx/5xx (HTTPError), garbled
        return f"the LAN hub at {hub} did not answer its probe ({exc})"


def run_checks(hosts: list[Host], interface: str, checks: Iterable[str] = CHECKS,
               ping_timeout: float = 1.0, port_timeout: float = 5.0, hub: str | None = None,
               guests: list[Guest] = (), subnet: str = SUBNET, boot_timeout: float = EXEC_SLACK) -> Report:
    """Check the LAN the hosts share on ``interface``; the Report says what failed and between whom.

    With ``hub`` (instance 0's health URL) the hub's probe port also checks ``guests`` from the
    segment itself (check ``segment``), whatever runs inside them; ``hosts`` may then be empty.
    A guest that runs the checks itself has ``boot_timeout`` seconds to answer first (it may still boot)."""
    checks = [check for check in CHECKS if check in set(checks)]
    names = [host.name for host in hosts]
    if hub:
        # The guests first: their checks wait for each to answer (booted), then the segment is probed.
        inside = run_checks(hosts, interface, checks, ping_timeout, port_timeout,
                            boot_timeout=boot_timeout) if hosts else None
        report = Report(interface, [], [*checks, "segment"] if hosts else ["segment"])
        seen = probe_segment(hub, subnet)
        if isinstance(seen, str):
            report.extra.append(analysis.Finding("segment", "no-hub", ("hub",), seen))
        else:
            report.segment = seen
            _add(report, analysis.segment_outcome(list(guests), seen, ipv6="ipv6" in checks))
        if inside is None:
            return report
        inside.checks, inside.segment = report.checks, report.segment
        inside.pairs += report.pairs
        inside.extra += report.extra
        return inside
    if len(hosts) < 2:
        raise LocoError(f"need at least two hosts to check a LAN, got {len(hosts)} ({', '.join(names)})")
    if len(set(names)) != len(names):
        raise LocoError(f"host names must be unique: {', '.join(names)}")
    facts = _parallel(lambda host: _facts(host, interface, boot_timeout), [(host,) for host in hosts])
    report = Report(interface, facts, checks, extra=analysis.host_findings(facts))
    live = [(host, fact) for host, fact in zip(hosts, facts, strict=True) if not fact.error]

    if "arp" in checks or "ipv6" in checks:
        swept = _parallel(lambda host, fact: _sweep(host, fact, facts, checks, ping_timeout), live)
        pings = {key: value for result in swept for key, value in result[0].items()}
        if "arp" in checks:
            tables = {host.name: result[1] for (host, _), result in zip(live, swept, strict=True)}
            _add(report, analysis.arp_outcome(facts, tables, pings))
        if "ipv6" in checks:
            _add(report, analysis.ipv6_outcome(facts, pings))
    if "directplay" in checks:
        probes, listeners = _directplay(live, port_timeout)
        _add(report, analysis.directplay_outcome(facts, probes, listeners))
    return report


def _add(report: Report, outcome: analysis.Outcome) -> None:
    report.pairs += outcome.pairs
    report.extra += outcome.findings


def _sweep(host: Host, fact: HostFacts, facts: list[HostFacts], checks: list[str],
           ping_timeout: float) -> tuple[dict, list | str]:
    """Ping the peers (the ARP probe and the IPv6 test), then read the neighbour table the pings filled."""
    targets = analysis.sweep_targets(facts, host.name, ipv4="arp" in checks, ipv6="ipv6" in checks)
    params = {"interface": fact.interface, "targets": targets, "timeout": ping_timeout,
              "source": fact.ipv4[0] if fact.ipv4 else ""}
    if host.guest:
        answer = _guest_sweep(host, fact.interface, targets, ping_timeout)
    else:
        answer = call_agent(host, "sweep", params, timeout=ping_timeout + EXEC_SLACK)
    if isinstance(answer, str):
        pings = {(host.name, ""): answer}
    else:
        pings = {(host.name, ping["addr"]): ping["detail"] or ("" if ping["ok"] else "failed")
                 for ping in answer["pings"]}
    if "arp" not in checks:
        return pings, []
    if host.guest:
        ran = host.run(["ip", "neigh", "show", "dev", fact.interface], timeout=EXEC_SLACK)
        if ran.returncode != 0:
            return pings, _failure(ran, "ip neigh (in the guest)")
        return pings, analysis.parse_neigh_text(ran.stdout.decode("utf-8", "replace"))
    ran = host.run(["ip", "-j", "neigh", "show", "dev", fact.interface], timeout=EXEC_SLACK)
    if ran.returncode != 0:
        return pings, _failure(ran, "ip -j neigh")
    try:
        return pings, analysis.parse_neigh(ran.stdout.decode("utf-8", "replace"))
    except ValueError:
        return pings, f"unreadable output of ip -j neigh: {ran.stdout[:80]!r}"


def _directplay(live: list[tuple[Host, HostFacts]], port_timeout: float) -> tuple[dict, dict]:
    """Short-lived listeners on every host, probers on every host, all at once.

    Listeners end by themselves once every peer's probes arrived, or at the
    probers' deadline plus a margin, so nothing outlives the run.
    """
    token = secrets.token_hex(8)
    ports = [list(port) for port in DIRECTPLAY_PORTS]
    reachable = [(host, fact) for host, fact in live if fact.ipv4]
    lifetime = port_timeout + LISTEN_MARGIN

    def listen(host: Host, fact: HostFacts):
        if host.guest:
            return {"errors": []}  # the guest's own DirectPlay stand-in answers all the time
        sources = [h.name for h, _ in reachable if h.name != host.name]
        params = {"name": host.name, "token": token, "addrs": fact.ipv4, "ports": ports,
                  "sources": sources, "lifetime": lifetime}
        return call_agent(host, "listen", params, timeout=lifetime + EXEC_SLACK)

    def probe(host: Host, fact: HostFacts):
        targets = [{"name": h.name, "addr": f.ipv4[0]} for h, f in reachable if h.name != host.name]
        if host.guest:
            argv = ["loco-lan", "probe", host.name, token, f"{port_timeout:g}",
                    *[f"{t['name']}={t['addr']}" for t in targets], "--", *[f"{p}/{n}" for p, n in ports]]
            ran = host.run(argv, timeout=port_timeout + EXEC_SLACK)
            try:
                answer = json.loads(ran.stdout) if ran.returncode == 0 else _failure(ran, "loco-lan probe")
            except ValueError:
                answer = f"loco-lan probe printed no JSON: {ran.stdout[:80]!r}"
            return answer if isinstance(answer, str) else answer["results"]
        params = {"name": host.name, "token": token, "source": fact.ipv4[0], "targets": targets,
                  "ports": ports, "timeout": port_timeout}
        answer = call_agent(host, "probe", params, timeout=port_timeout + EXEC_SLACK)
        return answer if isinstance(answer, str) else answer["results"]

    jobs = [(job, host, fact) for job in (listen, probe) for host, fact in reachable]
    results = _parallel(lambda job, host, fact: job(host, fact), jobs)
    count = len(reachable)
    listeners = {host.name: result for (host, _), result in zip(reachable, results[:count], strict=True)}
    probes = {host.name: result for (host, _), result in zip(reachable, results[count:], strict=True)}
    return probes, listeners

