"""The ``loco`` command: one entry point, subcommands discovered from
:mod:`loco_lan.commands` so each feature owns its own parser.  Only the module of
the command given is imported (the others pull in kubernetes, aiohttp, numpy...),
so ``loco focus get`` starts in a fraction of the time; help loads them all."""

import argparse
import importlib
import logging
import pkgutil
import sys

from loco_lan import __version__, commands
from loco_lan.errors import LocoError


def command_modules() -> list[str]:
    return sorted(info.name for info in pkgutil.iter_modules(commands.__path__))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or one with just the command module ``only``."""
    parser = argparse.ArgumentParser(prog="loco", description="Run a LAN of emulated Windows 98 machines.")
    parser.add_argument("--version", action="version", version=f"loco {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in [only] if only else command_modules():
        importlib.import_module(f"{commands.__name__}.{name}").register(subparsers)
    return parser


def chosen_module(argv: list[str]) -> str | None:
    """The command module the first word after the global options names, if it names one."""
    word = next((arg for arg in argv if not arg.startswith("-")), "")
    return word.replace("-", "_") if word.replace("-", "_") in command_modules() else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(chosen_module(argv)).parse_args(argv)
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
    except Exception as exc:
        # A Kubernetes API failure the command did not expect is still one line, not a traceback.
        if "loco_lan.kube" not in sys.modules or not isinstance(exc, sys.modules["loco_lan.kube"].API_FAILURES):
            raise
        print(f"loco: error: {sys.modules['loco_lan.kube'].api_error(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
