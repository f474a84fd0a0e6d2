"""Live access for local use: supervised ``kubectl port-forward``s to every emulator.

Instance ``i`` gets its VNC port on ``vnc_base_port + i`` and its health port on
``health_base_port + i`` (127.0.0.1 by default).  A detached supervisor keeps one
port-forward per port running, restarts any that exits (a pod restarted, a
connection dropped) and follows the StatefulSet when it is scaled.  ``start``
is idempotent: a supervisor already running the same configuration is kept.
"""

import argparse
import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from kubernetes import client

from loco_lan import kube
from loco_lan.cluster.local import pid_alive
from loco_lan.fsutil import atomic_write
from loco_lan.kube.portforward import kubectl_port_forward

log = logging.getLogger("loco.live")
VNC_PORT, HEALTH_PORT = 5901, 8080


@dataclass(frozen=True)
class LiveConfig:
    namespace: str
    release: str = "loco"
    kubeconfig: str | None = None
    context: str | None = None
    address: str = "127.0.0.1"
    vnc_base_port: int = 15901
    health_base_port: int = 18080
    kubectl: str = "kubectl"

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def forwards(self, replicas: int) -> list[tuple[str, int, int]]:
        """(pod, local port, remote port) for every emulator."""
        pods = [f"{self.release}-emulator-{i}" for i in range(replicas)]
        return [(pod, base + i, remote) for i, pod in enumerate(pods)
                for base, remote in ((self.vnc_base_port, VNC_PORT), (self.health_base_port, HEALTH_PORT))]


class LiveAccess:
    def __init__(self, config: LiveConfig, state_dir: Path):
        self.config = config
        self.state_file = Path(state_dir) / f"live-{config.namespace}-{config.release}.json"

    def state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def running(self) -> bool:
        state = self.state()
        return bool(state.get("pid")) and pid_alive(state["pid"]) and state.get("key") == self.config.key

    def start(self) -> bool:
        """Start the supervisor unless it already runs this configuration; returns whether it started."""
        if self.running():
            return False
        self.stop()
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        log_file = self.state_file.with_suffix(".log")
        with open(log_file, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "loco_lan.liveaccess", "--config", json.dumps(asdict(self.config))],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        atomic_write(self.state_file, json.dumps({"pid": process.pid, "key": self.config.key,
                                                  "config": asdict(self.config), "log": str(log_file)}))
        return True

    def stop(self) -> bool:
        state = self.state()
        pid = state.get("pid")
        if not pid or not pid_alive(pid):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        self.state_file.unlink(missing_ok=True)
        return True


def supervise(config: LiveConfig, poll: float = 2.0) -> None:
    """Keep one ``kubectl port-forward`` per forward alive until SIGTERM."""
    api = kube.api_client(config.kubeconfig, config.context)
    apps = client.AppsV1Api(api)
    children: dict[tuple[str, int, int], subprocess.Popen] = {}
    stopping = False

    def on_term(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    base = kubectl_port_forward(config.namespace, kubeconfig=config.kubeconfig, context=config.context,
                                kubectl=config.kubectl, address=config.address)
    while not stopping:
        try:
            replicas = apps.read_namespaced_stateful_set(f"{config.release}-emulator", config.namespace).spec.replicas
            wanted = set(config.forwards(replicas or 0))
        except Exception as exc:  # the API may be briefly away; keep what runs
            log.warning("cannot read the StatefulSet: %s", exc)
            wanted = set(children)
        for forward in set(children) - wanted:
            children.pop(forward).terminate()
        for forward in wanted:
            child = children.get(forward)
            if child is None or child.poll() is not None:
                pod, local, remote = forward
                if child is not None:
                    log.info("port-forward %s %d->%d exited (%s); restarting", pod, local, remote, child.returncode)
                children[forward] = subprocess.Popen([*base, f"pod/{pod}", f"{local}:{remote}"],
                                                     stdin=subprocess.DEVNULL)
        time.sleep(poll)
    for child in children.values():
        child.terminate()
    for child in children.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description="supervise the port-forwards of one Loco LAN")
    parser.add_argument("--config", required=True, help="LiveConfig as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    supervise(LiveConfig(**json.loads(args.config)))


if __name__ == "__main__":
    main()
