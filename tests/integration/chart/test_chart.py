"""The chart against the real API server and helm: both disk modes, the values
schema, disk upload through the API and patching the release's PVC."""

import hashlib
import subprocess
import time
from pathlib import Path

import pytest
from kubernetes import client

from loco_lan import kube
from loco_lan.diskupload import SHA_ANNOTATION, DiskUploader, UploadRequest
from loco_lan.errors import LocoError
from loco_lan.helm import Helm

pytestmark = pytest.mark.cluster
KUBE_VERSION = "1.35.4"


def helm_template(chart: Path, *sets: str) -> subprocess.CompletedProcess:
    args = ["helm", "template", "loco", str(chart), "--kube-version", KUBE_VERSION]
    for value in sets:
        args += ["--set", value]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_chart_lints_clean(chart):
    for mode in ("true", "false"):
        result = subprocess.run(["helm", "lint", str(chart), "--strict", "--set", f"emulator.diskReadOnly={mode}"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("value", "message"), [
    ("replicas=three", "at '/replicas': got string, want integer"),
    ("emulator.diskReadOnly=yes", "at '/emulator/diskReadOnly': got string, want boolean"),
    ("emulator.diskPvc=typo", "additional properties 'diskPvc' not allowed"),
])
def test_schema_rejects_bad_values_readably(chart, value, message):
    result = helm_template(chart, value)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize("read_only", ["true", "false"])
def test_both_disk_modes_pass_server_side_dry_run(chart, kubectl, read_only):
    kubectl("create", "namespace", f"dry-{read_only}", check=False)
    manifest = helm_template(chart, f"emulator.diskReadOnly={read_only}", "ingress.enabled=true",
                             "emulator.overlay.storage=persistent").stdout
    result = kubectl("apply", "-n", f"dry-{read_only}", "--dry-run=server", "-f", "-", input=manifest.encode())
    assert b"statefulset.apps/loco-emulator created (server dry run)" in result.stdout


def volumes_of(api, namespace: str) -> dict:
    sts = client.AppsV1Api(api).read_namespaced_stateful_set("loco-emulator", namespace)
    return {v.name: v for v in sts.spec.template.spec.volumes}


def upload(api, image: Path, pvc: str, namespace: str, **extra) -> dict:
    request = UploadRequest(image=image, pvc=pvc, namespace=namespace, access_modes=("ReadOnlyMany",),
                            timeout=60, **extra)
    return DiskUploader(api, request).run().as_dict()


def bound_dir(api, namespace: str, pvc: str) -> Path:
    """The PV directory of a claim once the agent has bound it."""
    for _ in range(100):
        claim = client.CoreV1Api(api).read_namespaced_persistent_volume_claim(pvc, namespace)
        if claim.spec.volume_name:
            return pv_dir(api, namespace, pvc)
        time.sleep(0.1)
    raise AssertionError(f"{pvc} never bound")


def pv_dir(api, namespace: str, pvc: str) -> Path:
    core = client.CoreV1Api(api)
    claim = core.read_namespaced_persistent_volume_claim(pvc, namespace)
    return Path(core.read_persistent_volume(claim.spec.volume_name).spec.host_path.path)


@pytest.mark.parametrize("read_only", [True, False])
def test_upload_install_and_patch_the_release(local_cluster, chart, small_qcow2, read_only):
    api = local_cluster.api()
    ns = f"lan-{'ro' if read_only else 'rw'}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
    local_sha = hashlib.sha256(small_qcow2.read_bytes()).hexdigest()

    first = upload(api, small_qcow2, "win98-disk", ns)
    assert first["action"] == "uploaded" and first["pvc_created"] and first["sent"] == small_qcow2.stat().st_size
    on_disk = pv_dir(api, ns, "win98-disk") / "win98.qcow2"
    assert hashlib.sha256(on_disk.read_bytes()).hexdigest() == local_sha
    claim = client.CoreV1Api(api).read_namespaced_persistent_volume_claim("win98-disk", ns)
    assert claim.metadata.annotations[SHA_ANNOTATION] == local_sha

    second = upload(api, small_qcow2, "win98-disk", ns)
    assert (second["action"], second["changed"], second["sent"]) == ("current", False, 0)

    helm = Helm(kubeconfig=str(local_cluster.kubeconfig))
    values = {"replicas": 3, "emulator": {"diskPVC": "win98-disk", "diskReadOnly": read_only}}
    plan = helm.plan("loco", ns, str(chart), values)
    assert plan.action == "install"
    helm.apply("loco", ns, str(chart), plan, wait=False)
    pods = kube.wait_pods_ready(api, ns, "app.kubernetes.io/component=emulator", 3, timeout=120)
    assert [p.metadata.name for p in pods] == ["loco-emulator-0", "loco-emulator-1", "loco-emulator-2"]
    assert all(p.spec.node_name.startswith("kwok-node-") for p in pods)
    disk_volume = "disk" if read_only else "base"
    volume = volumes_of(api, ns)[disk_volume].persistent_volume_claim
    assert (volume.claim_name, volume.read_only) == ("win98-disk", True)
    templates = client.AppsV1Api(api).read_namespaced_stateful_set("loco-emulator", ns).spec.volume_claim_templates
    assert [t.metadata.name for t in templates or []] == ([] if read_only else ["disk"])
    assert not helm.plan("loco", ns, str(chart), values).changed

    # Patch the release onto another disk: only that value changes, the StatefulSet follows.
    upload(api, small_qcow2, "win98-disk-v2", ns)
    patch = {"emulator": {"diskPVC": "win98-disk-v2"}}
    plan = helm.plan("loco", ns, str(chart), patch, patch=True)
    assert plan.action == "upgrade"
    assert plan.values_after == {"replicas": 3, "emulator": {"diskPVC": "win98-disk-v2", "diskReadOnly": read_only}}
    helm.apply("loco", ns, str(chart), plan, wait=False)
    assert volumes_of(api, ns)[disk_volume].persistent_volume_claim.claim_name == "win98-disk-v2"
    assert not helm.plan("loco", ns, str(chart), patch, patch=True).changed


def test_wrong_digest_fails_loudly_and_installs_nothing(local_cluster, small_qcow2):
    api = local_cluster.api()
    ns = "corrupt"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
    with pytest.raises(LocoError, match="sha256 of the uploaded image in the cluster is"):
        upload(api, small_qcow2, "bad-disk", ns, expected_sha256="0" * 64)
    directory = pv_dir(api, ns, "bad-disk")
    assert list(directory.iterdir()) == []
    claim = client.CoreV1Api(api).read_namespaced_persistent_volume_claim("bad-disk", ns)
    assert SHA_ANNOTATION not in (claim.metadata.annotations or {})


@pytest.mark.parametrize("digest_known", [False, True], ids=["hashed-here", "digest-from-snapshot"])
def test_interrupted_upload_resumes_from_the_part_file(local_cluster, small_qcow2, digest_known):
    api = local_cluster.api()
    ns = f"resume-{int(digest_known)}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
    sha = hashlib.sha256(small_qcow2.read_bytes()).hexdigest()
    half = small_qcow2.stat().st_size // 2
    # A first run that died half way left its part file behind.
    uploader = DiskUploader(api, UploadRequest(image=small_qcow2, pvc="resume-disk", namespace=ns))
    uploader._create_claim(small_qcow2.stat().st_size)
    directory = bound_dir(api, ns, "resume-disk")
    (directory / Path(uploader.part_path()).name).write_bytes(small_qcow2.read_bytes()[:half])
    # The snapshot module's form of the digest, as bootstrap passes it on.
    known = {"expected_sha256": f"sha256:{sha}"} if digest_known else {}
    result = upload(api, small_qcow2, "resume-disk", ns, **known)
    assert result["sha256"] == sha
    assert result["resumed_from"] == half
    assert result["sent"] == small_qcow2.stat().st_size - half
    assert hashlib.sha256((directory / "win98.qcow2").read_bytes()).hexdigest() == sha


def test_too_small_pvc_and_missing_storage_class_are_clear_errors(local_cluster, kubectl, small_qcow2):
    api = local_cluster.api()
    ns = "errors"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
    client.CoreV1Api(api).create_namespaced_persistent_volume_claim(ns, {
        "metadata": {"name": "tiny"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}}})
    with pytest.raises(LocoError, match="PVC errors/tiny holds 1Mi but the image is"):
        upload(api, small_qcow2, "tiny", ns)
    with pytest.raises(LocoError, match="storage class 'nope' does not exist"):
        upload(api, small_qcow2, "other", ns, storage_class="nope")
