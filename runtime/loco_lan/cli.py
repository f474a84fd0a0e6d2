"""The ``loco`` command: one entry point, subcommands discovered from
:mod:`loco_lan.commands` so each feature owns its own parser."""

import argparse
import importlib
import logging
import pkgutil
import sys

from loco_lan import __version__, commands
from loco_lan.errors import LocoError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loco", description="Run a LAN of emulated Windows 98 machines.")
    parser.add_argument("--version", action="version", version=f"loco {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{info.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except LocoError as exc:
        print(f"loco: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
