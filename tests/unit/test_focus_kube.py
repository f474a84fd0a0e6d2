"""The Kubernetes CPU backend against a fake CoreV1Api (pure decision logic: what gets patched, and
when a share counts as applied: only once the kubelet reports it)."""

import asyncio
import json
import logging

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from loco_lan.focus.quota import KubernetesCpu, cpu_millis

UNSUPPORTED = "Pod running on node without support for resize"


def pod(name, limits=None, requests=None, annotations=None, container="emulator", running=None, pending=None):
    """``running``: the CPU limit the kubelet reports; ``pending``: (reason, message) of PodResizePending."""
    resources = client.V1ResourceRequirements(limits=limits, requests=requests)
    statuses = [client.V1ContainerStatus(name=container, image="x", image_id="", ready=True, restart_count=0,
                                         resources=client.V1ResourceRequirements(limits={"cpu": running}))
                ] if running else None
    conditions = [client.V1PodCondition(type="PodResizePending", status="True", reason=pending[0],
                                        message=pending[1])] if pending else None
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, annotations=annotations, uid=f"uid-{name}"),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(name="sidecar"),
                client.V1Container(name=container, resources=resources),
            ]
        ),
        status=client.V1PodStatus(container_statuses=statuses, conditions=conditions),
    )


class FakeCore:
    def __init__(self, pods, resize=True):
        self.pods = pods
        self.resize = resize
        self.calls = []

    def get_api_resources(self):
        names = ["pods", "pods/status"] + (["pods/resize"] if self.resize else [])
        return client.V1APIResourceList(
            group_version="v1",
            resources=[
                client.V1APIResource(name=n, namespaced=True, kind="Pod", verbs=["patch"], singular_name="")
                for n in names
            ],
        )

    def list_namespaced_pod(self, namespace, label_selector=None):
        self.calls.append(("list", namespace, label_selector))
        return client.V1PodList(items=self.pods)

    def patch_namespaced_pod(self, name, namespace, body):
        self.calls.append(("patch", name, body))

    def patch_namespaced_pod_resize(self, name, namespace, body):
        if name.endswith("-9"):
            raise ApiException(status=422, reason="Unprocessable Entity")
        if name.endswith("-8"):
            raise ApiException(
                status=422,
                reason="Unprocessable Entity",
                body=json.dumps({"message": f'Pod "{name}" is invalid: spec: Forbidden: ' + UNSUPPORTED}),
            )
        self.calls.append(("resize", name, body))


def resize(name, cpu, requests=False):
    resources = {"limits": {"cpu": cpu}}
    if requests:
        resources["requests"] = {"cpu": cpu}
    return ("resize", name, {"spec": {"containers": [{"name": "emulator", "resources": resources}]}})


def test_cpu_quantities():
    assert [cpu_millis(q) for q in ("250m", "1", "0.5", "2.25", "1k", None, "", "1Ki")] == [
        250,
        1000,
        500,
        2250,
        1_000_000,
        None,
        None,
        None,
    ]


def test_resize_maps_ordinals_and_keeps_qos():
    core = FakeCore(
        [
            pod(
                "loco-emulator-0",
                limits={"cpu": "1", "memory": "1Gi"},
                requests={"cpu": "1", "memory": "1Gi"},
            ),
            pod("loco-emulator-1", limits={"cpu": "1"}, requests={"cpu": "100m"}),
            pod("loco-emulator-2", limits={"cpu": "1"}, requests={"cpu": "500m"}),
            pod("loco-emulator-3", limits={"cpu": "250m"}),
            pod("other-emulator-4", limits={"cpu": "1"}),
        ]
    )
    backend = KubernetesCpu(core, "games", 1.0, 0.25, release="loco")
    changes = {
        "instance-0": False,
        "instance-1": False,
        "instance-2": False,
        "instance-3": False,
        "instance-4": False,
    }
    failed = asyncio.run(backend.apply(changes))
    assert failed == {
        **{f"instance-{i}": f"waiting for the kubelet to resize loco-emulator-{i} to 250m" for i in range(4)},
        "instance-4": "no emulator pod for instance-4 in namespace games",
    }
    assert core.calls[0] == ("list", "games", "app.kubernetes.io/component=emulator")
    assert core.calls[1:] == [
        resize("loco-emulator-0", "250m", requests=True),  # Guaranteed stays Guaranteed
        resize("loco-emulator-1", "250m"),  # Burstable: the small request stays
        resize("loco-emulator-2", "250m", requests=True),  # request lowered only because it must be <= limit
        # loco-emulator-3 already has 250m: no call
    ]


