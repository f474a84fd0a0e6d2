"""Short-lived ``kubectl port-forward``s from free loopback ports to pods, for checks.

kubectl ends a port-forward as soon as one connection fails on the pod's side
("lost connection to pod"), which is what happens while an emulator is still
starting; a watcher thread restarts it on the same local port, so the caller
just retries its connection.  ``liveaccess`` keeps long-lived ones for users.
"""

import shutil
import subprocess
import threading
from collections.abc import Iterable

from loco_lan.cluster.local import free_port
from loco_lan.errors import LocoError

RESTART_POLL = 0.2


def kubectl_port_forward(namespace: str, *, kubeconfig: str | None = None, context: str | None = None,
                         kubectl: str = "kubectl", address: str = "127.0.0.1") -> list[str]:
    """The ``kubectl port-forward`` command line up to its pod and ports (shared with liveaccess)."""
    program = shutil.which(kubectl)
    if program is None:
        raise LocoError(f"{kubectl} not found: it is needed to reach the pods through the Kubernetes API")
    argv = [program, "port-forward", "--namespace", namespace, "--address", address]
    if kubeconfig:
        argv += ["--kubeconfig", kubeconfig]
    if context:
        argv += ["--context", context]
    return argv


class PortForwards:
    """``with PortForwards(ns, [(pod, 5901), ...]) as forwards: forwards.port(pod, 5901)``."""

    def __init__(self, namespace: str, targets: Iterable[tuple[str, int]], *, kubeconfig: str | None = None,
                 context: str | None = None, kubectl: str = "kubectl", address: str = "127.0.0.1"):
        self.address = address
        self.base = kubectl_port_forward(namespace, kubeconfig=kubeconfig, context=context, kubectl=kubectl,
                                         address=address)
        self.ports = {target: free_port() for target in targets}
        self.children: dict[tuple[str, int], subprocess.Popen] = {}
        self.restarts = 0
        self.stopping = threading.Event()
        self.watcher = threading.Thread(target=self._watch, name="port-forwards", daemon=True)

    def port(self, pod: str, remote: int) -> int:
        return self.ports[(pod, remote)]

    def __enter__(self) -> "PortForwards":
        for target in self.ports:
            self._start(target)
        self.watcher.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopping.set()
        self.watcher.join()
        for child in self.children.values():
            child.terminate()
        for child in self.children.values():
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    def _start(self, target: tuple[str, int]) -> None:
        pod, remote = target
        self.children[target] = subprocess.Popen(
            [*self.base, f"pod/{pod}", f"{self.ports[target]}:{remote}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _watch(self) -> None:
        while not self.stopping.wait(RESTART_POLL):
            for target, child in list(self.children.items()):
                if child.poll() is not None:
                    self.restarts += 1
                    self._start(target)
