"""``loco testguest build OUT.qcow2``: the small Linux guest that proves the game LAN."""

import argparse
from pathlib import Path

from loco_lan import testguest


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "testguest", help="build the test guest (Linux with a network stack) that stands in for Windows 98 on the LAN")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build", help="write the test guest's qcow2 disk (kept when built from the same inputs)",
        description="Build the test guest from Debian's i386 kernel and busybox (downloaded by scripts/setup.sh "
        "into ~/.cache/loco-lan/debs, or LOCO_DEBS_DIR): it takes 192.168.10.<ordinal+10>/24, answers ARP, "
        "ping and the DirectPlay ports, and serves the guest channel on COM1.")
    build.add_argument("output", type=Path, metavar="OUT.qcow2")
    build.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    changed, digest = testguest.ensure(args.output)
    print(f"{args.output}: {'built' if changed else 'up to date'} (sha256 {digest})", flush=True)
    return 0
