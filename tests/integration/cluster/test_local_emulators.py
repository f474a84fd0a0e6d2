"""Pods annotated ``loco.lan/run-local: emulator`` on the local cluster run real emulators:
QEMU booting a real demo qcow2 from a PVC, reachable through ``kubectl port-forward``,
restarted when they die and stopped with their pods."""

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
import yaml
from kubernetes import client

from loco_lan import demoguest, kube
from loco_lan.bootcheck import check_pods
from loco_lan.cluster.localemu import PID_FILE, VNC_PORT, LocalEmulators
from loco_lan.diskupload import DiskUploader, UploadRequest
from loco_lan.focus.quota import CgroupFs, cpu_millis
from loco_lan.kube.portforward import PortForwards
from loco_lan.process import cpu_seconds
from loco_lan.rfb import RFBClient, RFBError

pytestmark = [pytest.mark.cluster, pytest.mark.qemu, pytest.mark.slow]
NS = "local-emulators"
F7_MAKE = 0x41  # the set-1 scancode the guest logs for F7


def qemu_pids(cluster_dir, uid: str = "") -> dict[int, str]:
    """QEMU processes booting from this cluster's pod directories (all pods, or pod ``uid``)."""
    found = subprocess.run(["pgrep", "-a", "-f", f"qemu-system.*{cluster_dir}/pods/{uid}"],
                           capture_output=True, text=True).stdout
    return {int(line.split()[0]): line for line in found.splitlines()}


def wait_for(predicate, what: str, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def statefulset(name: str, replicas: int, env=(), mounts=(), volumes=()) -> dict:
    """The chart's emulator pod, cut down to what the local agent reads."""
    env = [
        {"name": "POD_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}},
        {"name": "INSTANCE_ID", "value": "instance-$(POD_INDEX)"},
        {"name": "LOCO_DISK", "value": "/images/win98.qcow2"},
        {"name": "LOCO_OVERLAY_DIR", "value": "/overlay"},
        {"name": "QEMU_MEMORY", "value": "16"},
        {"name": "NETWORK_MODE", "value": "socket"},  # the agent runs it with user networking
        {"name": "LOCO_STOP_TIMEOUT", "value": "5"},
        *env,
    ]
    mounts = [{"name": "disk", "mountPath": "/images", "readOnly": True}, {"name": "overlay", "mountPath": "/overlay"},
              *mounts]
    volumes = [{"name": "disk", "persistentVolumeClaim": {"claimName": "win98-disk", "readOnly": True}},
               {"name": "overlay", "emptyDir": {}}, *volumes]
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": replicas, "serviceName": name, "podManagementPolicy": "Parallel",
                 "selector": {"matchLabels": {"app": name}},
                 "template": {
                     "metadata": {"labels": {"app": name}, "annotations": {"loco.lan/run-local": "emulator"}},
                     "spec": {"terminationGracePeriodSeconds": 5, "volumes": volumes, "containers": [
                         {"name": "emulator", "image": "example.invalid/emulator:1", "env": env,
                          "volumeMounts": mounts}]}}},
    }


@pytest.fixture(scope="module")
def emulators(local_cluster, kubectl, tmp_path_factory):
    """Two emulator pods on the demo disk; on the way out, no QEMU of this cluster may be left."""
    kubectl("create", "namespace", NS)
    disk = tmp_path_factory.mktemp("demo") / "win98.qcow2"
    demoguest.ensure(disk)
    api = local_cluster.api()
    DiskUploader(api, UploadRequest(image=disk, pvc="win98-disk", namespace=NS, access_modes=("ReadWriteOnce",),
                                    timeout=60)).run()
    kubectl("apply", "-f", "-", input=yaml.safe_dump(statefulset("emu", 2)).encode())
    try:
        yield api
    finally:
        kubectl("delete", "namespace", NS, "--wait=true", "--timeout=60s", check=False)
        wait_for(lambda: not qemu_pids(local_cluster.dir), "every QEMU of the cluster to stop")


def pods(api) -> list:
    items = client.CoreV1Api(api).list_namespaced_pod(NS, label_selector="app=emu").items
    return sorted((p for p in items if not p.metadata.deletion_timestamp), key=lambda p: p.metadata.name)


