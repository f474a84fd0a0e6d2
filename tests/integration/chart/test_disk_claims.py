"""The disk claim as a real cluster treats it: a volume that fills up, access modes that a
CSI driver and a kubelet enforce.  Each test is a defect that once got through: the short
file of a full volume installed as verified, an upload into a ReadOnlyMany claim."""

import hashlib
import json
import os

import pytest
from kubernetes import client
from streamstack import wait_until

from loco_lan import kube
from loco_lan.cluster.local import SIZED_STORAGE_CLASS
from loco_lan.diskupload import FILE_ANNOTATION, SHA_ANNOTATION, DiskUploader, UploadRequest
from loco_lan.errors import LocoError

pytestmark = pytest.mark.cluster
MIB = 1 << 20


def make_namespace(api, name: str) -> client.CoreV1Api:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    return core


def pv_dir(core, namespace: str, pvc: str):
    from pathlib import Path

    claim = core.read_namespaced_persistent_volume_claim(pvc, namespace)
    return Path(core.read_persistent_volume(claim.spec.volume_name).spec.host_path.path)


class NoDf(DiskUploader):
    """An uploader image whose ``df`` says nothing usable (or a volume whose quota df cannot see):
    nothing is refused up front, so the write itself meets the full volume."""

    def _free_bytes(self):
        return None


def request(image, pvc: str, namespace: str, **extra) -> UploadRequest:
    return UploadRequest(image=image, pvc=pvc, namespace=namespace, storage_class=SIZED_STORAGE_CLASS,
                         timeout=60, **extra)


@pytest.fixture(scope="module")
def big_image(tmp_path_factory):
    """Smaller than the 100 MiB claim, bigger than what is left once the small image is in it."""
    path = tmp_path_factory.mktemp("big") / "big.qcow2"
    path.write_bytes(os.urandom(98 * MIB))
    return path


def test_a_full_volume_fails_the_upload_and_keeps_the_previous_image(local_cluster, small_qcow2, big_image):
    api = local_cluster.api()
    core = make_namespace(api, "full")
    first = DiskUploader(api, request(small_qcow2, "disk", "full", size="100Mi")).run()
    assert first.action == "uploaded"
    directory = pv_dir(core, "full", "disk")
    before = hashlib.sha256(small_qcow2.read_bytes()).hexdigest()

    # The claim could hold the new image, but not beside the old one.
    with pytest.raises(LocoError, match=r"PVC full/disk has [\d.]+ MiB free but the upload needs 98.0 MiB more"):
        DiskUploader(api, request(big_image, "disk", "full", file_name="win98.qcow2")).run()

    # Without that check the write itself fails: cat's status, not sha256sum's, decides.
    with pytest.raises(LocoError, match=r"PVC full/disk ran out of space after [\d.]+ MiB of the 98.0 MiB image; "
                                        "the part file was removed and win98.qcow2 left as it was"):
        NoDf(api, request(big_image, "disk", "full")).run()

    assert hashlib.sha256((directory / "win98.qcow2").read_bytes()).hexdigest() == before
    assert sorted(p.name for p in directory.iterdir()) == ["win98.qcow2", "win98.qcow2.sha256"]
    annotations = core.read_namespaced_persistent_volume_claim("disk", "full").metadata.annotations
    assert (annotations[SHA_ANNOTATION], annotations[FILE_ANNOTATION]) == (before, "win98.qcow2")
    assert not core.list_namespaced_pod("full").items  # the uploader is gone either way


def test_a_read_only_many_claim_is_refused_before_anything_is_sent(local_cluster, small_qcow2):
    api = local_cluster.api()
    core = make_namespace(api, "rox")
    core.create_namespaced_persistent_volume_claim("rox", {
        "metadata": {"name": "disk"},
        "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}}})
    with pytest.raises(LocoError, match="PVC rox/disk is ReadOnlyMany only: a cluster mounts it read-only"):
        DiskUploader(api, UploadRequest(image=small_qcow2, pvc="disk", namespace="rox", timeout=60)).run()
    assert not core.list_namespaced_pod("rox").items


def test_the_agent_mounts_a_read_only_many_clone_read_only_whatever_the_pod_asks(local_cluster, kubectl,
                                                                                  small_qcow2):
    """Upload into a writable claim, clone it into a ReadOnlyMany one (the multi-node recipe for
    classes without ReadWriteMany): the clone has the image, and no pod can write it."""
    api = local_cluster.api()
    core = make_namespace(api, "clone")
    DiskUploader(api, UploadRequest(image=small_qcow2, pvc="disk", namespace="clone", timeout=60)).run()
    core.create_namespaced_persistent_volume_claim("clone", {
        "metadata": {"name": "disk-rox"},
        "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}},
                 "dataSource": {"kind": "PersistentVolumeClaim", "name": "disk"}}})
    core.create_namespaced_pod("clone", {
        "metadata": {"name": "reader", "labels": {"app": "reader"}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "volumeMounts": [
                     {"name": "disk", "mountPath": "/disk"}]}],  # no readOnly: the driver decides
                 "volumes": [{"name": "disk", "persistentVolumeClaim": {"claimName": "disk-rox"}}]}})
    kube.wait_pods_ready(api, "clone", "app=reader", 1, timeout=60)
    sha = hashlib.sha256(small_qcow2.read_bytes()).hexdigest()
    done = wait_exec(kubectl, "clone", "reader", "cat", "/disk/win98.qcow2.sha256")
    assert done.stdout.decode().split()[0] == sha
    touched = kubectl("exec", "-n", "clone", "reader", "--", "touch", "/disk/x", check=False)
    assert touched.returncode != 0 and b"Read-only file system" in touched.stderr


