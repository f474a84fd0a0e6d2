"""The chart's streaming gateway and focus service as the local cluster runs them (real processes
for their pods, their in-cluster addresses resolved to the local emulators), reached from a
browser through ``kubectl port-forward``: frames decode, and a focus change made through the
gateway's pass-through reaches the service and the gateway's own frame rates."""

import base64
import json
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client
from streamstack import wait_until
from test_gateway import connect, wait_frames

from loco_lan import demoguest, kube
from loco_lan.diskupload import DiskUploader, UploadRequest
from loco_lan.helm import Helm
from loco_lan.kube.portforward import PortForwards

pytestmark = [pytest.mark.cluster, pytest.mark.qemu, pytest.mark.slow]
NS = "stream"
CHART = Path(__file__).resolve().parents[3] / "charts" / "loco-lan"
RUN_LOCAL = {"loco.lan/run-local": "process"}


@pytest.fixture(scope="module")
def release(local_cluster, kubectl, tmp_path_factory):
    kubectl("create", "namespace", NS)
    api = local_cluster.api()
    disk = tmp_path_factory.mktemp("demo") / "win98.qcow2"
    demoguest.ensure(disk)
    DiskUploader(api, UploadRequest(image=disk, pvc="win98-disk", namespace=NS, access_modes=("ReadWriteOnce",),
                                    timeout=60)).run()
    values = {"replicas": 2,
              "emulator": {"memory": 16, "podAnnotations": {"loco.lan/run-local": "emulator"},
                           "env": [{"name": "LOCO_ACCEL", "value": "tcg"}]},
              "focus": {"podAnnotations": RUN_LOCAL}, "streaming": {"podAnnotations": RUN_LOCAL}}
    helm = Helm(kubeconfig=str(local_cluster.kubeconfig))
    helm.apply("loco", NS, str(CHART), helm.plan("loco", NS, str(CHART), values), wait=False)
    kube.wait_pods_ready(api, NS, "app.kubernetes.io/component in (emulator,focus,streaming)", 4, timeout=180)
    try:
        yield api
    finally:
        helm.uninstall("loco", NS)
        kubectl("delete", "namespace", NS, "--wait=true", "--timeout=60s", check=False)


def test_the_clusters_gateway_through_a_port_forward(local_cluster, release, browser):
    token = base64.b64decode(client.CoreV1Api(release).read_namespaced_secret("loco-focus", NS).data["token"]).decode()
    with PortForwards(NS, [("svc/loco-streaming", 8443)], kubeconfig=str(local_cluster.kubeconfig)) as forwards:
        url = f"http://127.0.0.1:{forwards.port('svc/loco-streaming', 8443)}"
        wait_until(lambda: _get(url + "/healthz") and _get(url + "/healthz")["live"] == 2, 120,
                   "the gateway streaming both guests")
        context = browser.new_context()
        page = context.new_page()
        # The test page, served as if it came from the gateway (the web client is step 8's).
        harness = Path(__file__).parent / "harness"
        page.route(f"{url}/", lambda route: route.fulfill(path=harness / "index.html"))
        page.route(f"{url}/harness.js", lambda route: route.fulfill(path=harness / "harness.js"))
        page.goto(url + "/")
        assert connect(page, "cluster", "instance-1", token=token) is True
        shown = wait_frames(page, "cluster", 10, timeout=60)
        assert (shown["width"], shown["height"]) == demoguest.MAIN_MODE[:2]

        changed = page.evaluate("""(token) => fetch('/api/active', {method: 'POST',
            headers: {'Content-Type': 'application/json', Authorization: 'Bearer ' + token},
            body: JSON.stringify({ids: ['instance-1']})}).then(r => r.json())""", token)
        assert changed["active"] == ["instance-1"] and changed["changed"] is True
        wait_until(lambda: 'loco_stream_focused{instance="instance-1"} 1' in _get(url + "/metrics", text=True), 20,
                   "the gateway following the focus service")
        context.close()


def _get(url: str, text: bool = False):
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            body = reply.read().decode()
            return body if text else json.loads(body)
    except OSError:
        return None
