"""The local control plane behaves like a real cluster: PVCs bind to real
directories, StatefulSet pods run on kwok nodes, and exec/cp/port-forward and
helm go through the real API server."""

import hashlib
import http.server
import os
import secrets
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from loco_lan import kube
from loco_lan.cluster.agent import SANDBOX_ANNOTATION
from loco_lan.kube.portforward import PortForwards

pytestmark = pytest.mark.cluster


def apply_manifest(kubectl, *docs: dict) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs).encode())


def wait_sandboxed(api, namespace: str, selector: str, count: int) -> list:
    pods = kube.wait_pods_ready(api, namespace, selector, count, timeout=120)
    deadline = time.monotonic() + 30
    core = client.CoreV1Api(api)
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        if all((p.metadata.annotations or {}).get(SANDBOX_ANNOTATION) == "ready" for p in pods):
            return pods
        time.sleep(0.3)
    raise AssertionError("pods were not sandboxed by the agent")


def forwarded_pod(local_cluster, kubectl, name: str, port: int, target: int) -> None:
    """A pod whose ``port`` the agent forwards to 127.0.0.1:``target`` on this machine, sandboxed."""
    apply_manifest(kubectl, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name},
                     "annotations": {"loco.lan/port-forward": f'{{"{port}": "127.0.0.1:{target}"}}'}},
        "spec": {"containers": [{"name": "main", "image": "example.invalid/web:1"}]},
    })
    wait_sandboxed(local_cluster.api(), "default", f"app={name}", 1)


def test_statefulset_mounts_pvc_and_cp_reaches_the_volume(local_cluster, kubectl, tmp_path):
    ns = "stateful"
    apply_manifest(
        kubectl,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "shared", "namespace": ns},
         "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web", "namespace": ns},
         "spec": {"replicas": 3, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                      "containers": [{"name": "main", "image": "example.invalid/web:1",
                                      "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                      "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}]}}}},
    )
    api = local_cluster.api()
    pods = wait_sandboxed(api, ns, "app=web", 3)
    nodes = {p.spec.node_name for p in pods}
    assert all(name.startswith("kwok-node-") for name in nodes)

    payload = tmp_path / "payload.bin"
    payload.write_bytes(secrets.token_bytes(3 * 1024 * 1024 + 17))
    pod = pods[1].metadata.name
    kubectl("cp", str(payload), f"{ns}/{pod}:/data/payload.bin", "-c", "main")
    listing = kubectl("exec", "-n", ns, pod, "--", "ls", "-l", "/data").stdout.decode()
    assert "payload.bin" in listing

    claim = client.CoreV1Api(api).read_namespaced_persistent_volume_claim("shared", ns)
    volume = client.CoreV1Api(api).read_persistent_volume(claim.spec.volume_name)
    on_disk = Path(volume.spec.host_path.path) / "payload.bin"
    assert hashlib.sha256(on_disk.read_bytes()).digest() == hashlib.sha256(payload.read_bytes()).digest()

    # Another replica sees the same bytes through its own exec.
    digest = kubectl("exec", "-n", ns, pods[2].metadata.name, "--", "sha256sum", "/data/payload.bin").stdout
    assert digest.split()[0].decode() == hashlib.sha256(payload.read_bytes()).hexdigest()


def test_port_forward_reaches_a_local_process(local_cluster, kubectl):
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            body = b"hello from the pod"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        forwarded_pod(local_cluster, kubectl, "forwarded", 8080, server.server_address[1])
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            local_port = sock.getsockname()[1]
        forward = subprocess.Popen(
            ["kubectl", "--kubeconfig", str(local_cluster.kubeconfig), "port-forward", "pod/forwarded",
             f"{local_port}:8080"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            body = None
            for _ in range(100):  # until kubectl has bound the local port
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{local_port}/", timeout=5) as response:
                        body = response.read()
                    break
                except OSError:
                    time.sleep(0.1)
            assert body == b"hello from the pod"
        finally:
            forward.terminate()
            forward.wait(10)
    finally:
        server.shutdown()


def test_port_forward_closes_the_pods_end_when_the_client_closes(local_cluster, kubectl):
    """As a kubelet does: a server taking one client at a time (as QEMU's serial, the guest
    channel, does) answers every connection in turn through one kubectl port-forward."""
    server = socket.create_server(("127.0.0.1", 0), backlog=1)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            with conn:
                conn.sendall(b"hello\n")
                while conn.recv(4096):  # until the client's end closes
                    pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        forwarded_pod(local_cluster, kubectl, "one-client", 4555, server.getsockname()[1])
        with PortForwards("default", [("one-client", 4555)], kubeconfig=str(local_cluster.kubeconfig)) as forwards:
            for _ in range(3):  # no retry: the forward listens once PortForwards is entered
                with socket.create_connection(("127.0.0.1", forwards.port("one-client", 4555)), timeout=30) as conn:
                    assert conn.makefile("rb").readline() == b"hello\n"
    finally:
        server.close()


def test_rbac_is_enforced(local_cluster, kubectl):
    kubectl("create", "serviceaccount", "nobody", "-n", "default", check=False)
    token = kubectl("create", "token", "nobody", "-n", "default").stdout.decode().strip()
    server = local_cluster.status()["server"]
    denied = subprocess.run(
        ["kubectl", "--kubeconfig", "/dev/null", "--server", server, "--token", token,
         "--certificate-authority", str(local_cluster.pki_dir / "ca.crt"), "get", "pods", "-n", "default"],
        capture_output=True, timeout=60)
    assert denied.returncode != 0
    assert b"forbidden" in denied.stderr.lower()


def test_helm_installs_and_uninstalls_a_chart(local_cluster, tmp_path):
    chart = tmp_path / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-greeting\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n")
    env = {**os.environ, "KUBECONFIG": str(local_cluster.kubeconfig), "HELM_CACHE_HOME": str(tmp_path / "c"),
           "HELM_CONFIG_HOME": str(tmp_path / "cfg"), "HELM_DATA_HOME": str(tmp_path / "d")}

    def helm(*args):
        return subprocess.run(["helm", *args], env=env, capture_output=True, text=True, check=True,
                              timeout=120)

    helm("install", "tiny", str(chart), "--namespace", "helmtest", "--create-namespace", "--wait",
         "--set", "greeting=hi")
    core = client.CoreV1Api(local_cluster.api())
    assert core.read_namespaced_config_map("tiny-greeting", "helmtest").data == {"greeting": "hi"}
    assert "tiny" in helm("list", "--namespace", "helmtest", "--short").stdout.split()
    helm("uninstall", "tiny", "--namespace", "helmtest", "--wait")
    assert "tiny" not in helm("list", "--namespace", "helmtest", "--short").stdout.split()
    names = [c.metadata.name for c in core.list_namespaced_config_map("helmtest").items]
    assert "tiny-greeting" not in names
