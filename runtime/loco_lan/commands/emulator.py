"""``loco emulator run``: start the Windows 98 guest described by the environment."""

import argparse
import asyncio
import shlex

from loco_lan.emulator import config as emulator_config
from loco_lan.emulator import runner


def register(subparsers) -> None:
    parser = subparsers.add_parser("emulator", help="run one emulated Windows 98 machine")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser(
        "run",
        help="start QEMU, VNC, QMP and the health endpoint (settings from the environment)",
        description="Settings: LOCO_DISK (or DISK; default /images/win98.qcow2), LOCO_DISK_READONLY, "
        "LOCO_OVERLAY_DIR, QEMU_MEMORY, QEMU_SMP, NETWORK_MODE (socket|user|bridge|vxlan|macvlan|none), "
        "SOCKET_PORT, SOCKET_MASTER_HOST, LOCO_LAN_LISTEN, LOCO_LAN_WAIT, INSTANCE_ID, LOCO_VGA, "
        "LOCO_VNC_DISPLAY, LOCO_VNC_LISTEN, LOCO_VNC_PASSWORD_FILE or VNC_PASSWORD, LOCO_QMP_SOCKET, "
        "LOCO_HEALTH_PORT, LOCO_ACCEL.",
    )
    run.add_argument(
        "--print-command", action="store_true", help="check the disk, print the QEMU command, exit"
    )
    run.set_defaults(func=run_emulator)


def run_emulator(args: argparse.Namespace) -> int:
    config = emulator_config.from_env()
    if args.print_command:
        command, _, _ = runner.plan(config)
        print(shlex.join(command))
        return 0
    return asyncio.run(runner.run(config))