def test_any_release_when_none_given_and_failures_are_reported():
    core = FakeCore([pod("a-emulator-2", limits={"cpu": "1"}), pod("b-emulator-9", limits={"cpu": "1"})])
    backend = KubernetesCpu(core, "ns", 1.0, 0.25)
    failed = backend.apply_sync({"instance-2": False, "instance-9": False})
    assert failed == {"instance-2": "waiting for the kubelet to resize a-emulator-2 to 250m",
                      "instance-9": "Kubernetes API answered 422 Unprocessable Entity"}
    assert core.calls[1] == resize("a-emulator-2", "250m")


def test_without_resize_nothing_is_written_and_nothing_claims_to_be_applied(caplog):
    caplog.set_level(logging.WARNING)
    core = FakeCore([pod("loco-emulator-0", limits={"cpu": "1"})], resize=False)
    backend = KubernetesCpu(core, "ns", 1.0, 0.25, release="loco")
    for _ in range(2):
        assert backend.apply_sync({"instance-0": False}) == {
            "instance-0": "not applied: the cluster has no pods/resize subresource (in-place resize)"}
    assert [c for c in core.calls if c[0] != "list"] == []
    assert caplog.text.count("no pods/resize subresource") == 1


def test_applied_only_once_the_kubelet_reports_it():
    backend = KubernetesCpu(FakeCore([]), "ns", 1.0, 0.25, release="loco")
    resized = pod("loco-emulator-0", limits={"cpu": "250m"}, running="1")
    backend.api.pods = [resized]
    assert backend.apply_sync({"instance-0": False}) == {
        "instance-0": "waiting for the kubelet to resize loco-emulator-0 to 250m"}
    backend.api.pods = [pod("loco-emulator-0", limits={"cpu": "250m"}, running="250m")]
    assert backend.apply_sync({"instance-0": False}) == {}
    assert [c for c in backend.api.calls if c[0] != "list"] == []  # the spec had it already: no second resize


@pytest.mark.parametrize(("reason", "expected"), [
    ("Deferred", "waiting for the kubelet: resize of loco-emulator-0 deferred: Node didn't have enough capacity"),
    ("Infeasible", "not applied: the kubelet cannot give loco-emulator-0 250m of CPU: Node didn't have enough "
                   "capacity"),
])
def test_a_resize_the_kubelet_defers_or_refuses_is_reported_as_such(reason, expected):
    deferred = pod("loco-emulator-0", limits={"cpu": "250m"}, running="1",
                   pending=(reason, "Node didn't have enough capacity"))
    backend = KubernetesCpu(FakeCore([deferred]), "ns", 1.0, 0.25, release="loco")
    assert backend.apply_sync({"instance-0": False}) == {"instance-0": expected}


def test_unreachable_api_fails_every_change():
    class Down(FakeCore):
        def list_namespaced_pod(self, namespace, label_selector=None):
            raise ConnectionRefusedError("connection refused")

    failed = KubernetesCpu(Down([]), "ns", 1, 0.25).apply_sync({"instance-0": True})
    assert failed == {"instance-0": "listing emulator pods failed: connection refused"}


@pytest.mark.parametrize("containers", [["emulator"], ["qemu"]])
def test_single_container_pods_need_no_name(containers):
    only = client.V1Pod(
        metadata=client.V1ObjectMeta(name="r-emulator-0"),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name=containers[0], resources=client.V1ResourceRequirements(limits={"cpu": "2"})
                )
            ]
        ),
    )
    body = KubernetesCpu(FakeCore([only]), "ns", 1, 0.25).resize_body(only, 1000)
    assert body["spec"]["containers"][0]["name"] == containers[0]


def test_pods_on_nodes_that_cannot_resize_are_reported_not_applied(caplog):
    core = FakeCore(
        [
            pod("loco-emulator-7", limits={"cpu": "1"}, running="1"),
            pod("loco-emulator-8", limits={"cpu": "1"}, running="1"),
            pod("loco-emulator-18", limits={"cpu": "1"}, running="1"),
        ]
    )
    backend = KubernetesCpu(core, "ns", 1.0, 0.25, release="loco")
    unresizable = "not applied: the node of loco-emulator-8 cannot resize in place"
    assert backend.apply_sync({"instance-7": False, "instance-8": False, "instance-18": False}) == {
        "instance-7": "waiting for the kubelet to resize loco-emulator-7 to 250m",
        "instance-8": unresizable,
        "instance-18": "waiting for the kubelet to resize loco-emulator-18 to 250m",
    }
    assert backend.apply_sync({"instance-8": True}) == {"instance-8": unresizable}
    assert [c[:2] for c in core.calls if c[0] != "list"] == [
        ("resize", "loco-emulator-7"),
        ("resize", "loco-emulator-18"),  # remembered: no second resize attempt of 8
    ]
    assert caplog.text.count("cannot resize in place") == 1