def test_each_pod_runs_one_real_emulator_reached_through_the_api(local_cluster, kubectl, emulators):
    kube.wait_pods_ready(emulators, NS, "app=emu", 2, timeout=120)
    running = pods(emulators)
    for pod in running:
        wait_for(lambda pod=pod: qemu_pids(local_cluster.dir, pod.metadata.uid), f"QEMU of {pod.metadata.name}")
    for pod in running:
        (line,) = qemu_pids(local_cluster.dir, pod.metadata.uid).values()  # exactly one per pod
        instance = f"instance-{pod.metadata.labels['apps.kubernetes.io/pod-index']}"
        assert f"-name loco-{instance}" in line
        assert "user,id=lan0" in line and "-m 16" in line
        assert f"{local_cluster.dir}/pods/{pod.metadata.uid}/volumes/overlay/{instance}.qcow2" in line

    names = [pod.metadata.name for pod in running]
    with PortForwards(NS, [(n, port) for n in names for port in (5901, 8080)],
                      kubeconfig=str(local_cluster.kubeconfig)) as forwards:

        def banner():
            try:
                with socket.create_connection(("127.0.0.1", forwards.port(names[0], 5901)), timeout=5) as conn:
                    return conn.recv(12)
            except OSError:
                return None

        assert wait_for(banner, "an RFB banner through the port-forward") == b"RFB 003.008\n"

        def health():
            try:
                url = f"http://127.0.0.1:{forwards.port(names[1], 8080)}/health"
                with urllib.request.urlopen(url, timeout=5) as response:
                    return json.load(response)
            except OSError:
                return None

        assert wait_for(health, "the health endpoint through the port-forward")["instance"] == "instance-1"

    results = check_pods(NS, "app=emu", kubeconfig=str(local_cluster.kubeconfig), timeout=60, settle=1)
    assert [(r.name, r.state, r.ok) for r in results] == [(names[0], "desktop", True), (names[1], "desktop", True)]

    logs = kubectl("logs", "-n", NS, names[0]).stdout.decode()
    assert "starting the emulator" in logs and "qemu-system-i386" in logs


def test_a_dead_emulator_is_restarted_and_a_deleted_pod_stops_its_qemu(local_cluster, kubectl, emulators):
    kube.wait_pods_ready(emulators, NS, "app=emu", 2, timeout=120)
    first, second = pods(emulators)
    ((old_qemu, old_line),) = wait_for(lambda: qemu_pids(local_cluster.dir, second.metadata.uid),
                                       "QEMU of pod 1").items()

    os.kill(old_qemu, signal.SIGKILL)  # the guest crashes: the agent starts it again
    (restarted,) = wait_for(lambda: set(qemu_pids(local_cluster.dir, second.metadata.uid)) - {old_qemu},
                            "the restarted QEMU")
    ((_, line),) = qemu_pids(local_cluster.dir, second.metadata.uid).items()  # still one
    vnc = re.search(r"-vnc (\S+)", old_line).group(1)
    assert f"-vnc {vnc} " in line  # on the same port, so the pod's port-forward target stays
    assert "restarting in 1s" in kubectl("logs", "-n", NS, second.metadata.name).stdout.decode()

    def restarted_and_ready():  # as a kubelet reports it: the restart counted, Ready by the probe again
        (status,) = client.CoreV1Api(emulators).read_namespaced_pod(second.metadata.name, NS).status.container_statuses
        return status.restart_count == 1 and status.ready

    wait_for(restarted_and_ready, "pod 1 to report its restart and be ready again")

    (qemu,) = qemu_pids(local_cluster.dir, first.metadata.uid)
    kubectl("delete", "pod", "-n", NS, first.metadata.name, "--wait=false")
    wait_for(lambda: not os.path.exists(f"/proc/{qemu}"), "the deleted pod's QEMU to stop (and be reaped)")
    assert not qemu_pids(local_cluster.dir, first.metadata.uid)
    # The StatefulSet brings the pod back, with a new uid and a new emulator.
    kube.wait_pods_ready(emulators, NS, "app=emu", 2, timeout=120)
    new = next(p for p in pods(emulators) if p.metadata.name == first.metadata.name)
    assert new.metadata.uid != first.metadata.uid
    wait_for(lambda: qemu_pids(local_cluster.dir, new.metadata.uid), "the new pod's QEMU")
    assert restarted in qemu_pids(local_cluster.dir, second.metadata.uid)  # the other pod was left alone


