"""playbooks/test.yml -> role loco.lan.cluster_tests -> module loco.lan.netcheck, end to end,
on a LAN of network namespaces."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from netnslan import INTERFACE

pytestmark = [pytest.mark.netns, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def run_playbook(lan, tmp_path, *args: str) -> subprocess.CompletedProcess:
    extra = {"loco_local_cluster": False, "cluster_tests_netns": lan.namespaces, "cluster_tests_network": True,
             "cluster_tests_interface": INTERFACE, "cluster_tests_port_timeout": 1.5,
             "cluster_tests_report_dir": str(tmp_path)}
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default"}
    command = [str(BIN / "ansible-playbook"), "playbooks/test.yml", "-e", json.dumps(extra), *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_playbook_passes_in_check_mode_and_fails_on_a_blocked_port(netns_lan, tmp_path):
    lan = netns_lan("a", "b", "c")
    run = run_playbook(lan, tmp_path, "--check")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "RESULT: PASS (arp, ipv6, directplay; 42 pair tests, 0 findings)" in run.stdout
    assert "changed=0" in run.stdout and "failed=0" in run.stdout
    assert json.loads((tmp_path / "netcheck-local.json").read_text())["ok"] is True

    lan.exec("c", "nft", "-f", "-", input=b"""table inet lncblock {
        chain input { type filter hook input priority 0; policy accept; udp dport 2300 drop; }
    }""")
    run = run_playbook(lan, tmp_path)
    assert run.returncode == 2, run.stdout + run.stderr
    blocked = f"{lan.ns('a')} -> {lan.ns('c')} udp/2300 (192.168.10.3): no answer"
    assert f"LAN checks failed: {blocked}" in run.stdout  # the task's one-line message
    assert f"[directplay] {blocked}" in run.stdout  # the table, shown by the role even on failure
    assert "RESULT: FAIL (arp, ipv6, directplay; 42 pair tests, 2 findings)" in run.stdout
    assert json.loads((tmp_path / "netcheck-local.json").read_text())["ok"] is False
    assert lan.pids() == {}
