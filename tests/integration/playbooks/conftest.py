"""Run the project's playbooks as a user would, with everything they create kept under tmp."""

import json
import os
import random
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from loco_lan.cluster.local import LocalCluster
from loco_lan.liveaccess import LiveAccess, LiveConfig
from loco_lan.netutil import bindable

REPO = Path(__file__).resolve().parents[3]


@dataclass
class PlaybookRun:
    returncode: int
    output: str
    seconds: float

    def recap(self) -> dict[str, dict[str, int]]:
        """Per host: ok, changed, failed... from the PLAY RECAP."""
        hosts = {}
        for host, stats in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", self.output, flags=re.M):
            hosts[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", stats)}
        return hosts


@pytest.fixture
def live_ports():
    """``-e`` options giving live access VNC and health base ports whose next ten ports are free,
    and a free gateway port, below the kernel's ephemeral range (32768 up) where connections could
    take them."""
    while True:
        vnc, health = random.randrange(20000, 25000, 10), random.randrange(25000, 30000, 10)
        web = random.randrange(30000, 32000)
        if bindable(web) and all(bindable(base + i) for base in (vnc, health) for i in range(10)):
            return vnc, health, ("-e", f"loco_live_vnc_base_port={vnc}", "-e", f"loco_live_health_base_port={health}",
                                 "-e", f"loco_live_web_port={web}")


@pytest.fixture
def sandbox(tmp_path_factory):
    """State, caches and config of one test's playbook runs; stops its clusters at the end."""
    root = tmp_path_factory.mktemp("playbooks")
    env = {**os.environ, "XDG_STATE_HOME": str(root / "state"), "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}

    def run(playbook: str, inventory: str | Path, *extra: str) -> PlaybookRun:
        start = time.monotonic()
        result = subprocess.run(
            ["ansible-playbook", "-i", str(inventory), str(REPO / "playbooks" / playbook),
             "-e", f"loco_image_dir={root / 'images'}", "-e", f"loco_state_dir={root / 'state' / 'loco-lan'}",
             *extra],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        return PlaybookRun(result.returncode, result.stdout + result.stderr, time.monotonic() - start)

    run.root = root
    yield run
    live = root / "state" / "loco-lan" / "live"
    for state in live.glob("live-*.json"):  # bootstrap.yml leaves live access running, as a user wants it
        LiveAccess(LiveConfig(**json.loads(state.read_text())["config"]), live).stop()
    clusters = root / "state" / "loco-lan" / "clusters"
    for cluster in clusters.iterdir() if clusters.exists() else []:
        LocalCluster(cluster.name, state_root=clusters).down()
    for registry in (root / "state" / "loco-lan" / "registries").glob("*/state.json"):
        pid = json.loads(registry.read_text()).get("pid")
        if pid:
            subprocess.run(["kill", str(pid)], check=False)
