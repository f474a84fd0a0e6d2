"""The Kubernetes side of the checks on the real local control plane: emulator pods are found by label,
commands and the check agent run in them through the exec API, and a pod that is not running is named.

kwok pods run their exec'd commands on this machine, so they share its network: on ``lo`` they all
have one IP and one MAC, which the checks must report as duplicates, naming the pods."""

import json
import secrets
import subprocess
import sys
import time

import pytest
import yaml

from loco_lan import kube
from loco_lan.cluster.agent import SANDBOX_ANNOTATION
from loco_lan.netcheck import EMULATOR_SELECTOR, kube_hosts
from loco_lan.netcheck.engine import call_agent

pytestmark = pytest.mark.cluster


def emulator_pods(namespace: str) -> list[dict]:
    labels = {"app.kubernetes.io/component": "emulator"}
    container = {"name": "emulator", "image": "example.invalid/emulator:1"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "emu", "namespace": namespace},
         "spec": {"replicas": 2, "serviceName": "emu", "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}},
        # Matches the selector but can never be scheduled.
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "emu-stuck", "namespace": namespace,
                                                          "labels": labels},
         "spec": {"nodeSelector": {"loco.lan/no-such-node": "x"}, "containers": [container]}},
    ]


def wait_exec_ready(api, namespace: str, names: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        pods = kube.resource(api, "v1", "Pod").get(namespace=namespace).items
        ready = {p.metadata.name for p in pods if p.status.phase == "Running"
                 and (p.metadata.annotations or {}).get(SANDBOX_ANNOTATION) == "ready"}
        if set(names) <= ready:
            return
        assert time.monotonic() < deadline, f"not exec-ready after {timeout}s: {sorted(set(names) - ready)}"
        time.sleep(0.3)


def test_emulator_pods_are_checked_through_the_exec_api(local_cluster, kubectl, tmp_path):
    namespace = f"netcheck-{secrets.token_hex(3)}"
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(emulator_pods(namespace)).encode())
    try:
        check_pods(local_cluster, namespace, tmp_path)
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false")


def check_pods(local_cluster, namespace, tmp_path):
    api = local_cluster.api()
    wait_exec_ready(api, namespace, ["emu-0", "emu-1"])

    hosts = kube_hosts(api, namespace, EMULATOR_SELECTOR, container="emulator")
    assert [host.name for host in hosts] == ["emu-0", "emu-1", "emu-stuck"]
    # The agent travels on the exec's stdin and answers on its stdout.
    sweep = {"interface": "lo", "targets": ["127.0.0.1"], "timeout": 1}
    answer = call_agent(hosts[1], "sweep", sweep, timeout=60)
    assert answer == {"pings": [{"addr": "127.0.0.1", "ok": True, "detail": ""}]}

    report = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "loco_lan.cli", "netcheck", "--kubeconfig", str(local_cluster.kubeconfig),
         "--namespace", namespace, "--container", "emulator", "--interface", "lo", "--checks", "arp",
         "--report", str(report)],
        capture_output=True, text=True, timeout=180)
    assert run.returncode == 1, run.stdout + run.stderr
    findings = {(f["kind"], tuple(f["hosts"])) for f in json.loads(report.read_text())["findings"]}
    assert findings == {
        ("unavailable", ("emu-stuck",)),
        ("duplicate-mac", ("emu-0", "emu-1")),
        ("duplicate-ip", ("emu-0", "emu-1")),
    }
    assert "[hosts] emu-stuck: ip -j addr exited 255: pod is Pending" in run.stdout
