"""The bootstrap playbook end to end on the local control plane, a loopback registry and a
real demo qcow2: idempotence, scaling, several clusters in one run, and a readable failure."""

import json

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
LOCAL = "inventories/local"
SCREEN = ("-e", "loco_demo_guest=screen")  # the demo disk that boots in a second: these test the playbooks


def instances(path) -> list[dict]:
    return json.loads(path.read_text())


def test_bootstrap_is_idempotent_and_follows_scaling(sandbox, live_ports):
    config = sandbox.root / "config"
    args = ("-e", f"loco_config_dir={config}", "-e", "loco_local_cluster_name=boot", *SCREEN, *live_ports[2])
    first = sandbox("bootstrap.yml", LOCAL, *args)
    assert first.returncode == 0, first.output[-3000:]
    entries = instances(config / "instances.json")
    assert [e["id"] for e in entries] == ["instance-0", "instance-1", "instance-2"]
    assert all(e["ready"] and e["status"] == "ready" for e in entries)
    assert json.loads((config / "active.json").read_text()) == {"active": [], "seq": 0}
    assert json.loads((config / "hotkeys.json").read_text())["focus"]["Ctrl+3"] == "instance-2"

    second = sandbox("bootstrap.yml", LOCAL, *args)
    assert second.returncode == 0, second.output[-3000:]
    assert second.recap()["local"]["changed"] == 0, second.output[-3000:]
    print(f"\nbootstrap: first run {first.seconds:.1f}s, second run (changed=0) {second.seconds:.1f}s")

    scaled = sandbox("bootstrap.yml", LOCAL, *args, "-e", "loco_replicas=5")
    assert scaled.returncode == 0, scaled.output[-3000:]
    assert scaled.recap()["local"]["changed"] >= 1
    assert [e["id"] for e in instances(config / "instances.json")] == [f"instance-{i}" for i in range(5)]
    again = sandbox("bootstrap.yml", LOCAL, *args, "-e", "loco_replicas=5")
    assert again.recap()["local"]["changed"] == 0, again.output[-3000:]


def test_one_run_deploys_two_clusters(sandbox):
    inventory = sandbox.root / "two.yml"
    inventory.write_text(f"""
loco_clusters:
  hosts:
    alpha: {{loco_local_cluster_name: alpha, loco_replicas: 2, loco_namespace: lan-alpha}}
    beta: {{loco_local_cluster_name: beta, loco_replicas: 3, loco_namespace: lan-beta}}
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
    loco_local_cluster: true
    loco_local_nodes: 2
    loco_local_registry: true
    loco_snapshot_repository: loco/qemu-snapshots
    loco_snapshot_tag: win98-demo
    loco_ready_timeout: 120
    loco_config_dir: "{sandbox.root}/config/{{{{ inventory_hostname }}}}"
""")
    run = sandbox("bootstrap.yml", inventory)
    assert run.returncode == 0, run.output[-3000:]
    assert set(run.recap()) == {"alpha", "beta"}
    for host, count in (("alpha", 2), ("beta", 3)):
        entries = instances(sandbox.root / "config" / host / "instances.json")
        assert len(entries) == count
        assert all(f".lan-{host}.svc.cluster.local" in e["vncUrl"] for e in entries)


def test_a_pod_that_cannot_be_scheduled_fails_the_bootstrap_with_its_events(sandbox):
    config = sandbox.root / "config"
    run = sandbox("bootstrap.yml", LOCAL, *SCREEN, "-e", f"loco_config_dir={config}",
                  "-e", "loco_local_cluster_name=stuck",
                  "-e", "loco_ready_timeout=15", "-e", "loco_replicas=1",
                  "-e", '{"loco_chart_values": {"emulator": {"nodeSelector": {"disktype": "floppy"}}}}')
    assert run.returncode != 0
    assert "0/1 pods ready" in run.output
    assert "loco-emulator-0: Pending" in run.output
    assert "FailedScheduling" in run.output
    assert not (config / "instances.json").exists()


def test_bad_inventory_values_are_caught_before_anything_runs(sandbox):
    run = sandbox("bootstrap.yml", LOCAL, "-e", "loco_local_cluster_name=never", "-e", '{"loco_replicas": "three"}')
    assert run.returncode != 0
    assert "loco_replicas" in run.output and "int" in run.output
    assert not (sandbox.root / "state" / "loco-lan" / "clusters" / "never").exists()
