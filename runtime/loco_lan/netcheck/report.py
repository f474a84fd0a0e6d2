"""A run's results: the pair matrices and findings as text for people, JSON for machines."""

import json
import os
from dataclasses import dataclass, field

from loco_lan.fsutil import atomic_write
from loco_lan.netcheck.analysis import Finding, HostFacts, PairResult

CHECK_TITLES = {"arp": "ARP", "ipv6": "IPv6", "directplay": "DirectPlay", "segment": "Segment (the hub's probe port)"}
# Short cell labels for failed items; anything else is shown as it is.
SHORT = {"link-local": "ll", "tcp/2300": "t2300", "udp/2300": "u2300", "tcp/47624": "t47624",
         "udp/47624": "u47624"}


@dataclass
class Report:
    interface: str
    hosts: list[HostFacts]
    checks: list[str]
    pairs: list[PairResult] = field(default_factory=list)
    extra: list[Finding] = field(default_factory=list)
    segment: dict | None = None  # what the hub's probe port saw, and the hub's port table

    @property
    def findings(self) -> list[Finding]:
        """Host and duplicate findings, then every failed pair, in check order."""
        failed = [Finding(p.check, p.problem, (p.source, p.target), p.message)
                  for p in self.pairs if not p.ok]
        order = ["hosts", *self.checks]
        return sorted(self.extra + failed, key=lambda f: order.index(f.check) if f.check in order else 99)

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict:
        findings = self.findings
        return {
            "ok": not findings,
            "interface": self.interface,
            "checks": {
                check: {
                    "ok": not any(f.check == check for f in findings),
                    "pairs_tested": sum(p.check == check for p in self.pairs),
                    "pairs_failed": sum(p.check == check and not p.ok for p in self.pairs),
                }
                for check in self.checks
            },
            "hosts": [host.as_dict() for host in self.hosts],
            "findings": [finding.as_dict() for finding in findings],
            "pairs": [pair.as_dict() for pair in self.pairs],
            **({"segment": self.segment} if self.segment is not None else {}),
        }

    def write(self, path: str | os.PathLike) -> None:
        atomic_write(path, json.dumps(self.as_dict(), indent=2) + "\n")

    def table(self) -> list[str]:
        """The play/terminal output: hosts, one source x target matrix per check, findings, verdict."""
        lines = [f"LAN interface {self.interface}, {len(self.hosts)} hosts"]
        lines += _columns([["HOST", "MAC", "IPv4", "IPv6"]] + [
            [h.name, h.mac or "-", ",".join(h.ipv4) or "-",
             ",".join(a.addr for a in h.ipv6) or "-"] if not h.error else [h.name, "-", "-", h.error]
            for h in self.hosts
        ])
        for check in self.checks:
            if check == "segment":
                lines += ["", CHECK_TITLES[check], *self._segment()]
            else:
                lines += ["", f"{CHECK_TITLES.get(check, check)} (row reaches column)", *self._matrix(check)]
        if self.checks:
            lines += ["", "ok: passed; n/a: not tested (a finding says why); other cells: what failed"]
        findings = self.findings
        if findings:
            lines += ["", f"FINDINGS ({len(findings)})"]
            lines += [f"  [{f.check}] {f.message}" for f in findings]
        tested = len(self.pairs)
        verdict = "PASS" if not findings else "FAIL"
        lines += ["", f"RESULT: {verdict} ({', '.join(self.checks) or 'no checks'}; {tested} pair tests, "
                  f"{len(findings)} finding{'' if len(findings) == 1 else 's'})"]
        return lines

    def _segment(self) -> list[str]:
        """Per guest what the probe found, then the hub's table: per port the MACs behind it and its frames."""
        cells: dict[str, dict[str, str]] = {}
        for pair in self.pairs:
            if pair.check == "segment":
                cells.setdefault(pair.target, {})[pair.item] = "ok" if pair.ok else pair.problem
        items = ["frames", "arp", "ping", "ipv6"]
        lines = ["  " + line for line in _columns([["GUEST", *[i.upper() for i in items]]] + [
            [name, *[row.get(item, "n/a") for item in items]] for name, row in cells.items()])]
        if self.segment:
            probe = self.segment.get("probe", {})
            lines += ["", f"  hub ports (probe port {probe.get('mac', '?')} at {probe.get('ip', '?')}):"]
            lines += ["  " + line for line in _columns([["PORT", "MACS", "FRAMES IN", "FRAMES OUT", "DROPPED"]] + [
                [port["port"], ",".join(port["macs"]) or "-", str(port["frames_in"]), str(port["frames_out"]),
                 str(port["dropped"])] for port in self.segment.get("ports", [])])]
        return lines

    def _matrix(self, check: str) -> list[str]:
        names = [h.name for h in self.hosts]
        cells: dict[tuple[str, str], list[str]] = {}
        for pair in self.pairs:
            if pair.check == check:
                labels = cells.setdefault((pair.source, pair.target), [])
                label = pair.problem if check == "arp" else SHORT.get(pair.item, pair.item)
                if not pair.ok and label not in labels:
                    labels.append(label)
        rows = [["", *names]]
        for source in names:
            row = [source]
            for target in names:
                if source == target:
                    row.append("-")
                elif (source, target) not in cells:
                    row.append("n/a")  # not tested: a host-level finding says why
                else:
                    row.append(",".join(cells[(source, target)]) or "ok")
            rows.append(row)
        return ["  " + line for line in _columns(rows)]


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows]
