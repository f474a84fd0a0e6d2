"""``loco focus``: run the focus service, or read and change focus through it."""

import argparse
import asyncio
import json
import logging
import os
from pathlib import Path

from loco_lan.errors import LocoError
from loco_lan.focus.client import DEFAULT_URL, FocusClient, read_token

log = logging.getLogger(__name__)


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return float(value) if value else default
    except ValueError as exc:
        raise LocoError(f"${name} must be a number, not {value!r}") from exc


def register(subparsers) -> None:
    parser = subparsers.add_parser("focus", help="the focus service: which emulators are being looked at")
    actions = parser.add_subparsers(dest="focus_action", required=True, metavar="ACTION")

    serve = actions.add_parser("serve", help="run the focus service (HTTP API + WebSocket)")
    serve.add_argument("--instances", required=True, type=Path, help="instances.json listing the valid ids")
    serve.add_argument("--hotkeys", type=Path, help="hotkeys.json (default: beside the instances file)")
    serve.add_argument("--state-dir", required=True, type=Path, help="directory of active.json")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090, help="0 picks a free port (logged)")
    auth = serve.add_mutually_exclusive_group(required=True)
    auth.add_argument("--token-file", type=Path, help="file holding the bearer token changes must carry")
    auth.add_argument("--no-token", action="store_true", help="let anyone who can connect change focus")
    serve.add_argument("--mode", choices=("single", "multi"), default="single")
    serve.add_argument(
        "--max-active", type=int, default=4, help="most instances focused at once in multi mode"
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="browser origin allowed to call the API ('*' for any); repeatable",
    )
    quota = serve.add_argument_group("CPU quotas")
    quota.add_argument("--quota", choices=("none", "kubernetes", "cgroup", "pause"), default="none")
    quota.add_argument(
        "--focused-cpu",
        type=float,
        default=None,
        help="CPUs for focused emulators (default $FOCUSED_CPUS or 1)",
    )
    quota.add_argument(
        "--unfocused-cpu",
        type=float,
        default=None,
        help="CPUs for the others (default $UNFOCUSED_CPUS or 0.25)",
    )
    quota.add_argument("--qmp-socket", metavar="TEMPLATE", help="pause: QMP socket path, {id} = instance id")
    quota.add_argument("--pid-file", metavar="TEMPLATE", help="cgroup: emulator pid file, {id} = instance id")
    quota.add_argument("--cgroup-mount", default="/sys/fs/cgroup", help="cgroup: where cgroups are mounted")
    quota.add_argument("--namespace", help="kubernetes: namespace of the emulator pods")
    quota.add_argument("--release", help="kubernetes: Helm release (pods <release>-emulator-<n>)")
    quota.add_argument("--container", default="emulator", help="kubernetes: the emulator container's name")
    quota.add_argument("--kubeconfig", help="kubernetes: kubeconfig (default: $KUBECONFIG or in-cluster)")
    serve.set_defaults(func=_serve)

    for name, help_text in (
        ("get", "print the focus"),
        ("set", "focus exactly these ids (none: clear)"),
        ("add", "focus these ids too (single mode: replace)"),
        ("remove", "unfocus these ids"),
        ("clear", "focus nothing"),
    ):
        action = actions.add_parser(name, help=help_text)
        if name in ("set", "add", "remove"):
            action.add_argument("ids", nargs="*" if name == "set" else "+", metavar="ID")
        action.add_argument(
            "--url",
            default=os.environ.get("LOCO_FOCUS_URL", DEFAULT_URL),
            help=f"focus service (default $LOCO_FOCUS_URL or {DEFAULT_URL})",
        )
        action.add_argument("--token-file", type=Path, help="file holding the bearer token")
        action.add_argument("--json", action="store_true", help="print the whole focus document")
        action.set_defaults(func=_client_action)


def _client_action(args: argparse.Namespace) -> int:
    token = read_token(args.token_file) if args.token_file else None
    client = FocusClient(args.url, token)
    if args.focus_action == "get":
        document = client.get()
    elif args.focus_action == "clear":
        document = client.clear()
    else:
        document = getattr(client, args.focus_action)(args.ids)
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(" ".join(document["active"]) or "(nothing focused)")
    return 0


def _quota_applier(args: argparse.Namespace):
    from loco_lan.focus import quota

    focused = args.focused_cpu if args.focused_cpu is not None else _env_float("FOCUSED_CPUS", 1.0)
    unfocused = args.unfocused_cpu if args.unfocused_cpu is not None else _env_float("UNFOCUSED_CPUS", 0.25)
    if not 0 < unfocused <= focused:
        raise LocoError(f"need 0 < unfocused CPU <= focused CPU, got {unfocused} and {focused}")
    if args.quota == "none":
        return None
    if args.quota == "pause":
        if not args.qmp_socket:
            raise LocoError("--quota pause needs --qmp-socket, e.g. /run/loco/{id}.qmp")
        backend = quota.QmpPause(args.qmp_socket)
    elif args.quota == "cgroup":
        if not args.pid_file:
            raise LocoError("--quota cgroup needs --pid-file, e.g. /run/loco/{id}.pid")
        try:
            fs = quota.CgroupFs.detect(args.cgroup_mount)
        except LocoError as exc:
            log.warning(
                "CPU quotas are OFF: %s (run as root on a host with a writable cgroup cpu controller)", exc
            )
            return None
        log.info("CPU quotas through cgroup v%d at %s", fs.version, fs.base)
        backend = quota.CgroupCpu(fs, args.pid_file, focused, unfocused)
    else:
        from kubernetes import client

        from loco_lan import kube

        if not args.namespace:
            raise LocoError("--quota kubernetes needs --namespace")
        core = client.CoreV1Api(kube.api_client(args.kubeconfig))
        backend = quota.KubernetesCpu(core, args.namespace, focused, unfocused, args.release, args.container)
    return quota.QuotaApplier(backend)


def _serve(args: argparse.Namespace) -> int:
    from loco_lan.focus.service import FocusService, serve
    from loco_lan.focus.state import Catalog, FocusState

    if args.mode == "multi" and args.max_active < 1:
        raise LocoError("--max-active must be at least 1")
    catalog = Catalog(args.instances, args.hotkeys)
    state = FocusState(args.state_dir / "active.json", catalog, args.mode, args.max_active)
    token = read_token(args.token_file) if args.token_file else None
    if token is None:
        log.warning("--no-token: anyone who can reach %s:%s can change focus", args.host, args.port)
    applier = _quota_applier(args)
    service = FocusService(state, token, args.cors_origin, applier)
    log.info(
        "focus mode %s (max %d), %d instances, state %s",
        state.mode,
        state.max_active,
        len(catalog.instances),
        state.path,
    )
    asyncio.run(serve(service, args.host, args.port))
    return 0
