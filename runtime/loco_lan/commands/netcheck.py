"""``loco netcheck``: ARP, IPv6 and DirectPlay checks across the emulators' LAN."""

import argparse
import sys

from loco_lan import kube
from loco_lan.errors import LocoError
from loco_lan.netcheck import CHECKS, EMULATOR_SELECTOR, kube_hosts, netns_hosts, run_checks
from loco_lan.netcheck.hosts import kube_guest_lan

DEFAULT_INTERFACE = "br0"  # the emulator's LAN bridge (LOCO_BRIDGE) in bridge/vxlan/macvlan modes
GUEST_INTERFACE = "eth0"  # the test guest's LAN card


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "netcheck",
        help="check ARP, IPv6 and DirectPlay ports between every pair of emulators on the LAN",
        description="Run inside every emulator pod (or network namespace): every host must hold every "
        "peer's MAC after a ping sweep, reach every peer's IPv6 link-local and ULA/global addresses, and "
        "reach TCP and UDP 2300 and 47624 on every peer. Prints a table; exits 1 on any finding.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--namespace", metavar="NS", help="Kubernetes namespace of the emulator pods")
    where.add_argument("--netns", metavar="NAME,NAME,...", help="network namespaces standing in for pods")
    parser.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default $KUBECONFIG or in-cluster)")
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context")
    parser.add_argument("--selector", default=EMULATOR_SELECTOR, metavar="LABELS",
                        help=f"label selector of the emulator pods ({EMULATOR_SELECTOR})")
    parser.add_argument("--container", metavar="NAME",
                        help="container to exec into (default: the pod's first)")
    parser.add_argument("--interface", metavar="IF",
                        help=f"the LAN interface on each host ({DEFAULT_INTERFACE}; {GUEST_INTERFACE} with --guests)")
    parser.add_argument("--guests", action="store_true",
                        help="run the checks inside the guests, over each pod's guest channel (the test guest), "
                        "instead of on the pods")
    parser.add_argument("--hub", action="store_true",
                        help="check the segment from instance 0's LAN hub (socket mode): its probe port ARPs "
                        "and pings every guest, whatever OS it runs (alone: only this check)")
    parser.add_argument("--checks", default=",".join(CHECKS), metavar="LIST",
                        help=f"comma-separated subset of {','.join(CHECKS)} (all)")
    parser.add_argument("--python", metavar="PATH",
                        help="Python on the hosts that runs the check agent (pods: python3; netns: this one)")
    parser.add_argument("--ping-timeout", type=float, default=1.0, metavar="S", help="per ping (1)")
    parser.add_argument("--port-timeout", type=float, default=5.0, metavar="S",
                        help="how long each port probe keeps trying (5)")
    parser.add_argument("--boot-timeout", type=float, default=120.0, metavar="S",
                        help="with --guests: how long each guest has to answer before the checks start (120)")
    parser.add_argument("--report", metavar="OUT.json", help="also write the JSON report here (atomically)")
    parser.set_defaults(func=run_netcheck)


def parse_checks(text: str) -> list[str]:
    checks = [check.strip() for check in text.split(",") if check.strip()]
    unknown = [check for check in checks if check not in CHECKS]
    if unknown or not checks:
        raise LocoError(f"--checks {text!r}: expected a comma-separated subset of {','.join(CHECKS)}")
    return checks


def run_netcheck(args: argparse.Namespace) -> int:
    checks = parse_checks(args.checks)
    if min(args.ping_timeout, args.port_timeout, args.boot_timeout) <= 0:
        raise LocoError("--ping-timeout, --port-timeout and --boot-timeout must be positive")
    interface = args.interface or (GUEST_INTERFACE if args.guests else DEFAULT_INTERFACE)
    if args.netns:
        if args.guests or args.hub:
            raise LocoError("--guests and --hub check emulator pods: use them with --namespace")
        names = [name.strip() for name in args.netns.split(",") if name.strip()]
        hosts = netns_hosts(names, args.python or sys.executable)
        report = run_checks(hosts, interface, checks, args.ping_timeout, args.port_timeout)
    elif args.guests or args.hub:
        api = kube.api_client(args.kubeconfig, args.context)
        with kube_guest_lan(api, args.namespace, args.selector, kubeconfig=args.kubeconfig, context=args.context,
                            guests=args.guests, hub=args.hub) as (hosts, hub, guests):
            report = run_checks(hosts, interface, checks, args.ping_timeout, args.port_timeout, hub=hub, guests=guests,
                                boot_timeout=args.boot_timeout)
    else:
        api = kube.api_client(args.kubeconfig, args.context)
        hosts = kube_hosts(api, args.namespace, args.selector, args.container, args.python or "python3")
        report = run_checks(hosts, interface, checks, args.ping_timeout, args.port_timeout)
    if args.report:
        report.write(args.report)
    print("\n".join(report.table()), flush=True)
    return 0 if report.ok else 1
