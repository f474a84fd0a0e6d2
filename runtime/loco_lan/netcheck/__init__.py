"""LAN checks between emulators: ARP tables, IPv6 reachability and DirectPlay ports.

``run_checks(hosts, interface)`` runs on emulator pods (``kube_hosts``) or
network namespaces (``netns_hosts``) and returns a ``Report`` (text table and
JSON).  The rules that judge the collected data live in ``analysis``.
"""

from loco_lan.netcheck.engine import CHECKS, run_checks
from loco_lan.netcheck.hosts import EMULATOR_SELECTOR, Host, kube_hosts, netns_hosts
from loco_lan.netcheck.report import Report

__all__ = ["CHECKS", "EMULATOR_SELECTOR", "Host", "Report", "kube_hosts", "netns_hosts", "run_checks"]
