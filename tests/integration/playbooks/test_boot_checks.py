"""bootstrap.yml then test.yml on inventories/local, with real emulators: the agent of the local
cluster boots one QEMU per emulator pod from the demo disk, and the cluster tests reach each
one's VNC through the Kubernetes API. A disk showing a dialog fails the tests, naming the pod
and the state and leaving its screen as PNG; no QEMU outlives the cluster."""

import io
import json
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from loco_lan import demodisk, kube
from loco_lan.diskupload import DiskUploader, UploadRequest
from loco_lan.liveaccess import LiveAccess, LiveConfig
from loco_lan.screen import analyse

pytestmark = [pytest.mark.cluster, pytest.mark.qemu, pytest.mark.slow]
LOCAL = "inventories/local"
SCREEN = ("-e", "loco_demo_guest=screen")  # the demo disk: the boot checks' own screens, no LAN to check
CLUSTER = "boottest"


def qemus(tmp_root) -> list[str]:
    found = subprocess.run(["pgrep", "-a", "-f", f"qemu-system.*{tmp_root}"], capture_output=True, text=True)
    return found.stdout.splitlines()


@pytest.fixture
def no_qemu_left(tmp_path_factory):
    """Set up before ``sandbox``, so it checks after the sandbox has stopped the clusters."""
    root = tmp_path_factory.getbasetemp()
    before = set(qemus(root))
    yield
    deadline = time.monotonic() + 30
    while set(qemus(root)) - before and time.monotonic() < deadline:
        time.sleep(0.3)
    assert set(qemus(root)) - before == set(), "QEMU left running after the test"


def instances_playbook(root, config):
    play = root / "check_instances.yml"
    play.write_text(f"""
- name: Boot-check the instances of instances.json
  hosts: loco_clusters
  gather_facts: false
  tasks:
    - name: Check them
      loco.lan.boot_check:
        instances: {config / "instances.json"}
        timeout: 60
      register: checked
    - name: Every instance shows its desktop
      ansible.builtin.assert:
        that: "checked.states == {{'instance-0': 'desktop', 'instance-1': 'desktop'}}"
""")
    return play


def test_tests_pass_on_the_demo_and_name_an_emulator_stuck_on_a_dialog(no_qemu_left, sandbox, live_ports):
    config, reports = sandbox.root / "config", sandbox.root / "reports"
    common = ("-e", f"loco_config_dir={config}", "-e", f"loco_local_cluster_name={CLUSTER}", "-e", "loco_replicas=2",
              *SCREEN, *live_ports[2])
    tests = (*common, "-e", f"cluster_tests_report_dir={reports}")
    cluster_dir = sandbox.root / "state" / "loco-lan" / "clusters" / CLUSTER

    boot = sandbox("bootstrap.yml", LOCAL, *common)
    assert boot.returncode == 0, boot.output[-3000:]
    assert len(qemus(cluster_dir)) == 2

    passed = sandbox("test.yml", LOCAL, *tests)
    assert passed.returncode == 0, passed.output[-3000:]
    assert "Network checks skipped: cluster_tests_network is false" in passed.output  # the demo disk has no LAN
    for pod in ("loco-emulator-0", "loco-emulator-1"):
        assert f"{pod}  desktop  ok after" in passed.output
    report = json.loads((reports / "boot-local.json").read_text())
    assert report["ok"] and [r["state"] for r in report["results"]] == ["desktop", "desktop"]
    assert not (reports / "boot-local").exists()  # no failing screens
    checked = sandbox("test.yml", LOCAL, *tests, "--check")  # the checks only watch: same verdict
    assert checked.returncode == 0 and checked.recap()["local"]["changed"] == 0, checked.output[-3000:]

    # The same screens through live access's port-forwards, named by the instances.json they wrote.
    try:
        live = sandbox("live.yml", LOCAL, *common)
        assert live.returncode == 0, live.output[-3000:]
        by_instances = sandbox(str(instances_playbook(sandbox.root, config)), LOCAL, *common)
        assert by_instances.returncode == 0, by_instances.output[-3000:]
    finally:
        LiveAccess(LiveConfig(namespace="loco"), sandbox.root / "state" / "loco-lan" / "live").stop()

    down = sandbox("teardown.yml", LOCAL, *common)
    assert down.returncode == 0, down.output[-3000:]
    deadline = time.monotonic() + 30
    while qemus(cluster_dir) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert qemus(cluster_dir) == [], "uninstalling the release must stop its emulators"

    # The same LAN on a disk that paints a dialog in front of the desktop.
    dialog = demodisk.make_disk(sandbox.root / "dialog.qcow2", demodisk.paint_sector(*demodisk.SCREENS["dialog"]))
    DiskUploader(kube.api_client(str(cluster_dir / "kubeconfig")),
                 UploadRequest(image=dialog, pvc="win98-disk", namespace="loco", file_name="dialog.qcow2",
                               access_modes=("ReadWriteOnce",), timeout=60)).run()
    values = {"loco_chart_values": {"emulator": {"memory": 32, "diskFile": "dialog.qcow2",
                                                 "podAnnotations": {"loco.lan/run-local": "emulator"}}}}
    boot = sandbox("bootstrap.yml", LOCAL, *common, "-e", json.dumps(values))
    assert boot.returncode == 0, boot.output[-3000:]

    failed = sandbox("test.yml", LOCAL, *tests, "-e", "cluster_tests_boot_timeout=20")
    assert failed.returncode != 0
    assert "boot check failed for 2 of 2: loco-emulator-0: dialog" in failed.output, failed.output[-3000:]
    assert "loco-emulator-1: dialog" in failed.output
    screen = reports / "boot-local" / "loco-emulator-1.png"
    assert f"last screen in {screen}" in failed.output
    picture = np.asarray(Image.open(io.BytesIO(screen.read_bytes())).convert("RGB"))
    assert picture.shape == (480, 640, 3)
    assert analyse(picture).state == "desktop-dialog"
    assert json.loads((reports / "boot-local.json").read_text())["ok"] is False
