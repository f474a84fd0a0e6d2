"""The hosts a check runs on: a name and a way to run argv there.

Two kinds: emulator pods (commands go through the Kubernetes exec API) and
Linux network namespaces (``ip netns exec``), which stand in for pods in tests
and serve LANs built from namespaces.  An executor never raises for trouble on
the far side: it returns a non-zero result whose stderr says what happened, so
one broken host becomes a finding instead of aborting the run.
"""

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kubernetes.client.exceptions import ApiException
from websocket import WebSocketException

from loco_lan import kube
from loco_lan.errors import LocoError

EMULATOR_SELECTOR = "app.kubernetes.io/component=emulator"
NETNS_DIR = Path("/run/netns")


class Ran(Protocol):
    returncode: int
    stdout: bytes
    stderr: bytes


Executor = Callable[..., Ran]  # (argv, stdin: bytes | None = None, timeout: float = 30.0) -> Ran


@dataclass(frozen=True)
class Host:
    name: str
    run: Executor
    python: str = "python3"  # interpreter on the host that runs the check agent


def netns_hosts(names: list[str], python: str = sys.executable) -> list[Host]:
    """Hosts for existing network namespaces (they share this machine's filesystem, hence its Python)."""
    missing = [name for name in names if not (NETNS_DIR / name).exists()]
    if missing:
        raise LocoError(f"no network namespace {', '.join(missing)} (see: ip netns list)")
    return [Host(name, _netns_executor(name), python) for name in names]


def _netns_executor(name: str) -> Executor:
    def run(argv: list[str], stdin: bytes | None = None, timeout: float = 30.0) -> Ran:
        command = ["ip", "netns", "exec", name, *argv]
        try:
            return subprocess.run(command, input=stdin, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:  # run() has killed the command
            return subprocess.CompletedProcess(command, 124, exc.stdout or b"",
                                               (exc.stderr or b"") + f"timed out after {timeout:g}s".encode())

    return run


def kube_hosts(api, namespace: str, selector: str = EMULATOR_SELECTOR, container: str | None = None,
               python: str = "python3") -> list[Host]:
    """One host per pod matching ``selector``; a pod that is not running yields a host whose commands fail."""
    try:
        pods = kube.resource(api, "v1", "Pod").get(namespace=namespace, label_selector=selector).items
    except ApiException as exc:
        raise LocoError(f"cannot list pods in {namespace} ({selector}): {exc.status} {exc.reason}") from None
    if not pods:
        raise LocoError(f"no pods match {selector} in namespace {namespace}")
    hosts = []
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        name = pod.metadata.name
        if pod.metadata.deletionTimestamp or pod.status.phase != "Running":
            state = "terminating" if pod.metadata.deletionTimestamp else pod.status.phase
            hosts.append(Host(name, _failing_executor(f"pod is {state}"), python))
        else:
            hosts.append(Host(name, _kube_executor(api, namespace, name, container), python))
    return hosts


def _failing_executor(reason: str) -> Executor:
    def run(argv: list[str], stdin: bytes | None = None, timeout: float = 30.0) -> Ran:
        return subprocess.CompletedProcess(argv, 255, b"", reason.encode())

    return run


def _kube_executor(api, namespace: str, pod: str, container: str | None) -> Executor:
    def run(argv: list[str], stdin: bytes | None = None, timeout: float = 30.0) -> Ran:
        try:
            return kube.exec_command(api, namespace, pod, argv, container=container, stdin=stdin,
                                     timeout=timeout)
        except ApiException as exc:
            return subprocess.CompletedProcess(argv, 255, b"", f"exec: {exc.status} {exc.reason}".encode())
        except (LocoError, WebSocketException, OSError) as exc:
            return subprocess.CompletedProcess(argv, 255, b"", f"exec: {exc}".encode())

    return run
