"""Faults between the project and the Kubernetes API, on real parts: an API server that accepts
connections and never answers (a loopback socket that reads nothing), the local cluster's real
kube-apiserver stopped (SIGSTOP) in the middle of a disk upload, and a size-limited volume that
fills up in the middle of one. Every call must give up in bounded time with one line saying what
failed and what to do, and leave the previous state in place."""

import contextlib
import errno
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from kubernetes import client
from streamstack import wait_until

from loco_lan.cluster.local import SIZED_STORAGE_CLASS, LocalCluster
from loco_lan.diskupload import MIB, SHA_ANNOTATION
from loco_lan.process import Started

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[3]
# Short API timeouts, so each fault shows in seconds (the default read timeout is 30 s).
FAST = {"LOCO_KUBE_TIMEOUT": "2"}


@pytest.fixture(scope="module")
def stalled_kubeconfig(tmp_path_factory) -> Path:
    """A kubeconfig whose API server accepts TCP connections and then says nothing, ever."""
    listener = socket.create_server(("127.0.0.1", 0))
    held, stop = [], threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    path = tmp_path_factory.mktemp("stalled") / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "stalled",
        "clusters": [{"name": "stalled", "cluster": {
            "server": f"https://127.0.0.1:{listener.getsockname()[1]}", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "stalled", "context": {"cluster": "stalled", "user": "u"}}],
    }))
    yield path
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    listener.close()


@pytest.fixture(scope="module")
def stoppable_cluster(tmp_path_factory):
    """A cluster of its own: a stopped API server lets every node lease lapse, and kwok does not
    take its nodes back cleanly (they lose their addresses, keep the unreachable taints), which
    would break every later test on the session's cluster."""
    cluster = LocalCluster("faults", state_root=tmp_path_factory.mktemp("clusters"), nodes=1)
    cluster.up(timeout=180)
    yield cluster
    cluster.down()


def run(argv: list[str], timeout: float = 240, **env) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, env={
        **os.environ, **FAST, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false", **env})


def ansible_module(name: str, args: str, **env) -> subprocess.CompletedProcess:
    return run([str(BIN / "ansible"), "localhost", "-m", name, "-a", args], **env)


def module_message(result: subprocess.CompletedProcess) -> str:
    """The ``msg`` of a failed ad-hoc module run."""
    body = result.stdout.split("=>", 1)[1]
    return json.loads(body)["msg"]


def test_stalled_api_server_fails_a_module_in_bounded_time(stalled_kubeconfig, tmp_path, row):
    """API server accepts connections but never answers (module loco.lan.instances)"""
    config = tmp_path / "config"
    config.mkdir()
    (config / "instances.json").write_text('[{"id": "instance-0"}]\n')
    before = (config / "instances.json").read_bytes()
    started = time.monotonic()
    result = ansible_module("loco.lan.instances", f"namespace=loco config_dir={config} kubeconfig={stalled_kubeconfig}")
    took = time.monotonic() - started
    assert result.returncode != 0 and "FAILED" in result.stdout, result.stdout + result.stderr
    message = module_message(result)
    assert "did not answer" in message and "Traceback" not in result.stdout + result.stderr
    assert (config / "instances.json").read_bytes() == before
    row.saw = f"after {took:.0f}s (2 s API timeout, retried): {message[:110]}"
    row.kept = "instances.json untouched"


def test_stalled_api_server_fails_the_cli_in_bounded_time(stalled_kubeconfig, tmp_path, row):
    """API server accepts connections but never answers (loco disk upload)"""
    image = tmp_path / "win98.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
    result = run([str(BIN / "loco"), "disk", "upload", str(image), "--pvc", "disk", "--kubeconfig",
                  str(stalled_kubeconfig)])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and lines[-1].startswith("loco: error: ") and "did not answer" in lines[-1]
    assert "Traceback" not in result.stderr
    row.saw = lines[-1][:140]
    row.kept = "the local image; nothing created in the cluster"


def pv_dir(api, namespace: str, pvc: str) -> Path:
    core = client.CoreV1Api(api)
    claim = core.read_namespaced_persistent_volume_claim(pvc, namespace)
    return Path(core.read_persistent_volume(claim.spec.volume_name).spec.host_path.path)


def qcow2(path: Path, pattern: int) -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "256M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} 0 96M", str(path)], check=True,
                   capture_output=True)
    return path


def fill(directory: Path, name: str, leave: int = 0) -> int:
    """Take the space of ``directory``'s filesystem, all of it but ``leave`` bytes, with a file
    ``name``: something else on the volume using it up.  Returns the bytes taken."""
    stats = os.statvfs(directory)
    taken, chunk = 0, bytes(1 << 20)
    want = stats.f_bavail * stats.f_frsize - leave
    with open(directory / name, "wb", buffering=0) as filler:
        try:
            while taken < want:
                taken += filler.write(chunk[: want - taken])
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return taken


