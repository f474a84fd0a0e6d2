"""``loco registry``: a private registry on a loopback port (for the local demo and for tests)."""

import argparse
import json
import os
from pathlib import Path

from loco_lan.errors import LocoError
from loco_lan.localregistry import LocalRegistry, make_htpasswd


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "loco-lan" / "registry"


def register(subparsers) -> None:
    parser = subparsers.add_parser("registry", help="a private registry on a loopback port")
    parser.add_argument("--state-dir", type=Path, default=default_state_dir(),
                        help="config, storage, log and state of the registry (default: %(default)s)")
    actions = parser.add_subparsers(dest="registry_action", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start it (no-op if already running) and print its URL")
    up.add_argument("--port", type=int, default=0, help="loopback port (default: a free one)")
    up.add_argument("--username", help="require this user (bcrypt htpasswd)")
    up.add_argument("--password-file", type=Path, help="file holding that user's password")
    up.set_defaults(func=_up)
    actions.add_parser("down", help="stop it").set_defaults(func=_down)
    status = actions.add_parser("status", help="print its URL; exit 1 if it is not running")
    status.add_argument("--json", action="store_true", help="print its state as JSON")
    status.set_defaults(func=_status)


def _up(args: argparse.Namespace) -> int:
    running = LocalRegistry.load(args.state_dir)
    if running is not None:
        print(running.url)
        return 0
    htpasswd = None
    if args.username or args.password_file:
        if not (args.username and args.password_file):
            raise LocoError("--username and --password-file go together")
        try:
            password = args.password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise LocoError(f"cannot read password file {args.password_file}: {exc.strerror}") from None
        htpasswd = args.state_dir.resolve() / "htpasswd"
        make_htpasswd(htpasswd, args.username, password)
    print(LocalRegistry(args.state_dir, port=args.port, htpasswd=htpasswd).start().url)
    return 0


def _down(args: argparse.Namespace) -> int:
    running = LocalRegistry.load(args.state_dir)
    if running is not None:
        running.stop()
    return 0


def _status(args: argparse.Namespace) -> int:
    running = LocalRegistry.load(args.state_dir)
    if running is None:
        print(json.dumps({"running": False}) if args.json else "not running")
        return 1
    print(json.dumps({"running": True, **running.describe()}, indent=2) if args.json else running.url)
    return 0
