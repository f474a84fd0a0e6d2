"""What the node agent reports of a pod's containers, as a kubelet would (pure)."""

from loco_lan.cluster.agent import cpu_in_use, resize_verdict, status_report

NOW = "2026-11-24T12:00:00Z"
CPU = {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}


def pod(ready: bool = True, resources=None, restarts: int = 0, state=None) -> dict:
    flag = "True" if ready else "False"
    entry = {"name": "emulator", "ready": ready, "restartCount": restarts, "state": state or {"running": {}}}
    if resources:
        entry["resources"] = resources
    return {
        "spec": {"containers": [{"name": "emulator", "resources": CPU}]},
        "status": {
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": flag},
                           {"type": "ContainersReady", "status": flag}],
            "containerStatuses": [entry],
        },
    }


def test_running_containers_report_their_resources_once():
    report = status_report(pod(), resources=True, emulator=None, now=NOW)
    assert report == {"containerStatuses": [{**pod()["status"]["containerStatuses"][0], "resources": CPU}]}
    assert status_report(pod(resources=CPU), resources=True, emulator=None, now=NOW) is None
    assert status_report(pod(), resources=False, emulator=None, now=NOW) is None  # a kubelet that cannot resize


def test_a_container_not_running_reports_nothing():
    assert status_report(pod(state={"waiting": {}}), resources=True, emulator=None, now=NOW) is None


def test_the_emulators_probe_sets_ready_and_restarts():
    report = status_report(pod(resources=CPU), resources=True, emulator=("emulator", False, 2), now=NOW)
    (entry,) = report["containerStatuses"]
    assert (entry["ready"], entry["restartCount"]) == (False, 2)
    by_type = {c["type"]: c for c in report["conditions"]}
    assert by_type["Ready"] == by_type["ContainersReady"] | {"type": "Ready"}
    assert by_type["Ready"]["status"] == "False" and by_type["Ready"]["lastTransitionTime"] == NOW
    assert by_type["PodScheduled"] == {"type": "PodScheduled", "status": "True"}  # the whole list, untouched


def test_a_probe_that_agrees_with_the_status_sends_nothing():
    assert status_report(pod(resources=CPU), resources=True, emulator=("emulator", True, 0), now=NOW) is None


# -- resizes, admitted as a kubelet admits them ------------------------------------------


def resized(asked: str, running: str, node: str = "node-0") -> dict:
    manifest = pod(resources={"limits": {"cpu": running}, "requests": {"cpu": running}})
    manifest["spec"]["containers"][0]["resources"] = {"limits": {"cpu": asked}, "requests": {"cpu": asked}}
    manifest["spec"]["nodeName"] = node
    manifest["metadata"] = {"name": "loco-emulator-0"}
    return manifest


def test_a_resize_beyond_the_node_is_infeasible_and_one_beyond_what_is_free_is_deferred():
    assert resize_verdict(resized("8", "1"), node_cpu=4000, node_used=1000) == (
        "Infeasible", "Node didn't have enough capacity: cpu, requested: 8000m, capacity: 4000m")
    assert resize_verdict(resized("2", "1"), node_cpu=4000, node_used=3500) == (
        "Deferred", "Node didn't have enough resource: cpu, requested: 2000m, used: 2500m, capacity: 4000m")
    assert resize_verdict(resized("2", "1"), node_cpu=4000, node_used=2500) is None
    assert resize_verdict(resized("250m", "1"), node_cpu=4000, node_used=9000) is None  # lowering always fits


def test_what_the_nodes_pods_use_counts_what_they_run_with():
    other = resized("2", "1", node="node-0")  # asked for more, still running with 1
    gone = resized("1", "1", node="node-0") | {"metadata": {"deletionTimestamp": "now"}}
    assert cpu_in_use([other, gone, resized("500m", "500m", node="node-1")]) == {"node-0": 1000, "node-1": 500}


def test_a_pending_resize_keeps_the_old_resources_and_says_why():
    manifest = resized("2", "1")
    report = status_report(manifest, resources=True, emulator=None, now=NOW, resize_pending=("Deferred", "busy"))
    assert "containerStatuses" not in report
    assert report["conditions"][-1] == {"type": "PodResizePending", "status": "True", "reason": "Deferred",
                                        "message": "busy", "lastTransitionTime": NOW}
    manifest["status"]["conditions"] = report["conditions"]
    assert status_report(manifest, resources=True, emulator=None, now="later",
                         resize_pending=("Deferred", "busy")) is None  # said once
    done = status_report(manifest, resources=True, emulator=None, now=NOW)
    assert done["containerStatuses"][0]["resources"] == manifest["spec"]["containers"][0]["resources"]
    assert [c["type"] for c in done["conditions"]] == ["PodScheduled", "Ready", "ContainersReady"]
