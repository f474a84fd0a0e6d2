"""The hosts a check runs on: a name and a way to run argv there.

Three kinds: emulator pods (commands go through the Kubernetes exec API), Linux
network namespaces (``ip netns exec``), which stand in for pods in tests and
serve LANs built from namespaces, and guests that serve a guest channel
(:mod:`loco_lan.guestchannel`: the test guest), checked from inside.  An executor never raises for trouble on
the far side: it returns a non-zero result whose stderr says what happened, so
one broken host becomes a finding instead of aborting the run.
"""

import contextlib
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kubernetes.client.exceptions import ApiException
from websocket import WebSocketException

from loco_lan import kube, testguest
from loco_lan.errors import LocoError
from loco_lan.guestchannel import GuestChannel
from loco_lan.kube.portforward import PortForwards
from loco_lan.netcheck.analysis import Guest

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
    guest: bool = False  # a test guest reached over its guest channel (busybox, its own loco-lan prober)


def guest_host(name: str, address: tuple[str, int]) -> Host:
    """A guest whose channel listens at ``address`` (a port-forward to the pod's COM1, or QEMU's own)."""
    channel = GuestChannel(*address, name=name)

    def run(argv: list[str], stdin: bytes | None = None, timeout: float = 30.0) -> Ran:
        try:
            status, output = channel.run(shlex.join(argv), timeout)
        except LocoError as exc:
            return subprocess.CompletedProcess(argv, 255, b"", str(exc).encode())
        return subprocess.CompletedProcess(argv, status, output, b"" if status == 0 else output)

    return Host(name, run, guest=True)


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
        except (LocoError, WebSocketException, OSError) as exc:
            return subprocess.CompletedProcess(argv, 255, b"", f"exec: {exc}".encode())

    return run


GUEST_CHANNEL_PORT, HEALTH_PORT = 4555, 8080  # the emulator container's (chart: LOCO_GUEST_CHANNEL, health)


def ordinal_of(pod) -> int:
    """The StatefulSet ordinal of an emulator pod (its pod-index label, else its name's suffix)."""
    index = (pod.metadata.labels or {}).get("apps.kubernetes.io/pod-index")
    if index is not None and index.isdigit():
        return int(index)
    match = re.search(r"-(\d+)$", pod.metadata.name)
    return int(match.group(1)) if match else 0


@contextlib.contextmanager
def kube_guest_lan(api, namespace: str, selector: str = EMULATOR_SELECTOR, *, kubeconfig: str | None = None,
                   context: str | None = None, guests: bool = True, hub: bool = True):
    """``with kube_guest_lan(...) as (hosts, hub_url, expected)``: port-forwards to every emulator
    pod's guest channel (hosts that run the checks inside the guests) and to instance 0's health
    port (the hub, whose probe port checks the segment), and the guests the hub should find there."""
    try:
        pods = kube.resource(api, "v1", "Pod").get(namespace=namespace, label_selector=selector).items
    except ApiException as exc:
        raise LocoError(f"cannot list pods in {namespace} ({selector}): {exc.status} {exc.reason}") from None
    pods = sorted((p for p in pods if not p.metadata.deletionTimestamp), key=lambda p: p.metadata.name)
    if not pods:
        raise LocoError(f"no pods match {selector} in namespace {namespace}")
    first = min(pods, key=ordinal_of)
    targets = [(p.metadata.name, GUEST_CHANNEL_PORT) for p in pods] if guests else []
    targets += [(first.metadata.name, HEALTH_PORT)] if hub else []
    expected = [Guest(p.metadata.name, f"52:54:00:4c:4f:{ordinal_of(p) % 256:02x}", testguest.address(ordinal_of(p)))
                for p in pods]
    with PortForwards(namespace, targets, kubeconfig=kubeconfig, context=context) as forwards:
        hosts = [guest_host(p.metadata.name, ("127.0.0.1", forwards.port(p.metadata.name, GUEST_CHANNEL_PORT)))
                 for p in pods] if guests else []
        url = f"http://127.0.0.1:{forwards.port(first.metadata.name, HEALTH_PORT)}" if hub else None
        yield hosts, url, expected
