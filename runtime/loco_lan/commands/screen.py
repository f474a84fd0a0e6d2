"""``loco screen classify FILE.png...``: what each Windows 98 screen shows."""

import argparse

from loco_lan.screen import analyse


def register(subparsers) -> None:
    parser = subparsers.add_parser("screen", help="judge Windows 98 screen captures")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    classify = actions.add_parser(
        "classify", help="print FILE<TAB>state (desktop, desktop-dialog, booting, game, other) per file"
    )
    classify.add_argument(
        "files", nargs="+", metavar="FILE", help="screen capture (PNG or any image Pillow reads)"
    )
    classify.add_argument("--explain", action="store_true", help="add a third column saying why")
    classify.set_defaults(func=run_classify)


def run_classify(args: argparse.Namespace) -> int:
    for path in args.files:
        result = analyse(path)
        print(f"{path}\t{result.state}" + (f"\t{result.reason}" if args.explain else ""), flush=True)
    return 0
