"""``loco cluster up|down|status``: the local control plane for humans."""

import json
from pathlib import Path

from loco_lan.cluster.local import LocalCluster


def register(subparsers) -> None:
    parser = subparsers.add_parser("cluster", help="start, inspect or stop a local Kubernetes control plane")
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--name", default="local", help="cluster name; each name has its own state and ports")
    parser.add_argument("--state-root", type=Path, help="where cluster state lives "
                        "(default ~/.local/state/loco-lan/clusters)")
    parser.add_argument("--nodes", type=int, default=3, help="kwok nodes to simulate (up)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness (up)")
    parser.add_argument("--purge", action="store_true", help="also delete the state directory (down)")
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    cluster = LocalCluster(args.name, state_root=args.state_root, nodes=args.nodes)
    if args.action == "up":
        status = cluster.up(timeout=args.timeout)
    elif args.action == "down":
        cluster.down(purge=args.purge)
        status = cluster.status()
    else:
        status = cluster.status()
    if args.json:
        print(json.dumps(status, indent=2))
    elif args.action == "up":
        print(status["kubeconfig"])
    else:
        state = "healthy" if status["healthy"] else "not running"
        print(f"cluster {status['name']}: {state}; kubeconfig {status['kubeconfig']}")
        for name, alive in status["components"].items():
            print(f"  {name}: {'running' if alive else 'stopped'}")
    return 0 if args.action != "status" or status["healthy"] else 3