@pytest.mark.cluster
def test_disk_full_on_the_pvc_mid_upload(local_cluster, tmp_path, row):
    """The PVC's volume fills up in the middle of a disk upload (loco disk upload, a loco-sized claim)"""
    api = local_cluster.api()
    ns = "reliability-full"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
    upload = [str(BIN / "loco"), "disk", "upload", "--pvc", "disk", "--namespace", ns, "--kubeconfig",
              str(local_cluster.kubeconfig), "--storage-class", SIZED_STORAGE_CLASS, "--timeout", "120"]
    first = run([*upload[:3], str(qcow2(tmp_path / "v1.qcow2", 0x11)), *upload[3:]])
    assert first.returncode == 0, first.stderr
    good_sha = client.CoreV1Api(api).read_namespaced_persistent_volume_claim("disk", ns).metadata.annotations[
        SHA_ANNOTATION]
    volume = pv_dir(api, ns, "disk")  # a filesystem of the claim's size, as a CSI volume is

    # The claim has room for the new image beside the old one, and 8 MiB more; once the upload
    # is under way, something else on the volume takes those and the rest.
    new = qcow2(tmp_path / "v2.qcow2", 0x22)
    fill(volume, "other-1", leave=new.stat().st_size + 8 * MIB)
    second = subprocess.Popen([*upload[:3], str(new), *upload[3:]], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, **FAST})
    try:
        wait_until(lambda: any(p.name.endswith(".part") for p in volume.iterdir()), 120, "the upload under way")
        fill(volume, "other-2")
        _, stderr = second.communicate(timeout=300)
    finally:
        if second.poll() is None:
            second.kill()
    last = stderr.strip().splitlines()[-1]
    assert second.returncode == 1 and "Traceback" not in stderr, stderr
    needed = f"{new.stat().st_size / MIB:.1f} MiB"
    assert re.fullmatch(rf"loco: error: PVC {ns}/disk ran out of space after [\d.]+ MiB of the {needed} image; "
                        r"the part file was removed and win98\.qcow2 left as it was\. Grow the claim \(it needs "
                        rf"{needed} free beside the current image\) or upload into a new PVC", last), last

    # Still full: the next run says up front how much it needs, and sends nothing.
    again = run([*upload[:3], str(new), *upload[3:]])
    refused = again.stderr.strip().splitlines()[-1]
    assert again.returncode == 1 and f"but the upload needs {needed} more" in refused, again.stderr

    # Nothing short installed: the previous image, verified where it lies, and nothing else of ours.
    annotations = client.CoreV1Api(api).read_namespaced_persistent_volume_claim("disk", ns).metadata.annotations
    on_volume = hashlib.sha256((volume / "win98.qcow2").read_bytes()).hexdigest()
    assert on_volume == annotations[SHA_ANNOTATION] == good_sha
    assert (volume / "win98.qcow2.sha256").read_text().split()[0] == good_sha
    assert sorted(p.name for p in volume.iterdir()) == ["other-1", "other-2", "win98.qcow2", "win98.qcow2.sha256"]
    assert not client.CoreV1Api(api).list_namespaced_pod(ns).items  # the uploader is gone
    row.saw = last.removeprefix("loco: error: ")
    row.kept = (f"the previous image (sha256 checked on the volume), no part file; the next run, still full, "
                f"refused up front: {refused.split(' but ')[-1].split(' (')[0]}")


@pytest.mark.cluster
def test_api_server_stopped_mid_upload(stoppable_cluster, tmp_path, row):
    """API server stopped (SIGSTOP) in the middle of a disk upload"""
    api = stoppable_cluster.api()
    ns = "reliability-upload"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
    upload = [str(BIN / "loco"), "disk", "upload", "--pvc", "disk", "--namespace", ns,
              "--kubeconfig", str(stoppable_cluster.kubeconfig), "--timeout", "120"]
    first = run([*upload[:3], str(qcow2(tmp_path / "v1.qcow2", 0x11)), *upload[3:]])
    assert first.returncode == 0, first.stderr
    claim = client.CoreV1Api(api).read_namespaced_persistent_volume_claim("disk", ns)
    good_sha = claim.metadata.annotations[SHA_ANNOTATION]
    volume = pv_dir(api, ns, "disk")
    good = (volume / "win98.qcow2").read_bytes()

    second = subprocess.Popen([*upload[:3], str(qcow2(tmp_path / "v2.qcow2", 0x22)), *upload[3:]], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **FAST})
    apiserver = Started.load(stoppable_cluster._load()["pids"]["kube-apiserver"]).pid
    try:
        wait_until(lambda: any(p.name.endswith(".part") and p.stat().st_size > 4 << 20 for p in volume.iterdir()),
                   120, "the second upload under way")
        os.kill(apiserver, signal.SIGSTOP)
        started = time.monotonic()
        _, stderr = second.communicate(timeout=300)
        took = time.monotonic() - started
    finally:
        os.kill(apiserver, signal.SIGCONT)
        if second.poll() is None:
            second.kill()
    last = stderr.strip().splitlines()[-1]
    assert second.returncode == 1 and last.startswith("loco: error: ") and "Traceback" not in stderr, stderr
    wait_until(lambda: stoppable_cluster.status()["healthy"], 60, "the API server answering again")
    claim = client.CoreV1Api(api).read_namespaced_persistent_volume_claim("disk", ns)
    assert claim.metadata.annotations[SHA_ANNOTATION] == good_sha
    assert (volume / "win98.qcow2").read_bytes() == good
    row.saw = f"after {took:.0f}s: {last[:120]}"
    row.kept = "the previous image in the claim (bytes and sha256 annotation)"
