"""bootstrap.yml then test.yml on inventories/local as it comes (its guest: the test guest): three
real guests on one socket LAN through instance 0's hub over loopback, checked from inside each
guest and from the hub's probe port; deleting instance 0's pod takes the hub away, and the
checks pass again once the restarted pod's hub has its peers back."""

import json

import pytest

from loco_lan import kube

pytestmark = [pytest.mark.cluster, pytest.mark.qemu, pytest.mark.slow]
LOCAL = "inventories/local"
CLUSTER = "lantest"


def test_the_guests_lan_passes_from_inside_and_from_the_hub_and_heals(sandbox, live_ports):
    config, reports = sandbox.root / "config", sandbox.root / "reports"
    common = ("-e", f"loco_config_dir={config}", "-e", f"loco_local_cluster_name={CLUSTER}",
              *live_ports[2])  # the inventory's own guest: the test guest, on the LAN
    tests = (*common, "-e", f"cluster_tests_report_dir={reports}", "-e", "cluster_tests_boot=false")

    boot = sandbox("bootstrap.yml", LOCAL, *common)
    assert boot.returncode == 0, boot.output[-3000:]

    passed = sandbox("test.yml", LOCAL, *tests)
    assert passed.returncode == 0, passed.output[-4000:]
    report = json.loads((reports / "netcheck-local.json").read_text())
    assert report["ok"] and set(report["checks"]) == {"arp", "ipv6", "directplay", "segment"}
    assert report["checks"]["directplay"]["pairs_tested"] == 3 * 2 * 4
    assert {h["name"] for h in report["hosts"]} == {f"loco-emulator-{n}" for n in range(3)}
    learned = {mac for port in report["segment"]["ports"] for mac in port["macs"]}
    assert {f"52:54:00:4c:4f:0{n}" for n in range(3)} <= learned

    api = kube.api_client(str(sandbox.root / "state" / "loco-lan" / "clusters" / CLUSTER / "kubeconfig"))
    kube.resource(api, "v1", "Pod").delete(name="loco-emulator-0", namespace="loco")
    kube.wait_pods_ready(api, "loco", "app.kubernetes.io/component=emulator", 3, timeout=300)
    for _ in range(10):  # until the restarted guest has booted and the uplinks are back: each run is a poll
        again = sandbox("test.yml", LOCAL, *tests)
        if again.returncode == 0:
            break
    assert again.returncode == 0, again.output[-4000:]