def test_a_new_agent_stops_what_a_killed_one_left_running(tmp_path):
    """Only processes in one of its pod directories, whose pid it recorded, are its to stop."""
    pods_dir = tmp_path / "pods"
    ours, other = pods_dir / "uid-1", tmp_path / "elsewhere"
    for directory in (ours, other):
        directory.mkdir(parents=True)
    left = subprocess.Popen(["sleep", "600"], cwd=ours, start_new_session=True)
    stranger = subprocess.Popen(["sleep", "600"], cwd=other, start_new_session=True)
    (ours / PID_FILE).write_text(f"{left.pid}\n")
    (pods_dir / "uid-2").mkdir()
    (pods_dir / "uid-2" / PID_FILE).write_text(f"{stranger.pid}\n")  # a reused pid: not ours
    try:
        LocalEmulators(pods_dir).reap_orphans()
        assert left.wait(10) == -signal.SIGTERM
        assert stranger.poll() is None
        assert not list(pods_dir.glob(f"*/{PID_FILE}"))
    finally:
        for process in (left, stranger):
            process.kill()
            process.wait()


def test_a_pod_without_the_annotation_runs_nothing_and_logs_a_note(local_cluster, kubectl, emulators):
    kubectl("run", "plain", "-n", NS, "--image=example.invalid/plain:1", "--labels=app=plain")
    pod = kube.wait_pods_ready(emulators, NS, "app=plain", 1, timeout=60)[0]

    def logs():
        result = kubectl("logs", "-n", NS, "plain", check=False)
        return result.returncode == 0 and result.stdout.decode()

    assert f"plain: simulated by kwok on {pod.spec.node_name}" in wait_for(logs, "kubectl logs of a plain pod")
    assert not qemu_pids(local_cluster.dir, pod.metadata.uid)


def test_a_vnc_password_from_a_secret_volume_locks_the_screen(local_cluster, kubectl, emulators):
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vnc", "namespace": NS},
              "stringData": {"password": "s3cret"}}
    locked = statefulset("locked", 1, env=[{"name": "LOCO_VNC_PASSWORD_FILE", "value": "/secrets/vnc/password"}],
                         mounts=[{"name": "vnc", "mountPath": "/secrets/vnc", "readOnly": True}],
                         volumes=[{"name": "vnc", "secret": {"secretName": "vnc", "defaultMode": 0o440}}])
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all([secret, locked]).encode())
    (pod,) = kube.wait_pods_ready(emulators, NS, "app=locked", 1, timeout=120)
    wait_for(lambda: qemu_pids(local_cluster.dir, pod.metadata.uid), "QEMU of the locked pod")
    options = dict(kubeconfig=str(local_cluster.kubeconfig), timeout=60, settle=1)

    (opened,) = check_pods(NS, "app=locked", password="s3cret", **options)
    assert (opened.state, opened.ok) == ("desktop", True)
    (refused,) = check_pods(NS, "app=locked", password="wrong", **options)
    assert (refused.state, refused.ok, refused.screenshot) == ("no-vnc", False, None)
    assert "rejected us" in refused.detail
    (unasked,) = check_pods(NS, "app=locked", **options)
    assert "requires a VNC password" in unasked.detail
    kubectl("delete", "statefulset", "-n", NS, "locked", "--wait=false")
    wait_for(lambda: not qemu_pids(local_cluster.dir, pod.metadata.uid), "the locked pod's QEMU to stop")


def cpu_used(pid: int, seconds: float = 3.0) -> float:
    """CPUs process ``pid`` used over ``seconds`` (its user + system time over elapsed time; the
    same on cgroup v1 and v2)."""

    start, begun = cpu_seconds(pid), time.monotonic()
    deadline = begun + seconds
    while time.monotonic() < deadline:  # a measuring window, not a wait for something
        time.sleep(0.1)
    return (cpu_seconds(pid) - start) / (time.monotonic() - begun)


def keep_busy(kubeconfig: str, pod: str) -> demoguest.Panel:
    """Press F7 on the pod's guest, through its port-forward as a viewer would: it stops halting
    while it waits (as Windows 98 idles), so it uses all the CPU it is given.  The panel that
    shows the guest took the key."""
    with PortForwards(NS, [(pod, VNC_PORT)], kubeconfig=kubeconfig) as forwards:

        async def press() -> demoguest.Panel | None:
            try:
                vnc = await RFBClient.connect("127.0.0.1", forwards.port(pod, VNC_PORT))
            except RFBError:
                return None  # the forward is not up yet
            async with vnc:
                deadline = time.monotonic() + 60
                while (await vnc.refresh()).shape[:2] != demoguest.MAIN_MODE[1::-1]:
                    assert time.monotonic() < deadline, "the demo desktop did not come up"
                await vnc.press(demoguest.KEYSYMS["F7"])
                while (panel := demoguest.read_panel(await vnc.refresh())).log[-2] != F7_MAKE:
                    assert time.monotonic() < deadline, f"the guest did not take F7: {panel}"
                return panel

        return wait_for(lambda: asyncio.run(press()), "the guest's VNC through the port-forward")


