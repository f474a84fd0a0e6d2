"""``kubectl port-forward``s to pods, kept alive.

kubectl ends a port-forward as soon as one connection fails on the pod's side
("lost connection to pod"), which is what happens while an emulator is still
starting or after a pod restarts.  ``ForwardSet`` restarts any that exited on
the same local port, so a client just retries its connection.  ``PortForwards``
gives checks short-lived ones on free ports; ``liveaccess`` keeps long-lived
ones on fixed ports for users.
"""

import logging
import shutil
import subprocess
import threading
from collections.abc import Iterable

from loco_lan.errors import LocoError
from loco_lan.netutil import free_port, wait_listening

log = logging.getLogger("loco.portforward")
Forward = tuple[str, int, int]  # pod (or "svc/<name>"), local port, remote port
RESTART_POLL = 0.2
LISTEN_WAIT = 30.0  # seconds for kubectl to start listening (slow under load)


def kubectl_port_forward(namespace: str, *, kubeconfig: str | None = None, context: str | None = None,
                         kubectl: str = "kubectl", address: str = "127.0.0.1") -> list[str]:
    """The ``kubectl port-forward`` command line up to its pod and ports."""
    program = shutil.which(kubectl)
    if program is None:
        raise LocoError(f"{kubectl} not found: it is needed to reach the pods through the Kubernetes API")
    argv = [program, "port-forward", "--namespace", namespace, "--address", address]
    if kubeconfig:
        argv += ["--kubeconfig", kubeconfig]
    if context:
        argv += ["--context", context]
    return argv


class ForwardSet:
    """One ``kubectl port-forward`` child per forward; ``sync`` makes the running
    set match the wanted one, restarting any child that exited."""

    def __init__(self, argv: list[str], output=subprocess.DEVNULL):
        self.argv = argv
        self.output = output
        self.children: dict[Forward, subprocess.Popen] = {}

    def sync(self, wanted: Iterable[Forward]) -> None:
        wanted = set(wanted)
        for forward in set(self.children) - wanted:
            self.children.pop(forward).terminate()
        for forward in wanted:
            child = self.children.get(forward)
            if child is not None and child.poll() is None:
                continue
            pod, local, remote = forward
            if child is not None:
                log.info("port-forward %s %d->%d exited (%s); restarting", pod, local, remote, child.returncode)
            target = pod if "/" in pod else f"pod/{pod}"  # "svc/<name>": whichever pod backs the Service
            self.children[forward] = subprocess.Popen([*self.argv, target, f"{local}:{remote}"],
                                                      stdin=subprocess.DEVNULL, stdout=self.output,
                                                      stderr=self.output)

    def close(self) -> None:
        for child in self.children.values():
            child.terminate()
        for child in self.children.values():
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.children.clear()


class PortForwards:
    """``with PortForwards(ns, [(pod, 5901), ...]) as forwards: forwards.port(pod, 5901)``.

    Entering waits until every kubectl listens (up to ``LISTEN_WAIT`` seconds), so a client's first
    connection is not refused; one that never comes up leaves its clients refused, and they say so.
    """

    def __init__(self, namespace: str, targets: Iterable[tuple[str, int]], *, kubeconfig: str | None = None,
                 context: str | None = None, kubectl: str = "kubectl", address: str = "127.0.0.1"):
        self.address = address
        self.ports = {target: free_port() for target in targets}
        self.forwards = ForwardSet(kubectl_port_forward(namespace, kubeconfig=kubeconfig, context=context,
                                                        kubectl=kubectl, address=address))
        self.stopping = threading.Event()
        self.watcher = threading.Thread(target=self._watch, name="port-forwards", daemon=True)

    def port(self, pod: str, remote: int) -> int:
        return self.ports[(pod, remote)]

    def __enter__(self) -> "PortForwards":
        self.forwards.sync(self._wanted())
        self.watcher.start()
        wait_listening(list(self.ports.values()), self.address, LISTEN_WAIT)
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopping.set()
        self.watcher.join()
        self.forwards.close()

    def _wanted(self) -> list[Forward]:
        return [(pod, local, remote) for (pod, remote), local in self.ports.items()]

    def _watch(self) -> None:
        while not self.stopping.wait(RESTART_POLL):
            self.forwards.sync(self._wanted())
