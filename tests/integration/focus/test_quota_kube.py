"""Focus switches resize emulator pods in place on the local control plane (kube-apiserver + kwok).

The service runs as the ``loco-focus`` service account of examples/focus/rbac.yaml,
so the test also proves those rules are all it needs. The API server only resizes
pods whose kubelet reported container resources in their status; the local
cluster's node agent reports them like a kubelet that can resize, except for
pods annotated ``loco.lan/in-place-resize: "false"``.  Pod 0 loses that
annotation (resized in place, applied once the agent reports it), pod 1 keeps it: nothing
is written to it and /healthz says, for it alone, that its share is not applied and why.
"""

import json
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from loco_lan import kube

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
NS = "focus-quota"
REPO_EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "focus"


def emulator_statefulset(replicas: int) -> dict:
    labels = {"app.kubernetes.io/name": "loco", "app.kubernetes.io/component": "emulator"}
    resources = {"cpu": "1", "memory": "512Mi"}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "loco-emulator", "namespace": NS},
        "spec": {
            "replicas": replicas,
            "serviceName": "loco-emulator",
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {"loco.lan/in-place-resize": "false"}},
                "spec": {
                    "containers": [
                        {
                            "name": "emulator",
                            "image": "example.invalid/loco-emulator:1",
                            "resources": {"limits": resources, "requests": resources},
                        }
                    ]
                },
            },
        },
    }


def service_account_kubeconfig(local_cluster, kubectl, path) -> None:
    token = kubectl("create", "token", "loco-focus", "-n", NS).stdout.decode().strip()
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "focus",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {
                            "server": local_cluster.status()["server"],
                            "certificate-authority": str(local_cluster.pki_dir / "ca.crt"),
                        },
                    }
                ],
                "users": [{"name": "loco-focus", "user": {"token": token}}],
                "contexts": [
                    {"name": "focus", "context": {"cluster": "local", "user": "loco-focus", "namespace": NS}}
                ],
            }
        )
    )


def resources_reported(core, name: str) -> bool:
    statuses = core.read_namespaced_pod(name, NS).status.container_statuses or []
    return bool(statuses) and all(status.resources for status in statuses)


def reported_cpu(core, name: str) -> str:
    return core.read_namespaced_pod(name, NS).status.container_statuses[0].resources.limits["cpu"]


def wait_resources_reported(core, name: str) -> None:
    deadline = time.monotonic() + 30
    while not resources_reported(core, name):
        assert time.monotonic() < deadline, f"the node agent never reported {name}'s container resources"
        time.sleep(0.2)


def cpu_of(pods) -> dict[str, tuple]:
    return {
        p.metadata.name: (
            p.spec.containers[0].resources.limits["cpu"],
            p.spec.containers[0].resources.requests["cpu"],
        )
        for p in pods
    }


def test_focus_switches_resize_emulator_pods_in_place(local_cluster, kubectl, focus_service, focus_dir):
    kubectl("create", "namespace", NS, check=False)
    kubectl("apply", "-n", NS, "-f", str(REPO_EXAMPLES / "rbac.yaml"))
    kubectl("apply", "-f", "-", input=yaml.safe_dump(emulator_statefulset(2)).encode())
    api = local_cluster.api()
    core = client.CoreV1Api(api)
    selector = "app.kubernetes.io/component=emulator"
    before = kube.wait_pods_ready(api, NS, selector, 2, timeout=120)
    kubectl("annotate", "pod", "-n", NS, "loco-emulator-0", "loco.lan/in-place-resize-")
    wait_resources_reported(core, "loco-emulator-0")
    assert not resources_reported(core, "loco-emulator-1")
    identity = {
        p.metadata.name: (p.metadata.uid, [s.restart_count for s in p.status.container_statuses or []])
        for p in before
    }

    (focus_dir / "instances.json").write_text(json.dumps([{"id": "instance-0"}, {"id": "instance-1"}]))
    service_account_kubeconfig(local_cluster, kubectl, focus_dir / "sa.kubeconfig")
    service = focus_service(
        "--quota",
        "kubernetes",
        "--namespace",
        NS,
        "--release",
        "loco",
        "--kubeconfig",
        str(focus_dir / "sa.kubeconfig"),
    )

    def wait_cpu(expected: dict) -> list:
        deadline = time.monotonic() + 60
        while True:
            pods = core.list_namespaced_pod(NS, label_selector=selector).items
            if cpu_of(pods) == expected:
                return sorted(pods, key=lambda p: p.metadata.name)
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"pods have {cpu_of(pods)}, wanted {expected}\n{service.log.read_text()}"
                )
            time.sleep(0.2)

    service.post("/api/active", {"ids": ["instance-1"]})
    wait_cpu({"loco-emulator-0": ("250m", "250m"), "loco-emulator-1": ("1", "1")})
    deadline = time.monotonic() + 30  # the node agent reports the resize done, as a kubelet would
    while reported_cpu(core, "loco-emulator-0") != "250m":
        assert time.monotonic() < deadline, "pod 0's status never followed its resize"
        time.sleep(0.2)
    service.post("/api/active", {"ids": ["instance-0"]})
    pods = wait_cpu({"loco-emulator-0": ("1", "1"), "loco-emulator-1": ("1", "1")})  # 1000m reads back as 1

    def health() -> dict:
        with urllib.request.urlopen(service.url + "/healthz", timeout=5) as response:
            return json.load(response)

    deadline = time.monotonic() + 60  # pod 0 applied (reported by its kubelet), pod 1 honestly not
    while (reported_cpu(core, "loco-emulator-0"), health()["quota_not_applied"]) != ("1", {
            "instance-1": "not applied: the node of loco-emulator-1 cannot resize in place"}):
        assert time.monotonic() < deadline, f"{health()}\n{service.log.read_text()}"
        time.sleep(0.2)
    assert health()["quota"] == "pending"
    assert "loco.lan/cpu" not in (pods[1].metadata.annotations or {})
    for pod in pods:  # resized in place or left alone: same pods, nothing restarted
        assert identity[pod.metadata.name] == (
            pod.metadata.uid,
            [s.restart_count for s in pod.status.container_statuses or []],
        )
    log = service.log.read_text()
    # once per focus change that asked pod 1 for a new share, not once per retry
    assert log.count("cannot resize in place") == 2
    assert "no pods/resize subresource" not in log
