"""What the node agent reports of a pod's containers, as a kubelet would (pure)."""

from loco_lan.cluster.agent import status_report

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
