"""The chart against the real API server and helm: both disk modes, the values
schema, disk upload through the API and patching the release's PVC."""

import base64
import hashlib
import json
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


def test_check_mode_of_a_first_install_fails_where_the_install_would(local_cluster, chart, kubectl):
    """The plan of a release not installed yet is a server-side dry run: values the chart's schema
    accepts but the API server refuses (a CPU quantity that is not one) fail in check mode."""
    kubectl("create", "namespace", "first-install")
    helm = Helm(kubeconfig=str(local_cluster.kubeconfig))
    bad = {"emulator": {"resources": {"limits": {"cpu": "1x"}}}}  # fits the schema, not the API
    with pytest.raises(LocoError, match="the API server refuses StatefulSet loco-emulator of release loco: .*"
                                        "quantities must match the regular expression"):
        helm.plan("loco", "first-install", str(chart), bad)
    assert helm.plan("loco", "first-install", str(chart), {}).action == "install"
    assert helm.plan("loco", "not-created-yet", str(chart), {}).action == "install"  # helm's own checks then
    assert helm.release("loco", "first-install") is None


def volumes_of(api, namespace: str) -> dict:
    sts = client.AppsV1Api(api).read_namespaced_stateful_set("loco-emulator", namespace)
    return {v.name: v for v in sts.spec.template.spec.volumes}


def upload(api, image: Path, pvc: str, namespace: str, **extra) -> dict:
    request = UploadRequest(image=image, pvc=pvc, namespace=namespace, access_modes=("ReadWriteOnce",),
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
    with pytest.raises(LocoError, match="the uploaded image in the cluster has sha256 [0-9a-f]{64}, expected"):
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
    uploader._start_uploader()  # the claim is bound once a pod needs it
    directory = bound_dir(api, ns, "resume-disk")
    (directory / Path(uploader.part_path()).name).write_bytes(small_qcow2.read_bytes()[:half])
    uploader._delete_uploader()
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


def test_turn_server_reaches_clients_without_its_secret_in_any_manifest(chart, kubectl):
    import yaml

    kubectl("create", "namespace", "turn", check=False)
    rendered = helm_template(chart, "streaming.turn.enabled=true", "streaming.turn.host=turn.example.com",
                             "streaming.turn.service.type=LoadBalancer").stdout
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    config = next(d for d in documents if d["kind"] == "ConfigMap")
    assert json.loads(config["data"]["webrtc.json"]) == {"iceServers": [{"urls": [
        "turn:turn.example.com:3478?transport=udp", "turn:turn.example.com:3478?transport=tcp"]}]}
    gateway = next(d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "loco-streaming")
    assert "--turn-secret-file=/turn/secret" in gateway["spec"]["template"]["spec"]["containers"][0]["args"]
    secret = next(d for d in documents if d["kind"] == "Secret" and d["metadata"]["name"] == "loco-turn")
    value = base64.b64decode(secret["data"]["secret"]).decode()
    assert value not in rendered.replace(secret["data"]["secret"], "")  # only in the Secret, encoded
    result = kubectl("apply", "-n", "turn", "--dry-run=server", "-f", "-", input=rendered.encode())
    assert b"deployment.apps/loco-turn created (server dry run)" in result.stdout
    assert b"service/loco-turn created (server dry run)" in result.stdout