def test_a_read_write_once_volume_is_refused_on_a_second_node(local_cluster, kubectl, tmp_path):
    """A kubelet cannot attach a ReadWriteOnce volume on two nodes: the second pod gets a
    Multi-Attach event, no exec and stays not ready; a pod beside the first one shares it."""
    api = local_cluster.api()
    core = make_namespace(api, "attach")
    volume = tmp_path / "volume"
    volume.mkdir()
    core.create_persistent_volume({
        "metadata": {"name": "attach-rwo"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                 "hostPath": {"path": str(volume), "type": "Directory"},
                 "claimRef": {"namespace": "attach", "name": "disk"}}})
    core.create_namespaced_persistent_volume_claim("attach", {
        "metadata": {"name": "disk"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": "attach-rwo",
                 "resources": {"requests": {"storage": "1Gi"}}}})
    for name, node in (("first", "kwok-node-0"), ("beside", "kwok-node-0"), ("elsewhere", "kwok-node-1")):
        core.create_namespaced_pod("attach", {
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox", "volumeMounts": [
                         {"name": "disk", "mountPath": "/disk"}]}],
                     "volumes": [{"name": "disk", "persistentVolumeClaim": {"claimName": "disk"}}]}})
        if name == "first":
            kube.wait_pods_ready(api, "attach", "app=first", 1, timeout=60)
    kube.wait_pods_ready(api, "attach", "app=beside", 1, timeout=60)
    wait_exec(kubectl, "attach", "beside", "touch", "/disk/shared")
    assert (volume / "shared").exists()
    # Running and Ready (kwok), then refused and not ready (the agent): a moment apart, later on a
    # busy machine, and a not-ready report that loses a race with kwok's is sent again next pass.
    def refused():
        pod = core.read_namespaced_pod("elsewhere", "attach")
        ready = [c.status for c in pod.status.conditions or [] if c.type == "Ready"]
        return (pod.status.phase == "Running" and ready == ["False"] and
                any("Multi-Attach" in e for e in kube.pod_events(api, "attach", "elsewhere")))
    wait_until(refused, 60, "elsewhere Running, refused its volume and not ready", interval=0.2)
    with pytest.raises(LocoError, match='elsewhere: Running .*FailedAttachVolume: Multi-Attach error for volume '
                                        '"attach-rwo": it is ReadWriteOnce and already used by pod\\(s\\) beside, '
                                        'first on node kwok-node-0'):
        kube.wait_pods_ready(api, "attach", "app=elsewhere", 1, timeout=5)


def test_one_malformed_port_forward_annotation_stalls_nobody_else(local_cluster, kubectl):
    api = local_cluster.api()
    core = make_namespace(api, "forwards")
    for name, forwards in (("bad", "{not json"), ("good", json.dumps({"8080": "127.0.0.1:1"}))):
        core.create_namespaced_pod("forwards", {
            "metadata": {"name": name, "labels": {"app": "forwarded"},
                         "annotations": {"loco.lan/port-forward": forwards}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    kube.wait_pods_ready(api, "forwards", "app=forwarded", 2, timeout=60)
    wait_exec(kubectl, "forwards", "good", "true")
    wait_exec(kubectl, "forwards", "bad", "true")  # sandboxed all the same, without the forwards
    events = wait_until(lambda: [e for e in kube.pod_events(api, "forwards", "bad") if "BadPortForward" in e], 30,
                        "the BadPortForward event", interval=0.2)
    assert events == ["BadPortForward: annotation loco.lan/port-forward ignored: not JSON "
                      "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"]
    kind = client.CustomObjectsApi(api)
    forward = kind.get_namespaced_custom_object("kwok.x-k8s.io", "v1alpha1", "forwards", "portforwards", "good")
    assert forward["spec"]["forwards"][0]["command"][-1] == "TCP:127.0.0.1:1"


def wait_exec(kubectl, namespace: str, pod: str, *argv: str):
    """``kubectl exec`` once the agent has given the pod its sandbox."""
    def attempt():
        done = kubectl("exec", "-n", namespace, pod, "--", *argv, check=False)
        return done if done.returncode == 0 else None

    return wait_until(attempt, 30, f"exec in {pod}", interval=0.2)
