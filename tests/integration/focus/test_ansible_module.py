"""loco.lan.focus from real ansible runs against a real focus service (the example playbook included)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def ansible(tool: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_LOCALHOST_WARNING": "false",
    }
    return subprocess.run(
        [str(BIN / tool), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )


def recap_changed(run: subprocess.CompletedProcess) -> int:
    assert run.returncode == 0, run.stdout + run.stderr
    line = next(
        line for line in run.stdout.splitlines() if line.startswith("localhost") and "changed=" in line
    )
    return int(line.split("changed=")[1].split()[0])


@pytest.mark.slow
def test_example_playbook_is_idempotent_and_check_mode_changes_nothing(focus_service, focus_dir):
    service = focus_service("--mode", "multi", "--max-active", "3")
    service.post("/api/active", {"ids": ["instance-0"]})
    playbook = [
        "examples/focus/focus-playbook.yml",
        "-e",
        f"focus_url={service.url}",
        "-e",
        f"focus_token_file={focus_dir / 'token'}",
    ]
    assert recap_changed(ansible("ansible-playbook", *playbook)) == 3
    assert service.get()["active"] == ["instance-1", "instance-3"]
    assert recap_changed(ansible("ansible-playbook", *playbook)) == 0
    seq = service.get()["seq"]

    module_args = f"url={service.url} ids=instance-2 state=present token={service.token}"
    check = ansible("ansible", "localhost", "-m", "loco.lan.focus", "-a", module_args, "--check", "--diff")
    assert check.returncode == 0, check.stdout + check.stderr
    assert '+        "instance-2"' in check.stdout and "CHANGED" in check.stdout
    assert service.token not in check.stdout + check.stderr  # no_log
    assert (service.get()["active"], service.get()["seq"]) == (["instance-1", "instance-3"], seq)

    unknown = ansible(
        "ansible",
        "localhost",
        "-m",
        "loco.lan.focus",
        "-a",
        f"url={service.url} ids=instance-7 token={service.token}",
        "--check",
    )
    assert unknown.returncode != 0
    assert (
        "unknown instance id(s): instance-7 (valid ids: instance-0, instance-1, instance-2, instance-3)"
        in (unknown.stdout)
    )

    cleared = ansible(
        "ansible",
        "localhost",
        "-m",
        "loco.lan.focus",
        "-a",
        json.dumps({"url": service.url, "ids": [], "token_file": str(focus_dir / "token")}),
    )
    assert cleared.returncode == 0 and "CHANGED" in cleared.stdout
    assert service.get()["active"] == []
