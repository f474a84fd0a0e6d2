"""The loco.lan.snapshot module and the loco.lan.snapshot role, run by real ansible-playbook."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from regkit import make_qcow2, sha256_file

from loco_lan.oci import push_artifact

pytestmark = [pytest.mark.registry, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]


def play(tmp_path: Path, tasks: list = (), *, roles: list = (), extra: dict | None = None):
    """Run one play on localhost: returns the registered result of each task (failures included)
    and the ansible-playbook run itself."""
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    saved = tmp_path / "results.json"
    tasks = [{**task, "register": f"result_{i}", "ignore_errors": True} for i, task in enumerate(tasks)]
    if tasks:
        everything = ", ".join(f"result_{i}" for i in range(len(tasks)))
        save = {"content": f"{{{{ [{everything}] | to_json }}}}", "dest": str(saved)}
        tasks.append({"name": "Save the results", "ansible.builtin.copy": save})
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Test", "hosts": "localhost", "gather_facts": False,
                                         "roles": list(roles), "tasks": tasks}]))
    command = ["ansible-playbook", "-i", str(inventory), str(playbook)]
    if extra:
        command += ["-e", json.dumps(extra)]
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    return (json.loads(saved.read_text()) if tasks else []), done


def pull_task(reference: str, path: Path, **options) -> dict:
    return {"name": "Pull", "loco.lan.snapshot": {"reference": reference, "path": str(path),
                                                  "insecure_http": True, **options}}


def test_module_pull_is_idempotent_and_checkable(client, ref, qcow2, tmp_path):
    disk = qcow2()
    target = ref()
    digest = push_artifact(client, disk, target, sha256_file(disk))
    dest = tmp_path / "images" / "win98.qcow2"
    pull = pull_task(str(target), dest)
    stat = {"name": "Look", "ansible.builtin.stat": {"path": str(dest)}}
    planned, after_plan, first, second, planned_again = play(
        tmp_path, [{**pull, "check_mode": True}, stat, pull, pull, {**pull, "check_mode": True}]
    )[0]
    assert (planned["changed"], planned["action"], planned["digest"]) == (True, "pulled", digest)
    assert after_plan["stat"]["exists"] is False  # check mode wrote nothing
    assert (first["changed"], first["action"], first["digest"]) == (True, "pulled", digest)
    assert first["sha256"] == sha256_file(disk)
    assert (first["size"], first["virtual_size"]) == (disk.stat().st_size, 16 << 20)
    assert dest.read_bytes() == disk.read_bytes()
    assert (second["changed"], second["action"]) == (False, "current")
    assert (planned_again["changed"], planned_again["action"]) == (False, "current")


def test_module_push_and_failure_reason(client, ref, qcow2, tmp_path):
    disk = qcow2()
    target = ref()
    options = {"state": "pushed", "reference": str(target), "path": str(disk), "insecure_http": True}
    push = {"name": "Push", "loco.lan.snapshot": options}
    missing = pull_task(str(ref("missing")), tmp_path / "x.qcow2")
    first, second, failed = play(tmp_path, [push, push, missing])[0]
    assert (first["changed"], first["action"]) == (True, "pushed")
    assert (second["changed"], second["action"]) == (False, "current")
    assert failed["failed"] and failed["reason"] == "not_found"
    assert "tag missing not found" in failed["msg"]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_role(tmp_path: Path, reference: str, dest: Path, **more) -> subprocess.CompletedProcess:
    extra = {"snapshot_reference": reference, "snapshot_path": str(dest), "snapshot_registry_retries": 0,
             "snapshot_registry_insecure_http": True, **more}
    return play(tmp_path, roles=["loco.lan.snapshot"], extra=extra)[1]


def test_role_pulls_when_it_can(client, ref, qcow2, tmp_path):
    disk = qcow2()
    target = ref()
    push_artifact(client, disk, target, sha256_file(disk))
    dest = tmp_path / "win98.qcow2"
    run = run_role(tmp_path, str(target), dest)
    assert run.returncode == 0, run.stdout
    assert f"snapshot pulled: {dest} from {target}" in run.stdout
    assert dest.read_bytes() == disk.read_bytes()


@pytest.mark.qemu
def test_role_rebuilds_when_registry_unreachable_or_tag_missing(ref, tmp_path):
    source = make_qcow2(tmp_path / "source.qcow2")
    dest = tmp_path / "win98.qcow2"
    unreachable = f"127.0.0.1:{closed_port()}/loco/win98:base"
    run = run_role(tmp_path, unreachable, dest, snapshot_rebuild_from_disk=str(source))
    assert run.returncode == 0, run.stdout
    assert "registry path failed (unreachable: cannot reach registry" in run.stdout
    assert f"snapshot rebuilt: {dest}" in run.stdout
    assert (tmp_path / "win98.qcow2.sha256").is_file()

    # tag missing: the same fallback; the image is there already, so it is kept
    run = run_role(tmp_path, str(ref("missing")), dest, snapshot_rebuild_from_disk=str(source))
    assert run.returncode == 0, run.stdout
    assert "registry path failed (not_found: tag missing not found" in run.stdout
    assert f"snapshot kept (already present): {dest}" in run.stdout


def test_role_fallback_fail(ref, tmp_path):
    dest = tmp_path / "win98.qcow2"
    run = run_role(tmp_path, str(ref("missing")), dest, snapshot_fallback="fail")
    assert run.returncode == 2
    assert "tag missing not found" in run.stdout
    assert not dest.exists()
