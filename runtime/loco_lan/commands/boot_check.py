"""``loco boot-check --vnc HOST:PORT``: wait until Windows 98 reaches its desktop."""

import argparse
import asyncio
import json
import re
from pathlib import Path

from loco_lan.bootcheck import LIVE_STATES, boot_check, parse_target, read_password
from loco_lan.errors import LocoError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "boot-check",
        help="poll emulators' screens over VNC until Windows 98 shows its desktop",
        description="Exit 0 when every target shows the desktop (taskbar with Start button, no dialog in "
        "front); otherwise save each failing target's last screen as PNG and name the state seen "
        f"({', '.join(LIVE_STATES)}).",
    )
    parser.add_argument(
        "--vnc",
        action="append",
        required=True,
        metavar="HOST:PORT",
        help="VNC server; a port below 100 is a display number (:1 = 5901); repeat for several",
    )
    parser.add_argument("--password-file", type=Path, metavar="FILE", help="file holding the VNC password")
    parser.add_argument(
        "--timeout", type=float, default=600.0, metavar="S", help="give up after S seconds (600)"
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, metavar="S", help="look at most every S seconds (2)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=3.0,
        metavar="S",
        help="the desktop must hold S seconds, so a late dialog is caught (3)",
    )
    parser.add_argument(
        "--accept",
        action="append",
        choices=LIVE_STATES[:-1],
        metavar="STATE",
        help="state(s) that pass (default desktop; e.g. add dialog or game)",
    )
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="OUT.png",
        help="where the last screen goes on failure (one target; default ./boot-check-HOST-PORT.png)",
    )
    parser.add_argument(
        "--screenshot-dir", type=Path, metavar="DIR", help="directory for failure screens (several targets)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object per target instead of text"
    )
    parser.set_defaults(func=run_boot_check)


def run_boot_check(args: argparse.Namespace) -> int:
    targets = [parse_target(text) for text in args.vnc]
    if args.screenshot and len(targets) > 1:
        raise LocoError("--screenshot names one file: use --screenshot-dir with several --vnc targets")
    if args.timeout <= 0 or args.interval <= 0 or args.settle < 0:
        raise LocoError("--timeout and --interval must be positive, --settle not negative")
    password = read_password(args.password_file)

    def screenshot_path(host: str, port: int) -> Path:
        if args.screenshot:
            return args.screenshot
        name = f"boot-check-{re.sub(r'[^A-Za-z0-9.-]', '_', host)}-{port}.png"
        return (args.screenshot_dir or Path.cwd()) / name

    async def check_all():
        return await asyncio.gather(
            *(
                boot_check(
                    host,
                    port,
                    password=password,
                    timeout=args.timeout,
                    interval=args.interval,
                    settle=args.settle,
                    accept=tuple(args.accept or ("desktop",)),
                    screenshot=screenshot_path(host, port),
                )
                for host, port in targets
            )
        )

    results = asyncio.run(check_all())
    for result in results:
        if args.json:
            print(json.dumps(result.as_dict()), flush=True)
        elif result.ok:
            print(f"{result.target}\t{result.state}\tok after {result.elapsed:.1f}s", flush=True)
        else:
            saved = f"; last screen saved to {result.screenshot}" if result.screenshot else ""
            failed = f"FAILED after {result.elapsed:.1f}s: {result.detail}{saved}"
            print(f"{result.target}\t{result.state}\t{failed}", flush=True)
    return 0 if all(result.ok for result in results) else 1
