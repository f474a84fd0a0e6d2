#!/usr/bin/python
# Copyright: loco.lan contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: netcheck
short_description: Check ARP, IPv6 and DirectPlay ports between every pair of emulators on the game LAN
description:
  - Runs inside every emulator pod (through the Kubernetes exec API) or every listed network namespace,
    on the LAN interface O(interface).
  - ARP - after a ping sweep of the peers' IPv4 addresses (the kernel broadcasts an ARP request for each),
    every host's neighbour table must hold every peer's MAC; missing entries, wrong MACs, duplicate MACs
    and duplicate IPs are reported with the hosts involved.
  - IPv6 - every host must reach every peer's link-local address on O(interface), and its ULA or global
    addresses where configured; failing pairs are listed.
  - DirectPlay - TCP and UDP 2300 and 47624 must be reachable, and answered by the right host, between
    every pair. Each host runs short-lived listeners that end by themselves.
  - Any finding fails the task; the result carries the table and the full report either way.
  - Checks only - nothing on the hosts is changed, so the task never reports a change and runs the
    same in check mode. The hosts need C(ip) (iproute2), C(ping) and O(python).
version_added: 0.1.0
author:
  - loco.lan developers (@loco-lan)
options:
  namespace:
    description: Namespace of the emulator pods. One of O(namespace) and O(netns) is required.
    type: str
  selector:
    description: Label selector of the emulator pods in O(namespace).
    type: str
    default: app.kubernetes.io/component=emulator
  container:
    description: Container to run the checks in; the pod's first container when omitted.
    type: str
  netns:
    description:
      - Network namespaces on the managed host to check instead of pods (for LANs built from namespaces,
        and tests).
    type: list
    elements: str
  interface:
    description:
      - The LAN interface on each host (the emulator's bridge in bridge, vxlan and macvlan modes).
      - Defaults to C(br0), and to C(eth0) (the test guest's LAN card) with O(guests).
    type: str
  guests:
    description:
      - Run the checks inside the guests instead of the pods, over each pod's guest channel (COM1, reached
        by port-forward to the pod's port 4555). The test guest (C(loco testguest build)) serves one.
      - With O(namespace) only.
    type: bool
    default: false
  hub:
    description:
      - Also check the segment from instance 0's LAN hub (socket mode), reached by port-forward to its health
        port - its probe port ARPs and pings every guest whatever OS it runs, so every guest must answer at
        192.168.10.<ordinal+10> with its own MAC (52:54:00:4c:4f:<ordinal>), no two guests sharing an IP or
        MAC. The hub's table (per port - the MACs learned, frames, drops) is part of the report.
      - Alone (without O(guests)) only this check runs. With O(namespace) only.
    type: bool
    default: false
  checks:
    description: Which checks to run.
    type: list
    elements: str
    choices: [arp, ipv6, directplay]
    default: [arp, ipv6, directplay]
  python:
    description:
      - Python interpreter on the hosts that runs the check agent (sent on stdin; standard library only).
      - Defaults to C(python3) in pods and to the module's own interpreter for network namespaces.
    type: str
  ping_timeout:
    description: Seconds each ping waits for its reply.
    type: float
    default: 1
  port_timeout:
    description: Seconds each port probe keeps trying (a target's listener may start a moment late).
    type: float
    default: 5
  boot_timeout:
    description:
      - With O(guests=true), seconds each guest has to answer its guest channel before the checks start, so
        guests still booting are waited for rather than reported silent.
    type: float
    default: 120
  report:
    description:
      - Where to write the JSON report on the managed host, atomically. Written in check mode too - it is
        the task's output, not a change to the hosts.
    type: path
extends_documentation_fragment:
  - loco.lan.kube
requirements:
  - loco-lan (the project's runtime package)
attributes:
  check_mode:
    description: Runs the same checks; they change nothing.
    support: full
  diff_mode:
    description: Nothing to compare; no diff is returned.
    support: none
notes:
  - There is no "may be normal" outcome - an unavailable host, a missing address or an unreachable port
    fails the task.
"""

EXAMPLES = r"""
- name: Check the emulators' LAN
  loco.lan.netcheck:
    kubeconfig: "{{ loco_kubeconfig }}"
    namespace: loco
    report: /var/tmp/loco-netcheck.json
  register: lan

- name: Show the result table
  ansible.builtin.debug:
    msg: "{{ lan.table }}"

- name: Check the test guests' own LAN, from inside them and from the hub
  loco.lan.netcheck:
    namespace: loco
    guests: true
    hub: true

- name: Check only the DirectPlay ports between three network namespaces
  loco.lan.netcheck:
    netns: [emu-0, emu-1, emu-2]
    interface: lan0
    checks: [directplay]
"""

RETURN = r"""
ok:
  description: Whether every check passed.
  returned: always
  type: bool
  sample: false
table:
  description: The result as text lines - the hosts, one source-by-target matrix per check, the findings.
  returned: always
  type: list
  elements: str
  sample: ["ARP (row reaches column)", "     a    b", "  a  -    ok",
           "RESULT: PASS (arp; 2 pair tests, 0 findings)"]
findings:
  description: Everything that failed, each with its check, kind, the hosts involved and a message.
  returned: always
  type: list
  elements: dict
  sample: [{"check": "directplay", "kind": "unreachable", "hosts": ["emu-0", "emu-2"],
            "message": "emu-0 -> emu-2 udp/2300 (192.168.10.3): no answer"}]
report:
  description: The full report (also written to O(report)) - hosts, per-check summary, findings, every pair.
  returned: always
  type: dict
"""

import sys

from ansible_collections.loco.lan.plugins.module_utils.runtime import LocoModule

CHECKS = ["arp", "ipv6", "directplay"]


def checked(module, interface):
    """The report of the checks the parameters ask for."""
    from loco_lan.netcheck import kube_hosts, netns_hosts, run_checks
    from loco_lan.netcheck.hosts import kube_guest_lan

    params = module.params
    timing = (params["ping_timeout"], params["port_timeout"])
    if params["netns"]:
        hosts = netns_hosts(params["netns"], params["python"] or sys.executable)
        return run_checks(hosts, interface, params["checks"], *timing)
    if params["guests"] or params["hub"]:
        with kube_guest_lan(module.api(), params["namespace"], params["selector"], kubeconfig=params["kubeconfig"],
                            context=params["context"], guests=params["guests"], hub=params["hub"]) as lan:
            hosts, hub, guests = lan
            return run_checks(hosts, interface, params["checks"], *timing, hub=hub, guests=guests,
                              boot_timeout=params["boot_timeout"])
    hosts = kube_hosts(module.api(), params["namespace"], params["selector"], params["container"],
                       params["python"] or "python3")
    return run_checks(hosts, interface, params["checks"], *timing)


def main():
    module = LocoModule(
        argument_spec=dict(
            namespace=dict(type="str"),
            selector=dict(type="str", default="app.kubernetes.io/component=emulator"),
            container=dict(type="str"),
            netns=dict(type="list", elements="str"),
            interface=dict(type="str"),
            guests=dict(type="bool", default=False),
            hub=dict(type="bool", default=False),
            checks=dict(type="list", elements="str", choices=CHECKS, default=CHECKS),
            python=dict(type="str"),
            ping_timeout=dict(type="float", default=1),
            port_timeout=dict(type="float", default=5),
            boot_timeout=dict(type="float", default=120),
            report=dict(type="path"),
        ),
        kube=True,
        mutually_exclusive=[("namespace", "netns")],
        required_one_of=[("namespace", "netns")],
        supports_check_mode=True,
    )
    params = module.params
    if min(params["ping_timeout"], params["port_timeout"], params["boot_timeout"]) <= 0:
        module.fail_json(msg="ping_timeout, port_timeout and boot_timeout must be positive")
    if params["netns"] and (params["guests"] or params["hub"]):
        module.fail_json(msg="guests and hub check emulator pods: use them with namespace, not netns")
    interface = params["interface"] or ("eth0" if params["guests"] else "br0")
    report = module.call(checked, module, interface)
    if params["report"]:
        module.call(report.write, params["report"])
    data = report.as_dict()
    result = dict(changed=False, ok=data["ok"], table=report.table(), findings=data["findings"], report=data)
    if not data["ok"]:
        findings = data["findings"]
        more = f" (and {len(findings) - 3} more)" if len(findings) > 3 else ""
        first = "; ".join(finding["message"] for finding in findings[:3])
        module.fail_json(msg="LAN checks failed: " + first + more, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