def test_a_cpu_resize_reaches_the_guest_and_one_beyond_the_node_is_refused(local_cluster, kubectl, emulators, row):
    """CPU limit lowered under a busy guest, then raised beyond the node (pods/resize, local cluster)"""
    # The emulator's CPU limit is its cgroup's CPU quota, as a container runtime sets it: a resize
    # down really slows a busy guest (QEMU's CPU time measured), is reported done only once applied,
    # and a resize to more than the node has stays PodResizePending/Infeasible with the old limit.
    cpu = statefulset("cpu", 1)
    given = {"cpu": "1", "memory": "256Mi"}
    cpu["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": given, "requests": given}
    kubectl("apply", "-f", "-", input=yaml.safe_dump(cpu).encode())
    (pod,) = kube.wait_pods_ready(emulators, NS, "app=cpu", 1, timeout=120)
    ((qemu, _),) = wait_for(lambda: qemu_pids(local_cluster.dir, pod.metadata.uid), "QEMU of the cpu pod").items()
    cgroups = CgroupFs.detect(name="loco-lan-agent")  # the agent's, as it found them
    assert str(qemu) in (cgroups.base / pod.metadata.uid / "cgroup.procs").read_text().split()
    assert wait_for(lambda: cgroups.read_cpus(pod.metadata.uid) == 1.0, "the 1-CPU limit")
    idle = cpu_used(qemu)
    keep_busy(str(local_cluster.kubeconfig), pod.metadata.name)
    full = cpu_used(qemu)
    assert full >= 0.7 and full >= 5 * idle  # busy: it takes the CPU it is given (an idle guest halts)

    def resize(cpus: str) -> None:
        body = {"spec": {"containers": [{"name": "emulator", "resources": {
            "limits": {"cpu": cpus}, "requests": {"cpu": cpus}}}]}}
        kubectl("patch", "pod", "-n", NS, pod.metadata.name, "--subresource", "resize", "--patch", json.dumps(body))

    def running_with() -> str:
        (status,) = client.CoreV1Api(emulators).read_namespaced_pod(pod.metadata.name, NS).status.container_statuses
        return status.resources.limits["cpu"]

    resize("100m")
    wait_for(lambda: running_with() == "100m", "the kubelet's report of the resize")
    assert cgroups.read_cpus(pod.metadata.uid) == 0.1
    slowed = cpu_used(qemu)
    print(f"QEMU used {idle:.2f} CPU idle and {full:.2f} busy with a 1-CPU limit, {slowed:.2f} busy after the "
          f"resize to 100m: {slowed / full:.2f} of what it had")
    assert slowed <= 0.15 and slowed / full <= 0.2  # the cap holds (0.1 CPU, plus one period's slack)

    node = client.CoreV1Api(emulators).read_node(pod.spec.node_name)
    beyond = cpu_millis(node.status.allocatable["cpu"]) * 2
    resize(f"{beyond}m")  # more than the node has

    def refused():
        conditions = client.CoreV1Api(emulators).read_namespaced_pod(pod.metadata.name, NS).status.conditions
        return next((c for c in conditions or [] if c.type == "PodResizePending" and c.reason == "Infeasible"), None)

    infeasible = wait_for(refused, "PodResizePending Infeasible").message
    assert f"requested: {beyond}m" in infeasible
    assert running_with() == "100m" and cgroups.read_cpus(pod.metadata.uid) == 0.1
    assert set(qemu_pids(local_cluster.dir, pod.metadata.uid)) == {qemu}  # resized in place, not restarted
    row.saw = (f"busy guest's QEMU {full:.2f} CPU at a 1-CPU limit, {slowed:.2f} at 100m ({slowed / full:.2f} of "
               f"it; idle {idle:.2f}); {beyond}m: PodResizePending/Infeasible")
    row.kept = "the 100m limit, in the cgroup and the pod's status; the same pod and QEMU"
    kubectl("delete", "statefulset", "-n", NS, "cpu", "--wait=false")
    wait_for(lambda: not qemu_pids(local_cluster.dir, pod.metadata.uid), "the cpu pod's QEMU to stop")
